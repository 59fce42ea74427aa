//! The rules of a shipment (SPEC §5 rules 4 and 6): plain types and pure functions, no database,
//! broker or actor system.
//!
//! A shipment moves `pending -> dispatched -> delivered`, or `pending -> cancelled`; nothing else,
//! never back. Each of the first two steps is due a configurable delay after the previous one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};

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
    pub const fn next_step(self) -> Option<ShipmentStatus> {
        match self {
            Self::Pending => Some(Self::Dispatched),
            Self::Dispatched => Some(Self::Delivered),
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForceRefusal {
    /// The shipment was cancelled: no step leads anywhere.
    Finished(ShipmentStatus),
    /// The requested status is not ahead of the current one on the shipment's path, or not a
    /// status a courier reports.
    Illegal {
        current: ShipmentStatus,
        requested: String,
    },
}

/// The steps, in order, that bring a shipment from `current` to `requested` ("dispatched" or
/// "delivered") at once, as a courier update would:
///
/// - the next step: one step;
/// - `delivered` on a pending shipment: dispatched first, then delivered;
/// - the status it already has: no step (idempotent, a repeated courier update);
/// - a cancelled shipment: [`ForceRefusal::Finished`];
/// - anything else (back to dispatched once delivered, an unknown or non-courier status):
///   [`ForceRefusal::Illegal`].
pub fn plan_force(
    current: ShipmentStatus,
    requested: &str,
) -> Result<Vec<ShipmentStatus>, ForceRefusal> {
    let illegal = || ForceRefusal::Illegal {
        current,
        requested: requested.to_owned(),
    };
    let target = match requested.parse::<ShipmentStatus>() {
        Ok(target @ (ShipmentStatus::Dispatched | ShipmentStatus::Delivered)) => target,
        _ if current == ShipmentStatus::Cancelled => return Err(ForceRefusal::Finished(current)),
        _ => return Err(illegal()),
    };
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
                at = next;
            }
            None => return Err(illegal()),
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
        assert_eq!(Pending.next_step(), Some(Dispatched));
        assert_eq!(Dispatched.next_step(), Some(Delivered));
        assert_eq!(Delivered.next_step(), None);
        assert_eq!(Cancelled.next_step(), None);
        for status in ShipmentStatus::ALL {
            if let Some(next) = status.next_step() {
                assert!(status.can_become(next), "{status} -> {next}");
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
    fn forcing_a_step_takes_the_steps_up_to_it_in_order() {
        let illegal = |current, requested: &str| {
            Err(ForceRefusal::Illegal {
                current,
                requested: requested.into(),
            })
        };
        let cases = [
            (Pending, "dispatched", Ok(vec![Dispatched])),
            (Pending, "delivered", Ok(vec![Dispatched, Delivered])),
            (Dispatched, "dispatched", Ok(vec![])),
            (Dispatched, "delivered", Ok(vec![Delivered])),
            (Delivered, "delivered", Ok(vec![])),
            (Delivered, "dispatched", illegal(Delivered, "dispatched")),
            (
                Cancelled,
                "dispatched",
                Err(ForceRefusal::Finished(Cancelled)),
            ),
            (
                Cancelled,
                "delivered",
                Err(ForceRefusal::Finished(Cancelled)),
            ),
            (Cancelled, "pending", Err(ForceRefusal::Finished(Cancelled))),
            (Pending, "pending", illegal(Pending, "pending")),
            (Pending, "cancelled", illegal(Pending, "cancelled")),
            (Dispatched, "pending", illegal(Dispatched, "pending")),
            (Pending, "Delivered", illegal(Pending, "Delivered")),
            (Pending, "", illegal(Pending, "")),
        ];
        for (current, requested, expected) in cases {
            assert_eq!(
                plan_force(current, requested),
                expected,
                "forcing {requested:?} on a {current} shipment"
            );
        }
    }

    #[test]
    fn every_forced_plan_follows_the_allowed_moves() {
        for current in ShipmentStatus::ALL {
            for requested in ShipmentStatus::ALL {
                if let Ok(steps) = plan_force(current, requested.as_str()) {
                    let mut at = current;
                    for step in steps {
                        at = at.advance(step).expect("a planned step is allowed");
                    }
                    assert_eq!(at, requested, "{current} forced to {requested}");
                }
            }
        }
    }
}
