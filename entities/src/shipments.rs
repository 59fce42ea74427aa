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
    /// `pending`, `dispatched`, `delivered` or `cancelled`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
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
