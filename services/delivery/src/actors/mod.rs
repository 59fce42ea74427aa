//! The delivery service's one actor: the durable timer, which owns its round state and its
//! wake-ups, dispatching and delivering shipments when they are due.

pub mod timer;

pub use timer::DeliveryTimer;
