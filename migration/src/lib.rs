//! Larder's PostgreSQL schema and the plumbing every service uses to reach it: SeaORM
//! migrations written as plain SQL, connecting with retries, and one fresh database per test.
//!
//! - [`Migrator`] lists the migrations in order; each `mYYYYMMDD_NNNNNN_verb_noun` module holds
//!   one, as exact DDL with a working `down` (they never import `entities`: a migration must
//!   mean the same thing forever).
//! - [`database`]: [`DatabaseConfig`](database::DatabaseConfig) (clap args), `connect` (retries
//!   until Postgres answers), `create_database_if_missing`, `migrate` (under an advisory lock)
//!   and `connect_and_migrate`, what a service calls at startup.
//! - [`testing`]: [`TestDatabase`](testing::TestDatabase), a migrated `larder_t_<uuid>` database
//!   dropped when the test ends; used by every crate's integration tests.

pub use sea_orm_migration::prelude::*;

pub mod database;
pub mod testing;

mod m20261123_000001_create_catalogue;
mod m20261123_000002_create_orders;
mod m20261123_000003_create_stock;
mod m20261123_000004_create_shipments;
mod m20261123_000005_create_notifications;
mod m20261123_000006_create_outbox_inbox;
mod m20261123_000007_add_shipment_correlation_id;

/// All of Larder's migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_catalogue::Migration),
            Box::new(m20261123_000002_create_orders::Migration),
            Box::new(m20261123_000003_create_stock::Migration),
            Box::new(m20261123_000004_create_shipments::Migration),
            Box::new(m20261123_000005_create_notifications::Migration),
            Box::new(m20261123_000006_create_outbox_inbox::Migration),
            Box::new(m20261123_000007_add_shipment_correlation_id::Migration),
        ]
    }
}
