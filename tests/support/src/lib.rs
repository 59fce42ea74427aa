//! Fixtures the test suites share (the notification service's tests and the end-to-end suite),
//! never a dependency of production code.
//!
//! - [`mail`]: [`MailInbox`], an SMTP inbox (maildev) of a test's own.

pub mod mail;

pub use mail::{Address, Email, MailInbox};
