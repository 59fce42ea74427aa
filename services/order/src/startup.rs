//! Builds the order service and runs it until shutdown.

use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use larder_bus::lifecycle::Lifecycle;
use larder_bus::outbox::Outbox;
use larder_bus::relay::{self, OutboxRelay};
use larder_bus::topology::{
    ORDER_CONSUMERS, ORDER_DEAD_ORDERS_CREATED, ORDER_DELIVERY, ORDER_ORDERS_CONFIRMED,
    ORDER_ORDERS_REJECTED,
};
use larder_contract::Envelope;
use larder_contract::events::{DeadOrderCreated, DeliveryEvent, OrderConfirmed, OrderRejected};
use migration::database::DatabaseConfig;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::auth::{self, Role, TokenKeys};
use crate::config::{
    DEV_JWT_SECRET, MIN_SIGNUP_TOKEN_BYTES, MerchantSignup, OrderSettings, Profile,
};
use crate::handlers::order_events::OrderEvents;
use crate::order_writer::OrderWriter;
use crate::push::{Listeners, StatusPublisher};
use crate::{Config, store};

/// How long an API request waits for a database connection before it answers 503.
const API_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections of the consumers' pool: one per consumer (confirmed, rejected, delivery, dead
/// letters), so none waits for another's batch.
const CONSUMER_POOL_SIZE: u32 = 4;
/// Events settled per transaction by the order-events consumers.
const EVENT_BATCH: usize = 128;

