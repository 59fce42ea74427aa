//! The stock service's SQL: reservation and release batches, and the merchant commands it serves
//! over NATS (seed, list, restock; see [`crate::commands`]). Every function runs on the caller's
//! connection or transaction; the callers commit.
//!
//! Lock order, the same everywhere so concurrent transactions (of this instance, another
//! instance, or a restock) never deadlock:
//! 1. inbox rows of the events being handled (ascending event id);
//! 2. the per-order advisory locks of the orders being reserved or released (ascending key);
//! 3. the ingredient rows (`ORDER BY id FOR UPDATE`).
//!
//! - [`reservations`]: `orders.created` and `orders.cancelled`, a batch per transaction.
//! - [`ingredients`]: the merchant commands (seed, list, restock).
//! - [`rows`]: the statements both share (ingredient locks, levels, movements).

mod ingredients;
mod reservations;
mod rows;

pub use ingredients::{RestockError, SeedError, list_ingredients, restock, seed_ingredients};
pub use reservations::{Released, Reserved, release_orders, reserve_orders};

use larder_bus::topology;

/// Why a stock movement happened; the domain's type, here where the rows are written.
pub use crate::domain::Reason;
/// One ingredient to seed; the command's own type.
pub use larder_contract::commands::IngredientSeed;

/// The inbox consumer of `orders.created`: the durable's name (without namespace).
pub const RESERVATIONS_CONSUMER: &str = topology::STOCK_ORDERS_CREATED.durable;
/// The inbox consumer of `orders.cancelled`.
pub const RELEASES_CONSUMER: &str = topology::STOCK_ORDERS_CANCELLED.durable;
/// Inbox rows under this consumer hold the ids of *orders* (not events) cancelled before they
/// reserved anything: their `orders.created`, if it comes later, reserves and emits nothing.
pub const CANCELLED_ORDER_MARKER: &str = "stock-cancelled-order";

/// Rows per multi-row INSERT, well under PostgreSQL's 65 535 bind parameters.
const ROWS_PER_STATEMENT: usize = 1_000;
