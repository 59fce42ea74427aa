//! The stock service's migrations, applied to the `stock` schema (`search_path` = it alone),
//! recorded in that schema's own `seaql_migrations`.

use sea_orm_migration::prelude::*;

pub(crate) mod m20261201_000001_create_stock_schema;

/// The stock service's migrations, oldest first.
pub struct StockMigrator;

#[async_trait::async_trait]
impl MigratorTrait for StockMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261201_000001_create_stock_schema::MIGRATION)]
    }
}
