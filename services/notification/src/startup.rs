//! Builds the notification service (database, JetStream, mailer, notifier, `stock.low` consumer,
//! outbox relay) and runs it until shutdown.

use std::time::Duration;

use actix::prelude::*;
use anyhow::{Context as _, anyhow};
use nats::NatsError;
use nats::consume::ConsumerRunner;
use nats::push::Pusher;
use nats::relay::{FlushAndStop, OutboxRelay};
use nats::service::CommandService;
use nats::topology::ConsumerSpec;
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::actors::notifier::{Notifier, NotifierActor, StockLowEvent, Stop};
use crate::mailer::Mailer;

/// How long shutdown waits for the notifier to stop after its last batch.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Application {
    pub db: DatabaseConnection,
    pub jetstream: async_nats::jetstream::Context,
    /// The `stock.low` consumer this instance pulls (the service's retry schedule).
    pub consumer: ConsumerSpec,
    relay: Addr<OutboxRelay>,
    notifier: Addr<NotifierActor>,
    runner: JoinHandle<Result<(), NatsError>>,
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
        let db = migration::database::connect_and_migrate(&config.database)
            .await
            .context("Failed to prepare the database")?;
        // Its own consumer, with the retry schedule the settings ask for.
        let consumer = settings.consumer_spec();
        let jetstream = nats::connect_jetstream(&config.nats, "larder-notification", &[consumer])
            .await
            .context("Failed to prepare JetStream")?;
        let mailer = Mailer::new(settings).context("Failed to set up the SMTP transport")?;

        let stop = CancellationToken::new();
        let notifier = NotifierActor::new(Notifier::new(
            db.clone(),
            mailer,
            settings,
            consumer,
            stop.clone(),
            Pusher::new(jetstream.client(), &config.nats.namespace),
        ))
        .start();
        let commands =
            crate::commands::serve(&jetstream.client(), &config.nats.namespace, db.clone())
                .await
                .context("Failed to serve the notification commands on NATS")?;
        // Small batches: sending is slow, and the ack timers of pulled messages are running.
        let runner = ConsumerRunner::<StockLowEvent>::new(
            jetstream.clone(),
            config.nats.namespace.clone(),
            consumer,
            notifier.clone().recipient(),
            settings.batch_size,
        );
        let runner = tokio::spawn(runner.run(stop.clone()));
        let relay = OutboxRelay::new(
            db.clone(),
            jetstream.clone(),
            config.outbox.clone(),
            migration::Service::Notification.outbox_channel(),
        )
        .start();
        Ok(Self {
            db,
            jetstream,
            consumer,
            relay,
            notifier,
            runner,
            commands,
            stop,
        })
    }

    /// Runs until `shutdown` is cancelled (or the consumer fails), then shuts down gracefully
    /// (SPEC §5 rule 8): stop pulling and finish the batch in hand, stop the notifier, flush the
    /// outbox.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut runner = self.runner;
        let consumed = tokio::select! {
            () = shutdown.cancelled() => {
                self.stop.cancel();
                (&mut runner).await
            }
            ended = &mut runner => ended,
        };
        self.stop.cancel();
        self.commands.stop().await;
        let consumed = match consumed {
            Ok(Ok(())) if shutdown.is_cancelled() => Ok(()),
            Ok(Ok(())) => Err(anyhow!("The stock.low consumer stopped on its own")),
            Ok(Err(error)) => Err(anyhow!(error).context("The stock.low consumer failed")),
            Err(error) => Err(anyhow!(error).context("The stock.low consumer panicked")),
        };

        // The notifier owns lettre's pooled transport, which panics if dropped outside the
        // runtime: stop it here and wait until it is gone before returning.
        let _ = self.notifier.send(Stop).await;
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        while self.notifier.connected() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if self.notifier.connected() {
            tracing::warn!("the notifier did not stop in time");
        }

        self.relay
            .send(FlushAndStop)
            .await
            .context("The outbox relay stopped early")?
            .context("Failed to flush the outbox")?;
        consumed
    }
}
