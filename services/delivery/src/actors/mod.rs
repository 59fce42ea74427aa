//! The delivery service's actors: shells that unpack a message, call the store in a transaction
//! and answer after the commit.
//!
//! - [`shipments`]: `orders.confirmed` -> a shipment; `orders.cancelled` -> drop it.
//! - [`timer`]: the durable timers, dispatching and delivering shipments when they are due.

pub mod shipments;
pub mod timer;

use actix::prelude::*;

pub use shipments::ShipmentsActor;
pub use timer::DeliveryTimer;

/// Stop the actor once the messages before this one are handled (graceful shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;
