//! Builds the delivery service (database, JetStream, outbox relay, the timer, the shipments
//! handler, the courier-update command) and runs its consumers until shutdown.

use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use larder_bus::lifecycle::{self, Connections, Gone, Lifecycle};
use larder_bus::outbox::Outbox;
use larder_bus::relay::{self, OutboxRelay};
use larder_bus::service::CommandService;
use larder_bus::topology;
use larder_bus::{ConsumeConfig, Namespace};
use larder_contract::Envelope;
use larder_contract::events::{OrderCancelled, OrderConfirmed};
use migration::Service;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::actors::DeliveryTimer;
use crate::handlers::Shipments;

/// Order events settled per transaction.
const EVENT_BATCH: usize = 64;
/// How long shutdown waits for the timer's round in progress.
const TIMER_STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The delivery service, built and ready to run.
pub struct Application {
    pub db: DatabaseConnection,
    pub jetstream: async_nats::jetstream::Context,
    namespace: Namespace,
    consume: ConsumeConfig,
    relay: Addr<OutboxRelay>,
    timer: Addr<DeliveryTimer>,
    timer_gone: Gone,
    shipments: Shipments,
    commands: CommandService,
}

impl Application {
    /// Connects (waiting for PostgreSQL and NATS), migrates, ensures streams and consumers, and
    /// starts the actors; the timer takes the steps that fell due while no instance ran. Call it
    /// inside the actix system.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let Connections {
            db,
            jetstream,
            relay,
        } = Connections::open(Service::Delivery, &config, &topology::DELIVERY_CONSUMERS).await?;
        let namespace = config.nats.namespace.clone();
        let (gone_guard, timer_gone) = lifecycle::gone_signal();
        let timer = DeliveryTimer::new(
            db.clone(),
            Outbox::new(namespace.clone()),
            config.settings.clone(),
            gone_guard,
        )
        .start();
        let shipments = Shipments::new(db.clone(), config.settings.clone(), timer.clone());
        let commands = crate::commands::serve(
            &jetstream.client(),
            &namespace,
            db.clone(),
            config.settings.clone(),
        )
        .await
        .context("Failed to serve the courier-update command")?;
        Ok(Self {
            db,
            jetstream,
            namespace,
            consume: config.consume.clone(),
            relay,
            timer,
            timer_gone,
            shipments,
            commands,
        })
    }

    /// Consumes `orders.confirmed` and `orders.cancelled` until `shutdown` is cancelled, then shuts
    /// down gracefully (SPEC §5 rule 8, [`larder_bus::lifecycle`]): stop pulling and finish the
    /// batches in hand, stop serving commands, stop the timer after its round in progress (a
    /// step due later waits in the database for the next instance), flush the outbox. A
    /// consumer that stops on its own (it cannot pull) stops the service with an error.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut lifecycle = Lifecycle::new(
            self.jetstream.clone(),
            self.namespace,
            &self.consume,
            &shutdown,
        );
        lifecycle.consume::<Envelope<OrderConfirmed>, _>(
            topology::DELIVERY_ORDERS_CONFIRMED,
            self.shipments.clone(),
            EVENT_BATCH,
        );
        lifecycle.consume::<Envelope<OrderCancelled>, _>(
            topology::DELIVERY_ORDERS_CANCELLED,
            self.shipments,
            EVENT_BATCH,
        );
        let consumed = lifecycle.until_stopped().await;
        self.commands.stop().await;
        lifecycle::stop_actor(&self.timer, self.timer_gone, TIMER_STOP_DEADLINE).await;
        relay::flush_and_stop(&self.relay).await?;
        Ok(consumed?)
    }
}
