//! The order service's event handlers: plain types, no state of their own.
//!
//! - [`order_events`]: `orders.confirmed`, `orders.rejected`, `delivery.*` and stock's dead
//!   `orders.created` move orders forward.

pub mod order_events;
