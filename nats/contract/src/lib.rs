//! The event contract between Larder's services (SPEC §4): what travels on the bus, as data.
//! Serde only: no connection, no runtime. How it travels is `larder_bus`.
//!
//! - [`envelope`]: the versioned envelope every event is wrapped in, and decoding it.
//! - [`events`]: every event's payload (`orders.created`, `stock.low`, ...).
//! - [`subjects`]: the subjects they are published on.
//! - [`commands`]: the merchant commands one service asks another over request/reply, with
//!   their replies and refusals.
//! - [`push`]: the live pushes on core NATS after a commit (order status, levels, alerts).
//! - [`trace`]: the W3C `traceparent` an event carries.

pub mod commands;
pub mod envelope;
pub mod events;
pub mod push;
pub mod subjects;
pub mod trace;

pub use envelope::{Decode, DecodeError, Envelope, Event};
