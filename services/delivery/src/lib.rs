//! Shipments: a confirmed order gets one, dispatched and then delivered after configurable
//! delays, on durable timers that survive a restart.
//!
//! - [`config`]: the service's `Config`.
//! - [`startup`]: `Application::build(config)` then `run_until_stopped(shutdown)`.

pub mod config;
pub mod startup;

pub use config::Config;
pub use startup::Application;
