//! `order_status_history`: every status an order took, with its time; owned by the order
//! service.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "order_status_history")]
pub struct Model {
    /// Increasing: orders the history of one order.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_id: Uuid,
    pub status: super::orders::OrderStatus,
    pub at: DateTimeWithTimeZone,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::orders::Entity",
        from = "Column::OrderId",
        to = "super::orders::Column::Id",
        on_delete = "Cascade"
    )]
    Orders,
}

impl ActiveModelBehavior for ActiveModel {}
