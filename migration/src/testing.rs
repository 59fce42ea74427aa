//! One fresh PostgreSQL database per test, with login roles of its own, so tests run in parallel
//! without seeing each other.
//!
//! ```no_run
//! # async fn example() {
//! use migration::Service;
//! use migration::testing::TestDatabase;
//!
//! let test_db = TestDatabase::new().await; // larder_t_<uuid>, provisioned and migrated
//! let config = test_db.config(Service::Stock); // hand it to stock's `Application`
//! let stock = test_db.connect(Service::Stock).await; // query as the stock role
//! // `test_db.db` is the admin pool: schema-qualify what it reads.
//! # }
//! // Dropping `test_db` drops the database, then its roles.
//! ```
//!
//! A test that stops and starts PostgreSQL runs a [`PostgresServer`] of its own and creates its
//! database there with [`TestDatabase::new_on`].
//!
//! The server and admin credentials come from `DATABASE_URL` when set (its database name is
//! replaced), else [`DEFAULT_DATABASE_URL`](crate::database::DEFAULT_DATABASE_URL). Each test
//! gets the roles `larder_t_<8 hex>_<service>` with random passwords; they reach the server by
//! the admin URL's host and port.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use uuid::Uuid;

use crate::Service;
use crate::database::{
    self, DEFAULT_DATABASE_URL, DatabaseConfig, ServiceDatabases, maintenance_config, quote_ident,
};
use crate::provision;

mod server;

pub use server::{Auth, PostgresServer};

/// How long a test waits for the server: it should be up already.
const TEST_CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Pool size of the services' pools in tests.
const TEST_MAX_CONNECTIONS: u32 = 4;

/// A database and four roles of its own for one test, dropped (`WITH (FORCE)`, then `DROP
/// ROLE`) when this value is dropped.
pub struct TestDatabase {
    /// The admin (superuser) URL on this test's database.
    pub admin: DatabaseConfig,
    /// An admin pool on this test's database (no `search_path` of a service: qualify names).
    pub db: DatabaseConnection,
    /// One URL per service, each logging in as this test's role of that service.
    pub services: ServiceDatabases,
}

impl TestDatabase {
    /// A new database `larder_t_<uuid>`, provisioned as `larder migrate` does: roles, schemas,
    /// every service's migrations.
    ///
    /// Panics when Postgres is unreachable or provisioning fails: it is for tests.
    pub async fn new() -> TestDatabase {
        let server =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        Self::new_on(&server).await
    }

    /// [`TestDatabase::new`] on another server: `server_url` names its superuser (its database
    /// name is replaced), e.g. a [`PostgresServer`] of the test's own.
    pub async fn new_on(server_url: &str) -> TestDatabase {
        let test_db = Self::new_unmigrated_on(server_url).await;
        test_db
            .provision()
            .await
            .expect("Failed to provision the test database");
        test_db
    }

    /// A new, empty database `larder_t_<uuid>` whose roles do not exist yet, for tests of
    /// provisioning and migrations themselves ([`TestDatabase::provision`] creates them).
    ///
    /// Panics when Postgres is unreachable: it is for tests.
    pub async fn new_unmigrated() -> TestDatabase {
        let server =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        Self::new_unmigrated_on(&server).await
    }

    async fn new_unmigrated_on(server_url: &str) -> TestDatabase {
        let server = DatabaseConfig {
            url: server_url.to_owned(),
            ..DatabaseConfig::default()
        };
        let id = Uuid::new_v4().simple().to_string();
        let admin = server.with_database(&format!("larder_t_{id}"));
        let services = test_roles(&admin, &id[..8]);
        database::create_database_if_missing(&admin)
            .await
            .expect("Failed to create the test database");
        let db = database::connect_with_deadline(&admin, TEST_CONNECT_DEADLINE)
            .await
            .expect("Failed to connect to the test database");
        TestDatabase {
            admin,
            db,
            services,
        }
    }

    /// Runs `larder migrate`'s provisioning on this database (again).
    pub async fn provision(&self) -> Result<provision::Provisioned, DbErr> {
        let roles = provision::service_roles(&self.admin, &self.services)?;
        provision::provision_on(&self.db, &roles).await
    }

    /// The service's config: its role's URL, a small pool, its schema. Pass it to the service's
    /// `Application`.
    pub fn config(&self, service: Service) -> DatabaseConfig {
        self.services.config(service)
    }

    /// A pool as the service's role, `search_path` = its schema.
    pub async fn connect(&self, service: Service) -> DatabaseConnection {
        database::connect_with_deadline(&self.config(service), TEST_CONNECT_DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("Failed to connect as the {service} role: {e}"))
    }

    /// The login role of the service in this test.
    pub fn role(&self, service: Service) -> String {
        self.config(service)
            .user()
            .expect("test URLs name their role")
    }

    /// This test's database name.
    pub fn name(&self) -> &str {
        self.admin.database_name()
    }
}

/// `larder_t_<tag>_<service>` roles with random passwords, on the admin URL's server.
fn test_roles(admin: &DatabaseConfig, tag: &str) -> ServiceDatabases {
    let authority_start = admin.url.find("://").map_or(0, |i| i + 3);
    let host_start = admin.url[authority_start..]
        .find('@')
        .map_or(authority_start, |at| authority_start + at + 1);
    let (scheme, host_and_rest) = (&admin.url[..authority_start], &admin.url[host_start..]);
    let url = |service: Service| {
        let role = format!("larder_t_{tag}_{}", service.name());
        let password = Uuid::new_v4().simple().to_string();
        format!("{scheme}{role}:{password}@{host_and_rest}")
    };
    ServiceDatabases {
        order_url: url(Service::Order),
        stock_url: url(Service::Stock),
        delivery_url: url(Service::Delivery),
        notification_url: url(Service::Notification),
        max_connections: TEST_MAX_CONNECTIONS,
    }
}

impl Drop for TestDatabase {
    /// Drops the database, then the roles, on a thread of its own with its own runtime: `Drop`
    /// is synchronous and may run inside the test's runtime, where blocking on a future would
    /// panic. Failures are printed, never raised: a panic here would abort a test that is
    /// already unwinding.
    fn drop(&mut self) {
        let admin = maintenance_config(&self.admin);
        let name = self.name().to_owned();
        let roles: Vec<String> = Service::ALL.into_iter().map(|s| self.role(s)).collect();
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| DbErr::Custom(format!("Failed to build a runtime: {e}")))?;
            runtime.block_on(drop_database_and_roles(&admin, &name, &roles))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("Failed to drop test database {}: {e}", self.name()),
            Err(_) => eprintln!("Dropping test database {} panicked", self.name()),
        }
    }
}

async fn drop_database_and_roles(
    admin: &DatabaseConfig,
    name: &str,
    roles: &[String],
) -> Result<(), DbErr> {
    let db = database::connect_with_deadline(admin, TEST_CONNECT_DEADLINE).await?;
    let mut outcome = db
        .execute_unprepared(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
        .map(|_| ());
    if outcome.is_ok() {
        // The roles owned objects only in the dropped database.
        for role in roles {
            if let Err(e) = db
                .execute_unprepared(&format!("DROP ROLE IF EXISTS {}", quote_ident(role)))
                .await
            {
                outcome = Err(e);
            }
        }
    }
    db.close().await?;
    outcome
}
