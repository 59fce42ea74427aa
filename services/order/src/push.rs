//! Order status and merchant activity as it happens, across API instances (README "One order's
//! life", "The merchant console").
//!
//! Whichever instance's consumer settles an order's event, the client waiting for that order
//! may be connected to another instance; stock and notification change what a merchant's
//! console shows without the order service taking part. So the committing side publishes a
//! push on core NATS after each commit ([`larder_bus::push`]; this service's own through
//! [`StatusPublisher`]), and every instance subscribes once ([`Listeners::start`]) and wakes its
//! local listeners: the watchers of one order ([`OrderWatchers`]) and the live feeds of one
//! merchant ([`MerchantFeeds`]). Dead letters are seen on their own stream's subjects. A push is
//! a wake-up, not the truth: it can be lost (core NATS is at-most-once), so a listener reads the
//! truth after a push and now and then without one.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use larder_bus::Namespace;
use larder_bus::push::Pusher;
use larder_contract::push::{
    ALERTS_CHANGED, AlertsChanged, ORDER_STATUS, OrderStatusPush, OrderStatusPushes, STOCK_CHANGED,
    StockChanged,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::OrderStatus;
use sea_orm::ActiveEnum as _;

/// Pushes one listener may fall behind by before it is told it missed some (and re-reads); an
/// order has at most four changes, a console coalesces what it is sent.
const LISTEN_BUFFER: usize = 64;
/// How long start-up waits for the server to confirm the subscriptions.
const SUBSCRIBE_CONFIRM: Duration = Duration::from_secs(5);

/// One committed status change, as this service announces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    pub order_id: Uuid,
    pub merchant_id: i64,
    pub status: OrderStatus,
}

/// Announces committed status changes to every API instance. Cheap to clone.
#[derive(Clone)]
pub struct StatusPublisher {
    pusher: Pusher,
}

impl StatusPublisher {
    pub fn new(client: async_nats::Client, namespace: &Namespace) -> Self {
        Self {
            pusher: Pusher::new(client, namespace),
        }
    }

    /// Publishes what a transaction committed, after its commit (best effort, see
    /// [`Pusher::publish`]).
    pub async fn publish(&self, changes: &[Committed]) {
        if changes.is_empty() {
            return;
        }
        let pushes = OrderStatusPushes {
            changes: changes
                .iter()
                .map(|change| OrderStatusPush {
                    order_id: change.order_id,
                    merchant_id: change.merchant_id,
                    status: change.status.as_str().to_owned(),
                })
                .collect(),
        };
        self.pusher.publish(ORDER_STATUS, &pushes).await;
    }
}

/// What woke a merchant's live feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedSignal {
    /// One of its orders reached this status.
    Order { order_id: Uuid, status: OrderStatus },
    /// Its ingredient levels changed: read them again.
    Stock,
    /// Its low-stock alerts changed: read them again.
    Alerts,
    /// A dead letter was stored (for whom is known only after reading it).
    DeadLetter,
}

/// This instance's listeners, woken by every instance's and service's pushes.
#[derive(Clone, Default)]
pub struct Listeners {
    pub orders: OrderWatchers,
    pub merchants: MerchantFeeds,
}

impl Listeners {
    /// Subscribes to the pushes and the dead letters, and fans them out to this instance's
    /// listeners until `shutdown`. Returns once the server has the subscriptions, so nothing
    /// published after this returns is missed.
    pub async fn start(
        client: async_nats::Client,
        namespace: &Namespace,
        shutdown: CancellationToken,
    ) -> Result<Self, async_nats::SubscribeError> {
        let statuses = client.subscribe(namespace.subject(ORDER_STATUS)).await?;
        let stock = client.subscribe(namespace.subject(STOCK_CHANGED)).await?;
        let alerts = client.subscribe(namespace.subject(ALERTS_CHANGED)).await?;
        let dead_letters = client
            .subscribe(namespace.subject(larder_bus::topology::DEAD_LETTERS.subjects))
            .await?;
        // The server handles a connection's messages in order: once it has answered a request
        // sent after the SUBs (here "no responders"), it has the subscriptions.
        let probe = namespace.subject(&format!("push.probe.{}", Uuid::new_v4().simple()));
        let _ = tokio::time::timeout(SUBSCRIBE_CONFIRM, client.request(probe, "".into())).await;

        let listeners = Self::default();
        let fan_out = listeners.clone();
        let mut pushes = futures::stream::select_all([
            statuses.map(|m| (Source::Statuses, m)).boxed(),
            stock.map(|m| (Source::Stock, m)).boxed(),
            alerts.map(|m| (Source::Alerts, m)).boxed(),
            dead_letters.map(|m| (Source::DeadLetters, m)).boxed(),
        ]);
        tokio::spawn(async move {
            loop {
                let pushed = tokio::select! {
                    pushed = pushes.next() => pushed,
                    () = shutdown.cancelled() => break,
                };
                let Some((source, message)) = pushed else {
                    tracing::warn!(
                        "the push subscriptions ended: listeners fall back to re-reading"
                    );
                    break;
                };
                fan_out.deliver(source, &message.payload);
            }
        });
        Ok(listeners)
    }

