//! `merchants`: who sells; owned by the order service.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "merchants")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique: bootstrap is idempotent by name.
    #[sea_orm(column_type = "Text", unique)]
    pub name: String,
    /// Low-stock alerts go here.
    #[sea_orm(column_type = "Text")]
    pub email: String,
    /// ISO 4217 code, `EUR` by default.
    #[sea_orm(column_type = "Text")]
    pub currency: String,
    pub created_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
