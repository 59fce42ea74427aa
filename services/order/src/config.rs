//! The order service's configuration.

use std::fmt;
use std::net::SocketAddr;

/// The JWT secret used when none is configured. Accepted only in the dev profile.
pub const DEV_JWT_SECRET: &str = "dev-only-secret-change-me";
/// How long a call to the stock or delivery service may take by default.
pub const DEFAULT_SERVICE_REQUEST_TIMEOUT_MS: u64 = 3000;

/// Who may create a merchant through `POST /auth/merchants` (README "Merchant sign-up").
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MerchantSignup {
    /// Anyone (rate-limited like register): the dev profile's default.
    Open,
    /// Only a caller presenting `MERCHANT_SIGNUP_TOKEN` in `X-Operator-Token`: the prod
    /// profile's default when that token is set.
    Operator,
    /// Nobody: the prod profile's default without a token. Merchants come from the bootstrap.
    Closed,
}

impl MerchantSignup {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Operator => "operator",
            Self::Closed => "closed",
        }
    }
}

/// The shortest operator token accepted: it guards merchant creation, like the JWT secret.
pub const MIN_SIGNUP_TOKEN_BYTES: usize = 32;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Local development: the default JWT secret is accepted.
    #[default]
    Dev,
    /// Production: refuses to start with the default JWT secret.
    Prod,
}

/// Settings only the order service has: HTTP, tokens, the bootstrap merchant.
#[derive(Clone, clap::Args)]
pub struct OrderSettings {
    /// Where the HTTP API listens; port 0 picks a free one.
    #[arg(long, env, default_value = "127.0.0.1:3000")]
    pub http_addr: SocketAddr,
    /// Requests served at once; beyond it, 503 with Retry-After instead of an unbounded queue.
    #[arg(long, env, default_value_t = 512)]
    pub http_max_in_flight: usize,
    /// How long a merchant operation served by another service (seed, ingredients, restock,
    /// courier update) waits for its answer before the API says 503.
    #[arg(long, env, default_value_t = DEFAULT_SERVICE_REQUEST_TIMEOUT_MS)]
    pub service_request_timeout_ms: u64,
    /// Connections served at once; further clients wait in the listen backlog. Keep it below the
    /// open-file limit (the service raises its soft limit to the hard one at start).
    #[arg(long, env, default_value_t = 1024)]
    pub http_max_connections: usize,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, env, default_value_t = 10)]
    pub http_header_timeout_secs: u64,
    /// Seconds a client has to send a request's body (408 after).
    #[arg(long, env, default_value_t = 10)]
    pub http_body_timeout_secs: u64,
    /// Seconds without a byte read or written after which a connection is closed, even mid-request.
    #[arg(long, env, default_value_t = 60)]
    pub http_idle_timeout_secs: u64,
    /// Login and register attempts per client address per minute (429 beyond).
    #[arg(long, env, default_value_t = 30)]
    pub auth_rate_per_ip_per_min: u32,
    /// Login attempts per account per minute; a failed one counts twice (429 beyond).
    #[arg(long, env, default_value_t = 10)]
    pub auth_rate_per_account_per_min: u32,
    /// Threads hashing passwords (argon2id, 19 MiB each); 0 = one per core.
    #[arg(long, env, default_value_t = 0)]
    pub password_hash_threads: usize,
    /// Password hashes that may wait for a thread; beyond, logins get 503 with Retry-After.
    #[arg(long, env, default_value_t = 64)]
    pub password_hash_queue: usize,
    #[arg(long, env = "LARDER_PROFILE", value_enum, default_value_t = Profile::Dev)]
    pub profile: Profile,
    /// HS256 key for access tokens.
    #[arg(long, env, default_value = DEV_JWT_SECRET)]
    pub jwt_secret: String,
    #[arg(long, env, default_value_t = 3600)]
    pub jwt_ttl_secs: u64,
    /// The merchant created at start (idempotent), with a merchant user to log in as.
    #[arg(long, env, default_value = "Larder Burgers")]
    pub merchant_name: String,
    /// The bootstrap merchant's login, and where its low-stock alerts go.
    #[arg(long, env, default_value = "merchant@larder.local")]
    pub merchant_email: String,
    #[arg(long, env, default_value = "merchant-password")]
    pub merchant_password: String,
    #[arg(long, env, default_value = "EUR")]
    pub merchant_currency: String,
    /// Who may create merchants (`open`, `operator`, `closed`); unset: `open` in the dev
    /// profile, in prod `operator` when `MERCHANT_SIGNUP_TOKEN` is set, else `closed`.
    #[arg(long, env, value_enum)]
    pub merchant_signup: Option<MerchantSignup>,
    /// The operator token `MERCHANT_SIGNUP=operator` asks for (`X-Operator-Token`), at least
    /// 32 bytes.
    #[arg(long, env)]
    pub merchant_signup_token: Option<String>,
    /// `GET /order/{id}/events` streams open at once; beyond, 503 with Retry-After. Each holds
    /// a connection: keep it well below HTTP_MAX_CONNECTIONS.
    #[arg(long, env, default_value_t = 256)]
    pub sse_max_streams: usize,
    /// Seconds an event stream stays open at most; the client resumes with `Last-Event-ID`.
    #[arg(long, env, default_value_t = 120)]
    pub sse_max_secs: u64,
    /// `POST /order` requests waiting for their outcome at once (`Prefer: wait`); beyond, the
    /// preference is not honoured and the answer is the usual 202.
    #[arg(long, env, default_value_t = 256)]
    pub prefer_wait_max_waiters: usize,
    /// Serve HTTP only and consume no order events: other instances of the service do (they
    /// share the durable consumers). Its clients still see every status change live, from the
    /// other instances' pushes. At least one instance must consume.
    #[arg(long, env = "ORDER_API_ONLY", default_value_t = false)]
    pub api_only: bool,
}

