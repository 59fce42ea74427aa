//! `notifications`: one low-stock e-mail per stock.low event; owned by the notification
//! service.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The event's envelope id (`notifications_event_id_key`).
    #[sea_orm(unique)]
    pub event_id: Uuid,
    pub ingredient_id: i64,
    #[sea_orm(column_type = "Text")]
    pub ingredient_name: String,
    /// The e-mail address.
    #[sea_orm(column_type = "Text")]
    pub recipient: String,
    /// `pending`, `sent` or `failed`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub attempts: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeWithTimeZone,
    pub sent_at: Option<DateTimeWithTimeZone>,
    /// What the alert said; `None` on rows older than these columns.
    pub merchant_id: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub unit: Option<String>,
    pub level: Option<i64>,
    pub reference_level: Option<i64>,
    pub percent: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
