//! Reaching PostgreSQL: the shared [`DatabaseConfig`], connecting with retries, creating the
//! database and migrating it safely when several instances start at once.
//!
//! A service's startup calls [`connect_and_migrate`] and keeps the returned pool.

use std::fmt;
use std::time::{Duration, Instant};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::Migrator;

/// Where a service's data lives when nothing else is configured.
/// Loopback needs no TLS: `sslmode=disable` saves a TLS layer on every query (Debian's
/// PostgreSQL has `ssl = on`, and sqlx prefers TLS when offered).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/larder?sslmode=disable";

/// How long [`connect`] keeps retrying before it gives up.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(120);

/// Key of the advisory lock held while migrating: "lardermg" in ASCII.
pub const MIGRATION_LOCK_KEY: i64 = 0x6c61_7264_6572_6d67;

/// The database every PostgreSQL server has; used to create and drop others.
const MAINTENANCE_DATABASE: &str = "postgres";

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// SQLSTATE of `CREATE DATABASE` when the database already exists.
const DUPLICATE_DATABASE: &str = "42P04";
/// SQLSTATE of a unique violation: two concurrent `CREATE DATABASE` of one name may report it.
const UNIQUE_VIOLATION: &str = "23505";

/// Connection settings shared by every service (nested in each service's `Config`).
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL, database name included.
    #[arg(id = "database_url", 
        long = "database-url",
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL
    )]
    pub url: String,
    /// Size of the connection pool.
    #[arg(
        id = "database_max_connections",
        long = "database-max-connections",
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 8
    )]
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_DATABASE_URL.to_owned(),
            max_connections: 8,
        }
    }
}

/// Hides the password, whether in the user info or in a `password=` query parameter.
impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redacted(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl DatabaseConfig {
    /// The same server, user and options, but the database `name` (a plain identifier: it is
    /// not percent-encoded).
    pub fn with_database(&self, name: &str) -> DatabaseConfig {
        let parts = UrlParts::split(&self.url);
        let mut url = format!("{}/{name}", parts.server);
        if let Some(query) = parts.query {
            url.push('?');
            url.push_str(query);
        }
        DatabaseConfig {
            url,
            max_connections: self.max_connections,
        }
    }

    /// The database named in the URL's path; empty when the URL names none.
    pub fn database_name(&self) -> &str {
        UrlParts::split(&self.url).database
    }
}

/// A Postgres URL cut as `server/database?query`, `server` being `scheme://user:pass@host:port`.
struct UrlParts<'a> {
    server: &'a str,
    database: &'a str,
    query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Self {
        let authority_start = url.find("://").map_or(0, |i| i + 3);
        let (before_query, query) = match url[authority_start..].find('?') {
            Some(i) => (
                &url[..authority_start + i],
                Some(&url[authority_start + i + 1..]),
            ),
            None => (url, None),
        };
        let (server, database) = match before_query[authority_start..].find('/') {
            Some(i) => (
                &before_query[..authority_start + i],
                &before_query[authority_start + i + 1..],
            ),
            None => (before_query, ""),
        };
        UrlParts {
            server,
            database,
            query,
        }
    }
}

/// `url` with any password replaced by `***`.
fn redacted(url: &str) -> String {
    let parts = UrlParts::split(url);
    let authority_start = parts.server.find("://").map_or(0, |i| i + 3);
    let (scheme, authority) = parts.server.split_at(authority_start);
    let server = match authority.rfind('@') {
        Some(at) => {
            let (user_info, host) = authority.split_at(at);
            match user_info.split_once(':') {
                Some((user, _password)) => format!("{scheme}{user}:***{host}"),
                None => parts.server.to_owned(),
            }
        }
        None => parts.server.to_owned(),
    };
    let mut out = format!("{server}/{}", parts.database);
    if let Some(query) = parts.query {
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&query.join("&"));
    }
    out
}

fn connect_options(cfg: &DatabaseConfig) -> ConnectOptions {
    let mut options = ConnectOptions::new(cfg.url.clone());
    options
        .max_connections(cfg.max_connections)
        .min_connections(0)
        // Bounds each attempt (sea-orm maps it to the pool's acquire timeout).
        .acquire_timeout(Duration::from_secs(10))
        .idle_timeout(Duration::from_secs(10 * 60))
        .max_lifetime(Duration::from_secs(30 * 60))
        .set_application_name("larder")
        .sqlx_logging(false);
    options
}

/// Connects to `cfg`'s database, retrying for up to [`CONNECT_DEADLINE`].
///
/// SPEC §5.8: services start in any order, so an unreachable server is retried with capped
/// exponential backoff (100 ms doubling to 5 s), each failure logged as a warning.
pub async fn connect(cfg: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    connect_with_deadline(cfg, CONNECT_DEADLINE).await
}

