//! `recipe_lines`: how much of each ingredient one unit of a product uses; owned by the order
//! service.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "recipe_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: i64,
    /// An ingredient of the stock service (no foreign key across services).
    #[sea_orm(primary_key, auto_increment = false)]
    pub ingredient_id: i64,
    /// Per unit of product, in the ingredient's base unit; > 0.
    pub amount: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::products::Entity",
        from = "Column::ProductId",
        to = "super::products::Column::Id",
        on_delete = "Cascade"
    )]
    Products,
}

impl ActiveModelBehavior for ActiveModel {}
