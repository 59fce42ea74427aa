//! The notification service's low-stock e-mails, one per event (SPEC §2).

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

const UP: &str = r#"
CREATE TABLE notifications (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The envelope id of the stock.low event: one notification per event.
    event_id        UUID NOT NULL CONSTRAINT notifications_event_id_key UNIQUE,
    ingredient_id   BIGINT NOT NULL,
    ingredient_name TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    status          TEXT NOT NULL CONSTRAINT notifications_status_check
                    CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INT NOT NULL DEFAULT 0,
    last_error      TEXT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ NULL
);
"#;

const DOWN: &str = r#"
DROP TABLE notifications;
"#;
