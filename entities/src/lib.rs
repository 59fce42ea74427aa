//! SeaORM entities for every Larder table: what the rows look like, nothing about what they
//! mean. The schemas live in the `migration` crate; these mirror them column for column. Names are
//! unqualified: each service's pool has `search_path` = its own schema, so `outbox` is its own.
//!
//! One module per table, named after it, each with `Model`, `ActiveModel`, `Column`, `Entity`
//! and, where a foreign key exists, a `belongs_to` `Relation` that mirrors it; `Related` (what
//! `find_related` needs) only where a query joins: products to their merchant. [`prelude`] names
//! every `Entity` after its table (`Orders`, `StockMovements`, ...).
//!
//! Statuses (and a movement's reason) are SeaORM active enums stored as their lower-case names in
//! TEXT columns (each with a CHECK constraint): what a status column may hold is said here, how a
//! status moves is each service's domain.
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

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveEnum, Iterable};

    use crate::notifications::NotificationStatus;
    use crate::orders::OrderStatus;
    use crate::shipments::ShipmentStatus;
    use crate::stock_movements::Reason;

    fn stored_names_agree<E>(as_str: fn(E) -> &'static str) -> Vec<String>
    where
        E: ActiveEnum<Value = String> + Iterable + Copy + PartialEq + std::fmt::Debug,
    {
        E::iter()
            .map(|status| {
                assert_eq!(as_str(status), status.to_value(), "{status:?}");
                assert_eq!(E::try_from_value(&status.to_value()).ok(), Some(status));
                status.to_value()
            })
            .collect()
    }

    #[test]
    fn each_status_is_stored_under_the_name_the_check_constraints_allow() {
        assert_eq!(
            stored_names_agree(OrderStatus::as_str),
            [
                "pending",
                "confirmed",
                "rejected",
                "dispatched",
                "delivered",
                "cancelled"
            ]
        );
        assert_eq!(
            stored_names_agree(ShipmentStatus::as_str),
            ["pending", "dispatched", "delivered", "cancelled"]
        );
        assert_eq!(
            stored_names_agree(NotificationStatus::as_str),
            ["pending", "sent", "failed"]
        );
        assert_eq!(
            stored_names_agree(Reason::as_str),
            ["seed", "reserve", "release", "restock"]
        );
        assert!(OrderStatus::try_from_value(&"shipped".to_owned()).is_err());
    }
}
