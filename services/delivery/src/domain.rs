//! The rules of a shipment (SPEC §5 rules 4 and 6): plain types and pure functions, no database,
//! broker or actor system.
//!
//! A shipment moves `pending -> dispatched -> delivered`, or `pending -> cancelled`; nothing else,
//! never back. Each of the first two steps ([`Step`]) is due a configurable delay after the
//! previous one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use larder_contract::commands::CourierStep;

use crate::config::DeliverySettings;

/// Where a shipment is. Stored as its lower-case name (`shipments_status_check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShipmentStatus {
    /// Waiting for the courier; dispatched when its timer is due.
    Pending,
    /// With the courier; delivered when its timer is due.
    Dispatched,
    /// Final: the customer has it.
    Delivered,
    /// Final: the order was cancelled before the courier picked it up.
    Cancelled,
}

/// A status name that is not one of the four.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown shipment status {0:?}")]
pub struct UnknownStatus(pub String);

/// A move the rules forbid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {from} shipment cannot become {to}")]
pub struct IllegalTransition {
    pub from: ShipmentStatus,
    pub to: ShipmentStatus,
}

impl ShipmentStatus {
    pub const ALL: [ShipmentStatus; 4] = [
        Self::Pending,
        Self::Dispatched,
        Self::Delivered,
        Self::Cancelled,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Dispatched => "dispatched",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether `self -> to` is one of the three allowed moves.
    pub const fn can_become(self, to: ShipmentStatus) -> bool {
        matches!(
            (self, to),
            (Self::Pending, Self::Dispatched)
                | (Self::Dispatched, Self::Delivered)
                | (Self::Pending, Self::Cancelled)
        )
    }

    /// `to`, when the rules allow it.
    pub fn advance(self, to: ShipmentStatus) -> Result<ShipmentStatus, IllegalTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// The step the timer takes from here, if any.
    pub const fn next_step(self) -> Option<Step> {
        match self {
            Self::Pending => Some(Step::Dispatched),
            Self::Dispatched => Some(Step::Delivered),
            Self::Delivered | Self::Cancelled => None,
        }
    }

    /// No step leads anywhere from here.
    pub const fn is_final(self) -> bool {
        self.next_step().is_none()
    }

    /// When the next step is due for a shipment that entered this status at `entered_at`:
    /// `pending` waits the dispatch delay, `dispatched` the deliver delay, final ones nothing.
    pub fn next_step_at(
        self,
        entered_at: DateTime<Utc>,
        settings: &DeliverySettings,
    ) -> Option<DateTime<Utc>> {
        let delay_ms = match self {
            Self::Pending => settings.dispatch_delay_ms,
            Self::Dispatched => settings.deliver_delay_ms,
            Self::Delivered | Self::Cancelled => return None,
        };
        let delay = TimeDelta::milliseconds(i64::try_from(delay_ms).unwrap_or(i64::MAX));
        Some(
            entered_at
                .checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// What a cancellation of the order does to a shipment in this status: only a pending one
    /// is dropped; the courier has a dispatched one (the order service refuses such cancels).
    pub const fn on_cancel(self) -> OnCancel {
        match self {
            Self::Pending => OnCancel::Cancel,
            Self::Cancelled => OnCancel::AlreadyCancelled,
            Self::Dispatched | Self::Delivered => OnCancel::TooLate,
        }
    }
}

impl fmt::Display for ShipmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ShipmentStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// A step forward on a shipment's path: what the timer takes when it is due, and what a courier
/// update forces. Named after the status it leads to, which is its stored and wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// `pending -> dispatched`: the courier has it.
    Dispatched,
    /// `dispatched -> delivered`: the customer has it.
    Delivered,
}

/// A step name that is not `dispatched` or `delivered`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown shipment step {0:?}: a step is dispatched or delivered")]
pub struct UnknownStep(pub String);

impl Step {
    pub const ALL: [Step; 2] = [Self::Dispatched, Self::Delivered];

    /// The status the step leads to.
    pub const fn status(self) -> ShipmentStatus {
        match self {
            Self::Dispatched => ShipmentStatus::Dispatched,
            Self::Delivered => ShipmentStatus::Delivered,
        }
    }

    /// The name: the status's.
    pub const fn as_str(self) -> &'static str {
        self.status().as_str()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Step {
    type Err = UnknownStep;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|step| step.as_str() == s)
            .ok_or_else(|| UnknownStep(s.to_owned()))
    }
}

/// The step a courier update names on the wire.
impl From<CourierStep> for Step {
    fn from(step: CourierStep) -> Self {
        match step {
            CourierStep::Dispatched => Self::Dispatched,
            CourierStep::Delivered => Self::Delivered,
        }
    }
}

/// The effect of `orders.cancelled` on an existing shipment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnCancel {
    /// Pending: becomes cancelled, its timer is dropped.
    Cancel,
    /// Nothing to do: it was cancelled already (a duplicate, or the cancel came first).
    AlreadyCancelled,
    /// Dispatched or delivered: left alone.
    TooLate,
}

