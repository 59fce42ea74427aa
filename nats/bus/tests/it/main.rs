//! Integration tests of the JetStream plumbing against real PostgreSQL and NATS. Each test has
//! its own database and its own namespace of streams and consumers.

mod consume;
mod dlq;
mod inbox;
mod outbox_relay;
mod plans;
mod topology;
