//! Stock processing: reserves an order's ingredients all or nothing, releases them on cancel,
//! and raises one `stock.low` when an ingredient falls below half its reference level.
//!
//! - [`config`]: the service's `Config`.
//! - [`domain`]: the rules, pure: plan a batch of reservations or releases, detect a low-stock
//!   crossing, restock; the checked values a command brings in (amounts, units, seeds).
//! - [`store`]: the SQL: reservation and release batches (one transaction each, with outbox and
//!   inbox), and seed / list / restock.
//! - [`commands`]: the merchant commands served over NATS (service `stock`): seed, list, restock.
//! - [`handlers`]: `ReserveOrders` (`orders.created`) and `ReleaseOrders` (`orders.cancelled`).
//! - [`audit`]: the invariant of the stock (movements add up to levels, none negative), checked
//!   by tests and `larder bench`.
//! - [`startup`]: `Application::build(config)` then `run_until_stopped(shutdown)`.

pub mod audit;
pub mod commands;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::Application;
