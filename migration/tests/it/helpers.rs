//! Small queries the tests share.

use migration::Service;
use migration::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    Statement,
};
use migration::testing::TestDatabase;

/// The tables of a service's schema once migrated, sorted (`seaql_migrations` included).
pub fn tables_of(service: Service) -> Vec<String> {
    let mut tables: Vec<String> = migration::legacy::tables_of(service)
        .iter()
        .map(|t| t.to_string())
        .chain(["inbox", "outbox", "seaql_migrations"].map(String::from))
        .collect();
    tables.sort();
    tables
}

/// The base tables of `schema`, sorted.
pub async fn table_names(db: &impl ConnectionTrait, schema: &str) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1",
            [schema.into()],
        ))
        .await
        .expect("Failed to list tables");
    rows.iter()
        .map(|row| {
            row.try_get("", "name")
                .expect("Failed to read a table name")
        })
        .collect()
}

/// The versions recorded in the schema's `seaql_migrations` with how often each appears.
pub async fn applied_migrations(db: &impl ConnectionTrait, service: Service) -> Vec<(String, i64)> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT version, count(*) AS times FROM {}.seaql_migrations GROUP BY version ORDER BY 1",
                service.quoted_schema()
            ),
        ))
        .await
        .expect("Failed to read seaql_migrations");
    rows.iter()
        .map(|row| {
            (
                row.try_get("", "version").expect("version"),
                row.try_get("", "times").expect("times"),
            )
        })
        .collect()
}

/// Each of the service's migrations, applied once.
pub fn each_once(service: Service) -> Vec<(String, i64)> {
    service
        .migration_names()
        .into_iter()
        .map(|n| (n, 1))
        .collect()
}

/// An admin pool on the test's database that sees every service's schema (order's first, so
/// `outbox` and `inbox` are order's): for tests of constraints across the whole schema.
/// `service`'s schema as its migrations leave it: its tables, each migration applied once, and
/// every object (identity sequences included) owned by the service's role.
pub async fn assert_schema_complete(test_db: &TestDatabase, service: Service) {
    assert_eq!(
        table_names(&test_db.db, service.schema()).await,
        tables_of(service),
        "{service}"
    );
    // sea-orm-migration's table follows search_path: each schema has its own history.
    assert_eq!(
        applied_migrations(&test_db.db, service).await,
        each_once(service),
        "{service}"
    );
    let foreign: i64 = scalar(
        &test_db.db,
        &format!(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = '{}' AND pg_get_userbyid(c.relowner) <> '{}'",
            service.schema(),
            test_db.role(service)
        ),
    )
    .await;
    assert_eq!(foreign, 0, "{service}: objects owned by another role");
}

pub async fn admin_on_every_schema(test_db: &TestDatabase) -> DatabaseConnection {
    let mut options = ConnectOptions::new(test_db.admin.url.clone());
    options
        .max_connections(2)
        .sqlx_logging(false)
        .set_schema_search_path("\"order\",stock,delivery,notification");
    Database::connect(options)
        .await
        .expect("Failed to connect as the admin")
}

/// Runs one or more SQL statements.
pub async fn exec(db: &impl ConnectionTrait, sql: &str) -> Result<(), DbErr> {
    db.execute_unprepared(sql).await.map(|_| ())
}

/// Runs `sql` and returns the `i64` column `id` of its one row (for `INSERT ... RETURNING id`).
pub async fn insert_returning_id(db: &impl ConnectionTrait, sql: &str) -> i64 {
    scalar(db, sql).await
}

/// The first column, named `id` or not, of `sql`'s one row.
pub async fn scalar<T: migration::sea_orm::TryGetable>(db: &impl ConnectionTrait, sql: &str) -> T {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a returned row")
        .try_get_by_index(0)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The name of the constraint `err` violated, if it is a PostgreSQL constraint violation.
pub fn violated_constraint(err: &DbErr) -> Option<&str> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            e.as_database_error()?.constraint()
        }
        _ => None,
    }
}
