//! Every subject, stream and durable consumer in one place (SPEC §4), and [`ensure`], which
//! creates or updates the streams and the consumers of one service.
//!
//! One filter subject per consumer, so it runs on nats-server 2.9 (Debian's) as well as newer.

use std::borrow::Cow;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};

use crate::{Namespace, NatsConfig, NatsError};

use larder_contract::subjects;

/// A stream: its name (upper case) and the subjects it captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: &'static str,
    pub description: &'static str,
}

pub const ORDERS: StreamSpec = StreamSpec {
    name: "ORDERS",
    subjects: "orders.>",
    description: "Order lifecycle: created, confirmed, rejected, cancelled",
};
pub const STOCK: StreamSpec = StreamSpec {
    name: "STOCK",
    subjects: "stock.>",
    description: "Stock alerts: low",
};
pub const DELIVERY: StreamSpec = StreamSpec {
    name: "DELIVERY",
    subjects: "delivery.>",
    description: "Shipments: dispatched, delivered, cancelled",
};
pub const DEAD_LETTERS: StreamSpec = StreamSpec {
    name: "DLQ",
    subjects: "dlq.>",
    description: "Dead letters: poison messages and exhausted retries, per consumer",
};

pub const STREAMS: [StreamSpec; 4] = [ORDERS, STOCK, DELIVERY, DEAD_LETTERS];

/// A durable pull consumer, shared by every instance of the service that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// Kebab case: `<service>-<subject>`.
    pub durable: &'static str,
    pub stream: StreamSpec,
    pub filter_subject: &'static str,
    /// Deliveries before the message is dead-lettered.
    pub max_deliver: i64,
    /// The runner's retry schedule: after delivery `n` failed, it Naks with entry `n - 1` as the
    /// delay (the last entry repeats). The server has no backoff of its own: with one, it
    /// stretches a Nak's delay on later deliveries by the difference of backoff steps.
    /// A service may build its own (notification, from its settings).
    pub backoff_secs: Cow<'static, [u64]>,
    /// How long a delivery may stay unacked before the server hands it to another instance. The
    /// runner sends progress acks while a handler works, so this only bounds how long messages
    /// held by an instance that died wait: keep it short.
    pub ack_wait: Duration,
    /// Unacked messages the server lets out at once, across all instances.
    pub max_ack_pending: i64,
}

impl ConsumerSpec {
    /// The delay before delivery `delivered + 1`, after delivery number `delivered` failed.
    pub fn retry_delay(&self, delivered: i64) -> Duration {
        let index = usize::try_from(delivered.saturating_sub(1)).unwrap_or(0);
        let secs = self
            .backoff_secs
            .get(index)
            .or(self.backoff_secs.last())
            .copied()
            .unwrap_or(1);
        Duration::from_secs(secs)
    }
}

// Handlers that run one database transaction. A failure is usually the database being away for a
// moment (a restart): retry soon, at most every 5 s, so the backlog moves within seconds of its
// return; dead-letter only after about four minutes of failures.
const DB_RETRY_SECS: &[u64] = &[1, 1, 2, 3, 5];
const DB_MAX_DELIVER: i64 = 50;
const DB_ACK_WAIT: Duration = Duration::from_secs(5);

