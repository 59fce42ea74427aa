//! The notification service's migrations, applied to the `notification` schema (`search_path` = it alone),
//! recorded in that schema's own `seaql_migrations`.

use sea_orm_migration::prelude::*;

pub(crate) mod m20261201_000001_create_notification_schema;
pub(crate) mod m20261203_000002_add_alert_details;

/// The notification service's migrations, oldest first.
pub struct NotificationMigrator;

#[async_trait::async_trait]
impl MigratorTrait for NotificationMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261201_000001_create_notification_schema::MIGRATION),
            Box::new(m20261203_000002_add_alert_details::Migration),
        ]
    }
}
