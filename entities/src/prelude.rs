//! Every entity under its table's name: `use entities::prelude::*;` then `Orders::find()`.

pub use super::inbox::Entity as Inbox;
pub use super::ingredients::Entity as Ingredients;
pub use super::merchants::Entity as Merchants;
pub use super::notifications::Entity as Notifications;
pub use super::order_lines::Entity as OrderLines;
pub use super::order_status_history::Entity as OrderStatusHistory;
pub use super::orders::Entity as Orders;
pub use super::outbox::Entity as Outbox;
pub use super::products::Entity as Products;
pub use super::recipe_lines::Entity as RecipeLines;
pub use super::shipments::Entity as Shipments;
pub use super::stock_movements::Entity as StockMovements;
pub use super::users::Entity as Users;
