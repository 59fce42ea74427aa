//! The notification service's schema: the low-stock e-mails, one per event (SPEC §2), plus the
//! service's own outbox and inbox.

use sea_orm_migration::prelude::*;

use crate::outbox_inbox;
use crate::service::Service;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(UP).await?;
        db.execute_unprepared(&outbox_inbox::up(Service::Notification.outbox_channel()))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(outbox_inbox::DOWN).await?;
        db.execute_unprepared(DOWN).await?;
        Ok(())
    }
}

/// Unqualified names: the migrator runs with `search_path` = the `notification` schema only.
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
