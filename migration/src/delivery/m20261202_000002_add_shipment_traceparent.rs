//! A shipment keeps the W3C `traceparent` of the confirmation that created it, so the timer's
//! later steps (dispatched, delivered) continue the order's trace.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}

const UP: &str = "ALTER TABLE shipments ADD traceparent TEXT;";
const DOWN: &str = "ALTER TABLE shipments DROP COLUMN traceparent;";
