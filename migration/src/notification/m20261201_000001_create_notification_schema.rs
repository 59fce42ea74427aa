//! The notification service's schema: the low-stock e-mails, one per event (SPEC §2), plus the
//! service's own outbox and inbox.

use crate::outbox_inbox::Baseline;
use crate::service::Service;

pub(crate) const MIGRATION: Baseline =
    Baseline::new(module_path!(), Service::Notification, UP, DOWN);

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
