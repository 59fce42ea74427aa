//! Small queries the tests share.

use migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, RuntimeErr, Statement};

/// Every table the migrations create, sorted.
pub const TABLES: [&str; 13] = [
    "inbox",
    "ingredients",
    "merchants",
    "notifications",
    "order_lines",
    "order_status_history",
    "orders",
    "outbox",
    "products",
    "recipe_lines",
    "shipments",
    "stock_movements",
    "users",
];

/// The tables of the `public` schema, sorted.
pub async fn table_names(db: &impl ConnectionTrait) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
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

/// The versions recorded in `seaql_migrations` with how often each appears, by version.
pub async fn applied_migrations(db: &impl ConnectionTrait) -> Vec<(String, i64)> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT version, count(*) AS times FROM seaql_migrations GROUP BY version ORDER BY 1",
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

/// Runs one or more SQL statements.
pub async fn exec(db: &impl ConnectionTrait, sql: &str) -> Result<(), DbErr> {
    db.execute_unprepared(sql).await.map(|_| ())
}

/// Runs `sql` and returns the `i64` column `id` of its one row (for `INSERT ... RETURNING id`).
pub async fn insert_returning_id(db: &impl ConnectionTrait, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a returned row")
        .try_get("", "id")
        .expect("an id column")
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
