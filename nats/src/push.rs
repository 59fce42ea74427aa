//! Live status pushes between instances of the order service: plain core NATS, no stream.
//!
//! After an order-service instance commits status changes (its consumers' batch, an API
//! cancel), it publishes one [`OrderStatusPushes`] on [`ORDER_STATUS`]. Every API instance
//! subscribes to it and wakes the clients it holds for those orders (`GET /order/{id}/events`,
//! `POST /order` with `Prefer: wait`), whichever instance's consumer took the event. A push is
//! only a wake-up: it can be lost (at-most-once, nothing stores it), so a listener reads the
//! order's truth from PostgreSQL and never relies on a push having arrived.
//!
//! The subject is outside every stream (`push.` is captured by none), so nothing is kept and
//! JetStream pays nothing for it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where committed order status changes are announced (prefixed by the namespace).
pub const ORDER_STATUS: &str = "push.orders.status";

/// One order's new status, as committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatusPush {
    pub order_id: Uuid,
    /// `confirmed`, `rejected`, `dispatched`, `delivered` or `cancelled`.
    pub status: String,
}

/// The changes one transaction committed: one message per batch rather than one per order, so
/// a busy consumer costs one publish per batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatusPushes {
    pub changes: Vec<OrderStatusPush>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_subject_is_captured_by_no_stream() {
        for stream in crate::topology::STREAMS {
            let prefix = stream.subjects.trim_end_matches('>');
            assert!(
                !ORDER_STATUS.starts_with(prefix),
                "{} would store the pushes",
                stream.name
            );
        }
    }
}
