//! Reaching PostgreSQL: [`DatabaseConfig`] (the admin URL, or one service's role URL and
//! schema), [`ServiceDatabases`] (one URL per service), connecting with retries, creating the
//! database and migrating a service's schema safely when several instances start at once.
//!
//! A service's startup calls [`connect_and_migrate`] with its own config and keeps the returned
//! pool, whose connections all run with `search_path` = the service's schema alone.

use std::fmt;
use std::time::{Duration, Instant};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    Statement, TransactionTrait,
};

use crate::Service;

/// The admin URL (a superuser, or the owner of the database) when nothing else is configured:
/// what `larder migrate`, `larder bench` and the test harness use.
/// Loopback needs no TLS: `sslmode=disable` saves a TLS layer on every query (Debian's
/// PostgreSQL has `ssl = on`, and sqlx prefers TLS when offered).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/larder?sslmode=disable";

/// Size of each pool when nothing else is configured.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// How long [`connect`] keeps retrying before it gives up.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(120);

/// Key of the advisory lock `larder migrate` holds while provisioning: "lardermg" in ASCII.
pub const PROVISION_LOCK_KEY: i64 = 0x6c61_7264_6572_6d67;

/// First key of a schema's migration lock, `pg_advisory_xact_lock(SCHEMA_LOCK_CLASS, n)` with
/// `n` per service: "lard" in ASCII.
pub const SCHEMA_LOCK_CLASS: i32 = 0x6c61_7264;

/// The database every PostgreSQL server has; used to create and drop others.
const MAINTENANCE_DATABASE: &str = "postgres";

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// SQLSTATE of `CREATE DATABASE` when the database already exists.
const DUPLICATE_DATABASE: &str = "42P04";
/// SQLSTATE of a unique violation: two concurrent `CREATE DATABASE` of one name may report it.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE of a connection to a database that does not exist.
const INVALID_CATALOG_NAME: &str = "3D000";

/// Where to connect: as the admin (`DATABASE_URL`, `service` = `None`), or as one service's role
/// with `search_path` = its schema (`service` set; what each service's `Config` carries).
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct DatabaseConfig {
    /// Admin PostgreSQL URL (superuser or database owner), database name included: used by
    /// `larder migrate` to create the database, roles and schemas, and by `larder bench`.
    #[arg(id = "database_url",
        long = "database-url",
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL
    )]
    pub url: String,
    /// Size of the pool. Not a flag here: each service's pool size is
    /// [`ServiceDatabases::max_connections`] (`DATABASE_MAX_CONNECTIONS`).
    #[arg(skip = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: u32,
    /// The service whose schema the pool uses (`search_path` = that schema alone); `None` for
    /// the admin, who names schemas explicitly.
    #[arg(skip)]
    pub service: Option<Service>,
    /// How long a query waits for a free connection of the pool before it fails. The order API
    /// keeps it short, so that with PostgreSQL away a request answers 503 quickly.
    #[arg(skip = DEFAULT_ACQUIRE_TIMEOUT)]
    pub acquire_timeout: Duration,
}

/// [`DatabaseConfig::acquire_timeout`] unless a service asks for another.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_DATABASE_URL.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            service: None,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
        }
    }
}

/// Hides the password, whether in the user info or in a `password=` query parameter.
impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redacted(&self.url))
            .field("max_connections", &self.max_connections)
            .field("service", &self.service)
            .finish()
    }
}

impl DatabaseConfig {
    /// The same database and role with a pool of `max_connections` (a second pool of one
    /// service: the outbox relay's, the consumers').
    pub fn with_max_connections(&self, max_connections: u32) -> DatabaseConfig {
        DatabaseConfig {
            max_connections,
            ..self.clone()
        }
    }

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
            service: self.service,
            acquire_timeout: self.acquire_timeout,
        }
    }

    /// The database named in the URL's path; empty when the URL names none.
    pub fn database_name(&self) -> &str {
        UrlParts::split(&self.url).database
    }

    /// The role the URL logs in as (percent-decoded); `None` when it names none.
    pub fn user(&self) -> Option<String> {
        let (user, _) = UrlParts::split(&self.url).user_info()?;
        (!user.is_empty()).then(|| percent_decode(user))
    }

    /// The password in the URL (percent-decoded), if any.
    pub fn password(&self) -> Option<String> {
        let (_, password) = UrlParts::split(&self.url).user_info()?;
        password.map(percent_decode)
    }
}

