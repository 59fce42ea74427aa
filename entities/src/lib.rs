//! SeaORM entities for every Larder table: what the rows look like, nothing about what they
//! mean. The schemas live in the `migration` crate; these mirror them column for column. Names are
//! unqualified: each service's pool has `search_path` = its own schema, so `outbox` is its own.
//!
//! One module per table, named after it, each with `Model`, `ActiveModel`, `Column`, `Entity`
//! and, where a foreign key exists, `Relation`s; [`prelude`] names every `Entity` after its
//! table (`Orders`, `StockMovements`, ...). Status-like columns stay `String`: the services own
//! their rules.
//!
//! - order service: [`merchants`], [`users`], [`products`], [`recipe_lines`], [`orders`],
//!   [`order_lines`], [`order_status_history`]
//! - stock service: [`ingredients`], [`stock_movements`]
//! - delivery service: [`shipments`]
//! - notification service: [`notifications`]
//! - every service: [`outbox`] (writers), [`inbox`] (consumers)

pub mod prelude;

pub mod inbox;
pub mod ingredients;
pub mod merchants;
pub mod notifications;
pub mod order_lines;
pub mod order_status_history;
pub mod orders;
pub mod outbox;
pub mod products;
pub mod recipe_lines;
pub mod shipments;
pub mod stock_movements;
pub mod users;
