//! The delivery service's schema: shipments with the durable due time of their next step and the
//! correlation id of the confirmation that created them (SPEC §2, §3), plus the service's own
//! outbox and inbox.

use crate::outbox_inbox::Baseline;
use crate::service::Service;

pub(crate) const MIGRATION: Baseline = Baseline::new(module_path!(), Service::Delivery, UP, DOWN);

/// Unqualified names: the migrator runs with `search_path` = the `delivery` schema only.
const UP: &str = r#"
CREATE TABLE shipments (
    id            UUID PRIMARY KEY,
    -- No foreign key: orders belong to the order service. One shipment per order.
    order_id      UUID NOT NULL CONSTRAINT shipments_order_id_key UNIQUE,
    status        TEXT NOT NULL CONSTRAINT shipments_status_check
                  CHECK (status IN ('pending', 'dispatched', 'delivered', 'cancelled')),
    -- When the next transition is due; NULL once there is none.
    next_step_at  TIMESTAMPTZ NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    dispatched_at TIMESTAMPTZ NULL,
    delivered_at  TIMESTAMPTZ NULL,
    -- The `delivery.*` events its timers emit later carry the confirmation's correlation id.
    correlation_id TEXT NULL
);
CREATE INDEX shipments_next_step_at_idx ON shipments (next_step_at) WHERE next_step_at IS NOT NULL;
"#;

const DOWN: &str = r#"
DROP TABLE shipments;
"#;