/// [`connect`] with another deadline. Errors that waiting cannot fix (a malformed URL, a
/// rejected password) are returned at once.
pub async fn connect_with_deadline(
    cfg: &DatabaseConfig,
    deadline: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let started = Instant::now();
    let mut backoff = INITIAL_BACKOFF;
    let mut attempt: u32 = 1;
    loop {
        match Database::connect(connect_options(cfg)).await {
            Ok(db) => {
                if attempt > 1 {
                    tracing::info!(
                        attempt,
                        database = cfg.database_name(),
                        "Connected to Postgres"
                    );
                }
                return Ok(db);
            }
            Err(e) if is_permanent_connect_error(&e) => return Err(e),
            Err(e) => {
                let elapsed = started.elapsed();
                if elapsed + backoff > deadline {
                    return Err(DbErr::Conn(RuntimeErr::Internal(format!(
                        "Gave up connecting to {:?} after {attempt} attempts in {elapsed:?}: {e}",
                        redacted(&cfg.url)
                    ))));
                }
                tracing::warn!(
                    attempt,
                    retry_in_ms = backoff.as_millis() as u64,
                    database = cfg.database_name(),
                    error = %e,
                    "Postgres is not answering yet; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
        }
    }
}

/// Errors retrying won't fix: a configuration error, or an authentication failure (SQLSTATE
/// class 28). A missing database is retried: another instance may be creating it.
fn is_permanent_connect_error(e: &DbErr) -> bool {
    match e {
        DbErr::Conn(RuntimeErr::Internal(_)) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sea_orm::sqlx::Error::Configuration(_) => true,
            sea_orm::sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("28")),
            _ => false,
        },
        _ => false,
    }
}

/// The SQLSTATE of a database error, if `e` is one.
fn sql_state(e: &DbErr) -> Option<String> {
    match e {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// `name` quoted as a PostgreSQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A one-connection config for the server's `postgres` database.
pub(crate) fn maintenance_config(cfg: &DatabaseConfig) -> DatabaseConfig {
    DatabaseConfig {
        max_connections: 1,
        ..cfg.with_database(MAINTENANCE_DATABASE)
    }
}

/// Creates `cfg`'s database unless it exists, through the server's `postgres` database.
///
/// Safe to race: a concurrent creation of the same database counts as success.
pub async fn create_database_if_missing(cfg: &DatabaseConfig) -> Result<(), DbErr> {
    let name = cfg.database_name();
    if name.is_empty() {
        return Err(DbErr::Custom(format!(
            "The database URL {:?} names no database",
            redacted(&cfg.url)
        )));
    }
    if name == MAINTENANCE_DATABASE {
        return Ok(());
    }
    let admin = connect(&maintenance_config(cfg)).await?;
    let outcome = create_if_absent(&admin, name).await;
    let closed = admin.close().await;
    outcome?;
    closed
}

async fn create_if_absent(admin: &DatabaseConnection, name: &str) -> Result<(), DbErr> {
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    match admin
        .execute_unprepared(&format!("CREATE DATABASE {}", quote_ident(name)))
        .await
    {
        Ok(_) => {
            tracing::info!(database = name, "Created the database");
            Ok(())
        }
        Err(e)
            if matches!(
                sql_state(&e).as_deref(),
                Some(DUPLICATE_DATABASE | UNIQUE_VIOLATION)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Applies the pending migrations.
///
/// Several instances may start at once: the migrations run in one transaction that first takes
/// the transaction-scoped advisory lock [`MIGRATION_LOCK_KEY`], so they run one after the other
/// and the later ones find nothing to do. A transaction keeps the lock and the migrations on one
/// connection of the pool (a session lock taken through the pool could land on another one);
/// sea-orm-migration runs each migration in a nested transaction (a savepoint) of it, so all
/// pending migrations commit together or not at all. The lock is released at commit or rollback.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [MIGRATION_LOCK_KEY.into()],
    ))
    .await?;
    match Migrator::up(&txn, None).await {
        Ok(()) => txn.commit().await,
        Err(e) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "Failed to roll back a failed migration");
            }
            Err(e)
        }
    }
}

/// What a service does at startup: create its database if needed, connect (with retries),
/// migrate, and hand back the pool.
pub async fn connect_and_migrate(cfg: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    create_database_if_missing(cfg).await?;
    let db = connect(cfg).await?;
    migrate(&db).await?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> DatabaseConfig {
        DatabaseConfig {
            url: url.to_owned(),
            max_connections: 8,
        }
    }

    #[test]
    fn with_database_swaps_only_the_database_name() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/larder",
                "postgres://postgres@127.0.0.1:5432/other",
            ),
            (
                "postgres://u:p@db:5432/larder?sslmode=disable",
                "postgres://u:p@db:5432/other?sslmode=disable",
            ),
            ("postgres://db:5432", "postgres://db:5432/other"),
            (
                "postgres://db:5432?sslmode=require",
                "postgres://db:5432/other?sslmode=require",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(
                config(url).with_database("other").url,
                expected,
                "for {url}"
            );
        }
    }

    #[test]
    fn database_name_is_the_path() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/larder", "larder"),
            ("postgres://u:p@db/larder_t_1?sslmode=disable", "larder_t_1"),
            ("postgres://db:5432", ""),
        ];
        for (url, expected) in cases {
            assert_eq!(config(url).database_name(), expected, "for {url}");
        }
    }

    #[test]
    fn debug_hides_passwords() {
        let shown = format!(
            "{:?}",
            config("postgres://larder:s3cret@db:5432/larder?password=other&sslmode=disable")
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("other"), "{shown}");
        assert!(
            shown.contains("postgres://larder:***@db:5432/larder"),
            "{shown}"
        );
        assert!(shown.contains("sslmode=disable"), "{shown}");
    }

    #[test]
    fn cli_flags_fill_the_config() {
        use clap::{CommandFactory, Parser};

        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            database: DatabaseConfig,
        }
        Cli::command().debug_assert();

        let cli = Cli::parse_from([
            "larder",
            "--database-url",
            "postgres://db/x",
            "--database-max-connections",
            "3",
        ]);

        assert_eq!(
            cli.database,
            DatabaseConfig {
                url: "postgres://db/x".to_owned(),
                max_connections: 3,
            }
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("larder"), "\"larder\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
