//! The transactional outbox and the consumer inbox every service has in its own schema (SPEC §2),
//! shared by the services' baseline migrations and by the upgrade from the single-schema layout.
//!
//! Frozen: migrations that ran must keep meaning the same thing. A change is a new migration.

use sea_orm::ConnectionTrait;
use sea_orm_migration::prelude::*;

use crate::service::Service;

/// Creates `outbox`, `inbox` and the insert trigger in the current schema (the first one of
/// `search_path`); inserting into the outbox wakes the service's relay with `NOTIFY <channel>`.
pub(crate) fn up(channel: &str) -> String {
    // The channel is one of `Service::outbox_channel()`'s constants: letters and underscores.
    debug_assert!(channel.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    format!(
        r#"
CREATE TABLE outbox (
    -- Published as Nats-Msg-Id.
    id           UUID PRIMARY KEY,
    subject      TEXT NOT NULL,
    payload      JSONB NOT NULL,
    -- A flat JSON object: header name -> string value.
    headers      JSONB NOT NULL DEFAULT '{{}}',
    -- clock_timestamp(), not now(): rows of one transaction keep their insertion order.
    created_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    published_at TIMESTAMPTZ NULL
);
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL;

-- A wake-up for this schema's relay only: it still polls, and claims rows with FOR UPDATE SKIP
-- LOCKED. The notification is delivered when the inserting transaction commits.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{channel}', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE inbox (
    consumer     TEXT NOT NULL,
    -- The envelope's id, not the transport's.
    event_id     UUID NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
"#
    )
}

/// Undoes [`up`] in the current schema.
pub(crate) const DOWN: &str = r#"
DROP TABLE inbox;
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
DROP TABLE outbox;
"#;

/// A service's baseline migration: its tables (`tables_up`), then its outbox and inbox; down
/// undoes both. Each service's first migration file declares one as its `MIGRATION`.
pub(crate) struct Baseline {
    /// `module_path!()` of the migration's file: its last segment is the migration's name, as
    /// `DeriveMigrationName` would make it.
    module: &'static str,
    service: Service,
    tables_up: &'static str,
    tables_down: &'static str,
}

impl Baseline {
    pub(crate) const fn new(
        module: &'static str,
        service: Service,
        tables_up: &'static str,
        tables_down: &'static str,
    ) -> Self {
        Self {
            module,
            service,
            tables_up,
            tables_down,
        }
    }
}

impl MigrationName for Baseline {
    fn name(&self) -> &str {
        self.module.rsplit("::").next().unwrap_or(self.module)
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Baseline {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(self.tables_up).await?;
        db.execute_unprepared(&up(self.service.outbox_channel()))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(DOWN).await?;
        db.execute_unprepared(self.tables_down).await?;
        Ok(())
    }
}