pub const STOCK_ORDERS_CREATED: ConsumerSpec = ConsumerSpec {
    durable: "stock-orders-created",
    stream: ORDERS,
    filter_subject: subjects::ORDERS_CREATED,
    max_deliver: DB_MAX_DELIVER,
    backoff_secs: Cow::Borrowed(DB_RETRY_SECS),
    ack_wait: DB_ACK_WAIT,
    max_ack_pending: 10_000,
};
pub const STOCK_ORDERS_CANCELLED: ConsumerSpec = ConsumerSpec {
    durable: "stock-orders-cancelled",
    stream: ORDERS,
    filter_subject: subjects::ORDERS_CANCELLED,
    max_deliver: DB_MAX_DELIVER,
    backoff_secs: Cow::Borrowed(DB_RETRY_SECS),
    ack_wait: DB_ACK_WAIT,
    max_ack_pending: 10_000,
};
pub const ORDER_ORDERS_CONFIRMED: ConsumerSpec = ConsumerSpec {
    durable: "order-orders-confirmed",
    stream: ORDERS,
    filter_subject: subjects::ORDERS_CONFIRMED,
    max_deliver: DB_MAX_DELIVER,
    backoff_secs: Cow::Borrowed(DB_RETRY_SECS),
    ack_wait: DB_ACK_WAIT,
    max_ack_pending: 10_000,
};
pub const ORDER_ORDERS_REJECTED: ConsumerSpec = ConsumerSpec {
    durable: "order-orders-rejected",
    stream: ORDERS,
    filter_subject: subjects::ORDERS_REJECTED,
    max_deliver: DB_MAX_DELIVER,
    backoff_secs: Cow::Borrowed(DB_RETRY_SECS),
    ack_wait: DB_ACK_WAIT,
    max_ack_pending: 10_000,
};
pub const ORDER_DELIVERY: ConsumerSpec = ConsumerSpec {
    durable: "order-delivery",
    stream: DELIVERY,
    filter_subject: subjects::DELIVERY_ALL,
    max_deliver: DB_MAX_DELIVER,
    backoff_secs: Cow::Borrowed(DB_RETRY_SECS),
    ack_wait: DB_ACK_WAIT,
    max_ack_pending: 10_000,
};
pub const DELIVERY_ORDERS_CONFIRMED: ConsumerSpec = ConsumerSpec {
    durable: "delivery-orders-confirmed",
    stream: ORDERS,
    filter_subject: subjects::ORDERS_CONFIRMED,
    max_deliver: DB_MAX_DELIVER,
    backoff_secs: Cow::Borrowed(DB_RETRY_SECS),
    ack_wait: DB_ACK_WAIT,
    max_ack_pending: 10_000,
};
pub const DELIVERY_ORDERS_CANCELLED: ConsumerSpec = ConsumerSpec {
    durable: "delivery-orders-cancelled",
    stream: ORDERS,
    filter_subject: subjects::ORDERS_CANCELLED,
    max_deliver: DB_MAX_DELIVER,
    backoff_secs: Cow::Borrowed(DB_RETRY_SECS),
    ack_wait: DB_ACK_WAIT,
    max_ack_pending: 10_000,
};
/// The order service follows the dead letters of stock's `orders.created` consumer: an order
/// whose creation stock could never process is rejected instead of staying pending.
pub const ORDER_DEAD_ORDERS_CREATED: ConsumerSpec = ConsumerSpec {
    durable: "order-dead-orders-created",
    stream: DEAD_LETTERS,
    filter_subject: "dlq.stock-orders-created",
    max_deliver: DB_MAX_DELIVER,
    backoff_secs: Cow::Borrowed(DB_RETRY_SECS),
    ack_wait: DB_ACK_WAIT,
    max_ack_pending: 10_000,
};
/// Sending mail is slow and the server may be down for a while: few messages out at once, a
/// long ack wait, and retries that back off to five minutes.
pub const NOTIFICATION_STOCK_LOW: ConsumerSpec = ConsumerSpec {
    durable: "notification-stock-low",
    stream: STOCK,
    filter_subject: subjects::STOCK_LOW,
    max_deliver: 6,
    backoff_secs: Cow::Borrowed(&[30, 60, 120, 240, 480]),
    ack_wait: Duration::from_secs(10),
    max_ack_pending: 64,
};

/// The consumers each service owns: a service ensures its own, never another's.
pub const ORDER_CONSUMERS: [ConsumerSpec; 4] = [
    ORDER_ORDERS_CONFIRMED,
    ORDER_ORDERS_REJECTED,
    ORDER_DELIVERY,
    ORDER_DEAD_ORDERS_CREATED,
];
pub const STOCK_CONSUMERS: [ConsumerSpec; 2] = [STOCK_ORDERS_CREATED, STOCK_ORDERS_CANCELLED];
pub const DELIVERY_CONSUMERS: [ConsumerSpec; 2] =
    [DELIVERY_ORDERS_CONFIRMED, DELIVERY_ORDERS_CANCELLED];
/// The notification service builds its spec from its settings (retry schedule), on this base.
pub const NOTIFICATION_CONSUMERS: [ConsumerSpec; 1] = [NOTIFICATION_STOCK_LOW];

/// Every consumer of every service: for tests and tools that stand in for the whole system.
pub const CONSUMERS: [ConsumerSpec; 9] = [
    STOCK_ORDERS_CREATED,
    STOCK_ORDERS_CANCELLED,
    ORDER_ORDERS_CONFIRMED,
    ORDER_ORDERS_REJECTED,
    ORDER_DELIVERY,
    ORDER_DEAD_ORDERS_CREATED,
    DELIVERY_ORDERS_CONFIRMED,
    DELIVERY_ORDERS_CANCELLED,
    NOTIFICATION_STOCK_LOW,
];

