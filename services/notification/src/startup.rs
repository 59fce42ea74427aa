//! Builds the notification service (database, JetStream, mailer, notifier, `stock.low` consumer,
//! outbox relay) and runs it until shutdown.

use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use larder_bus::consume::HandleBatch;
use larder_bus::lifecycle::{self, Connections, Gone, Lifecycle};
use larder_bus::push::Pusher;
use larder_bus::relay::{self, OutboxRelay};
use larder_bus::service::CommandService;
use larder_bus::topology::ConsumerSpec;
use migration::Service;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::actors::notifier::{Notifier, NotifierActor, StockLowEvent};
use crate::mailer::Mailer;

/// How long shutdown waits for the notifier to stop after its last batch.
const NOTIFIER_STOP_DEADLINE: Duration = Duration::from_secs(30);

pub struct Application {
    pub db: DatabaseConnection,
    pub jetstream: async_nats::jetstream::Context,
    /// The `stock.low` consumer this instance pulls (the service's retry schedule).
    pub consumer: ConsumerSpec,
    namespace: larder_bus::Namespace,
    consume: larder_bus::ConsumeConfig,
    batch_size: usize,
    relay: Addr<OutboxRelay>,
    notifier: Addr<NotifierActor>,
    notifier_gone: Gone,
    /// `list-alerts`, for the merchant's console.
    commands: CommandService,
    /// Stops the runner and releases a delivery held by the circuit breaker.
    stop: CancellationToken,
}

impl Application {
    /// Connects (waiting for PostgreSQL and NATS), migrates, ensures streams and consumers, and
    /// starts the actors and the consumer. Call it inside the actix system.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let settings = &config.settings;
        // Its own consumer, with the retry schedule the settings ask for.
        let consumer = settings.consumer_spec();
        let Connections {
            db,
            jetstream,
            relay,
        } = Connections::open(
            Service::Notification,
            &config,
            std::slice::from_ref(&consumer),
        )
        .await?;
        let mailer = Mailer::new(settings).context("Failed to set up the SMTP transport")?;

        let stop = CancellationToken::new();
        let (gone_guard, notifier_gone) = lifecycle::gone_signal();
        let notifier = NotifierActor::new(
            Notifier::new(
                db.clone(),
                mailer,
                settings,
                consumer.clone(),
                stop.clone(),
                Pusher::new(jetstream.client(), &config.nats.namespace),
            ),
            gone_guard,
        )
        .start();
        let commands =
            crate::commands::serve(&jetstream.client(), &config.nats.namespace, db.clone())
                .await
                .context("Failed to serve the notification commands on NATS")?;
        Ok(Self {
            db,
            jetstream,
            consumer,
            namespace: config.nats.namespace.clone(),
            consume: config.consume.clone(),
            // Small batches: sending is slow, and the ack timers of pulled messages are running.
            batch_size: settings.batch_size,
            relay,
            notifier,
            notifier_gone,
            commands,
            stop,
        })
    }

    /// Runs until `shutdown` is cancelled (or the consumer fails), then shuts down gracefully
    /// (SPEC §5 rule 8, [`larder_bus::lifecycle`]): stop pulling and finish the batch in hand (a
    /// delivery held for the SMTP server is let go), stop serving commands, stop the notifier
    /// and wait until it is gone (it owns lettre's pooled transport, which panics if dropped
    /// outside the runtime), flush the outbox.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut lifecycle = Lifecycle::new(
            self.jetstream.clone(),
            self.namespace,
            &self.consume,
            &shutdown,
        );
        lifecycle.consume(
            self.consumer,
            self.notifier
                .clone()
                .recipient::<HandleBatch<StockLowEvent>>(),
            self.batch_size,
        );
        lifecycle.stop_with(self.stop);
        let consumed = lifecycle.until_stopped().await;
        self.commands.stop().await;
        lifecycle::stop_actor(&self.notifier, self.notifier_gone, NOTIFIER_STOP_DEADLINE).await;
        relay::flush_and_stop(&self.relay).await?;
        Ok(consumed?)
    }
}
