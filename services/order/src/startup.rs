//! Builds the order service and runs it until shutdown.

use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use nats::relay::{FlushAndStop, OutboxRelay};
use poem::{EndpointExt, Route, listener::TcpAcceptor};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::{Config, api};

pub struct Application {
    pub db: DatabaseConnection,
    pub jetstream: async_nats::jetstream::Context,
    listener: tokio::net::TcpListener,
    port: u16,
    relay: Addr<OutboxRelay>,
}

impl Application {
    /// Connects (waiting for PostgreSQL and NATS), migrates, ensures streams and consumers,
    /// binds the HTTP port and starts the actors. Call it inside the actix system.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = migration::database::connect_and_migrate(&config.database)
            .await
            .context("Failed to prepare the database")?;
        let jetstream = nats::connect_jetstream(&config.nats, "larder-order")
            .await
            .context("Failed to prepare JetStream")?;
        let listener = tokio::net::TcpListener::bind(config.settings.http_addr)
            .await
            .with_context(|| format!("Failed to bind {}", config.settings.http_addr))?;
        let port = listener.local_addr()?.port();
        let relay = OutboxRelay::new(db.clone(), jetstream.clone(), config.outbox.clone()).start();
        Ok(Self {
            db,
            jetstream,
            listener,
            port,
            relay,
        })
    }

    /// The bound HTTP port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves HTTP until `shutdown` is cancelled, lets in-flight requests finish, then flushes
    /// the outbox (SPEC §5 rule 8).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let api = api::service(api::health::HealthApi::new(
            self.db.clone(),
            self.jetstream.client(),
        ));
        let app = Route::new()
            .nest("/docs", api.swagger_ui())
            .at("/openapi.json", api.spec_endpoint())
            .nest("/", api)
            .with(poem::middleware::Tracing);
        let acceptor = TcpAcceptor::from_tokio(self.listener).context("Failed to accept HTTP")?;
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, shutdown.cancelled(), Some(Duration::from_secs(10)))
            .await
            .context("The HTTP server failed")?;
        self.relay
            .send(FlushAndStop)
            .await
            .context("The outbox relay stopped early")?
            .context("Failed to flush the outbox")?;
        Ok(())
    }
}
