//! Builds the stock service (database, JetStream, outbox relay, actors, merchant commands) and
//! runs its consumers until shutdown.

use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use nats::consume::ConsumerRunner;
use nats::outbox::Outbox;
use nats::push::Pusher;
use nats::relay::{FlushAndStop, OutboxRelay};
use nats::service::CommandService;
use nats::topology::{self, ConsumerSpec};
use nats::{Decode, Namespace, NatsError};
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::actors::{ReleaseActor, ReservationActor, Stop};

/// How long shutdown waits for an actor to report itself stopped.
const ACTOR_STOP_DEADLINE: Duration = Duration::from_secs(10);

pub struct Application {
    pub db: DatabaseConnection,
    pub jetstream: async_nats::jetstream::Context,
    namespace: Namespace,
    batch_size: usize,
    relay: Addr<OutboxRelay>,
    reservations: Addr<ReservationActor>,
    releases: Addr<ReleaseActor>,
    commands: CommandService,
}

impl Application {
    /// Connects (waiting for PostgreSQL and NATS), migrates, ensures streams and its consumers,
    /// starts the actors and serves the merchant commands. Call it inside the actix system.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = migration::database::connect_and_migrate(&config.database)
            .await
            .context("Failed to prepare the database")?;
        let jetstream =
            nats::connect_jetstream(&config.nats, "larder-stock", &topology::STOCK_CONSUMERS)
                .await
                .context("Failed to prepare JetStream")?;
        let namespace = config.nats.namespace.clone();
        let relay = OutboxRelay::new(
            db.clone(),
            jetstream.clone(),
            config.outbox.clone(),
            migration::Service::Stock.outbox_channel(),
        )
        .start();
        let pushes = Pusher::new(jetstream.client(), &namespace);
        let reservations =
            ReservationActor::new(db.clone(), Outbox::new(namespace.clone()), pushes.clone())
                .start();
        let releases = ReleaseActor::new(db.clone(), pushes.clone()).start();
        let commands = crate::commands::serve(&jetstream.client(), &namespace, db.clone(), pushes)
            .await
            .context("Failed to serve the merchant commands")?;
        Ok(Self {
            db,
            jetstream,
            namespace,
            batch_size: config.settings.batch_size,
            relay,
            reservations,
            releases,
            commands,
        })
    }

    /// Consumes `orders.created` and `orders.cancelled` until `shutdown` is cancelled, then shuts
    /// down gracefully (SPEC §5 rule 8): stop pulling and finish the batches in hand, stop the
    /// actors, flush the outbox. A consumer that stops on its own (it cannot pull) stops the
    /// service with an error.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let consuming = shutdown.child_token();
        let runners = [
            self.spawn_runner(
                topology::STOCK_ORDERS_CREATED,
                self.reservations.clone().recipient(),
                &consuming,
            ),
            self.spawn_runner(
                topology::STOCK_ORDERS_CANCELLED,
                self.releases.clone().recipient(),
                &consuming,
            ),
        ];
        // A runner cancels `consuming` when it ends, whether asked to or not.
        consuming.cancelled().await;
        let mut first_error = None;
        for (durable, runner) in runners {
            let failure = match runner.await {
                Ok(Ok(())) if shutdown.is_cancelled() => None,
                Ok(Ok(())) => Some(anyhow::anyhow!("the {durable} consumer stopped on its own")),
                Ok(Err(error)) => Some(
                    anyhow::Error::new(error).context(format!("the {durable} consumer failed")),
                ),
                Err(error) => Some(
                    anyhow::Error::new(error).context(format!("the {durable} consumer panicked")),
                ),
            };
            if let Some(failure) = failure {
                tracing::error!(error = ?failure, "consumer stopped");
                first_error.get_or_insert(failure);
            }
        }

        // The runners have answered for every message they pulled: the actors are idle.
        self.commands.stop().await;
        stop(&self.reservations).await;
        stop(&self.releases).await;
        self.relay
            .send(FlushAndStop)
            .await
            .context("The outbox relay stopped early")?
            .context("Failed to flush the outbox")?;
        first_error.map_or(Ok(()), Err)
    }

    fn spawn_runner<E: Decode>(
        &self,
        spec: ConsumerSpec,
        handler: Recipient<nats::consume::HandleBatch<E>>,
        consuming: &CancellationToken,
    ) -> (&'static str, JoinHandle<Result<(), NatsError>>) {
        let runner = ConsumerRunner::new(
            self.jetstream.clone(),
            self.namespace.clone(),
            spec,
            handler,
            self.batch_size,
        );
        let consuming = consuming.clone();
        let handle = actix::spawn(async move {
            let result = runner.run(consuming.clone()).await;
            consuming.cancel();
            result
        });
        (spec.durable, handle)
    }
}

/// Stops an actor and waits (bounded) until it has.
async fn stop<A>(addr: &Addr<A>)
where
    A: Actor<Context = Context<A>> + Handler<Stop>,
{
    if addr.send(Stop).await.is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + ACTOR_STOP_DEADLINE;
    while addr.connected() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
