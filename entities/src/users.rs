//! `users`: customers and merchant staff; owned by the order service.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Unique case-insensitively (index `users_email_key` on `lower(email)`).
    #[sea_orm(column_type = "Text")]
    pub email: String,
    /// argon2id PHC string.
    #[serde(skip_serializing)]
    #[sea_orm(column_type = "Text")]
    pub password_hash: String,
    /// `customer` or `merchant`.
    #[sea_orm(column_type = "Text")]
    pub role: String,
    /// Set for (and required of) merchant users.
    pub merchant_id: Option<i64>,
    pub created_at: DateTimeWithTimeZone,
    /// Tokens carry the version they were issued at; raising it revokes them all.
    pub token_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::merchants::Entity",
        from = "Column::MerchantId",
        to = "super::merchants::Column::Id"
    )]
    Merchants,
}

impl ActiveModelBehavior for ActiveModel {}
