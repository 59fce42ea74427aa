//! `shipments`: the delivery of one order; owned by the delivery service.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "shipments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// An order of the order service; one shipment per order (`shipments_order_id_key`).
    #[sea_orm(unique)]
    pub order_id: Uuid,
    pub status: ShipmentStatus,
    /// Durable due time of the next transition; `None` when none is due.
    pub next_step_at: Option<DateTimeWithTimeZone>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub dispatched_at: Option<DateTimeWithTimeZone>,
    pub delivered_at: Option<DateTimeWithTimeZone>,
    /// The request id of the confirmation that created it, carried into its delivery events.
    pub correlation_id: Option<String>,
    /// The W3C `traceparent` of the confirmation that created it, for the delivery events.
    #[sea_orm(column_type = "Text", nullable)]
    pub traceparent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Where a shipment is (SPEC §5 rule 6); `shipments.status`. The delivery service's domain says
/// which moves are legal and when they are due.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ShipmentStatus {
    /// Waiting for the courier; dispatched when its timer is due.
    Pending,
    /// With the courier; delivered when its timer is due.
    Dispatched,
    /// Final: the customer has it.
    Delivered,
    /// Final: the order was cancelled before the courier picked it up.
    Cancelled,
}

impl ShipmentStatus {
    /// The stored name (what [`sea_orm::ActiveEnum::to_value`] gives, without allocating).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Dispatched => "dispatched",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for ShipmentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
