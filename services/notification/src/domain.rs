//! The rules, without I/O: what a low-stock email says (SPEC §5 rule 5), the retry schedule, the
//! notification's status, and the SMTP circuit breaker.

use std::time::{Duration, Instant};

use larder_contract::events::StockLow;

/// The email for one `stock.low` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowStockEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Subject naming the ingredient; text and HTML bodies with the ingredient, its level and
/// reference level with their unit, and the percent. Names are HTML-escaped in the HTML body.
pub fn low_stock_email(event: &StockLow) -> LowStockEmail {
    // A header is one line: a name with a line break must not start a new header.
    let name = event.ingredient.replace(['\r', '\n'], " ");
    let subject = format!(
        "Low stock: {name} is at {percent} % of its reference level",
        percent = event.percent
    );
    let level = format!("{} {}", event.level, event.unit);
    let reference = format!("{} {}", event.reference_level, event.unit);
    let order = event
        .order_id
        .map(|id| format!("Order that crossed the threshold: {id}\n"))
        .unwrap_or_default();
    let text = format!(
        "{name} is running low.\n\
         \n\
         Level: {level}\n\
         Reference level: {reference}\n\
         Percent of reference: {percent} %\n\
         {order}\
         \n\
         Restock it to re-arm this alert: no other one is sent until it is back at 50 % or more.\n",
        percent = event.percent
    );
    let order_html = event
        .order_id
        .map(|id| format!("<tr><th align=\"left\">Order</th><td>{id}</td></tr>"))
        .unwrap_or_default();
    let html = format!(
        "<!DOCTYPE html>\n<html><body>\n\
         <p><strong>{name}</strong> is running low.</p>\n\
         <table>\n\
         <tr><th align=\"left\">Level</th><td>{level}</td></tr>\n\
         <tr><th align=\"left\">Reference level</th><td>{reference}</td></tr>\n\
         <tr><th align=\"left\">Percent of reference</th><td>{percent} %</td></tr>\n\
         {order_html}\n\
         </table>\n\
         <p>Restock it to re-arm this alert: no other one is sent until it is back at 50 % or more.</p>\n\
         </body></html>\n",
        name = escape_html(&name),
        level = escape_html(&level),
        reference = escape_html(&reference),
        percent = event.percent,
    );
    LowStockEmail {
        subject,
        text,
        html,
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// SPEC §5 rule 5: SMTP failures retry with exponential backoff. The consumer's backoff: the
/// delay after delivery `n` fails is `base * 2^(n-1)`, capped at `max`; one step fewer than
/// deliveries (the server's rule: nothing follows the last one).
pub fn retry_schedule_secs(base_secs: u64, max_secs: u64, max_deliveries: i64) -> Vec<u64> {
    let steps = usize::try_from(max_deliveries.saturating_sub(1)).unwrap_or(0);
    let base = base_secs.max(1);
    let max = max_secs.max(base);
    (0..steps)
        .map(|n| {
            let factor = 1u64.checked_shl(n as u32).unwrap_or(u64::MAX);
            base.saturating_mul(factor).min(max)
        })
        .collect()
}

/// A notification's status: the stored vocabulary (an active enum of the `notifications`
/// entity).
pub use entities::notifications::NotificationStatus;

/// Where the breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Sending; counts consecutive failures.
    Closed { consecutive_failures: u32 },
    /// The server is presumed down: no sending until `until`.
    Open { until: Instant },
    /// The cool-down is over: the next send is a trial that closes or re-opens the breaker.
    HalfOpen,
}

/// What the breaker allows now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    Send,
    /// Open: ask again at this instant (the breaker is then half-open).
    WaitUntil(Instant),
}

