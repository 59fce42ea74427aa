//! The delivery service's migrations, applied to the `delivery` schema (`search_path` = it alone),
//! recorded in that schema's own `seaql_migrations`.

use sea_orm_migration::prelude::*;

pub(crate) mod m20261201_000001_create_delivery_schema;
mod m20261202_000002_add_shipment_traceparent;

/// The delivery service's migrations, oldest first.
pub struct DeliveryMigrator;

#[async_trait::async_trait]
impl MigratorTrait for DeliveryMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261201_000001_create_delivery_schema::MIGRATION),
            Box::new(m20261202_000002_add_shipment_traceparent::Migration),
        ]
    }
}