/// One database URL per service, each logging in as that service's own role (`larder all`
/// takes all four; `larder migrate` reads the roles and passwords to create from them).
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct ServiceDatabases {
    /// The order service's PostgreSQL URL: its own role, which can use only the `order` schema.
    #[arg(
        id = "order_database_url",
        long = "order-database-url",
        env = "ORDER_DATABASE_URL",
        default_value = "postgres://larder_order:larder_order@127.0.0.1:5432/larder?sslmode=disable"
    )]
    pub order_url: String,
    /// The stock service's PostgreSQL URL: its own role, which can use only the `stock` schema.
    #[arg(
        id = "stock_database_url",
        long = "stock-database-url",
        env = "STOCK_DATABASE_URL",
        default_value = "postgres://larder_stock:larder_stock@127.0.0.1:5432/larder?sslmode=disable"
    )]
    pub stock_url: String,
    /// The delivery service's PostgreSQL URL: its own role, which can use only the `delivery`
    /// schema.
    #[arg(
        id = "delivery_database_url",
        long = "delivery-database-url",
        env = "DELIVERY_DATABASE_URL",
        default_value = "postgres://larder_delivery:larder_delivery@127.0.0.1:5432/larder?sslmode=disable"
    )]
    pub delivery_url: String,
    /// The notification service's PostgreSQL URL: its own role, which can use only the
    /// `notification` schema.
    #[arg(
        id = "notification_database_url",
        long = "notification-database-url",
        env = "NOTIFICATION_DATABASE_URL",
        default_value = "postgres://larder_notification:larder_notification@127.0.0.1:5432/larder?sslmode=disable"
    )]
    pub notification_url: String,
    /// Size of each service's connection pool.
    #[arg(
        id = "database_max_connections",
        long = "database-max-connections",
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = DEFAULT_MAX_CONNECTIONS
    )]
    pub max_connections: u32,
}

impl Default for ServiceDatabases {
    fn default() -> Self {
        Self {
            order_url: Service::Order.default_url().to_owned(),
            stock_url: Service::Stock.default_url().to_owned(),
            delivery_url: Service::Delivery.default_url().to_owned(),
            notification_url: Service::Notification.default_url().to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ServiceDatabases {
    /// The service's URL.
    pub fn url(&self, service: Service) -> &str {
        match service {
            Service::Order => &self.order_url,
            Service::Stock => &self.stock_url,
            Service::Delivery => &self.delivery_url,
            Service::Notification => &self.notification_url,
        }
    }

    /// What the service's `Config` carries: its URL, the pool size and its schema.
    pub fn config(&self, service: Service) -> DatabaseConfig {
        DatabaseConfig {
            url: self.url(service).to_owned(),
            max_connections: self.max_connections,
            service: Some(service),
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
        }
    }
}

/// Hides the passwords.
impl fmt::Debug for ServiceDatabases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceDatabases")
            .field("order_url", &redacted(&self.order_url))
            .field("stock_url", &redacted(&self.stock_url))
            .field("delivery_url", &redacted(&self.delivery_url))
            .field("notification_url", &redacted(&self.notification_url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// `%41` -> `A`; anything not a valid escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Postgres URL cut as `server/database?query`, `server` being `scheme://user:pass@host:port`.
struct UrlParts<'a> {
    server: &'a str,
    database: &'a str,
    query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// `(user, password)` from `scheme://user:password@host`; `None` without an `@`.
    fn user_info(&self) -> Option<(&'a str, Option<&'a str>)> {
        let authority_start = self.server.find("://").map_or(0, |i| i + 3);
        let authority = &self.server[authority_start..];
        let at = authority.rfind('@')?;
        let user_info = &authority[..at];
        Some(match user_info.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (user_info, None),
        })
    }

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
        .acquire_timeout(cfg.acquire_timeout)
        .idle_timeout(Duration::from_secs(10 * 60))
        .max_lifetime(Duration::from_secs(30 * 60))
        .set_application_name("larder")
        .sqlx_logging(false);
    if let Some(service) = cfg.service {
        // sea-orm runs `SET search_path = "order"` (quoted) on every new connection.
        options.set_schema_search_path(service.schema());
    }
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
            Err(e) if is_permanent_connect_error(&e, cfg.service.is_some()) => return Err(e),
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
/// class 28: a missing role too). A missing database is retried for the admin (another
/// instance may be creating it), not for a service: only `larder migrate` creates it.
fn is_permanent_connect_error(e: &DbErr, as_service: bool) -> bool {
    match e {
        DbErr::Conn(RuntimeErr::Internal(_)) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sea_orm::sqlx::Error::Configuration(_) => true,
            sea_orm::sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("28") || (as_service && c == INVALID_CATALOG_NAME)),
            _ => false,
        },
        _ => false,
    }
}

/// The SQLSTATE of a database error, if `e` is one.
pub fn sql_state(e: &DbErr) -> Option<String> {
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
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a PostgreSQL string literal (standard_conforming_strings, the default since 9.1).
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
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

/// Applies the service's pending migrations on `db`, a pool of the service's role whose
/// `search_path` is its schema (from [`connect`] with a service config).
///
/// Several instances may start at once: the migrations run in one transaction that first takes
/// the schema's transaction-scoped advisory lock (`SCHEMA_LOCK_CLASS`, one key per service),
/// so they run one after the other and the later ones find nothing to do. A transaction keeps
/// the lock and the migrations on one connection of the pool (a session lock taken through the
/// pool could land on another one); sea-orm-migration runs each migration in a nested
/// transaction (a savepoint) of it, so all pending migrations commit together or not at all.
pub async fn migrate(db: &DatabaseConnection, service: Service) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    lock_schema(&txn, service).await?;
    match service.migrate_up(&txn).await {
        Ok(()) => txn.commit().await,
        Err(e) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "Failed to roll back a failed migration");
            }
            Err(e)
        }
    }
}

