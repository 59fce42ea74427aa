//! Integration tests of the notification service against real PostgreSQL, NATS and SMTP. Each
//! test has its own database, its own namespace of streams and consumers, and its own maildev.

mod breaker;
mod emails;
mod helpers;
mod inbox;
mod smtp_outage;
