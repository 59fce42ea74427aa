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

/// Where a shipment is: the stored vocabulary (an active enum of the `shipments` entity). The
/// moves between statuses are the functions below.
pub use entities::shipments::ShipmentStatus;

/// A move the rules forbid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {from} shipment cannot become {to}")]
pub struct IllegalTransition {
    pub from: ShipmentStatus,
    pub to: ShipmentStatus,
}

/// Whether `from -> to` is one of the three allowed moves.
pub const fn can_become(from: ShipmentStatus, to: ShipmentStatus) -> bool {
    use ShipmentStatus::*;
    matches!(
        (from, to),
        (Pending, Dispatched) | (Dispatched, Delivered) | (Pending, Cancelled)
    )
}

/// `to`, when the rules allow it.
pub fn advance(
    from: ShipmentStatus,
    to: ShipmentStatus,
) -> Result<ShipmentStatus, IllegalTransition> {
    if can_become(from, to) {
        Ok(to)
    } else {
        Err(IllegalTransition { from, to })
    }
}

/// The step the timer takes from `status`, if any.
pub const fn next_step(status: ShipmentStatus) -> Option<Step> {
    match status {
        ShipmentStatus::Pending => Some(Step::Dispatched),
        ShipmentStatus::Dispatched => Some(Step::Delivered),
        ShipmentStatus::Delivered | ShipmentStatus::Cancelled => None,
    }
}

/// No step leads anywhere from `status`.
pub const fn is_final(status: ShipmentStatus) -> bool {
    next_step(status).is_none()
}

/// When the next step is due for a shipment that entered `status` at `entered_at`: `pending`
/// waits the dispatch delay, `dispatched` the deliver delay, final ones nothing.
pub fn next_step_at(
    status: ShipmentStatus,
    entered_at: DateTime<Utc>,
    settings: &DeliverySettings,
) -> Option<DateTime<Utc>> {
    let delay_ms = match status {
        ShipmentStatus::Pending => settings.dispatch_delay_ms,
        ShipmentStatus::Dispatched => settings.deliver_delay_ms,
        ShipmentStatus::Delivered | ShipmentStatus::Cancelled => return None,
    };
    let delay = TimeDelta::milliseconds(i64::try_from(delay_ms).unwrap_or(i64::MAX));
    Some(
        entered_at
            .checked_add_signed(delay)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// What a cancellation of the order does to a shipment in `status`: only a pending one is
/// dropped; the courier has a dispatched one (the order service refuses such cancels).
pub const fn on_cancel(status: ShipmentStatus) -> OnCancel {
    match status {
        ShipmentStatus::Pending => OnCancel::Cancel,
        ShipmentStatus::Cancelled => OnCancel::AlreadyCancelled,
        ShipmentStatus::Dispatched | ShipmentStatus::Delivered => OnCancel::TooLate,
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
        match next_step(at) {
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
    use sea_orm::Iterable as _;

    use super::*;
    use ShipmentStatus::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            dispatch_delay_ms: 2_000,
            deliver_delay_ms: 5_000,
            ..DeliverySettings::default()
        }
    }

    #[test]
    fn only_the_three_forward_moves_are_allowed() {
        let allowed = [
            (Pending, Dispatched),
            (Dispatched, Delivered),
            (Pending, Cancelled),
        ];
        for from in ShipmentStatus::iter() {
            for to in ShipmentStatus::iter() {
                let expected = allowed.contains(&(from, to));
                assert_eq!(can_become(from, to), expected, "{from} -> {to}");
                assert_eq!(
                    advance(from, to),
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
    fn the_timer_dispatches_then_delivers_then_stops() {
        assert_eq!(next_step(Pending), Some(Step::Dispatched));
        assert_eq!(next_step(Dispatched), Some(Step::Delivered));
        assert_eq!(next_step(Delivered), None);
        assert_eq!(next_step(Cancelled), None);
        for status in ShipmentStatus::iter() {
            if let Some(next) = next_step(status) {
                assert!(can_become(status, next.status()), "{status} -> {next}");
            }
        }
        assert!(is_final(Delivered) && is_final(Cancelled));
        assert!(!is_final(Pending) && !is_final(Dispatched));
    }

    #[test]
    fn each_step_is_due_its_own_delay_after_the_previous_one() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .to_utc();
        let s = settings();
        assert_eq!(
            next_step_at(Pending, t0, &s),
            Some(t0 + TimeDelta::seconds(2))
        );
        assert_eq!(
            next_step_at(Dispatched, t0, &s),
            Some(t0 + TimeDelta::seconds(5))
        );
        assert_eq!(next_step_at(Delivered, t0, &s), None);
        assert_eq!(next_step_at(Cancelled, t0, &s), None);
        let absurd = DeliverySettings {
            dispatch_delay_ms: u64::MAX,
            deliver_delay_ms: 0,
            ..DeliverySettings::default()
        };
        assert_eq!(
            next_step_at(Pending, t0, &absurd),
            Some(DateTime::<Utc>::MAX_UTC),
            "a huge delay saturates instead of overflowing"
        );
        assert_eq!(next_step_at(Dispatched, t0, &absurd), Some(t0));
    }

    #[test]
    fn a_cancellation_drops_only_a_pending_shipment() {
        assert_eq!(on_cancel(Pending), OnCancel::Cancel);
        assert_eq!(on_cancel(Cancelled), OnCancel::AlreadyCancelled);
        assert_eq!(on_cancel(Dispatched), OnCancel::TooLate);
        assert_eq!(on_cancel(Delivered), OnCancel::TooLate);
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
        for current in ShipmentStatus::iter() {
            for requested in Step::ALL {
                if let Ok(steps) = plan_force(current, requested) {
                    let mut at = current;
                    for step in steps {
                        at = advance(at, step.status()).expect("a planned step is allowed");
                    }
                    assert_eq!(at, requested.status(), "{current} forced to {requested}");
                }
            }
        }
    }
}
