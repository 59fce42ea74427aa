//! The order service's actors: one per file.

pub mod order_events;
