//! Larder's PostgreSQL schemas and the plumbing every service uses to reach them: one schema,
//! one login role and one migrator per service (SPEC §2), connecting with retries, provisioning,
//! the upgrade from the single-schema layout, and one fresh database per test.
//!
//! - [`Service`] names the four services and their schema, role, URL variable, outbox channel.
//! - Migrators ([`OrderMigrator`], [`StockMigrator`], [`DeliveryMigrator`],
//!   [`NotificationMigrator`]): each lists its service's migrations, applied with `search_path`
//!   = that schema alone, so its tables and its `seaql_migrations` land there. Each
//!   `mYYYYMMDD_NNNNNN_verb_noun` module holds one, as exact DDL with a working `down` (they
//!   never import `entities`: a migration must mean the same thing forever).
//! - [`database`]: [`DatabaseConfig`](database::DatabaseConfig) (the admin URL, clap args),
//!   [`ServiceDatabases`](database::ServiceDatabases) (one URL per service), `connect` (retries
//!   until Postgres answers) and `connect_and_migrate`, what a service calls at startup.
//! - [`provision`]: what `larder migrate` does as the admin: database, roles, schemas, grants,
//!   every service's migrations as its own role, and [`legacy`] adoption.
//! - [`testing`]: [`TestDatabase`](testing::TestDatabase), a provisioned `larder_t_<uuid>`
//!   database with roles of its own, dropped when the test ends.

pub use sea_orm_migration::prelude::*;

/// A migration that is two SQL texts, the `UP` and `DOWN` constants of the module that invokes
/// it: defines that module's `Migration` (named after the module, as sea-orm-migration wants).
macro_rules! sql_migration {
    () => {
        #[derive(DeriveMigrationName)]
        pub struct Migration;

        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.get_connection().execute_unprepared(UP).await?;
                Ok(())
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.get_connection().execute_unprepared(DOWN).await?;
                Ok(())
            }
        }
    };
}

pub mod database;
pub mod legacy;
pub mod provision;
pub mod service;
pub mod testing;

mod delivery;
mod notification;
mod order;
mod outbox_inbox;
mod stock;

pub use delivery::DeliveryMigrator;
pub use notification::NotificationMigrator;
pub use order::OrderMigrator;
pub use service::Service;
pub use stock::StockMigrator;
