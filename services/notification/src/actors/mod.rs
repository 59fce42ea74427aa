//! The service's actors, one per file.
//!
//! - [`notifier`]: sends one email per `stock.low`, behind the SMTP circuit breaker.

pub mod notifier;
