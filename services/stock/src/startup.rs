//! Builds the stock service (database, JetStream, outbox relay) and runs it until shutdown.

use actix::prelude::*;
use anyhow::Context as _;
use nats::relay::{FlushAndStop, OutboxRelay};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::Config;

pub struct Application {
    pub db: DatabaseConnection,
    pub jetstream: async_nats::jetstream::Context,
    relay: Addr<OutboxRelay>,
}

impl Application {
    /// Connects (waiting for PostgreSQL and NATS), migrates, ensures streams and consumers, and
    /// starts the actors. Call it inside the actix system.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = migration::database::connect_and_migrate(&config.database)
            .await
            .context("Failed to prepare the database")?;
        let jetstream = nats::connect_jetstream(&config.nats, "larder-stock")
            .await
            .context("Failed to prepare JetStream")?;
        let relay = OutboxRelay::new(db.clone(), jetstream.clone(), config.outbox.clone()).start();
        Ok(Self {
            db,
            jetstream,
            relay,
        })
    }

    /// Runs until `shutdown` is cancelled, then flushes the outbox (SPEC §5 rule 8).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        shutdown.cancelled().await;
        self.relay
            .send(FlushAndStop)
            .await
            .context("The outbox relay stopped early")?
            .context("Failed to flush the outbox")?;
        Ok(())
    }
}
