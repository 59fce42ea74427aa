//! Live pushes: what is announced on core NATS (no stream) after a commit, for the order
//! service's API instances to wake their listeners (see `larder_bus::push::Pusher` for the
//! publishing, and the README's "The merchant console" for who listens):
//!
//! - [`ORDER_STATUS`]: an order-service instance committed status changes (its consumers'
//!   batch, an API cancel, new orders).
//! - [`STOCK_CHANGED`]: stock committed new levels for these merchants (reservations, releases,
//!   seed, restock).
//! - [`ALERTS_CHANGED`]: notification recorded a new low-stock alert or an email's outcome.
//!
//! A push is only a wake-up: it can be lost (at-most-once, nothing stores it), so a listener
//! reads the truth from its owner and never relies on a push having arrived. Each message covers
//! one transaction or batch, not one row. The subjects are outside every stream (`push.` is
//! captured by none), so nothing is kept and JetStream pays nothing for them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    fn distinct_merchants_are_sorted_once_each() {
        assert_eq!(distinct([3, 1, 3, 2, 1]), vec![1, 2, 3]);
        assert!(distinct([]).is_empty());
    }
}
