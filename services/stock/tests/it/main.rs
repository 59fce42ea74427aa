//! The stock service against real PostgreSQL and NATS: each test owns a fresh database and a
//! JetStream namespace (see `helpers::spawn_app`).

mod cancellation;
mod handlers;
mod helpers;
mod poison;
mod redelivery;
mod reservations;
mod store;
