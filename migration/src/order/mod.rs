//! The order service's migrations, applied to the `order` schema (`search_path` = it alone),
//! recorded in that schema's own `seaql_migrations`.

use sea_orm_migration::prelude::*;

pub(crate) mod m20261201_000001_create_order_schema;
pub(crate) mod m20261201_000002_add_order_shipment_facts;
pub(crate) mod m20261201_000003_add_user_token_version;
pub(crate) mod m20261204_000001_update_orders_in_place;

/// The order service's migrations, oldest first.
pub struct OrderMigrator;

#[async_trait::async_trait]
impl MigratorTrait for OrderMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261201_000001_create_order_schema::MIGRATION),
            Box::new(m20261201_000002_add_order_shipment_facts::Migration),
            Box::new(m20261201_000003_add_user_token_version::Migration),
            Box::new(m20261204_000001_update_orders_in_place::Migration),
        ]
    }
}
