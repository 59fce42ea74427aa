//! How Larder's events travel between its services, exactly once (SPEC §4, §5 rules 1, 7, 8).
//! What travels is `larder_contract`.
//!
//! - [`config`]: `NatsConfig`, `OutboxConfig`, every service's `ServiceConfig`, and a connect that
//!   waits for the server.
//! - [`namespace`]: a prefix for every subject, stream and durable, so tests and stacks can
//!   share a server.
//! - [`topology`]: the streams and durable consumers, and [`topology::ensure`] to create them.
//! - [`outbox`], [`relay`]: write events in the caller's transaction; an actor publishes them.
//! - [`inbox`]: record a consumed event id in the caller's transaction; tells duplicates apart.
//! - [`consume`]: pull from a durable consumer, hand batches to a [`consume::HandleEvents`],
//!   ack only after it commits.
//! - [`batch`]: a batch in one transaction, else one by one; its statements planned for their
//!   arguments where a cached plan would scan a grown table.
//! - [`lifecycle`]: one way for every service to open its connections (database, JetStream, relay),
//!   run its consumers and stop in order.
//! - [`dlq`]: dead letters for poison messages and exhausted retries; list and replay.
//! - [`service`]: merchant commands served over NATS request/reply (`nats micro ls`), and
//!   calling them with a timeout.
//! - [`push`]: publishing the live pushes.
//! - [`trace`]: the `traceparent` from message headers to spans and back.
//! - [`metrics`]: Prometheus gauges of consumers and outboxes.
//! - [`error`]: what talking to NATS can fail with.
//! - `testing` (feature `testing`): a namespace of its own per test, deleted when the test ends;
//!   publishing as a relay does; service instances a test starts and stops.

pub mod batch;
pub mod config;
pub mod consume;
pub mod dlq;
pub mod error;
pub mod inbox;
pub mod lifecycle;
pub mod metrics;
pub mod namespace;
pub mod outbox;
pub mod push;
pub mod relay;
pub mod service;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topology;
pub mod trace;

pub use config::{ConsumeConfig, NatsConfig, OutboxConfig, connect, connect_jetstream};
pub use error::NatsError;
pub use namespace::Namespace;
