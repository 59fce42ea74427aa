//! The delivery timer: dispatches and delivers shipments when their step is due (SPEC §5 rule 6).
//!
//! The due times live in `shipments.next_step_at`, so the actor itself holds nothing that a
//! restart could lose. A round claims due shipments with `FOR UPDATE SKIP LOCKED`
//! ([`store::advance_due`]), so instances running side by side never take a step twice. Rounds run
//! every [`POLL_INTERVAL`] (shipments created by other instances, or before a restart) and at the
//! due time of the shipments this instance created or advanced, so steps happen on time.

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use larder_bus::outbox::Outbox;

use crate::config::DeliverySettings;
use crate::store;
use larder_bus::lifecycle::{GoneGuard, Stop};

/// The fallback poll.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Shipments advanced per transaction; a full batch is followed by another at once.
pub const ROUND_BATCH: u64 = 100;

/// Runs the rounds of due steps; one round at a time per instance.
pub struct DeliveryTimer {
    db: DatabaseConnection,
    outbox: Outbox,
    settings: DeliverySettings,
    /// Set while a round is queued, so a burst of wake-ups queues one round, not many.
    round_queued: bool,
    /// Dropped with the timer: tells shutdown it is gone.
    _gone: GoneGuard,
}

impl DeliveryTimer {
    pub fn new(
        db: DatabaseConnection,
        outbox: Outbox,
        settings: DeliverySettings,
        gone: GoneGuard,
    ) -> Self {
        Self {
            db,
            outbox,
            settings,
            round_queued: false,
            _gone: gone,
        }
    }

    fn queue_round(&mut self, ctx: &mut Context<Self>) {
        if !self.round_queued {
            self.round_queued = true;
            ctx.notify(RunDue);
        }
    }

    fn wake_at(&mut self, at: DateTime<Utc>, ctx: &mut Context<Self>) {
        let delay = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        ctx.run_later(delay, |timer, ctx| timer.queue_round(ctx));
    }
}

impl Actor for DeliveryTimer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Steps that fell due while no instance ran go first.
        self.queue_round(ctx);
        ctx.run_interval(POLL_INTERVAL, |timer, ctx| timer.queue_round(ctx));
    }
}

/// A shipment's next step is due at this time: run a round then.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WakeAt(pub DateTime<Utc>);

impl Handler<WakeAt> for DeliveryTimer {
    type Result = ();

    fn handle(&mut self, WakeAt(at): WakeAt, ctx: &mut Self::Context) {
        self.wake_at(at, ctx);
    }
}

/// Take every step that is due now. Replies with the number of steps taken.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, DbErr>")]
pub struct RunDue;

impl Handler<RunDue> for DeliveryTimer {
    // Atomic: one round at a time per instance; wake-ups wait for it.
    type Result = AtomicResponse<Self, Result<usize, DbErr>>;

    fn handle(&mut self, _: RunDue, _: &mut Self::Context) -> Self::Result {
        self.round_queued = false;
        let (db, outbox, settings) = (self.db.clone(), self.outbox.clone(), self.settings.clone());
        AtomicResponse::new(Box::pin(
            async move { run_round(&db, &outbox, &settings).await }
                .into_actor(self)
                .map(|result, timer, ctx| match result {
                    Ok(round) => {
                        if round.steps > 0 {
                            tracing::debug!(steps = round.steps, "delivery timers fired");
                        }
                        if let Some(at) = round.next_due {
                            timer.wake_at(at, ctx);
                        }
                        Ok(round.steps)
                    }
                    Err(error) => {
                        tracing::warn!(%error, "delivery timer round failed; will retry");
                        Err(error)
                    }
                }),
        ))
    }
}

impl Handler<Stop> for DeliveryTimer {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default)]
struct Round {
    steps: usize,
    /// The earliest due time of the steps after the ones taken.
    next_due: Option<DateTime<Utc>>,
}

/// Advances due shipments, [`ROUND_BATCH`] per transaction, until a transaction finds fewer.
async fn run_round(
    db: &DatabaseConnection,
    outbox: &Outbox,
    settings: &DeliverySettings,
) -> Result<Round, DbErr> {
    let mut round = Round::default();
    loop {
        let txn = db.begin().await?;
        let advanced = store::advance_due(&txn, outbox, Utc::now(), ROUND_BATCH, settings).await?;
        txn.commit().await?;
        round.steps += advanced.len();
        for due in advanced.iter().filter_map(|s| s.next_step_at) {
            let due = due.to_utc();
            round.next_due = Some(round.next_due.map_or(due, |next| next.min(due)));
        }
        if (advanced.len() as u64) < ROUND_BATCH {
            return Ok(round);
        }
    }
}
