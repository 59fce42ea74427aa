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
    pub status: NotificationStatus,
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

/// A notification's status; `notifications.status`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// Not sent yet: being tried, or waiting for a retry.
    Pending,
    /// The SMTP server accepted the email. Final: a redelivery sends nothing.
    Sent,
    /// Given up: the event is in the dead-letter stream. A replayed dead letter tries again.
    Failed,
}

impl NotificationStatus {
    /// The stored name (what [`sea_orm::ActiveEnum::to_value`] gives, without allocating).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for NotificationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
