//! `order_lines`: a product and quantity of an order, priced when ordered; owned by the order
//! service.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "order_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: i64,
    /// The product's name when ordered.
    #[sea_orm(column_type = "Text")]
    pub product_name: String,
    /// 1 to 10 000.
    pub quantity: i32,
    /// The product's price when ordered.
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
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
    #[sea_orm(
        belongs_to = "super::products::Entity",
        from = "Column::ProductId",
        to = "super::products::Column::Id"
    )]
    Products,
}

impl ActiveModelBehavior for ActiveModel {}
