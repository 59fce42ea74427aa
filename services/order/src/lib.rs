//! The public HTTP API (poem-openapi, Swagger UI at `/docs`) and the order's lifecycle: orders are
//! stored and acknowledged at once, and move forward as stock and delivery events arrive.
//!
//! - [`config`]: the service's `Config`.
//! - [`api`]: the OpenAPI operations, one module per tag.
//! - [`startup`]: `Application::build(config)`, `port()`, `run_until_stopped(shutdown)`.

pub mod api;
pub mod config;
pub mod startup;

pub use config::Config;
pub use startup::Application;
