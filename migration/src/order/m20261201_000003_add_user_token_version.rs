//! Access tokens carry their user's token version (`ver`); raising it revokes every token issued
//! before: a token can be revoked.

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

const UP: &str = "ALTER TABLE users ADD token_version BIGINT NOT NULL DEFAULT 0;";
const DOWN: &str = "ALTER TABLE users DROP COLUMN token_version;";
