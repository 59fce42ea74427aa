//! Shipments remember the correlation id of the confirmation that created them, so the
//! `delivery.*` events their timers emit later carry it too (SPEC §3: every event a request
//! causes carries its request id).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE shipments ADD COLUMN correlation_id TEXT NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE shipments DROP COLUMN correlation_id")
            .await?;
        Ok(())
    }
}
