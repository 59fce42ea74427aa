//! One service lifecycle (SPEC §5 rule 8), the same in every service and in `larder all`.
//!
//! A service opens its [`Connections`] (database, JetStream, outbox relay), builds its parts on
//! them, hands its consumers to a [`Lifecycle`] ([`Lifecycle::consume`]),
//! and then, in its `run_until_stopped`, reads top to bottom:
//!
//! 1. [`Lifecycle::until_stopped`]: the runners pull until the process's shutdown (or until one
//!    of them ends on its own, which stops the others: a service half alive is worse than one
//!    that stopped); each finishes the batch in hand, so when this returns every message pulled
//!    has been answered and the handlers are idle;
//! 2. the service stops what else it runs: its command endpoints, its actors ([`stop_actor`]
//!    waits for an actor to be gone, without polling);
//! 3. [`crate::relay::flush_and_stop`]: the outbox is published before the process exits.

use std::time::Duration;

use actix::prelude::*;
use async_nats::jetstream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use migration::Service;
use sea_orm::{DatabaseConnection, DbErr};

use crate::config::{ConsumeConfig, ServiceConfig};
use crate::consume::{ConsumerRunner, HandleEvents};
use crate::relay::{self, OutboxRelay};
use crate::topology::ConsumerSpec;
use crate::{Namespace, NatsError};
use larder_contract::envelope::Decode;

/// What every service opens before it builds its own parts.
pub struct Connections {
    /// The service's pool, on its schema, migrated.
    pub db: DatabaseConnection,
    /// With the streams and the service's consumers ensured.
    pub jetstream: jetstream::Context,
    /// Publishing the service's outbox, on a pool of its own.
    pub relay: Addr<OutboxRelay>,
}

