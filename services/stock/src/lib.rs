//! Stock processing: reserves an order's ingredients all or nothing, releases them on cancel,
//! and raises one `stock.low` when an ingredient falls below half its reference level.
//!
//! - [`config`]: the service's `Config`.
//! - [`startup`]: `Application::build(config)` then `run_until_stopped(shutdown)`.

pub mod config;
pub mod startup;

pub use config::Config;
pub use startup::Application;