pub struct Application {
    /// The API's pool.
    pub db: DatabaseConnection,
    /// The consumers' pool.
    consumer_db: DatabaseConnection,
    pub jetstream: async_nats::jetstream::Context,
    config: Config,
    listener: tokio::net::TcpListener,
    port: u16,
    relay: Addr<OutboxRelay>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Application {
    /// Connects (waiting for PostgreSQL and NATS), migrates, ensures streams and its consumers,
    /// makes sure the bootstrap merchant exists, binds the HTTP port and starts the actors.
    /// Call it inside the actix system.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        refuse_default_secret_outside_dev(&config.settings)?;
        refuse_unusable_signup(&config.settings)?;
        match crate::server::raise_open_file_limit() {
            Ok(limit) if (limit as usize) < config.settings.http_max_connections + 64 => {
                tracing::warn!(
                    limit,
                    "the open-file limit is below HTTP_MAX_CONNECTIONS + 64"
                )
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not read the open-file limit"),
        }
        // Two pools, so the API and the consumers cannot starve each other of connections; the
        // API's waits briefly for one, so that with PostgreSQL away a request gets a 503 soon.
        let db = migration::database::connect_and_migrate(&DatabaseConfig {
            acquire_timeout: API_ACQUIRE_TIMEOUT,
            ..config.database.clone()
        })
        .await
        .context("Failed to prepare the database")?;
        let consumer_db =
            migration::database::connect(&config.database.with_max_connections(CONSUMER_POOL_SIZE))
                .await
                .context("Failed to connect the consumers' pool")?;
        let jetstream =
            larder_bus::connect_jetstream(&config.nats, "larder-order", &ORDER_CONSUMERS)
                .await
                .context("Failed to prepare JetStream")?;
        bootstrap_merchant(&db, &config.settings)
            .await
            .context("Failed to create the bootstrap merchant")?;
        let listener = tokio::net::TcpListener::bind(config.settings.http_addr)
            .await
            .with_context(|| format!("Failed to bind {}", config.settings.http_addr))?;
        let port = listener.local_addr()?.port();
        let relay = relay::start(
            &config.database,
            migration::Service::Order,
            jetstream.clone(),
            config.outbox.clone(),
            config.nats.max_age(),
        )
        .await
        .context("Failed to start the outbox relay")?;
        Ok(Self {
            db,
            consumer_db,
            jetstream,
            config,
            listener,
            port,
            relay,
            metrics: None,
        })
    }

    /// The bound HTTP port (tests bind port 0).
    /// Serves `GET /metrics` from this recorder's handle (the process installs one recorder).
    pub fn with_metrics(mut self, handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves HTTP and consumes order events until `shutdown` is cancelled; then stops pulling,
    /// lets in-flight requests and batches finish, and flushes the outbox (SPEC §5 rule 8).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let namespace = self.config.nats.namespace.clone();
        let pushes = StatusPublisher::new(self.jetstream.client(), &namespace);
        // Subscribed before the first request, so no client of this instance misses a push.
        let listeners = Listeners::start(self.jetstream.client(), &namespace, shutdown.clone())
            .await
            .context("Failed to subscribe to order status pushes")?;
        let events = OrderEvents::new(
            self.consumer_db.clone(),
            Outbox::new(namespace.clone()),
            pushes.clone(),
        );
        let mut lifecycle = Lifecycle::new(
            self.jetstream.clone(),
            namespace.clone(),
            &self.config.consume,
            &shutdown,
        );
        if self.config.settings.api_only {
            tracing::info!("API only: this instance consumes no order events");
        } else {
            lifecycle.consume::<Envelope<OrderConfirmed>, _>(
                ORDER_ORDERS_CONFIRMED,
                events.clone(),
                EVENT_BATCH,
            );
            lifecycle.consume::<Envelope<OrderRejected>, _>(
                ORDER_ORDERS_REJECTED,
                events.clone(),
                EVENT_BATCH,
            );
            lifecycle.consume::<DeliveryEvent, _>(ORDER_DELIVERY, events.clone(), EVENT_BATCH);
            lifecycle.consume::<DeadOrderCreated, _>(
                ORDER_DEAD_ORDERS_CREATED,
                events,
                EVENT_BATCH,
            );
        }

        let state = AppState {
            db: self.db.clone(),
            nats: self.jetstream.client(),
            outbox: Outbox::new(namespace),
            keys: TokenKeys::new(
                &self.config.settings.jwt_secret,
                self.config.settings.jwt_ttl_secs,
            ),
            service_request_timeout: self.config.settings.service_request_timeout(),
            catalogue: Default::default(),
            order_writer: OrderWriter::new(self.db.clone(), pushes.clone()).start(),
            metrics: self.metrics,
            listeners,
            pushes,
            live: api::live::LiveLimits::new(&self.config.settings, shutdown.clone()),
            signup: api::auth::SignUpPolicy::new(
                self.config.settings.merchant_signup(),
                signup_token(&self.config.settings),
            ),
        };
        // The server stops with the consumers (a consumer that fails stops it too).
        let served = crate::server::serve(
            self.listener,
            api::app(state, &self.config.settings),
            self.config.settings.http_limits(),
            lifecycle.stopping(),
        )
        .await;
        // The server also ends on its own error: stop the rest with it.
        shutdown.cancel();
        let consumed = lifecycle.until_stopped().await;
        relay::flush_and_stop(&self.relay).await?;
        consumed?;
        served.context("The HTTP server failed")
    }
}

/// Shortest JWT secret production accepts: HS256 wants at least 256 bits of key.
pub const MIN_PROD_JWT_SECRET_BYTES: usize = 32;

/// Outside the dev profile a known or guessable secret would let anyone mint tokens.
pub fn refuse_default_secret_outside_dev(settings: &OrderSettings) -> anyhow::Result<()> {
    const HOW: &str = "set one of your own, e.g. JWT_SECRET=$(openssl rand -base64 48), \
                       or run with LARDER_PROFILE=dev on your own machine";
    if settings.profile == Profile::Dev {
        return Ok(());
    }
    if settings.jwt_secret == DEV_JWT_SECRET {
        anyhow::bail!("JWT_SECRET is the development default: {HOW}");
    }
    if settings.jwt_secret.len() < MIN_PROD_JWT_SECRET_BYTES {
        anyhow::bail!("JWT_SECRET is shorter than {MIN_PROD_JWT_SECRET_BYTES} bytes: {HOW}");
    }
    Ok(())
}

/// The operator token, when one is set (an empty variable is none).
fn signup_token(settings: &OrderSettings) -> Option<String> {
    settings
        .merchant_signup_token
        .clone()
        .filter(|token| !token.is_empty())
}

/// `MERCHANT_SIGNUP=operator` needs a token nobody can guess, or nobody could sign up (or,
/// with a weak one, anybody could).
pub fn refuse_unusable_signup(settings: &OrderSettings) -> anyhow::Result<()> {
    let policy = settings.merchant_signup();
    if policy == MerchantSignup::Operator {
        match signup_token(settings) {
            None => anyhow::bail!(
                "MERCHANT_SIGNUP=operator needs MERCHANT_SIGNUP_TOKEN: set one, e.g. \
                 MERCHANT_SIGNUP_TOKEN=$(openssl rand -base64 48)"
            ),
            Some(token) if token.len() < MIN_SIGNUP_TOKEN_BYTES => anyhow::bail!(
                "MERCHANT_SIGNUP_TOKEN is shorter than {MIN_SIGNUP_TOKEN_BYTES} bytes: e.g. \
                 MERCHANT_SIGNUP_TOKEN=$(openssl rand -base64 48)"
            ),
            Some(_) => {}
        }
    }
    if policy == MerchantSignup::Open && settings.profile == Profile::Prod {
        tracing::warn!("MERCHANT_SIGNUP=open: anyone can create a merchant on this service");
    }
    tracing::info!(policy = policy.as_str(), "merchant sign-up");
    Ok(())
}

/// Makes sure the configured merchant and its merchant user exist. Idempotent; an existing user
/// keeps its password.
async fn bootstrap_merchant(
    db: &DatabaseConnection,
    settings: &OrderSettings,
) -> anyhow::Result<()> {
    let merchant = store::upsert_merchant(
        db,
        &settings.merchant_name,
        &settings.merchant_email,
        &settings.merchant_currency,
    )
    .await
    .context("Failed to upsert the merchant")?;
    // Someone may have registered this address as a customer before the merchant's first start:
    // promoting or ignoring that account would hand them the merchant, or lock the merchant out.
    let refuse_a_stranger = |user: entities::users::Model| {
        if user.role != Role::Merchant.as_str() || user.merchant_id != Some(merchant.id) {
            anyhow::bail!(
                "MERCHANT_EMAIL {} belongs to an existing {} account that is not this \
                 merchant's: choose another MERCHANT_EMAIL, or remove that account",
                settings.merchant_email,
                user.role
            );
        }
        Ok(())
    };
    if let Some(user) = store::find_user_by_email(db, &settings.merchant_email).await? {
        return refuse_a_stranger(user);
    }
    let password = settings.merchant_password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password)).await??;
    match store::insert_user(
        db,
        &settings.merchant_email,
        hash,
        Role::Merchant,
        Some(merchant.id),
    )
    .await
    {
        Ok(_) => {}
        // Another instance created it at the same moment, or a customer registered it.
        Err(store::InsertUserError::DuplicateEmail) => {
            let user = store::find_user_by_email(db, &settings.merchant_email)
                .await?
                .context("The bootstrap merchant's user vanished")?;
            refuse_a_stranger(user)?;
        }
        Err(store::InsertUserError::Database(e)) => return Err(e.into()),
    }
    tracing::info!(merchant = %settings.merchant_name, email = %settings.merchant_email, "bootstrap merchant ready");
    Ok(())
}
