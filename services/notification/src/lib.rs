//! Low-stock email: one message per `stock.low` event to the merchant, with retries, a circuit
//! breaker, and a dead letter when the SMTP server never comes back (SPEC §5 rule 5).
//!
//! - [`config`]: the service's `Config`: SMTP server, retry schedule, breaker.
//! - [`domain`]: the email's text and HTML, the retry schedule, the circuit breaker; no I/O.
//! - [`mailer`]: lettre's pooled SMTP transport; tells a dead server from a refusal.
//! - [`store`]: the `notifications` rows, one per event: pending -> sent | failed.
//! - [`actors`]: the notifier, the handler of the `stock.low` consumer.
//! - [`commands`]: `list-alerts` over NATS request/reply, for the merchant's console.
//! - [`startup`]: `Application::build(config)` then `run_until_stopped(shutdown)`.

pub mod actors;
pub mod commands;
pub mod config;
pub mod domain;
pub mod mailer;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::Application;
