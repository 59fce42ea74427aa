//! The public HTTP API (poem-openapi, Swagger UI at `/docs`) and the order's lifecycle: orders are
//! stored and acknowledged at once, and move forward as stock and delivery events arrive.
//!
//! - [`config`]: the service's `Config`.
//! - [`domain`]: validation, pricing and the status machine, as plain functions.
//! - [`auth`]: argon2id passwords and HS256 access tokens.
//! - [`catalogue_cache`]: products, prices and recipes in memory for a second.
//! - [`order_writer`]: group commit for `POST /order`: an actor whose queued orders share one
//!   statement.
//! - [`store`]: the SQL, with the idempotency and forward-only rules beside it.
//! - [`api`]: the OpenAPI operations, one module per tag; errors as problem+json.
//! - [`handlers`]: the consumers' handlers that move orders forward on stock and delivery events.
//! - [`push`]: status pushes between instances, for clients following an order live.
//! - [`server`]: the HTTP accept loop: header, idle and grace timeouts, the connection cap.
//! - [`startup`]: `Application::build(config)`, `port()`, `run_until_stopped(shutdown)`.

// `ApiError` carries its problem body inline, as poem-openapi's response derive wants it; errors
// are the cold path, so the larger `Result` costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod auth;
pub mod catalogue_cache;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod order_writer;
pub mod push;
pub mod server;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::Application;
