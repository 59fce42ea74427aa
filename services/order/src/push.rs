//! Order status as it happens, across API instances (README "One order's life").
//!
//! Whichever instance's consumer settles an order's event, the client waiting for that order
//! may be connected to another instance. So after each commit that changes statuses, the
//! committing instance publishes the changes on core NATS ([`StatusPublisher`], subject
//! [`nats::push::ORDER_STATUS`]), and every instance subscribes once and wakes its local
//! watchers of those orders ([`OrderWatchers`]). A push is a wake-up, not the truth: it can be
//! lost (core NATS is at-most-once), so a watcher reads the order from PostgreSQL after a push
//! and now and then without one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use nats::Namespace;
use nats::push::{OrderStatusPush, OrderStatusPushes};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::OrderStatus;

/// Pushes one order's watchers may fall behind by before they are told they missed some (and
/// re-read the order); an order has at most four changes.
const WATCH_BUFFER: usize = 16;
/// How long a commit's caller waits to hand a push to the NATS client.
const PUBLISH_WAIT: Duration = Duration::from_secs(1);
/// How long start-up waits for the server to confirm the subscription.
const SUBSCRIBE_CONFIRM: Duration = Duration::from_secs(5);

/// Announces committed status changes to every API instance. Cheap to clone.
#[derive(Clone)]
pub struct StatusPublisher {
    client: async_nats::Client,
    subject: String,
}

impl StatusPublisher {
    pub fn new(client: async_nats::Client, namespace: &Namespace) -> Self {
        Self {
            client,
            subject: namespace.subject(nats::push::ORDER_STATUS),
        }
    }

    /// Publishes what a transaction committed, after its commit. Best effort: a lost push
    /// delays a watcher until its next re-read, it loses nothing, so a failure is only logged.
    pub async fn publish(&self, changes: &[(Uuid, OrderStatus)]) {
        if changes.is_empty() {
            return;
        }
        let pushes = OrderStatusPushes {
            changes: changes
                .iter()
                .map(|(order_id, status)| OrderStatusPush {
                    order_id: *order_id,
                    status: status.as_str().to_owned(),
                })
                .collect(),
        };
        let payload = match serde_json::to_vec(&pushes) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%error, "could not encode a status push");
                return;
            }
        };
        // While NATS is away the client buffers, and a full buffer would hold the caller (a
        // consumer about to ack) for a wake-up nobody depends on: give up after a moment.
        match tokio::time::timeout(
            PUBLISH_WAIT,
            self.client.publish(self.subject.clone(), payload.into()),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not publish a status push"),
            Err(_) => tracing::warn!("gave up publishing a status push: the NATS client is busy"),
        }
    }
}

type Senders = HashMap<Uuid, broadcast::Sender<OrderStatus>>;

/// This instance's watchers of orders, woken by every instance's pushes. Cheap to clone.
#[derive(Clone, Default)]
pub struct OrderWatchers {
    senders: Arc<Mutex<Senders>>,
}

