//! The delivery service's event handlers: plain types (no state of their own) that unpack a
//! batch, call the store in a transaction and answer after the commit.
//!
//! - [`shipments`]: `orders.confirmed` -> a shipment; `orders.cancelled` -> drop it.

pub mod shipments;

pub use shipments::Shipments;
