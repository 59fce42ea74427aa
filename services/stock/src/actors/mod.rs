//! The stock service's actors: shells that unpack a batch, call the store in a transaction and
//! answer one outcome per message after the commit.
//!
//! - [`reservations`]: `orders.created` -> reserve all or nothing, confirm or reject, alert.
//! - [`releases`]: `orders.cancelled` -> put back what the order reserved.

pub mod releases;
pub mod reservations;

use actix::prelude::*;

pub use releases::ReleaseActor;
pub use reservations::ReservationActor;

/// Stop the actor once the messages before this one are handled (graceful shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;
