//! The order service through its public HTTP API, against real PostgreSQL and NATS. Every test
//! spawns its own application with its own database and JetStream namespace.

mod auth;
mod edge;
mod errors;
mod group_commit;
mod helpers;
mod lifecycle;
mod live;
mod merchant_commands;
mod merchant_signup;
mod metrics;
mod nats_restart;
mod openapi;
mod order_events;
mod orders;
mod readiness;
