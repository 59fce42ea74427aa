//! End to end: a real `larder all` process (and, where a test says so, extra instances) against
//! real PostgreSQL, NATS and an SMTP inbox, driven only through the public HTTP API and read
//! through the inbox's HTTP API. Each test has its own database, JetStream namespace, ports
//! and inbox.

mod cluster;
mod console;
mod faults;
mod helpers;
mod lifecycle;
mod live;
mod merchant_commands;
mod metrics;
mod schemathesis;
mod start_order;
mod stock;
mod traces;
