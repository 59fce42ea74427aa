//! The notifier actor: the handler of the `stock.low` consumer. For each delivery it records the
//! notification, asks the circuit breaker, sends one email and records the outcome; it answers
//! the consumer runner one [`Outcome`] per delivery (SPEC §5 rules 1 and 5).
//!
//! ## How the circuit breaker stops the pulling
//!
//! The runner pulls a small batch, sends it here and awaits the answer before it pulls again. So
//! while the breaker is open, the notifier *holds* the delivery in hand instead of answering:
//! it sleeps until the breaker's cool-down is over, then sends one trial. Meanwhile the runner
//! pulls nothing, and the events still in the stream keep all their deliveries; the dead server
//! sees at most one attempt per cool-down.
//!
//! The runner keeps a held delivery alive with progress acks. The hold is still bounded, by the
//! retry schedule's step for this delivery (the delay a `Retry` would have asked for anyway),
//! minus the SMTP timeout and a margin for the trial send itself, so a long outage spends
//! deliveries at the schedule's pace. When the cool-down would outlast that bound, the notifier
//! holds until the bound and then answers `Retry` without an attempt (that delivery is spent either way: the server counts a delivery
//! when it hands it out, not when it is Nak'ed). A *last* delivery is never answered without an
//! attempt: one real try beats a dead letter that never reached the server.
//!
//! On shutdown a held delivery is released at once with `Retry` (the last one is still tried).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use nats::Envelope;
use nats::consume::{Delivery, HandleBatch, Outcome};
use nats::events::StockLow;
use nats::topology::ConsumerSpec;

use crate::config::NotificationSettings;
use crate::domain::{self, CircuitBreaker, NotificationStatus, Permit};
use crate::mailer::{MailError, Mailer};
use crate::store;

/// What the `stock.low` consumer decodes.
pub type StockLowEvent = Envelope<StockLow>;

/// Time kept free, after a hold, for the trial send (on top of the SMTP timeout) and the database.
const SEND_MARGIN: Duration = Duration::from_secs(1);

/// The implementing component: database, mailer and breaker. The actor is its shell.
pub struct Notifier {
    db: DatabaseConnection,
    mailer: Mailer,
    breaker: Mutex<CircuitBreaker>,
    /// The consumer's spec: its retry steps bound how long a delivery is held.
    spec: ConsumerSpec,
    smtp_timeout: Duration,
    shutdown: CancellationToken,
}

/// Whether a delivery may go to the SMTP server now.
enum Gate {
    Send,
    /// The breaker stayed open past what this delivery can wait: not attempted.
    NotAttempted(String),
    ShuttingDown,
}

