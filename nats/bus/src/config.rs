//! Configuration of the NATS connection and of the outbox relay, and a connect that waits.

use std::time::Duration;

use migration::database::DatabaseConfig;

use crate::namespace::Namespace;

/// Where NATS is and how the streams are shaped (SPEC §4: file storage, limits retention with a
/// max age, replicas configurable).
#[derive(Clone, Debug, clap::Args)]
pub struct NatsConfig {
    /// NATS server URL; several, comma-separated, for a cluster (the client fails over).
    #[arg(
        id = "nats_url",
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    /// Prefix for every subject, stream and durable; empty in production.
    #[arg(
        id = "nats_namespace",
        long = "nats-namespace",
        env = "NATS_NAMESPACE",
        default_value = ""
    )]
    pub namespace: Namespace,
    /// Stream replicas: 1 on one server, 3 in a cluster.
    #[arg(
        id = "nats_replicas",
        long = "nats-replicas",
        env = "NATS_REPLICAS",
        default_value_t = 1
    )]
    pub replicas: usize,
    /// How long streams keep messages; inbox rows are kept twice as long (`inbox::retention`).
    #[arg(id = "nats_max_age_secs", long = "nats-max-age-secs", env = "NATS_MAX_AGE_SECS", default_value_t = 7 * 24 * 3600)]
    pub max_age_secs: u64,
    /// Window in which the server drops a re-published Nats-Msg-Id as a duplicate.
    #[arg(
        id = "nats_duplicate_window_secs",
        long = "nats-duplicate-window-secs",
        env = "NATS_DUPLICATE_WINDOW_SECS",
        default_value_t = 120
    )]
    pub duplicate_window_secs: u64,
}

impl NatsConfig {
    /// The declared defaults: the server on loopback, no namespace.
    pub fn local() -> Self {
        declared_defaults()
    }

    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_secs)
    }

    pub fn duplicate_window(&self) -> Duration {
        Duration::from_secs(self.duplicate_window_secs)
    }
}

/// One service's configuration: where its database and NATS are, how its relay runs, and the
/// settings only it has (`S`). Each service names its own: `type Config = ServiceConfig<…>`.
#[derive(Clone, Debug)]
pub struct ServiceConfig<S> {
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub outbox: OutboxConfig,
    pub consume: ConsumeConfig,
    pub settings: S,
}

/// How the outbox relay batches and polls.
#[derive(Clone, Debug, clap::Args)]
pub struct OutboxConfig {
    /// Rows claimed and published per round trip.
    #[arg(
        id = "outbox_batch_size",
        long = "outbox-batch-size",
        env = "OUTBOX_BATCH_SIZE",
        default_value_t = 512
    )]
    pub batch_size: u64,
    /// Fallback poll when no LISTEN/NOTIFY wake-up arrives.
    #[arg(
        id = "outbox_poll_interval_ms",
        long = "outbox-poll-interval-ms",
        env = "OUTBOX_POLL_INTERVAL_MS",
        default_value_t = 1000
    )]
    pub poll_interval_ms: u64,
    /// After a wake-up, how long the relay waits for more rows before it claims (0: at once); a
    /// round claims what committed meanwhile. The shutdown flush never waits.
    #[arg(
        id = "outbox_linger_ms",
        long = "outbox-linger-ms",
        env = "OUTBOX_LINGER_MS",
        default_value_t = 10
    )]
    pub linger_ms: u64,
}

/// How the consumer runners batch (see [`crate::consume`]).
///
/// The linger, here and in [`OutboxConfig`]: every batch costs a transaction, a commit and their
/// round trips whatever its size. Under saturation batches fill by themselves; at a moderate rate
/// a stage that starts at once handles an event or two per batch and pays those costs per order.
/// Letting each batch fill for a few milliseconds trades a little latency (up to the linger per
/// hop) for a good part of that CPU (docs/PERFORMANCE.md, round 7).
#[derive(Clone, Debug, clap::Args)]
pub struct ConsumeConfig {
    /// After a batch's first message arrives, how long a consumer waits for more (up to its
    /// batch size) before it handles them (0: whatever has arrived, at once).
    #[arg(
        id = "consumer_linger_ms",
        long = "consumer-linger-ms",
        env = "CONSUMER_LINGER_MS",
        default_value_t = 10
    )]
    pub linger_ms: u64,
}

impl Default for ConsumeConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

impl ConsumeConfig {
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

/// The defaults a settings struct's clap attributes declare: an empty command line, with no
/// environment variable read. So each default is written once, in its attribute, and `Default`
/// (what tests build on) cannot drift from what `larder` runs with.
pub fn declared_defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let matches = T::augment_args(clap::Command::new("defaults"))
        .mut_args(|arg| arg.env(None))
        .try_get_matches_from(["defaults"])
        .expect("every setting has a default");
    T::from_arg_matches(&matches).expect("the declared defaults are valid")
}

impl OutboxConfig {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }
}

/// Connects to NATS, retrying with capped exponential backoff until the server answers or
/// `give_up_after` passes (SPEC §5 rule 8: services start in any order). Once connected, the
/// client reconnects by itself.
pub async fn connect(
    config: &NatsConfig,
    client_name: &str,
    give_up_after: Duration,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let deadline = tokio::time::Instant::now() + give_up_after;
    let mut delay = Duration::from_millis(100);
    loop {
        let options = async_nats::ConnectOptions::new()
            .name(client_name)
            .connection_timeout(Duration::from_secs(2))
            // Unbounded reconnects after the first connect: a broker restart must not kill a service.
            .max_reconnects(None);
        let servers: Vec<&str> = config.url.split(',').map(str::trim).collect();
        match options.connect(servers).await {
            Ok(client) => return Ok(client),
            Err(error) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(url = %config.url, %error, retry_in = ?delay, "NATS not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Connects to NATS (waiting for it, see [`connect`]) and makes sure every stream and the
/// service's own durable `consumers` exist with the configured shape. What every service does at
/// start.
pub async fn connect_jetstream(
    config: &NatsConfig,
    client_name: &str,
    consumers: &[crate::topology::ConsumerSpec],
) -> Result<async_nats::jetstream::Context, crate::NatsError> {
    let client = connect(config, client_name, Duration::from_secs(120))
        .await
        .map_err(crate::NatsError::Connect)?;
    let js = async_nats::jetstream::new(client);
    crate::topology::ensure(&js, config, consumers).await?;
    Ok(js)
}