impl Default for OrderSettings {
    fn default() -> Self {
        larder_bus::config::declared_defaults()
    }
}

impl OrderSettings {
    /// The HTTP server's connection limits.
    pub fn http_limits(&self) -> crate::server::HttpLimits {
        crate::server::HttpLimits {
            max_connections: self.http_max_connections,
            header_timeout: std::time::Duration::from_secs(self.http_header_timeout_secs),
            idle_timeout: std::time::Duration::from_secs(self.http_idle_timeout_secs),
            ..Default::default()
        }
    }

    /// The login and register limits.
    pub fn auth_limits(&self) -> crate::api::limits::AuthLimitSettings {
        crate::api::limits::AuthLimitSettings {
            per_ip_per_minute: self.auth_rate_per_ip_per_min,
            per_account_per_minute: self.auth_rate_per_account_per_min,
            hash_threads: self.password_hash_threads,
            hash_queue: self.password_hash_queue,
        }
    }
}

// Secrets stay out of logs.
impl fmt::Debug for OrderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderSettings")
            .field("http_addr", &self.http_addr)
            .field("http_max_in_flight", &self.http_max_in_flight)
            .field(
                "service_request_timeout_ms",
                &self.service_request_timeout_ms,
            )
            .field("http_max_connections", &self.http_max_connections)
            .field("http_header_timeout_secs", &self.http_header_timeout_secs)
            .field("http_body_timeout_secs", &self.http_body_timeout_secs)
            .field("http_idle_timeout_secs", &self.http_idle_timeout_secs)
            .field("auth_rate_per_ip_per_min", &self.auth_rate_per_ip_per_min)
            .field(
                "auth_rate_per_account_per_min",
                &self.auth_rate_per_account_per_min,
            )
            .field("password_hash_threads", &self.password_hash_threads)
            .field("password_hash_queue", &self.password_hash_queue)
            .field("profile", &self.profile)
            .field("jwt_secret", &"***")
            .field("jwt_ttl_secs", &self.jwt_ttl_secs)
            .field("merchant_name", &self.merchant_name)
            .field("merchant_email", &self.merchant_email)
            .field("merchant_password", &"***")
            .field("merchant_currency", &self.merchant_currency)
            .field("merchant_signup", &self.merchant_signup)
            .field(
                "merchant_signup_token",
                &self.merchant_signup_token.as_ref().map(|_| "***"),
            )
            .field("sse_max_streams", &self.sse_max_streams)
            .field("sse_max_secs", &self.sse_max_secs)
            .field("prefer_wait_max_waiters", &self.prefer_wait_max_waiters)
            .field("api_only", &self.api_only)
            .finish()
    }
}

/// Everything the order service needs; tests build it in code.
pub type Config = larder_bus::config::ServiceConfig<OrderSettings>;

impl OrderSettings {
    pub fn service_request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.service_request_timeout_ms)
    }

    /// The sign-up policy in force: the configured one, else the profile's default (see
    /// [`MerchantSignup`]).
    pub fn merchant_signup(&self) -> MerchantSignup {
        self.merchant_signup
            .unwrap_or(match (self.profile, &self.merchant_signup_token) {
                (Profile::Dev, _) => MerchantSignup::Open,
                (Profile::Prod, Some(_)) => MerchantSignup::Operator,
                (Profile::Prod, None) => MerchantSignup::Closed,
            })
    }
}