impl Notifier {
    pub fn new(
        db: DatabaseConnection,
        mailer: Mailer,
        settings: &NotificationSettings,
        spec: ConsumerSpec,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            db,
            mailer,
            breaker: Mutex::new(CircuitBreaker::new(
                settings.breaker_failures,
                settings.breaker_cool_down(),
            )),
            spec,
            smtp_timeout: settings.smtp_timeout(),
            shutdown,
        }
    }

    fn breaker(&self) -> MutexGuard<'_, CircuitBreaker> {
        // Never held across an await; a panic elsewhere leaves a usable breaker.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One email at a time, in stream order.
    pub async fn handle_batch(&self, deliveries: Vec<Delivery<StockLowEvent>>) -> Vec<Outcome> {
        let received = Instant::now();
        let mut outcomes = Vec::with_capacity(deliveries.len());
        for delivery in &deliveries {
            outcomes.push(self.handle(delivery, received).await);
        }
        outcomes
    }

    #[tracing::instrument(skip_all, fields(
        event_id = %delivery.event.id,
        correlation_id = delivery.event.correlation_id.as_deref().unwrap_or(""),
        ingredient = %delivery.event.data.ingredient,
        delivered = delivery.delivered,
    ))]
    async fn handle(&self, delivery: &Delivery<StockLowEvent>, received: Instant) -> Outcome {
        let event = &delivery.event;
        let last_attempt = delivery.is_last_attempt();

        // SPEC §5 rule 1: the row first. A redelivery (or a replay) of an event whose email went
        // out is acked without sending; a `failed` one (a replayed dead letter) is tried again.
        match store::insert_pending(&self.db, event).await {
            Ok(NotificationStatus::Sent) => {
                tracing::info!("already sent; nothing to do");
                return Outcome::Done;
            }
            Ok(NotificationStatus::Pending | NotificationStatus::Failed) => {}
            Err(error) => return database_retry(&error),
        }

        match self.wait_for_breaker(received, delivery).await {
            Gate::Send => {}
            Gate::NotAttempted(reason) => {
                if let Err(error) =
                    store::record_failure(&self.db, event.id, &reason, last_attempt).await
                {
                    tracing::warn!(%error, "could not record the attempt");
                }
                return Outcome::Retry { reason };
            }
            Gate::ShuttingDown => {
                return Outcome::Retry {
                    reason: "shutting down before the SMTP circuit closed".into(),
                };
            }
        }

        self.send(event, last_attempt).await
    }

    /// Waits while the breaker is open, as long as this delivery may (see the module docs).
    async fn wait_for_breaker(
        &self,
        received: Instant,
        delivery: &Delivery<StockLowEvent>,
    ) -> Gate {
        let last_attempt = delivery.is_last_attempt();
        let ack_wait = self.spec.retry_delay(delivery.delivered);
        let hold_until = received + ack_wait.saturating_sub(self.smtp_timeout + SEND_MARGIN);
        loop {
            let permit = self.breaker().permit(Instant::now());
            let open_until = match permit {
                Permit::Send => return Gate::Send,
                Permit::WaitUntil(until) => until,
            };
            if last_attempt && open_until > hold_until {
                tracing::warn!("SMTP circuit open, but this is the last delivery: trying anyway");
                return Gate::Send;
            }
            let wake = tokio::time::Instant::from_std(open_until.min(hold_until));
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = self.shutdown.cancelled() => {
                    return if last_attempt { Gate::Send } else { Gate::ShuttingDown };
                }
            }
            if open_until > hold_until {
                let threshold = self.breaker().failure_threshold();
                return Gate::NotAttempted(format!(
                    "SMTP circuit open after {threshold} consecutive failures; not attempted"
                ));
            }
            // The cool-down is over: the next permit is the half-open trial.
        }
    }

    /// Sends under the row lock and records the outcome in the same transaction.
    async fn send(&self, event: &StockLowEvent, last_attempt: bool) -> Outcome {
        let txn = match self.db.begin().await {
            Ok(txn) => txn,
            Err(error) => return database_retry(&error),
        };
        match store::lock_for_sending(&txn, event.id).await {
            Ok(NotificationStatus::Sent) => {
                // Another instance sent it while this delivery waited for the lock.
                let _ = txn.rollback().await;
                return Outcome::Done;
            }
            Ok(NotificationStatus::Pending | NotificationStatus::Failed) => {}
            Err(error) => return database_retry(&error),
        }

        let email = domain::low_stock_email(&event.data);
        // SMTP has no idempotency key: if the process dies (or the database fails) after the
        // server accepted the email and before the commit below, the redelivery sends it again.
        // That window can duplicate at most this one email; the row lock above rules out two
        // instances sending it at the same time, and the Message-ID is the same for both copies.
        let sent = self
            .mailer
            .send(&event.data.merchant_email, &email, event.id)
            .await;
        match sent {
            Ok(()) => {
                self.breaker().record_success();
                if let Err(error) = mark_sent(txn, event.id).await {
                    self.mark_sent_again(event.id, &error).await;
                }
                tracing::info!(to = %event.data.merchant_email, "low-stock email sent");
                Outcome::Done
            }
            Err(error) => {
                match &error {
                    MailError::Transient(_) => self.breaker().record_failure(Instant::now()),
                    // The server is up and answering: a trial that got a 5xx closes the breaker.
                    MailError::Permanent(_) => self.breaker().record_success(),
                    MailError::Invalid(_) => {}
                }
                let retry = matches!(error, MailError::Transient(_));
                let give_up = last_attempt || !retry;
                let reason = error.to_string();
                tracing::warn!(%reason, give_up, "low-stock email not sent");
                if let Err(error) = record_failure(txn, event.id, &reason, give_up).await {
                    tracing::warn!(%error, "could not record the failed attempt");
                }
                if retry {
                    // On the last delivery the runner dead-letters it with this reason.
                    Outcome::Retry { reason }
                } else {
                    Outcome::Reject { reason }
                }
            }
        }
    }

    /// The email is out but its transaction failed: record it outside one, a few times. Never
    /// answer Retry here, which would send the email again (SPEC §5 rule 1: nothing twice).
    async fn mark_sent_again(&self, event_id: Uuid, first_error: &DbErr) {
        tracing::warn!(error = %first_error, "email sent, but recording it failed; retrying the record");
        let mut delay = Duration::from_millis(100);
        for _ in 0..5 {
            tokio::time::sleep(delay).await;
            match store::mark_sent(&self.db, event_id).await {
                Ok(()) => return,
                Err(error) => tracing::warn!(%error, "recording the sent email failed again"),
            }
            delay *= 2;
        }
        tracing::error!("email sent but not recorded: a redelivery would send it again");
    }
}

async fn mark_sent(txn: DatabaseTransaction, event_id: Uuid) -> Result<(), DbErr> {
    store::mark_sent(&txn, event_id).await?;
    txn.commit().await
}

async fn record_failure(
    txn: DatabaseTransaction,
    event_id: Uuid,
    reason: &str,
    give_up: bool,
) -> Result<(), DbErr> {
    store::record_failure(&txn, event_id, reason, give_up).await?;
    txn.commit().await
}

fn database_retry(error: &DbErr) -> Outcome {
    tracing::warn!(%error, "database error; will retry");
    Outcome::Retry {
        reason: format!("database error: {error}"),
    }
}

/// The shell around [`Notifier`]: handles one batch at a time, to the end, before any other
/// message (so [`Stop`] waits for the batch in hand).
pub struct NotifierActor {
    notifier: Arc<Notifier>,
}

impl NotifierActor {
    pub fn new(notifier: Notifier) -> Self {
        Self {
            notifier: Arc::new(notifier),
        }
    }
}

impl Actor for NotifierActor {
    type Context = Context<Self>;
}

impl Handler<HandleBatch<StockLowEvent>> for NotifierActor {
    type Result = AtomicResponse<Self, Vec<Outcome>>;

    fn handle(
        &mut self,
        HandleBatch(deliveries): HandleBatch<StockLowEvent>,
        _: &mut Self::Context,
    ) -> Self::Result {
        let notifier = Arc::clone(&self.notifier);
        AtomicResponse::new(Box::pin(
            async move { notifier.handle_batch(deliveries).await }.into_actor(self),
        ))
    }
}

/// Stops the actor (and drops its SMTP pool inside the runtime).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for NotifierActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