impl OrderWatchers {
    /// Subscribes to every instance's pushes and fans them out to this instance's watchers
    /// until `shutdown`. Returns once the server has the subscription, so no push published
    /// after this returns is missed.
    pub async fn start(
        client: async_nats::Client,
        namespace: &Namespace,
        shutdown: CancellationToken,
    ) -> Result<Self, async_nats::SubscribeError> {
        let mut subscription = client
            .subscribe(namespace.subject(nats::push::ORDER_STATUS))
            .await?;
        // The server handles a connection's messages in order: once it has answered a request
        // sent after the SUB (here "no responders"), it has the subscription.
        let probe = namespace.subject(&format!("push.probe.{}", Uuid::new_v4().simple()));
        let _ = tokio::time::timeout(SUBSCRIBE_CONFIRM, client.request(probe, "".into())).await;
        let watchers = Self::default();
        let fan_out = watchers.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = subscription.next() => message,
                    () = shutdown.cancelled() => break,
                };
                let Some(message) = message else {
                    tracing::warn!(
                        "the status push subscription ended: watchers fall back to re-reading"
                    );
                    break;
                };
                match serde_json::from_slice::<OrderStatusPushes>(&message.payload) {
                    Ok(pushes) => fan_out.deliver(&pushes),
                    Err(error) => tracing::warn!(%error, "ignoring a malformed status push"),
                }
            }
        });
        Ok(watchers)
    }

    /// Watches `order_id` from now on: every push for it that arrives after this call is seen.
    /// Register before reading the order, so nothing falls between the read and the watch.
    pub fn watch(&self, order_id: Uuid) -> OrderWatch {
        let receiver = self
            .lock()
            .entry(order_id)
            .or_insert_with(|| broadcast::channel(WATCH_BUFFER).0)
            .subscribe();
        OrderWatch {
            order_id,
            receiver,
            watchers: self.clone(),
        }
    }

    /// Hands each change to the order's watchers here, if there are any.
    pub fn deliver(&self, pushes: &OrderStatusPushes) {
        let senders = self.lock();
        if senders.is_empty() {
            return;
        }
        for change in &pushes.changes {
            if let (Some(sender), Some(status)) = (
                senders.get(&change.order_id),
                OrderStatus::parse(&change.status),
            ) {
                // No receiver left is not an error: its watch is being dropped.
                let _ = sender.send(status);
            }
        }
    }

    /// Orders watched on this instance now.
    pub fn watched(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Senders> {
        // The map holds no invariant a panicking holder could break.
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One watcher of one order; unregisters itself when dropped.
pub struct OrderWatch {
    order_id: Uuid,
    receiver: broadcast::Receiver<OrderStatus>,
    watchers: OrderWatchers,
}

/// What a watcher was woken by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The order reached this status.
    Status(OrderStatus),
    /// Some pushes were missed (the watcher fell behind): read the order again.
    Missed,
}

impl OrderWatch {
    pub fn order_id(&self) -> Uuid {
        self.order_id
    }

    /// The next push for this order. Waits forever when none comes: race it with a timer.
    pub async fn changed(&mut self) -> Pushed {
        match self.receiver.recv().await {
            Ok(status) => Pushed::Status(status),
            Err(broadcast::error::RecvError::Lagged(_)) => Pushed::Missed,
            // The sender lives in the map while this watch exists: never closed under us.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl Drop for OrderWatch {
    fn drop(&mut self) {
        let mut senders = self.watchers.lock();
        // Registration happens under this lock too, so the count cannot grow meanwhile; this
        // watch's own receiver is still counted.
        if senders
            .get(&self.order_id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            senders.remove(&self.order_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushes(changes: &[(Uuid, &str)]) -> OrderStatusPushes {
        OrderStatusPushes {
            changes: changes
                .iter()
                .map(|(order_id, status)| OrderStatusPush {
                    order_id: *order_id,
                    status: (*status).to_owned(),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_push_wakes_every_watcher_of_its_order_and_no_other() {
        let watchers = OrderWatchers::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (mut first, mut second, mut other) =
            (watchers.watch(a), watchers.watch(a), watchers.watch(b));

        watchers.deliver(&pushes(&[(a, "confirmed")]));

        assert_eq!(
            first.changed().await,
            Pushed::Status(OrderStatus::Confirmed)
        );
        assert_eq!(
            second.changed().await,
            Pushed::Status(OrderStatus::Confirmed)
        );
        let nothing = tokio::time::timeout(Duration::from_millis(50), other.changed()).await;
        assert!(nothing.is_err(), "order b was not pushed");
    }

    #[tokio::test]
    async fn the_last_watch_dropped_forgets_its_order() {
        let watchers = OrderWatchers::default();
        let order = Uuid::new_v4();
        let first = watchers.watch(order);
        let second = watchers.watch(order);
        drop(first);
        assert_eq!(watchers.watched(), 1, "one watcher is left");
        drop(second);
        assert_eq!(watchers.watched(), 0);
        // Pushes for nobody cost nothing and break nothing.
        watchers.deliver(&pushes(&[(order, "delivered")]));
    }

    #[tokio::test]
    async fn a_watcher_that_fell_behind_is_told_to_read_again() {
        let watchers = OrderWatchers::default();
        let order = Uuid::new_v4();
        let mut watch = watchers.watch(order);
        for _ in 0..=WATCH_BUFFER {
            watchers.deliver(&pushes(&[(order, "confirmed")]));
        }
        assert_eq!(watch.changed().await, Pushed::Missed);
    }
}