    fn deliver(&self, source: Source, payload: &[u8]) {
        match source {
            Source::Statuses => match serde_json::from_slice::<OrderStatusPushes>(payload) {
                Ok(pushes) => self.deliver_statuses(&pushes),
                Err(error) => tracing::warn!(%error, "ignoring a malformed status push"),
            },
            Source::Stock => match serde_json::from_slice::<StockChanged>(payload) {
                Ok(changed) => {
                    for merchant_id in changed.merchant_ids {
                        self.merchants.deliver(&merchant_id, FeedSignal::Stock);
                    }
                }
                Err(error) => tracing::warn!(%error, "ignoring a malformed stock push"),
            },
            Source::Alerts => match serde_json::from_slice::<AlertsChanged>(payload) {
                Ok(changed) => {
                    for merchant_id in changed.merchant_ids {
                        self.merchants.deliver(&merchant_id, FeedSignal::Alerts);
                    }
                }
                Err(error) => tracing::warn!(%error, "ignoring a malformed alerts push"),
            },
            Source::DeadLetters => self.merchants.deliver_to_all(&FeedSignal::DeadLetter),
        }
    }

    /// Hands each change to the order's watchers and its merchant's feeds here.
    pub fn deliver_statuses(&self, pushes: &OrderStatusPushes) {
        for change in &pushes.changes {
            let Ok(status) = OrderStatus::try_from_value(&change.status) else {
                continue;
            };
            self.orders.deliver(&change.order_id, status);
            self.merchants.deliver(
                &change.merchant_id,
                FeedSignal::Order {
                    order_id: change.order_id,
                    status,
                },
            );
        }
    }
}

#[derive(Clone, Copy)]
enum Source {
    Statuses,
    Stock,
    Alerts,
    DeadLetters,
}

/// This instance's watchers of orders, by order id.
pub type OrderWatchers = Registry<Uuid, OrderStatus>;
/// One watcher of one order.
pub type OrderWatch = Listener<Uuid, OrderStatus>;
/// This instance's live feeds, by merchant id.
pub type MerchantFeeds = Registry<i64, FeedSignal>;
/// One live feed of one merchant.
pub type MerchantFeed = Listener<i64, FeedSignal>;

type Senders<K, T> = HashMap<K, broadcast::Sender<T>>;

/// Listeners by key (an order, a merchant); a key is kept only while someone listens to it.
/// Cheap to clone.
pub struct Registry<K, T> {
    senders: Arc<Mutex<Senders<K, T>>>,
}

impl<K, T> Clone for Registry<K, T> {
    fn clone(&self) -> Self {
        Self {
            senders: self.senders.clone(),
        }
    }
}

impl<K, T> Default for Registry<K, T> {
    fn default() -> Self {
        Self {
            senders: Arc::default(),
        }
    }
}

impl<K: Copy + Eq + Hash, T: Clone> Registry<K, T> {
    /// Listens to `key` from now on: every push for it that arrives after this call is seen.
    /// Register before reading, so nothing falls between the read and the watch.
    pub fn watch(&self, key: K) -> Listener<K, T> {
        let receiver = self
            .lock()
            .entry(key)
            .or_insert_with(|| broadcast::channel(LISTEN_BUFFER).0)
            .subscribe();
        Listener {
            key,
            receiver,
            registry: self.clone(),
        }
    }

    /// Hands `value` to the listeners of `key` here, if there are any.
    pub fn deliver(&self, key: &K, value: T) {
        if let Some(sender) = self.lock().get(key) {
            // No receiver left is not an error: its listener is being dropped.
            let _ = sender.send(value);
        }
    }

    /// Hands `value` to every listener here.
    pub fn deliver_to_all(&self, value: &T) {
        for sender in self.lock().values() {
            let _ = sender.send(value.clone());
        }
    }