/// SPEC §5 rule 5: "a circuit breaker stops hammering a dead server". Closed -> open after
/// `failure_threshold` consecutive failures -> half-open once `cool_down` has passed -> closed on
/// the trial's success, open again (for another cool-down) on its failure.
///
/// Time is passed in, so the rule is testable without waiting. The notifier sends one email at a
/// time, so half-open lets through one trial at a time without further bookkeeping.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    cool_down: Duration,
    state: BreakerState,
}

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, cool_down: Duration) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            cool_down,
            state: BreakerState::Closed {
                consecutive_failures: 0,
            },
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// How long the circuit stays open after it trips: also the pace at which a server that
    /// is down is tried again.
    pub fn cool_down(&self) -> Duration {
        self.cool_down
    }

    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// May a send start at `now`? Moves an open breaker whose cool-down is over to half-open.
    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.state {
            BreakerState::Closed { .. } | BreakerState::HalfOpen => Permit::Send,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Permit::Send
            }
            BreakerState::Open { until } => Permit::WaitUntil(until),
        }
    }

    /// The server answered: closed, failures forgotten.
    pub fn record_success(&mut self) {
        self.state = BreakerState::Closed {
            consecutive_failures: 0,
        };
    }

    /// The server could not be reached (or failed transiently) at `now`.
    pub fn record_failure(&mut self, now: Instant) {
        let open = BreakerState::Open {
            until: now + self.cool_down,
        };
        self.state = match self.state {
            BreakerState::Closed {
                consecutive_failures,
            } if consecutive_failures + 1 < self.failure_threshold => BreakerState::Closed {
                consecutive_failures: consecutive_failures + 1,
            },
            // The threshold reached, a failed trial, or a send that went ahead while open
            // (a last delivery): a fresh cool-down.
            _ => open,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn beef() -> StockLow {
        StockLow {
            ingredient_id: 1,
            ingredient: "Beef".into(),
            unit: "g".into(),
            level: 9_850,
            reference_level: 20_000,
            percent: 49,
            merchant_id: 1,
            merchant_email: "merchant@example.com".into(),
            order_id: Some(Uuid::nil()),
        }
    }

    #[test]
    fn the_email_names_the_ingredient_and_gives_level_reference_and_percent() {
        let email = low_stock_email(&beef());

        assert!(email.subject.contains("Beef"), "{}", email.subject);
        for (body, name) in [(&email.text, "text"), (&email.html, "html")] {
            for expected in [
                "Beef",
                "9850 g",
                "20000 g",
                "49 %",
                &Uuid::nil().to_string(),
            ] {
                assert!(
                    body.contains(expected),
                    "{name} body lacks {expected:?}: {body}"
                );
            }
        }
    }

    #[test]
    fn names_are_escaped_in_html_and_kept_on_one_line_in_the_subject() {
        let event = StockLow {
            ingredient: "<b>Fish & \"Chips\"</b>\r\nBcc: x@y".into(),
            ..beef()
        };
        let email = low_stock_email(&event);

        assert!(!email.subject.contains(['\r', '\n']), "{}", email.subject);
        assert!(
            email
                .html
                .contains("&lt;b&gt;Fish &amp; &quot;Chips&quot;&lt;/b&gt;"),
            "{}",
            email.html
        );
        assert!(!email.html.contains("<b>Fish"), "{}", email.html);
    }

    #[test]
    fn an_event_without_an_order_says_nothing_about_one() {
        let email = low_stock_email(&StockLow {
            order_id: None,
            ..beef()
        });
        assert!(!email.text.contains("Order"), "{}", email.text);
        assert!(!email.html.contains("Order"), "{}", email.html);
    }

    #[test]
    fn retry_delays_double_up_to_the_cap_with_one_step_fewer_than_deliveries() {
        // (base, max, deliveries) -> schedule
        type Case = ((u64, u64, i64), &'static [u64]);
        let cases: [Case; 5] = [
            ((30, 480, 6), &[30, 60, 120, 240, 480]),
            ((30, 100, 6), &[30, 60, 100, 100, 100]),
            ((1, 1, 3), &[1, 1]),
            ((5, 1, 3), &[5, 5]),
            ((1, 600, 1), &[]),
        ];
        for ((base, max, deliveries), expected) in cases {
            assert_eq!(
                retry_schedule_secs(base, max, deliveries),
                expected,
                "base {base}, max {max}, deliveries {deliveries}"
            );
        }
        // Huge schedules saturate instead of overflowing.
        assert_eq!(
            retry_schedule_secs(u64::MAX / 2, u64::MAX, 70).last(),
            Some(&u64::MAX)
        );
    }

    const COOL_DOWN: Duration = Duration::from_secs(10);

    #[test]
    fn the_breaker_opens_after_the_threshold_of_consecutive_failures() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(3, COOL_DOWN);

        breaker.record_failure(t0);
        breaker.record_failure(t0);
        assert_eq!(breaker.permit(t0), Permit::Send, "two failures of three");

        breaker.record_failure(t0);
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                until: t0 + COOL_DOWN
            }
        );
        assert_eq!(breaker.permit(t0), Permit::WaitUntil(t0 + COOL_DOWN));
        assert_eq!(
            breaker.permit(t0 + COOL_DOWN - Duration::from_millis(1)),
            Permit::WaitUntil(t0 + COOL_DOWN)
        );
    }

    #[test]
    fn a_success_resets_the_count_of_consecutive_failures() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(3, COOL_DOWN);
        breaker.record_failure(t0);
        breaker.record_failure(t0);
        breaker.record_success();
        breaker.record_failure(t0);
        breaker.record_failure(t0);
        assert_eq!(
            breaker.state(),
            BreakerState::Closed {
                consecutive_failures: 2
            }
        );
    }

    #[test]
    fn after_the_cool_down_one_trial_closes_the_breaker_on_success() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(1, COOL_DOWN);
        breaker.record_failure(t0);

        let later = t0 + COOL_DOWN;
        assert_eq!(breaker.permit(later), Permit::Send);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);

        breaker.record_success();
        assert_eq!(
            breaker.state(),
            BreakerState::Closed {
                consecutive_failures: 0
            }
        );
    }

    #[test]
    fn a_failed_trial_opens_the_breaker_for_another_cool_down() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(5, COOL_DOWN);
        for _ in 0..5 {
            breaker.record_failure(t0);
        }
        let trial = t0 + COOL_DOWN + Duration::from_secs(1);
        assert_eq!(breaker.permit(trial), Permit::Send);

        // One failure is enough in half-open: the threshold is for a closed breaker.
        breaker.record_failure(trial);
        assert_eq!(breaker.permit(trial), Permit::WaitUntil(trial + COOL_DOWN));
    }

    #[test]
    fn a_zero_threshold_is_treated_as_one() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(0, COOL_DOWN);
        assert_eq!(breaker.failure_threshold(), 1);
        breaker.record_failure(t0);
        assert!(matches!(breaker.state(), BreakerState::Open { .. }));
    }
}
