//! The notifier actor: the handler of the `stock.low` consumer. For each delivery it records the
//! notification, asks the circuit breaker, sends one email and records the outcome; it answers
//! the consumer runner one [`Outcome`] per delivery (SPEC §5 rules 1 and 5).
//!
//! ## A server that is down: held, tried on the breaker's pace
//!
//! The runner pulls a small batch, sends it here and awaits the answer before it pulls again. So
//! when the SMTP server is down (unreachable, timing out, or answering 421), the notifier *holds*
//! the delivery in hand instead of answering: it tries the server again once per breaker
//! cool-down (after enough failures the breaker opens, and every delivery waits for its
//! half-open trial). Meanwhile the runner pulls nothing, the events still in the stream keep all
//! their deliveries, and the dead server sees at most one attempt per cool-down. When the server
//! is back, the held email goes out within a cool-down, and the rest follow.
//!
//! The runner keeps a held delivery alive with progress acks. The hold is bounded by the retry
//! schedule's step for this delivery (the delay a `Retry` would have asked for anyway), minus
//! the SMTP timeout and a margin for the last send, so a long outage spends deliveries at the
//! schedule's pace; a delivery held to its bound goes back to the stream for one cool-down and
//! comes back first. A *last* delivery is never answered without an attempt: one real try beats
//! a dead letter that never reached the server.
//!
//! A message the server itself defers (another 4xx) is not held: it is retried on the
//! consumer's schedule while the other emails go ahead.
//!
//! On shutdown a held delivery is released at once with `Retry` (the last one is still tried).

use std::time::{Duration, Instant};

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use larder_bus::consume::{Delivery, HandleBatch, Outcome};
use larder_bus::lifecycle::{GoneGuard, Stop};
use larder_bus::push::Pusher;
use larder_bus::topology::ConsumerSpec;
use larder_contract::Envelope;
use larder_contract::events::StockLow;
use larder_contract::push::{self, AlertsChanged};

use crate::config::NotificationSettings;
use crate::domain::{self, CircuitBreaker, NotificationStatus, Permit};
use crate::mailer::{MailError, Mailer};
use crate::store;

/// What the `stock.low` consumer decodes.
pub type StockLowEvent = Envelope<StockLow>;

/// Time kept free, after a hold, for the trial send (on top of the SMTP timeout) and the database.
const SEND_MARGIN: Duration = Duration::from_secs(1);

/// The implementing component: database, mailer and breaker. The actor is its shell: it owns
/// the notifier and lends it to one batch at a time, so the breaker is plain state.
pub struct Notifier {
    db: DatabaseConnection,
    mailer: Mailer,
    breaker: CircuitBreaker,
    /// The consumer's spec: its retry steps bound how long a delivery is held.
    spec: ConsumerSpec,
    smtp_timeout: Duration,
    shutdown: CancellationToken,
    /// Tells the merchants' live consoles that their alerts changed.
    pushes: Pusher,
}

/// The breaker, borrowed; publishes its state as `larder_smtp_breaker_open` (0 closed, 1 open
/// or half-open) when given back, whatever changed it.
struct BreakerGuard<'a>(&'a mut CircuitBreaker);

impl std::ops::Deref for BreakerGuard<'_> {
    type Target = CircuitBreaker;
    fn deref(&self) -> &CircuitBreaker {
        self.0
    }
}

impl std::ops::DerefMut for BreakerGuard<'_> {
    fn deref_mut(&mut self) -> &mut CircuitBreaker {
        self.0
    }
}

impl Drop for BreakerGuard<'_> {
    fn drop(&mut self) {
        let open = !matches!(self.0.state(), domain::BreakerState::Closed { .. });
        metrics::gauge!("larder_smtp_breaker_open").set(f64::from(u8::from(open)));
    }
}

