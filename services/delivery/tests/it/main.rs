//! The delivery service against real PostgreSQL and NATS: each test owns a fresh database and a
//! JetStream namespace (see `helpers::spawn_app`).

mod cancel_requests;
mod cancellation;
mod force;
mod helpers;
mod lifecycle;
mod timers;