    /// Keys listened to on this instance now.
    pub fn watched(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Senders<K, T>> {
        // The map holds no invariant a panicking holder could break.
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One listener of one key; unregisters itself when dropped.
pub struct Listener<K: Copy + Eq + Hash, T: Clone> {
    key: K,
    receiver: broadcast::Receiver<T>,
    registry: Registry<K, T>,
}

/// What a listener was woken by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pushed<T> {
    Value(T),
    /// Some pushes were missed (the listener fell behind): read again.
    Missed,
}

impl<K: Copy + Eq + Hash, T: Clone> Listener<K, T> {
    pub fn key(&self) -> K {
        self.key
    }

    /// The next push for this key. Waits forever when none comes: race it with a timer.
    pub async fn changed(&mut self) -> Pushed<T> {
        match self.receiver.recv().await {
            Ok(value) => Pushed::Value(value),
            Err(broadcast::error::RecvError::Lagged(_)) => Pushed::Missed,
            // The sender lives in the map while this listener exists: never closed under us.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }

    /// A push already waiting, without waiting for one.
    pub fn try_changed(&mut self) -> Option<Pushed<T>> {
        match self.receiver.try_recv() {
            Ok(value) => Some(Pushed::Value(value)),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(Pushed::Missed),
            Err(_) => None,
        }
    }
}

impl OrderWatch {
    pub fn order_id(&self) -> Uuid {
        self.key
    }
}

impl<K: Copy + Eq + Hash, T: Clone> Drop for Listener<K, T> {
    fn drop(&mut self) {
        let mut senders = self.registry.lock();
        // Registration happens under this lock too, so the count cannot grow meanwhile; this
        // listener's own receiver is still counted.
        if senders
            .get(&self.key)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            senders.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MERCHANT: i64 = 7;

    fn pushes(changes: &[(Uuid, &str)]) -> OrderStatusPushes {
        OrderStatusPushes {
            changes: changes
                .iter()
                .map(|(order_id, status)| OrderStatusPush {
                    order_id: *order_id,
                    merchant_id: MERCHANT,
                    status: (*status).to_owned(),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_push_wakes_every_watcher_of_its_order_and_no_other() {
        let listeners = Listeners::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let watchers = &listeners.orders;
        let (mut first, mut second, mut other) =
            (watchers.watch(a), watchers.watch(a), watchers.watch(b));

        listeners.deliver_statuses(&pushes(&[(a, "confirmed")]));

        assert_eq!(first.changed().await, Pushed::Value(OrderStatus::Confirmed));
        assert_eq!(
            second.changed().await,
            Pushed::Value(OrderStatus::Confirmed)
        );
        let nothing = tokio::time::timeout(Duration::from_millis(50), other.changed()).await;
        assert!(nothing.is_err(), "order b was not pushed");
    }

    #[tokio::test]
    async fn a_status_push_reaches_its_merchants_feeds_and_no_other_merchants() {
        let listeners = Listeners::default();
        let order = Uuid::new_v4();
        let mut mine = listeners.merchants.watch(MERCHANT);
        let mut theirs = listeners.merchants.watch(MERCHANT + 1);

        listeners.deliver_statuses(&pushes(&[(order, "pending")]));
        listeners.deliver(Source::Stock, br#"{"merchant_ids":[7]}"#);
        listeners.deliver(Source::DeadLetters, b"anything");

        assert_eq!(
            mine.changed().await,
            Pushed::Value(FeedSignal::Order {
                order_id: order,
                status: OrderStatus::Pending
            })
        );
        assert_eq!(mine.changed().await, Pushed::Value(FeedSignal::Stock));
        assert_eq!(mine.changed().await, Pushed::Value(FeedSignal::DeadLetter));
        assert_eq!(
            theirs.try_changed(),
            Some(Pushed::Value(FeedSignal::DeadLetter)),
            "another merchant hears of dead letters only"
        );
        assert_eq!(theirs.try_changed(), None);
    }

    #[tokio::test]
    async fn the_last_watch_dropped_forgets_its_key() {
        let watchers = OrderWatchers::default();
        let order = Uuid::new_v4();
        let first = watchers.watch(order);
        let second = watchers.watch(order);
        drop(first);
        assert_eq!(watchers.watched(), 1, "one watcher is left");
        drop(second);
        assert_eq!(watchers.watched(), 0);
        // Pushes for nobody cost nothing and break nothing.
        watchers.deliver(&order, OrderStatus::Delivered);
    }

    #[tokio::test]
    async fn a_listener_that_fell_behind_is_told_to_read_again() {
        let watchers = OrderWatchers::default();
        let order = Uuid::new_v4();
        let mut watch = watchers.watch(order);
        for _ in 0..=LISTEN_BUFFER {
            watchers.deliver(&order, OrderStatus::Confirmed);
        }
        assert_eq!(watch.changed().await, Pushed::Missed);
    }

    #[tokio::test]
    async fn malformed_pushes_are_ignored() {
        let listeners = Listeners::default();
        let mut feed = listeners.merchants.watch(MERCHANT);
        listeners.deliver(Source::Statuses, b"{not json");
        listeners.deliver(Source::Stock, b"[]");
        listeners.deliver(Source::Alerts, br#"{"merchant_ids":"seven"}"#);
        assert_eq!(feed.try_changed(), None);
    }
}
