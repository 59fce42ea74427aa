//! The order service's queries. Functions take a connection or the caller's transaction; the
//! concurrency rules live here, each next to the SQL that enforces it.
//!
//! - [`users`]: users and merchants, sign-up, token versions.
//! - [`catalogue`]: products and recipes.
//! - [`orders`]: placing, reading and moving orders.

pub mod catalogue;
pub mod orders;
pub mod users;

pub use catalogue::*;
pub use orders::*;
pub use users::*;
