//! Shipments: a confirmed order gets one, dispatched and then delivered after configurable
//! delays, on durable timers that survive a restart (SPEC §5 rule 6).
//!
//! - [`config`]: the service's `Config` and the courier delays.
//! - [`domain`]: the shipment's statuses and steps, pure.
//! - [`store`]: shipments in PostgreSQL, with the inbox and outbox rows that go with each change.
//! - [`handlers`]: the consumers' shipments handler.
//! - [`actors`]: the delivery timer.
//! - [`commands`]: the courier update, served over NATS (service `delivery`) for the order API.
//! - [`startup`]: `Application::build(config)` then `run_until_stopped(shutdown)`.

pub mod actors;
pub mod commands;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::Application;
