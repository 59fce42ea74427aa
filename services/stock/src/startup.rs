//! Builds the stock service (database, JetStream, outbox relay, handlers, merchant commands) and
//! runs its consumers until shutdown.

use actix::prelude::*;
use anyhow::Context as _;
use larder_bus::lifecycle::{Connections, Lifecycle};
use larder_bus::outbox::Outbox;
use larder_bus::push::Pusher;
use larder_bus::relay::{self, OutboxRelay};
use larder_bus::service::CommandService;
use larder_bus::topology;
use larder_bus::{ConsumeConfig, Namespace};
use migration::Service;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::handlers::{ReleaseOrders, ReserveOrders};

pub struct Application {
    pub db: DatabaseConnection,
    pub jetstream: async_nats::jetstream::Context,
    namespace: Namespace,
    consume: ConsumeConfig,
    batch_size: usize,
    relay: Addr<OutboxRelay>,
    reservations: ReserveOrders,
    releases: ReleaseOrders,
    commands: CommandService,
}

impl Application {
    /// Connects (waiting for PostgreSQL and NATS), migrates, ensures streams and its consumers,
    /// starts the actors and serves the merchant commands. Call it inside the actix system.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let Connections {
            db,
            jetstream,
            relay,
        } = Connections::open(Service::Stock, &config, &topology::STOCK_CONSUMERS).await?;
        let namespace = config.nats.namespace.clone();
        let pushes = Pusher::new(jetstream.client(), &namespace);
        let reservations =
            ReserveOrders::new(db.clone(), Outbox::new(namespace.clone()), pushes.clone());
        let releases = ReleaseOrders::new(db.clone(), pushes.clone());
        let commands = crate::commands::serve(&jetstream.client(), &namespace, db.clone(), pushes)
            .await
            .context("Failed to serve the merchant commands")?;
        Ok(Self {
            db,
            jetstream,
            namespace,
            consume: config.consume.clone(),
            batch_size: config.settings.batch_size,
            relay,
            reservations,
            releases,
            commands,
        })
    }

    /// Consumes `orders.created` and `orders.cancelled` until `shutdown` is cancelled, then shuts
    /// down gracefully (SPEC §5 rule 8, [`larder_bus::lifecycle`]): stop pulling and finish the
    /// batches in hand, stop serving commands, flush the outbox. A consumer that stops on its
    /// own (it cannot pull) stops the service with an error.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut lifecycle = Lifecycle::new(
            self.jetstream.clone(),
            self.namespace,
            &self.consume,
            &shutdown,
        );
        lifecycle.consume(
            topology::STOCK_ORDERS_CREATED,
            self.reservations,
            self.batch_size,
        );
        lifecycle.consume(
            topology::STOCK_ORDERS_CANCELLED,
            self.releases,
            self.batch_size,
        );
        let consumed = lifecycle.until_stopped().await;
        self.commands.stop().await;
        relay::flush_and_stop(&self.relay).await?;
        Ok(consumed?)
    }
}
