//! `orders`: one customer order to one merchant; owned by the order service.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub merchant_id: i64,
    pub status: OrderStatus,
    pub total_cents: i64,
    #[sea_orm(column_type = "Text")]
    pub currency: String,
    /// Unique per customer (`orders_customer_idempotency_key`).
    #[sea_orm(column_type = "Text", nullable)]
    pub idempotency_key: Option<String>,
    /// Hash of the request body: tells a replay from a different body under the same key.
    #[sea_orm(column_type = "Text", nullable)]
    pub request_hash: Option<String>,
    /// The shortages, when rejected.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub rejection: Option<Json>,
    #[sea_orm(column_type = "Text", nullable)]
    pub correlation_id: Option<String>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    /// The shipment, once a `delivery.*` event named it (the order service's own copy: it does
    /// not read the delivery schema).
    pub shipment_id: Option<Uuid>,
    /// When delivery reported the shipment dispatched.
    pub dispatched_at: Option<DateTimeWithTimeZone>,
    /// When delivery reported the shipment delivered.
    pub delivered_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::CustomerId",
        to = "super::users::Column::Id"
    )]
    Users,
    #[sea_orm(
        belongs_to = "super::merchants::Entity",
        from = "Column::MerchantId",
        to = "super::merchants::Column::Id"
    )]
    Merchants,
}

impl ActiveModelBehavior for ActiveModel {}

/// Where an order is (SPEC §5 rule 4); `orders.status` and `order_status_history.status`. The
/// order service's domain says which moves are legal.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Rejected,
    Dispatched,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    /// The stored name (what [`sea_orm::ActiveEnum::to_value`] gives, without allocating).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Dispatched => "dispatched",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
