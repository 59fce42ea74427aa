//! `ingredients`: a merchant's stock of one ingredient; owned by the stock service.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ingredients")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// A merchant of the order service (no foreign key across services).
    pub merchant_id: i64,
    /// Unique per merchant (`ingredients_merchant_id_name_key`).
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// `g`, `ml` or `pcs`: the base unit of `stock`, `reference_level` and recipe amounts.
    #[sea_orm(column_type = "Text")]
    pub unit: String,
    /// Never negative (`ingredients_stock_non_negative`).
    pub stock: i64,
    /// 100 %: the level at the last seed or restock; > 0.
    pub reference_level: i64,
    /// True once stock.low was emitted, until a restock re-arms it.
    pub low_stock_alerted: bool,
    /// Where alerts go; copied from the catalogue at seed.
    #[sea_orm(column_type = "Text")]
    pub merchant_email: String,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
