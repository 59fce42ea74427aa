//! Live pushes: plain core NATS, no stream. They tell the order service's API instances that
//! something they show live has changed, whichever service or instance committed it:
//!
//! - [`ORDER_STATUS`]: an order-service instance committed status changes (its consumers'
//!   batch, an API cancel, new orders): `GET /order/{id}/events`, `POST /order` with
//!   `Prefer: wait` and the merchant's live feed wake up.
//! - [`STOCK_CHANGED`]: stock committed new levels for these merchants (reservations, releases,
//!   seed, restock): their live feeds read the levels again.
//! - [`ALERTS_CHANGED`]: notification recorded a new low-stock alert or an email's outcome.
//!
//! A push is only a wake-up: it can be lost (at-most-once, nothing stores it), so a listener
//! reads the truth from its owner (PostgreSQL, or the owning service over request/reply) and
//! never relies on a push having arrived. Each message covers one transaction or batch, not one
//! row, so a busy consumer costs one publish per batch.
//!
//! The subjects are outside every stream (`push.` is captured by none), so nothing is kept and
//! JetStream pays nothing for them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Namespace;

/// Where committed order status changes are announced (prefixed by the namespace).
pub const ORDER_STATUS: &str = "push.orders.status";
/// Where stock announces the merchants whose ingredient levels changed.
pub const STOCK_CHANGED: &str = "push.stock.changed";
/// Where notification announces the merchants whose alerts changed.
pub const ALERTS_CHANGED: &str = "push.alerts.changed";

/// One order's new status, as committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatusPush {
    pub order_id: Uuid,
    /// The order's merchant, whose live feed shows it.
    pub merchant_id: i64,
    /// `pending`, `confirmed`, `rejected`, `dispatched`, `delivered` or `cancelled`.
    pub status: String,
}

/// The changes one transaction committed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatusPushes {
    pub changes: Vec<OrderStatusPush>,
}

/// The merchants whose ingredient levels (or alert states) one transaction changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChanged {
    pub merchant_ids: Vec<i64>,
}

/// The merchants whose low-stock alerts changed (raised, sent, failed, retried).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertsChanged {
    pub merchant_ids: Vec<i64>,
}

/// How long a publish may wait for the NATS client before it is given up.
const PUBLISH_WAIT: Duration = Duration::from_secs(1);

/// Publishes pushes, best effort. Cheap to clone.
#[derive(Clone)]
pub struct Pusher {
    client: async_nats::Client,
    namespace: Namespace,
}

impl Pusher {
    pub fn new(client: async_nats::Client, namespace: &Namespace) -> Self {
        Self {
            client,
            namespace: namespace.clone(),
        }
    }

    /// Publishes `message` on `subject` (one of this module's), after the commit it reports. A
    /// lost push delays a listener until its next re-read and loses nothing, so a failure is only
    /// logged.
    pub async fn publish(&self, subject: &'static str, message: &impl Serialize) {
        let payload = match serde_json::to_vec(message) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%error, subject, "could not encode a push");
                return;
            }
        };
        // While NATS is away the client buffers, and a full buffer would hold the caller (a
        // consumer about to ack) for a wake-up nobody depends on: give up after a moment.
        match tokio::time::timeout(
            PUBLISH_WAIT,
            self.client
                .publish(self.namespace.subject(subject), payload.into()),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, subject, "could not publish a push"),
            Err(_) => tracing::warn!(
                subject,
                "gave up publishing a push: the NATS client is busy"
            ),
        }
    }
}

/// The distinct merchants of `ids`, sorted: what a [`StockChanged`] or [`AlertsChanged`] carries.
pub fn distinct(ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_subjects_are_captured_by_no_stream() {
        for subject in [ORDER_STATUS, STOCK_CHANGED, ALERTS_CHANGED] {
            for stream in crate::topology::STREAMS {
                let prefix = stream.subjects.trim_end_matches('>');
                assert!(
                    !subject.starts_with(prefix),
                    "{} would store the pushes on {subject}",
                    stream.name
                );
            }
        }
    }

    #[test]
    fn distinct_merchants_are_sorted_once_each() {
        assert_eq!(distinct([3, 1, 3, 2, 1]), vec![1, 2, 3]);
        assert!(distinct([]).is_empty());
    }
}
