//! The stock service's event handlers: plain types (no state, no actor) that unpack a batch,
//! call the store in a transaction and answer one outcome per message after the commit.
//!
//! - [`reservations`]: `orders.created` -> reserve all or nothing, confirm or reject, alert.
//! - [`releases`]: `orders.cancelled` -> put back what the order reserved.

pub mod releases;
pub mod reservations;

pub use releases::ReleaseOrders;
pub use reservations::ReserveOrders;
