//! The delivery timer: dispatches and delivers shipments when their step is due (SPEC §5 rule 6).
//!
//! The due times live in `shipments.next_step_at`, so the actor itself holds nothing that a
//! restart could lose. A round claims due shipments with `FOR UPDATE SKIP LOCKED`
//! ([`store::advance_due`]), so instances running side by side never take a step twice. Rounds run
//! every [`POLL_INTERVAL`] (shipments created by other instances, or before a restart) and at the
//! due time of the shipments this instance created or advanced, so steps happen on time: at the
//! end of the due time's slot ([`DeliverySettings::timer_slot_ms`]), one round for every step due
//! in it.

use std::collections::BTreeSet;
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
    /// The slots a wake-up is scheduled for: one timer per slot, however many steps fall in it.
    wakes: BTreeSet<DateTime<Utc>>,
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
            wakes: BTreeSet::new(),
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
        let slot = slot_end(at, self.settings.timer_slot_ms);
        if !self.wakes.insert(slot) {
            return;
        }
        let delay = (slot - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        ctx.run_later(delay, move |timer, ctx| {
            timer.wakes.remove(&slot);
            timer.queue_round(ctx);
        });
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

/// The end of the slot of `slot_ms` milliseconds that holds `at`: the earliest wake-up on the
/// grid at or after `at` (a slot of 0 is taken as 1 ms).
fn slot_end(at: DateTime<Utc>, slot_ms: u64) -> DateTime<Utc> {
    let slot_ms = i64::try_from(slot_ms.max(1)).unwrap_or(i64::MAX);
    let start = at
        .timestamp_millis()
        .div_euclid(slot_ms)
        .saturating_mul(slot_ms);
    match DateTime::from_timestamp_millis(start) {
        Some(start) if start == at => at,
        _ => DateTime::from_timestamp_millis(start.saturating_add(slot_ms)).unwrap_or(at),
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

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn at(millis: i64, extra_nanos: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap() + TimeDelta::nanoseconds(extra_nanos)
    }

    #[test]
    fn a_step_wakes_at_the_end_of_its_slot_never_before_it_and_less_than_a_slot_after() {
        for (due, expected) in [
            (at(1_000, 0), at(1_000, 0)),
            (at(1_000, 1), at(1_010, 0)),
            (at(1_001, 0), at(1_010, 0)),
            (at(1_009, 999_999), at(1_010, 0)),
            (at(1_010, 0), at(1_010, 0)),
        ] {
            let wake = slot_end(due, 10);
            assert_eq!(wake, expected, "{due}");
            assert!(wake >= due && wake - due < TimeDelta::milliseconds(10));
        }
    }

    #[test]
    fn steps_due_within_one_slot_share_its_wake_up() {
        let wakes: BTreeSet<_> = (0..10).map(|ms| slot_end(at(2_001 + ms, 0), 10)).collect();
        assert_eq!(wakes.len(), 1, "{wakes:?}");
    }

    #[test]
    fn a_slot_of_zero_wakes_on_the_millisecond() {
        assert_eq!(slot_end(at(5_000, 300), 0), at(5_001, 0));
        assert_eq!(slot_end(at(5_000, 0), 0), at(5_000, 0));
    }
}
