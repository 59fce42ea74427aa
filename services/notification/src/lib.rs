//! Low-stock email: one message per `stock.low` event to the merchant, with retries, a circuit
//! breaker, and a dead letter when the SMTP server never comes back.
//!
//! - [`config`]: the service's `Config`.
//! - [`startup`]: `Application::build(config)` then `run_until_stopped(shutdown)`.

pub mod config;
pub mod startup;

pub use config::Config;
pub use startup::Application;