/// Why a service could not open its [`Connections`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("Failed to prepare the database")]
    Database(#[source] DbErr),
    #[error("Failed to prepare JetStream")]
    JetStream(#[source] NatsError),
    #[error("Failed to start the outbox relay")]
    Relay(#[source] DbErr),
}

impl Connections {
    /// Connects (waiting for PostgreSQL and NATS, which may start after the service), migrates
    /// `service`'s schema, ensures the streams and `consumers`, and starts the relay. Call it
    /// inside the actix system.
    pub async fn open<S>(
        service: Service,
        config: &ServiceConfig<S>,
        consumers: &[ConsumerSpec],
    ) -> Result<Self, StartError> {
        let db = migration::database::connect_and_migrate(&config.database)
            .await
            .map_err(StartError::Database)?;
        let client_name = format!("larder-{}", service.name());
        let jetstream = crate::connect_jetstream(&config.nats, &client_name, consumers)
            .await
            .map_err(StartError::JetStream)?;
        let relay = relay::start(
            &config.database,
            service,
            jetstream.clone(),
            config.outbox.clone(),
            config.nats.max_age(),
        )
        .await
        .map_err(StartError::Relay)?;
        Ok(Self {
            db,
            jetstream,
            relay,
        })
    }
}

/// Why the runners stopped other than by the shutdown they were asked for.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("the {durable} consumer failed")]
    ConsumerFailed {
        durable: &'static str,
        #[source]
        source: NatsError,
    },
    #[error("the {durable} consumer stopped on its own")]
    ConsumerStopped { durable: &'static str },
    #[error("the {durable} consumer panicked")]
    ConsumerPanicked { durable: &'static str },
}

/// A service's consumer runners, from start to their orderly end.
pub struct Lifecycle {
    js: jetstream::Context,
    namespace: Namespace,
    consume: ConsumeConfig,
    shutdown: CancellationToken,
    /// Stops the runners: cancelled by the shutdown, or by a runner that ends.
    consuming: CancellationToken,
    runners: Vec<(&'static str, JoinHandle<Result<(), NatsError>>)>,
    /// Cancelled as the runners are asked to stop, before they are waited for.
    also_stop: Vec<CancellationToken>,
}

impl Lifecycle {
    /// Runners on `js` in `namespace`, batching as `consume` says, until `shutdown` is cancelled.
    pub fn new(
        js: jetstream::Context,
        namespace: Namespace,
        consume: &ConsumeConfig,
        shutdown: &CancellationToken,
    ) -> Self {
        Self {
            js,
            namespace,
            consume: consume.clone(),
            shutdown: shutdown.clone(),
            consuming: shutdown.child_token(),
            runners: Vec::new(),
            also_stop: Vec::new(),
        }
    }

    /// Pulls `spec` in batches of up to `batch_size` (each lingering as configured) and hands
    /// them to `handler`, from now on.
    pub fn consume<E: Decode, H: HandleEvents<E>>(
        &mut self,
        spec: ConsumerSpec,
        handler: H,
        batch_size: usize,
    ) {
        let durable = spec.durable;
        let runner = ConsumerRunner::new(
            self.js.clone(),
            self.namespace.clone(),
            spec,
            handler,
            batch_size,
            self.consume.linger(),
        );
        let consuming = self.consuming.clone();
        let handle = tokio::spawn(async move {
            let result = runner.run(consuming.clone()).await;
            consuming.cancel();
            result
        });
        self.runners.push((durable, handle));
    }

    /// Cancelled when the service is to stop: by the shutdown, or by a runner that ended on its
    /// own. What else the service runs (its HTTP server) stops with it.
    pub fn stopping(&self) -> CancellationToken {
        self.consuming.clone()
    }

    /// Cancels `token` as soon as the runners are asked to stop, before they are waited for: for
    /// a handler that holds deliveries (the notifier waiting for its SMTP server) and must let go
    /// of them for its runner to finish.
    pub fn stop_with(&mut self, token: CancellationToken) {
        self.also_stop.push(token);
    }

    /// Waits until the runners stop (see the module docs) and says why, if not by shutdown; the
    /// first failure when several failed (each is logged).
    pub async fn until_stopped(self) -> Result<(), LifecycleError> {
        self.consuming.cancelled().await;
        for token in &self.also_stop {
            token.cancel();
        }
        let mut first_error = None;
        for (durable, runner) in self.runners {
            let failure = match runner.await {
                Ok(Ok(())) if self.shutdown.is_cancelled() => None,
                Ok(Ok(())) => Some(LifecycleError::ConsumerStopped { durable }),
                Ok(Err(source)) => Some(LifecycleError::ConsumerFailed { durable, source }),
                Err(_) => Some(LifecycleError::ConsumerPanicked { durable }),
            };
            if let Some(failure) = failure {
                tracing::error!(error = %failure, "consumer stopped");
                first_error.get_or_insert(failure);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Asks an actor that owns state or timers to stop (it calls `ctx.stop()`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Held by an actor: dropped with it, which tells its [`Gone`] that it is gone.
pub struct GoneGuard(#[allow(dead_code)] oneshot::Sender<()>);

/// Resolves once the actor holding the matching [`GoneGuard`] has been dropped.
pub struct Gone(oneshot::Receiver<()>);

/// A guard for an actor to hold, and the signal of its end.
pub fn gone_signal() -> (GoneGuard, Gone) {
    let (guard, gone) = oneshot::channel();
    (GoneGuard(guard), Gone(gone))
}

/// Stops the actor at `addr` and waits until it has been dropped (its state and resources gone:
/// lettre's pooled transport must go while the runtime is alive), for at most `within`.
pub async fn stop_actor<A>(addr: &Addr<A>, gone: Gone, within: Duration)
where
    A: Actor<Context = Context<A>> + Handler<Stop>,
{
    if addr.send(Stop).await.is_err() {
        return; // already stopped
    }
    if tokio::time::timeout(within, gone.0).await.is_err() {
        tracing::warn!(actor = std::any::type_name::<A>(), "did not stop in time");
    }
}
