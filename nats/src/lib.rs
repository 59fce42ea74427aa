//! JetStream plumbing shared by every Larder service: what the events look like, where they go, and
//! how they get there exactly once (SPEC §4, §5 rule 1).
//!
//! - [`namespace`]: a prefix for every subject, stream and durable, so tests and stacks can share a server.
//! - [`topology`]: subject, stream and consumer names in one place, and [`topology::ensure`] to create them.
//! - [`envelope`], [`events`]: the versioned event envelope and every event payload.
//! - [`outbox`], [`relay`]: write events in the caller's transaction; an actor publishes them.
//! - [`inbox`]: record a consumed event id in the caller's transaction; tells duplicates apart.
//! - [`consume`]: pull from a durable consumer, hand batches to an actor, ack only after it commits.
//! - [`dlq`]: dead letters for poison messages and exhausted retries.
//! - [`metrics`]: Prometheus gauges of consumers and outboxes.
//! - [`trace`]: the W3C `traceparent` from event to event.
//! - [`commands`], [`service`]: merchant commands served over NATS request/reply (the service
//!   API: `nats micro ls`), and calling them with a timeout.
//! - [`config`]: `NatsConfig` and a connect that waits for the server.
//! - [`push`]: live order status pushes between order-service instances (core NATS, no stream).
//! - [`testing`]: a namespace of its own per test, deleted when the test ends; nats-servers of a
//!   test's own.

pub mod commands;
pub mod config;
pub mod consume;
pub mod dlq;
pub mod envelope;
pub mod error;
pub mod events;
pub mod inbox;
pub mod metrics;
pub mod namespace;
pub mod outbox;
pub mod push;
pub mod relay;
pub mod service;
pub mod testing;
pub mod topology;
pub mod trace;

pub use config::{NatsConfig, OutboxConfig, connect, connect_jetstream};
pub use envelope::{Decode, DecodeError, Envelope, Event};
pub use error::NatsError;
pub use namespace::Namespace;