/// What one send came to.
enum Sent {
    Done,
    /// The server is down (or the circuit says so): worth holding the delivery for.
    ServerUnavailable(String),
    /// This message was deferred (a 4xx for it, or the database failed): retry it on the
    /// consumer's schedule while the others go ahead.
    Deferred(String),
    /// Never deliverable: dead-letter.
    Refused(String),
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
        pushes: Pusher,
    ) -> Self {
        Self {
            db,
            mailer,
            breaker: CircuitBreaker::new(settings.breaker_failures, settings.breaker_cool_down()),
            spec,
            smtp_timeout: settings.smtp_timeout(),
            shutdown,
            pushes,
        }
    }

    fn breaker(&mut self) -> BreakerGuard<'_> {
        BreakerGuard(&mut self.breaker)
    }

    /// One email at a time, in stream order; then the merchants' consoles are told.
    pub async fn handle_batch(&mut self, deliveries: Vec<Delivery<StockLowEvent>>) -> Vec<Outcome> {
        let received = Instant::now();
        let mut outcomes = Vec::with_capacity(deliveries.len());
        for delivery in &deliveries {
            outcomes.push(self.handle(delivery, received).await);
        }
        self.announce(&deliveries).await;
        outcomes
    }

    /// Pushes that these deliveries' alerts changed (a new row, an email's outcome).
    async fn announce(&self, deliveries: &[Delivery<StockLowEvent>]) {
        let changed = AlertsChanged {
            merchant_ids: push::distinct(deliveries.iter().map(|d| d.event.data.merchant_id)),
        };
        self.pushes.publish(push::ALERTS_CHANGED, &changed).await;
    }

    #[tracing::instrument(skip_all, fields(
        event_id = %delivery.event.id,
        correlation_id = delivery.event.correlation_id.as_deref().unwrap_or(""),
        ingredient = %delivery.event.data.ingredient,
        delivered = delivery.delivered,
    ))]
    async fn handle(&mut self, delivery: &Delivery<StockLowEvent>, received: Instant) -> Outcome {
        let event = &delivery.event;
        let last_attempt = delivery.is_last_attempt();

        // SPEC §5 rule 1: the row first. A redelivery (or a replay) of an event whose email went
        // out is acked without sending; a `failed` one (a replayed dead letter) is tried again.
        match store::insert_pending(&self.db, event).await {
            Ok(NotificationStatus::Sent) => {
                tracing::info!("already sent; nothing to do");
                return Outcome::Done;
            }
            Ok(NotificationStatus::Pending | NotificationStatus::Failed) => {
                // The alert is shown at once, even if its email waits for the SMTP server.
                self.announce(std::slice::from_ref(delivery)).await;
            }
            Err(error) => return database_retry(&error),
        }

        // How long this delivery may be held: the retry step it would otherwise wait in the
        // stream, minus room for one more send.
        let hold_until = received
            + self
                .spec
                .retry_delay(delivery.delivered)
                .saturating_sub(self.smtp_timeout + SEND_MARGIN);
        loop {
            match self.wait_for_breaker(hold_until, last_attempt).await {
                Gate::Send => {}
                Gate::NotAttempted(reason) => {
                    if let Err(error) =
                        store::record_failure(&self.db, event.id, &reason, last_attempt).await
                    {
                        tracing::warn!(%error, "could not record the attempt");
                    }
                    return self.retry_when_server_is_back(reason);
                }
                Gate::ShuttingDown => {
                    return Outcome::Retry {
                        reason: "shutting down before the SMTP server was back".into(),
                    };
                }
            }
            // A server that is down is tried again on the breaker's pace while this delivery
            // may still be held, so that an email goes out within a cool-down of the server's
            // return rather than after the next retry step.
            let next_try = Instant::now() + self.breaker().cool_down();
            let hold_again = next_try < hold_until;
            match self.send(event, last_attempt && !hold_again).await {
                Sent::Done => return Outcome::Done,
                Sent::Refused(reason) => return Outcome::Reject { reason },
                Sent::Deferred(reason) => return Outcome::Retry { reason },
                Sent::ServerUnavailable(reason) if !hold_again => {
                    return self.retry_when_server_is_back(reason);
                }
                Sent::ServerUnavailable(_) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(next_try.into()) => {}
                        () = self.shutdown.cancelled() => {
                            return Outcome::Retry {
                                reason: "shutting down before the SMTP server was back".into(),
                            };
                        }
                    }
                }
            }
        }
    }

    /// A delivery that has been held as long as it may while the server is down: back to the
    /// stream for one cool-down (a retry step has been spent holding it). On the last delivery
    /// the runner dead-letters it instead.
    fn retry_when_server_is_back(&mut self, reason: String) -> Outcome {
        Outcome::RetryAfter {
            delay: self.breaker().cool_down(),
            reason,
        }
    }

    /// Waits while the breaker is open, until `hold_until` at most (see the module docs).
    async fn wait_for_breaker(&mut self, hold_until: Instant, last_attempt: bool) -> Gate {
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

    /// Sends under the row lock and records the outcome in the same transaction. `give_up`: a
    /// failure now is final (the notification is recorded as failed).
    async fn send(&mut self, event: &StockLowEvent, give_up: bool) -> Sent {
        let txn = match self.db.begin().await {
            Ok(txn) => txn,
            Err(error) => return Sent::Deferred(database_error(&error)),
        };
        match store::lock_for_sending(&txn, event.id).await {
            Ok(NotificationStatus::Sent) => {
                // Another instance sent it while this delivery waited for the lock.
                let _ = txn.rollback().await;
                return Sent::Done;
            }
            Ok(NotificationStatus::Pending | NotificationStatus::Failed) => {}
            Err(error) => return Sent::Deferred(database_error(&error)),
        }

        let email = domain::low_stock_email(&event.data);
        // SMTP has no idempotency key: if the process dies (or the database fails) after the
        // server accepted the email and before the commit below, the redelivery sends it again.
        // The window is one UPDATE and its COMMIT, on a transaction already open and holding
        // the row lock (which rules out two instances sending at once); the copy it can make
        // carries the same Message-ID.
        let sent = self
            .mailer
            .send(&event.data.merchant_email, &email, event.id)
            .await;
        match sent {
            Ok(()) => {
                metrics::counter!("larder_emails_total", "result" => "sent").increment(1);
                self.breaker().record_success();
                if let Err(error) = mark_sent(txn, event.id).await {
                    self.mark_sent_again(event.id, &error).await;
                }
                tracing::info!(to = %event.data.merchant_email, "low-stock email sent");
                Sent::Done
            }
            Err(error) => {
                match &error {
                    MailError::Unavailable(_) => self.breaker().record_failure(Instant::now()),
                    // The server is up and answering: a trial that got a reply closes the breaker.
                    MailError::Deferred(_) | MailError::Permanent(_) => {
                        self.breaker().record_success();
                    }
                    MailError::Invalid(_) => {}
                }
                let reason = error.to_string();
                let outcome = match error {
                    MailError::Unavailable(_) => Sent::ServerUnavailable(reason.clone()),
                    MailError::Deferred(_) => Sent::Deferred(reason.clone()),
                    MailError::Permanent(_) | MailError::Invalid(_) => {
                        Sent::Refused(reason.clone())
                    }
                };
                let final_failure = give_up || matches!(outcome, Sent::Refused(_));
                let result = if final_failure { "failed" } else { "retried" };
                metrics::counter!("larder_emails_total", "result" => result).increment(1);
                tracing::warn!(%reason, final_failure, "low-stock email not sent");
                if let Err(error) = record_failure(txn, event.id, &reason, final_failure).await {
                    tracing::warn!(%error, "could not record the failed attempt");
                }
                outcome
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
    Outcome::Retry {
        reason: database_error(error),
    }
}

fn database_error(error: &DbErr) -> String {
    tracing::warn!(%error, "database error; will retry");
    format!("database error: {error}")
}

/// The shell around [`Notifier`]: handles one batch at a time, to the end, before any other
/// message (so [`Stop`] waits for the batch in hand).
pub struct NotifierActor {
    /// Lent to the batch in hand (`None` meanwhile: the actor handles nothing else then).
    notifier: Option<Notifier>,
    /// Dropped with the actor (and its SMTP pool): tells shutdown it is gone.
    _gone: GoneGuard,
}

impl NotifierActor {
    pub fn new(notifier: Notifier, gone: GoneGuard) -> Self {
        Self {
            notifier: Some(notifier),
            _gone: gone,
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
        // Atomic: no other message runs until the batch is answered and the notifier is back.
        let mut notifier = self
            .notifier
            .take()
            .expect("the notifier is back between batches");
        AtomicResponse::new(Box::pin(
            async move {
                let outcomes = notifier.handle_batch(deliveries).await;
                (notifier, outcomes)
            }
            .into_actor(self)
            .map(|(notifier, outcomes), actor, _| {
                actor.notifier = Some(notifier);
                outcomes
            }),
        ))
    }
}

impl Handler<Stop> for NotifierActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
