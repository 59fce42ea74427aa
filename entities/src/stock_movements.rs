//! `stock_movements`: the audit trail of stock changes (their sum is the stock); owned by the
//! stock service.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "stock_movements")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The order reserving or releasing; `None` for seed and restock. Unique with
    /// `ingredient_id` and `reason` (`stock_movements_order_ingredient_reason_key`).
    pub order_id: Option<Uuid>,
    pub ingredient_id: i64,
    /// Signed, in the ingredient's base unit.
    pub delta: i64,
    pub reason: Reason,
    pub created_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::ingredients::Entity",
        from = "Column::IngredientId",
        to = "super::ingredients::Column::Id"
    )]
    Ingredients,
}

impl ActiveModelBehavior for ActiveModel {}

/// Why a stock movement happened; `stock_movements.reason`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The level a merchant's seed set.
    Seed,
    /// Taken by a confirmed order.
    Reserve,
    /// Given back by a cancelled order.
    Release,
    /// Added by a merchant's restock.
    Restock,
}

impl Reason {
    /// The stored name (what [`sea_orm::ActiveEnum::to_value`] gives, without allocating).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Seed => "seed",
            Self::Reserve => "reserve",
            Self::Release => "release",
            Self::Restock => "restock",
        }
    }
}