/// The stream's configuration in a namespace: file storage, limits retention with a max age,
/// the duplicate window and replicas from config.
pub fn stream_config(spec: &StreamSpec, config: &NatsConfig) -> stream::Config {
    let ns = &config.namespace;
    stream::Config {
        name: ns.stream(spec.name),
        description: Some(spec.description.to_owned()),
        subjects: vec![ns.subject(spec.subjects)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: config.max_age(),
        duplicate_window: config.duplicate_window(),
        num_replicas: config.replicas,
        ..Default::default()
    }
}

/// The durable pull consumer's configuration in a namespace: explicit acks, max deliveries, a
/// short ack wait (no server-side backoff: the runner's Nak delays are the schedule), one
/// filter subject.
pub fn consumer_config(spec: &ConsumerSpec, ns: &Namespace) -> pull::Config {
    let durable = ns.durable(spec.durable);
    pull::Config {
        durable_name: Some(durable.clone()),
        name: Some(durable),
        filter_subject: ns.subject(spec.filter_subject),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        max_deliver: spec.max_deliver,
        ack_wait: spec.ack_wait,
        max_ack_pending: spec.max_ack_pending,
        ..Default::default()
    }
}

/// Creates or updates every stream and the given durable consumers (a service passes its own).
/// Idempotent: run it at every start, from any number of instances.
pub async fn ensure(
    js: &jetstream::Context,
    config: &NatsConfig,
    consumers: &[ConsumerSpec],
) -> Result<(), NatsError> {
    for spec in &STREAMS {
        let stream_config = stream_config(spec, config);
        let name = stream_config.name.clone();
        js.create_or_update_stream(stream_config)
            .await
            .map_err(|source| NatsError::Stream {
                stream: name,
                source,
            })?;
    }
    for spec in consumers {
        let consumer_config = consumer_config(spec, &config.namespace);
        let stream_name = config.namespace.stream(spec.stream.name);
        let stream = js
            .get_stream(&stream_name)
            .await
            .map_err(|e| NatsError::ReadStream {
                stream: stream_name.clone(),
                source: Box::new(e),
            })?;
        let durable = consumer_config.name.clone().unwrap_or_default();
        // `create_consumer` is create-or-update: a drifted config is brought back in line.
        stream
            .create_consumer(consumer_config)
            .await
            .map_err(|source| NatsError::Consumer {
                stream: stream_name.clone(),
                durable: durable.clone(),
                source,
            })?;
        tracing::debug!(%durable, stream = %stream_name, "consumer ensured");
    }
    Ok(())
}

/// Deletes every stream of a namespace (and with them their consumers). For tests and tools:
/// never called with the production namespace by the services.
pub async fn delete_all(js: &jetstream::Context, ns: &Namespace) {
    for spec in &STREAMS {
        let _ = js.delete_stream(ns.stream(spec.name)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_subjects_stay_outside_every_stream() {
        use larder_contract::commands::{
            ApplyCourierUpdate, CancelShipment, Command as _, ListAlerts, ListIngredients,
            RestockIngredient, SeedIngredients,
        };
        let subjects = [
            SeedIngredients::SUBJECT,
            ListIngredients::SUBJECT,
            RestockIngredient::SUBJECT,
            ApplyCourierUpdate::SUBJECT,
            CancelShipment::SUBJECT,
            ListAlerts::SUBJECT,
        ];
        for subject in subjects {
            for stream in STREAMS {
                let root = stream.subjects.trim_end_matches('>');
                assert!(
                    !subject.starts_with(root),
                    "{subject} would be captured by the {} stream",
                    stream.name
                );
            }
        }
    }

    #[test]
    fn every_consumer_filters_one_subject_of_its_own_stream() {
        for c in CONSUMERS {
            let root = c.stream.subjects.trim_end_matches('>');
            assert!(
                c.filter_subject.starts_with(root),
                "{} filters {} outside {}",
                c.durable,
                c.filter_subject,
                c.stream.subjects
            );
            // The server wants more deliveries than backoff steps.
            assert!(
                (c.backoff_secs.len() as i64) < c.max_deliver,
                "{}",
                c.durable
            );
        }
    }

    #[test]
    fn every_consumer_belongs_to_exactly_one_service() {
        let owned: Vec<&str> = ORDER_CONSUMERS
            .iter()
            .chain(&STOCK_CONSUMERS)
            .chain(&DELIVERY_CONSUMERS)
            .chain(&NOTIFICATION_CONSUMERS)
            .map(|c| c.durable)
            .collect();
        let mut all: Vec<&str> = CONSUMERS.iter().map(|c| c.durable).collect();
        let mut sorted = owned.clone();
        sorted.sort_unstable();
        all.sort_unstable();
        assert_eq!(sorted, all, "each consumer is in one service's list");
        for c in CONSUMERS {
            let service = c.durable.split('-').next().unwrap();
            assert!(
                ["order", "stock", "delivery", "notification"].contains(&service),
                "{}",
                c.durable
            );
        }
    }

    #[test]
    fn the_order_service_follows_the_dead_letters_of_stocks_orders_created_consumer() {
        assert_eq!(
            ORDER_DEAD_ORDERS_CREATED.filter_subject,
            subjects::dead_letter(STOCK_ORDERS_CREATED.durable)
        );
    }

    #[test]
    fn retry_delays_follow_the_schedule_and_stay_at_its_last_step() {
        let c = NOTIFICATION_STOCK_LOW;
        assert_eq!(c.retry_delay(1), Duration::from_secs(30));
        assert_eq!(c.retry_delay(2), Duration::from_secs(60));
        assert_eq!(c.retry_delay(5), Duration::from_secs(480));
        assert_eq!(c.retry_delay(60), Duration::from_secs(480));
    }

    #[test]
    fn names_are_namespaced() {
        let ns = Namespace::new("tabc").unwrap();
        let cfg = consumer_config(&STOCK_ORDERS_CREATED, &ns);
        assert_eq!(
            cfg.durable_name.as_deref(),
            Some("tabc-stock-orders-created")
        );
        assert_eq!(cfg.filter_subject, "tabc.orders.created");
    }
}
