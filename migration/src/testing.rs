//! One fresh PostgreSQL database per test, so tests run in parallel without seeing each other.
//!
//! ```no_run
//! # async fn example() {
//! use migration::testing::TestDatabase;
//!
//! let test_db = TestDatabase::new().await; // larder_t_<uuid>, migrated
//! // Build the service's config from `test_db.config`, or query `test_db.db` directly.
//! # }
//! // Dropping `test_db` drops the database.
//! ```
//!
//! The server comes from `DATABASE_URL` when set (its database name is replaced), else
//! [`DEFAULT_DATABASE_URL`](crate::database::DEFAULT_DATABASE_URL).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use uuid::Uuid;

use crate::database::{
    self, DEFAULT_DATABASE_URL, DatabaseConfig, maintenance_config, quote_ident,
};

/// How long a test waits for the server: it should be up already.
const TEST_CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// A database of its own for one test, dropped (`WITH (FORCE)`) when this value is dropped.
pub struct TestDatabase {
    /// Points at this test's database; pass it (or a copy) to the code under test.
    pub config: DatabaseConfig,
    /// A pool on this test's database.
    pub db: DatabaseConnection,
}

impl TestDatabase {
    /// A new, migrated database `larder_t_<uuid>`.
    ///
    /// Panics when Postgres is unreachable or migrating fails: it is for tests.
    pub async fn new() -> TestDatabase {
        let test_db = Self::new_unmigrated().await;
        database::migrate(&test_db.db)
            .await
            .expect("Failed to migrate the test database");
        test_db
    }

    /// A new, empty database `larder_t_<uuid>`, for tests of the migrations themselves.
    ///
    /// Panics when Postgres is unreachable: it is for tests.
    pub async fn new_unmigrated() -> TestDatabase {
        let server = DatabaseConfig {
            url: std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned()),
            ..DatabaseConfig::default()
        };
        let config = server.with_database(&format!("larder_t_{}", Uuid::new_v4().simple()));
        database::create_database_if_missing(&config)
            .await
            .expect("Failed to create the test database");
        let db = database::connect_with_deadline(&config, TEST_CONNECT_DEADLINE)
            .await
            .expect("Failed to connect to the test database");
        TestDatabase { config, db }
    }

    /// This test's database name.
    pub fn name(&self) -> &str {
        self.config.database_name()
    }
}

impl Drop for TestDatabase {
    /// Drops the database on a thread of its own with its own runtime: `Drop` is synchronous
    /// and may run inside the test's runtime, where blocking on a future would panic. Failures
    /// are printed, never raised: a panic here would abort a test that is already unwinding.
    fn drop(&mut self) {
        let admin = maintenance_config(&self.config);
        let name = self.name().to_owned();
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| DbErr::Custom(format!("Failed to build a runtime: {e}")))?;
            runtime.block_on(drop_database(&admin, &name))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("Failed to drop test database {}: {e}", self.name()),
            Err(_) => eprintln!("Dropping test database {} panicked", self.name()),
        }
    }
}

async fn drop_database(admin: &DatabaseConfig, name: &str) -> Result<(), DbErr> {
    let db = database::connect_with_deadline(admin, TEST_CONNECT_DEADLINE).await?;
    let outcome = db
        .execute_unprepared(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await;
    db.close().await?;
    outcome.map(|_| ())
}
