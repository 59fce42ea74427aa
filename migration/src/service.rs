//! The four services, each owning a PostgreSQL schema of its own name, a login role, and the
//! migrator of that schema (SPEC §2).

use std::fmt;
use std::str::FromStr;

use sea_orm::{ConnectionTrait, DbErr};
use sea_orm_migration::{IntoSchemaManagerConnection, MigratorTrait};

use crate::delivery::DeliveryMigrator;
use crate::notification::NotificationMigrator;
use crate::order::OrderMigrator;
use crate::stock::StockMigrator;

/// A service that owns a schema: its tables, its `outbox` and `inbox`, its `seaql_migrations`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Order,
    Stock,
    Delivery,
    Notification,
}

impl Service {
    /// Every service, in the order provisioning handles them.
    pub const ALL: [Service; 4] = [
        Service::Order,
        Service::Stock,
        Service::Delivery,
        Service::Notification,
    ];

    /// `order`, `stock`, `delivery`, `notification`: the service's name and its schema's.
    pub fn name(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::Stock => "stock",
            Service::Delivery => "delivery",
            Service::Notification => "notification",
        }
    }

    /// The schema holding the service's tables. `order` is a keyword: always quote it
    /// ([`Service::quoted_schema`]).
    pub fn schema(self) -> &'static str {
        self.name()
    }

    /// The schema as an SQL identifier: `"order"`.
    pub fn quoted_schema(self) -> String {
        crate::database::quote_ident(self.schema())
    }

    /// The login role of a default installation: `larder_order`, ...
    pub fn default_role(self) -> &'static str {
        match self {
            Service::Order => "larder_order",
            Service::Stock => "larder_stock",
            Service::Delivery => "larder_delivery",
            Service::Notification => "larder_notification",
        }
    }

    /// The environment variable holding the service's database URL: `ORDER_DATABASE_URL`, ...
    pub fn url_env(self) -> &'static str {
        match self {
            Service::Order => "ORDER_DATABASE_URL",
            Service::Stock => "STOCK_DATABASE_URL",
            Service::Delivery => "DELIVERY_DATABASE_URL",
            Service::Notification => "NOTIFICATION_DATABASE_URL",
        }
    }

    /// The service's URL on a local machine: its role, whose development password is its name.
    pub fn default_url(self) -> &'static str {
        match self {
            Service::Order => {
                "postgres://larder_order:larder_order@127.0.0.1:5432/larder?sslmode=disable"
            }
            Service::Stock => {
                "postgres://larder_stock:larder_stock@127.0.0.1:5432/larder?sslmode=disable"
            }
            Service::Delivery => {
                "postgres://larder_delivery:larder_delivery@127.0.0.1:5432/larder?sslmode=disable"
            }
            Service::Notification => {
                "postgres://larder_notification:larder_notification@127.0.0.1:5432/larder?sslmode=disable"
            }
        }
    }

    /// The channel the service's outbox trigger notifies and its relay LISTENs on.
    pub fn outbox_channel(self) -> &'static str {
        match self {
            Service::Order => "larder_outbox_order",
            Service::Stock => "larder_outbox_stock",
            Service::Delivery => "larder_outbox_delivery",
            Service::Notification => "larder_outbox_notification",
        }
    }

    /// Second key of the schema's migration advisory lock (`pg_advisory_xact_lock(int, int)`,
    /// first key [`SCHEMA_LOCK_CLASS`](crate::database::SCHEMA_LOCK_CLASS)).
    pub(crate) fn lock_id(self) -> i32 {
        match self {
            Service::Order => 1,
            Service::Stock => 2,
            Service::Delivery => 3,
            Service::Notification => 4,
        }
    }

    /// Applies the service's pending migrations on `db`, whose `search_path` must be the
    /// service's schema alone. No lock: see [`crate::database::migrate`].
    pub async fn migrate_up<'c, C>(self, db: C) -> Result<(), DbErr>
    where
        C: IntoSchemaManagerConnection<'c>,
    {
        match self {
            Service::Order => OrderMigrator::up(db, None).await,
            Service::Stock => StockMigrator::up(db, None).await,
            Service::Delivery => DeliveryMigrator::up(db, None).await,
            Service::Notification => NotificationMigrator::up(db, None).await,
        }
    }

    /// Rolls back `steps` of the service's migrations (all of them with `None`).
    pub async fn migrate_down<'c, C>(self, db: C, steps: Option<u32>) -> Result<(), DbErr>
    where
        C: IntoSchemaManagerConnection<'c>,
    {
        match self {
            Service::Order => OrderMigrator::down(db, steps).await,
            Service::Stock => StockMigrator::down(db, steps).await,
            Service::Delivery => DeliveryMigrator::down(db, steps).await,
            Service::Notification => NotificationMigrator::down(db, steps).await,
        }
    }

    /// Creates the schema's empty `seaql_migrations` if missing (in the current schema).
    pub(crate) async fn install_migration_table<C: ConnectionTrait>(
        self,
        db: &C,
    ) -> Result<(), DbErr> {
        match self {
            Service::Order => OrderMigrator::install(db).await,
            Service::Stock => StockMigrator::install(db).await,
            Service::Delivery => DeliveryMigrator::install(db).await,
            Service::Notification => NotificationMigrator::install(db).await,
        }
    }

    /// The service's migration names, oldest first.
    pub fn migration_names(self) -> Vec<String> {
        let migrations = match self {
            Service::Order => OrderMigrator::migrations(),
            Service::Stock => StockMigrator::migrations(),
            Service::Delivery => DeliveryMigrator::migrations(),
            Service::Notification => NotificationMigrator::migrations(),
        };
        migrations.iter().map(|m| m.name().to_owned()).collect()
    }

    /// The name of the first migration: the schema as the single-schema layout left it, which
    /// the upgrade records as applied.
    pub fn baseline_migration(self) -> String {
        self.migration_names()
            .into_iter()
            .next()
            .expect("every service has a baseline migration")
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not one of the four services.
#[derive(Debug, thiserror::Error)]
#[error("unknown service {0:?}: expected order, stock, delivery or notification")]
pub struct UnknownService(String);

impl FromStr for Service {
    type Err = UnknownService;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|service| service.name() == s)
            .ok_or_else(|| UnknownService(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for service in Service::ALL {
            assert_eq!(service.name().parse::<Service>().unwrap(), service);
            assert!(service.default_role().ends_with(service.name()));
            assert!(service.outbox_channel().ends_with(service.name()));
            assert!(
                service
                    .default_url()
                    .contains(&format!("//{0}:{0}@", service.default_role()))
            );
            assert!(
                service
                    .url_env()
                    .starts_with(&service.name().to_uppercase())
            );
        }
        assert!("billing".parse::<Service>().is_err());
    }

    #[test]
    fn order_is_quoted() {
        assert_eq!(Service::Order.quoted_schema(), "\"order\"");
    }

    /// A database records migrations by name: a renamed baseline would run again on top of the
    /// tables it made.
    #[test]
    fn baselines_keep_their_recorded_names() {
        for service in Service::ALL {
            assert_eq!(
                service.baseline_migration(),
                format!("m20261201_000001_create_{}_schema", service.name())
            );
        }
    }
}