/// Takes the service's schema migration lock until the end of the transaction.
pub(crate) async fn lock_schema(db: &impl ConnectionTrait, service: Service) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1, $2)",
        [SCHEMA_LOCK_CLASS.into(), service.lock_id().into()],
    ))
    .await?;
    Ok(())
}

/// What a service does at startup: connect as its own role (with retries while the server is
/// unreachable), check that its schema is there and its own, migrate it, and hand back the pool.
///
/// The database, role and schema are `larder migrate`'s to create: when one is missing, this
/// fails at once with one line saying so.
pub async fn connect_and_migrate(cfg: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    let service = cfg.service.ok_or_else(|| {
        DbErr::Custom(
            "connect_and_migrate needs a service's database config (ServiceDatabases::config)"
                .to_owned(),
        )
    })?;
    let run_migrate = |detail: String| {
        DbErr::Custom(format!(
            "The {service} service cannot use its database {:?} ({detail}); run `larder migrate` \
             with the admin DATABASE_URL first",
            redacted(&cfg.url)
        ))
    };
    let db = match connect(cfg).await {
        Ok(db) => db,
        Err(e)
            if sql_state(&e).is_some_and(|c| c.starts_with("28") || c == INVALID_CATALOG_NAME) =>
        {
            return Err(run_migrate(first_line(&e)));
        }
        Err(e) => return Err(e),
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS present, \
                    COALESCE((SELECT has_schema_privilege(current_user, oid, 'CREATE') \
                              FROM pg_namespace WHERE nspname = $1), false) AS usable",
            [service.schema().into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("the schema check returned no row".to_owned()))?;
    let (present, usable): (bool, bool) = (row.try_get("", "present")?, row.try_get("", "usable")?);
    if !present {
        db.close().await?;
        return Err(run_migrate(format!(
            "schema {} is missing",
            service.quoted_schema()
        )));
    }
    if !usable {
        db.close().await?;
        return Err(run_migrate(format!(
            "its role may not create in schema {}",
            service.quoted_schema()
        )));
    }
    migrate(&db, service).await?;
    Ok(db)
}

/// The server's message for a database error (`role "x" does not exist`), else `e`'s first line.
fn first_line(e: &DbErr) -> String {
    if let DbErr::Conn(RuntimeErr::SqlxError(sqlx)) = e
        && let Some(db) = sqlx.as_database_error()
    {
        return db.message().to_owned();
    }
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> DatabaseConfig {
        DatabaseConfig {
            url: url.to_owned(),
            ..DatabaseConfig::default()
        }
    }

    /// `T` from `args` alone, every argument's variable taken off: whoever runs the tests may
    /// have `DATABASE_URL`, the services' `*_DATABASE_URL` or `DATABASE_MAX_CONNECTIONS` set
    /// (`./stack.sh test` exports them).
    fn parse_without_env<T: clap::Parser>(args: &[&str]) -> T {
        let matches = T::command()
            .mut_args(|arg| arg.env(None))
            .get_matches_from(args);
        T::from_arg_matches(&matches).unwrap()
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
        use clap::CommandFactory;

        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            database: DatabaseConfig,
        }
        Cli::command().debug_assert();

        let cli: Cli = parse_without_env(&["larder", "--database-url", "postgres://db/x"]);

        assert_eq!(
            cli.database,
            DatabaseConfig {
                url: "postgres://db/x".to_owned(),
                max_connections: DEFAULT_MAX_CONNECTIONS,
                service: None,
                acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            }
        );
    }

    #[test]
    fn service_flags_fill_one_config_per_service() {
        use clap::CommandFactory;

        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            admin: DatabaseConfig,
            #[command(flatten)]
            services: ServiceDatabases,
        }
        Cli::command().debug_assert();

        let cli: Cli = parse_without_env(&[
            "larder",
            "--stock-database-url",
            "postgres://s:pw@db/x",
            "--database-max-connections",
            "3",
        ]);

        let stock = cli.services.config(Service::Stock);
        assert_eq!(stock.url, "postgres://s:pw@db/x");
        assert_eq!(stock.service, Some(Service::Stock));
        assert_eq!(stock.max_connections, 3);
        let order = cli.services.config(Service::Order);
        assert_eq!(order.url, Service::Order.default_url());
        assert_eq!(order.user().as_deref(), Some("larder_order"));
        assert_eq!(order.password().as_deref(), Some("larder_order"));
    }

    #[test]
    fn user_and_password_come_from_the_url() {
        let cases = [
            ("postgres://u:p%40ss@db/x", Some("u"), Some("p@ss")),
            ("postgres://u@db/x?sslmode=disable", Some("u"), None),
            ("postgres://db:5432/x", None, None),
            ("postgres://u:a:b@db/x", Some("u"), Some("a:b")),
        ];
        for (url, user, password) in cases {
            let c = config(url);
            assert_eq!(c.user().as_deref(), user, "{url}");
            assert_eq!(c.password().as_deref(), password, "{url}");
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("larder"), "\"larder\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