/// Why a forced step (a courier update, `POST /order/{id}/delivery`) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForceRefusal {
    /// The shipment was cancelled: no step leads anywhere.
    Finished(ShipmentStatus),
    /// The requested step is behind the shipment (dispatched once delivered).
    Illegal {
        current: ShipmentStatus,
        requested: Step,
    },
}

/// The steps, in order, that bring a shipment from `current` to the status of `requested` at
/// once, as a courier update would:
///
/// - the next step: one step;
/// - `delivered` on a pending shipment: dispatched first, then delivered;
/// - the status it already has: no step (idempotent, a repeated courier update);
/// - a cancelled shipment: [`ForceRefusal::Finished`];
/// - back to dispatched once delivered: [`ForceRefusal::Illegal`].
pub fn plan_force(current: ShipmentStatus, requested: Step) -> Result<Vec<Step>, ForceRefusal> {
    let target = requested.status();
    if current == target {
        return Ok(Vec::new());
    }
    if current == ShipmentStatus::Cancelled {
        return Err(ForceRefusal::Finished(current));
    }
    let mut steps = Vec::new();
    let mut at = current;
    while at != target {
        match at.next_step() {
            Some(next) => {
                steps.push(next);
                at = next.status();
            }
            None => return Err(ForceRefusal::Illegal { current, requested }),
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ShipmentStatus::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            dispatch_delay_ms: 2_000,
            deliver_delay_ms: 5_000,
        }
    }

    #[test]
    fn only_the_three_forward_moves_are_allowed() {
        let allowed = [
            (Pending, Dispatched),
            (Dispatched, Delivered),
            (Pending, Cancelled),
        ];
        for from in ShipmentStatus::ALL {
            for to in ShipmentStatus::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
                assert_eq!(
                    from.advance(to),
                    if expected {
                        Ok(to)
                    } else {
                        Err(IllegalTransition { from, to })
                    },
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_their_stored_names() {
        for status in ShipmentStatus::ALL {
            assert_eq!(status.as_str().parse::<ShipmentStatus>(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert_eq!(
            "shipped".parse::<ShipmentStatus>(),
            Err(UnknownStatus("shipped".into()))
        );
    }

    #[test]
    fn the_timer_dispatches_then_delivers_then_stops() {
        assert_eq!(Pending.next_step(), Some(Step::Dispatched));
        assert_eq!(Dispatched.next_step(), Some(Step::Delivered));
        assert_eq!(Delivered.next_step(), None);
        assert_eq!(Cancelled.next_step(), None);
        for status in ShipmentStatus::ALL {
            if let Some(next) = status.next_step() {
                assert!(status.can_become(next.status()), "{status} -> {next}");
            }
        }
        assert!(Delivered.is_final() && Cancelled.is_final());
        assert!(!Pending.is_final() && !Dispatched.is_final());
    }

    #[test]
    fn each_step_is_due_its_own_delay_after_the_previous_one() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .to_utc();
        let s = settings();
        assert_eq!(
            Pending.next_step_at(t0, &s),
            Some(t0 + TimeDelta::seconds(2))
        );
        assert_eq!(
            Dispatched.next_step_at(t0, &s),
            Some(t0 + TimeDelta::seconds(5))
        );
        assert_eq!(Delivered.next_step_at(t0, &s), None);
        assert_eq!(Cancelled.next_step_at(t0, &s), None);
        let absurd = DeliverySettings {
            dispatch_delay_ms: u64::MAX,
            deliver_delay_ms: 0,
        };
        assert_eq!(
            Pending.next_step_at(t0, &absurd),
            Some(DateTime::<Utc>::MAX_UTC),
            "a huge delay saturates instead of overflowing"
        );
        assert_eq!(Dispatched.next_step_at(t0, &absurd), Some(t0));
    }

    #[test]
    fn a_cancellation_drops_only_a_pending_shipment() {
        assert_eq!(Pending.on_cancel(), OnCancel::Cancel);
        assert_eq!(Cancelled.on_cancel(), OnCancel::AlreadyCancelled);
        assert_eq!(Dispatched.on_cancel(), OnCancel::TooLate);
        assert_eq!(Delivered.on_cancel(), OnCancel::TooLate);
    }

    #[test]
    fn steps_are_named_after_the_status_they_lead_to() {
        for step in Step::ALL {
            assert_eq!(step.as_str(), step.status().as_str());
            assert_eq!(step.as_str().parse::<Step>(), Ok(step));
            assert_eq!(step.to_string(), step.as_str());
        }
        for not_a_step in ["pending", "cancelled", "shipped", "Delivered", ""] {
            assert_eq!(
                not_a_step.parse::<Step>(),
                Err(UnknownStep(not_a_step.into())),
                "{not_a_step:?}"
            );
        }
        assert_eq!(Step::from(CourierStep::Dispatched), Step::Dispatched);
        assert_eq!(Step::from(CourierStep::Delivered), Step::Delivered);
        for wire in [CourierStep::Dispatched, CourierStep::Delivered] {
            assert_eq!(
                Step::from(wire).as_str(),
                wire.as_str(),
                "one name per step"
            );
        }
    }

    #[test]
    fn forcing_a_step_takes_the_steps_up_to_it_in_order() {
        use Step::{Delivered as ToDelivered, Dispatched as ToDispatched};
        let cases = [
            (Pending, ToDispatched, Ok(vec![ToDispatched])),
            (Pending, ToDelivered, Ok(vec![ToDispatched, ToDelivered])),
            (Dispatched, ToDispatched, Ok(vec![])),
            (Dispatched, ToDelivered, Ok(vec![ToDelivered])),
            (Delivered, ToDelivered, Ok(vec![])),
            (
                Delivered,
                ToDispatched,
                Err(ForceRefusal::Illegal {
                    current: Delivered,
                    requested: ToDispatched,
                }),
            ),
            (
                Cancelled,
                ToDispatched,
                Err(ForceRefusal::Finished(Cancelled)),
            ),
            (
                Cancelled,
                ToDelivered,
                Err(ForceRefusal::Finished(Cancelled)),
            ),
        ];
        for (current, requested, expected) in cases {
            assert_eq!(
                plan_force(current, requested),
                expected,
                "forcing {requested} on a {current} shipment"
            );
        }
    }

    #[test]
    fn every_forced_plan_follows_the_allowed_moves() {
        for current in ShipmentStatus::ALL {
            for requested in Step::ALL {
                if let Ok(steps) = plan_force(current, requested) {
                    let mut at = current;
                    for step in steps {
                        at = at
                            .advance(step.status())
                            .expect("a planned step is allowed");
                    }
                    assert_eq!(at, requested.status(), "{current} forced to {requested}");
                }
            }
        }
    }
}
