//! The transactional outbox every writer publishes through, and the inbox every consumer
//! dedups with (SPEC §2). Inserting into the outbox wakes the relay with `NOTIFY larder_outbox`.

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
CREATE TABLE outbox (
    -- Published as Nats-Msg-Id.
    id           UUID PRIMARY KEY,
    subject      TEXT NOT NULL,
    payload      JSONB NOT NULL,
    -- A flat JSON object: header name -> string value.
    headers      JSONB NOT NULL DEFAULT '{}',
    -- clock_timestamp(), not now(): rows of one transaction keep their insertion order.
    created_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    published_at TIMESTAMPTZ NULL
);
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL;

-- A wake-up for the relay only: it still polls, and claims rows with FOR UPDATE SKIP LOCKED.
-- The notification is delivered when the inserting transaction commits.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('larder_outbox', '');
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
"#;

const DOWN: &str = r#"
DROP TABLE inbox;
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
DROP TABLE outbox;
"#;
