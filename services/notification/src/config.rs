//! The notification service's configuration.

use std::fmt;
use std::time::Duration;

use larder_bus::topology::{self, ConsumerSpec};

use crate::domain;

/// Settings only the notification service has: where mail goes out, how often it is retried and
/// when the circuit breaker opens.
#[derive(Clone, clap::Args)]
pub struct NotificationSettings {
    #[arg(long, env, default_value = "127.0.0.1")]
    pub smtp_host: String,
    /// 1025 is MailHog's (and maildev's) SMTP port.
    #[arg(long, env, default_value_t = 1025)]
    pub smtp_port: u16,
    #[arg(long, env, default_value = "Larder <alerts@larder.local>")]
    pub smtp_from: String,
    #[arg(long, env)]
    pub smtp_username: Option<String>,
    #[arg(long, env)]
    pub smtp_password: Option<String>,
    /// STARTTLS to the SMTP server (off for a local inbox); set the port too (usually 587).
    #[arg(long, env, default_value_t = false)]
    pub smtp_tls: bool,
    /// Connect and command timeout of one SMTP conversation, in seconds.
    #[arg(long, env, default_value_t = 10)]
    pub smtp_timeout_secs: u64,
    /// Deliveries of one `stock.low` before it is dead-lettered and its notification marked
    /// failed (the consumer's `max_deliver`).
    #[arg(
        id = "notification_max_attempts",
        long = "notification-max-attempts",
        env = "NOTIFICATION_MAX_ATTEMPTS",
        default_value_t = 6,
        value_parser = clap::value_parser!(i64).range(2..=100)
    )]
    pub max_attempts: i64,
    /// First retry delay in seconds; each further retry waits twice as long, up to
    /// `notification-retry-max-secs`. It is also how long the first delivery may take.
    #[arg(
        id = "notification_retry_base_secs",
        long = "notification-retry-base-secs",
        env = "NOTIFICATION_RETRY_BASE_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub retry_base_secs: u64,
    /// Longest retry delay, in seconds.
    #[arg(
        id = "notification_retry_max_secs",
        long = "notification-retry-max-secs",
        env = "NOTIFICATION_RETRY_MAX_SECS",
        default_value_t = 480,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub retry_max_secs: u64,
    /// `stock.low` events pulled at once. Keep it small: sending is slow and the ack timers of
    /// pulled messages run while earlier ones are sent.
    #[arg(
        id = "notification_batch_size",
        long = "notification-batch-size",
        env = "NOTIFICATION_BATCH_SIZE",
        default_value_t = 4
    )]
    pub batch_size: usize,
    /// Consecutive SMTP failures that open the circuit breaker.
    #[arg(
        id = "smtp_breaker_failures",
        long = "smtp-breaker-failures",
        env = "SMTP_BREAKER_FAILURES",
        default_value_t = 3
    )]
    pub breaker_failures: u32,
    /// How long the open breaker keeps the SMTP server alone before one trial send, in
    /// milliseconds; also the pace at which a held email tries a server that is down. It bounds
    /// how late an email goes out after the server is back. Keep it below the first retry delay
    /// minus the SMTP timeout, so a held message gets its trial before its ack wait runs out.
    #[arg(
        id = "smtp_breaker_cool_down_ms",
        long = "smtp-breaker-cool-down-ms",
        env = "SMTP_BREAKER_COOL_DOWN_MS",
        default_value_t = 2_000
    )]
    pub breaker_cool_down_ms: u64,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        larder_bus::config::declared_defaults()
    }
}

// The password stays out of logs.
impl fmt::Debug for NotificationSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationSettings")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_from", &self.smtp_from)
            .field("smtp_username", &self.smtp_username)
            .field("smtp_password", &self.smtp_password.as_ref().map(|_| "***"))
            .field("smtp_tls", &self.smtp_tls)
            .field("smtp_timeout_secs", &self.smtp_timeout_secs)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base_secs", &self.retry_base_secs)
            .field("retry_max_secs", &self.retry_max_secs)
            .field("batch_size", &self.batch_size)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cool_down_ms", &self.breaker_cool_down_ms)
            .finish()
    }
}

impl NotificationSettings {
    pub fn smtp_timeout(&self) -> Duration {
        Duration::from_secs(self.smtp_timeout_secs)
    }

    pub fn breaker_cool_down(&self) -> Duration {
        Duration::from_millis(self.breaker_cool_down_ms)
    }

    /// The `stock.low` consumer with this service's retry schedule: `max_attempts` deliveries,
    /// exponential backoff from `retry_base_secs` to `retry_max_secs`. With the defaults it is
    /// exactly [`topology::NOTIFICATION_STOCK_LOW`].
    pub fn consumer_spec(&self) -> ConsumerSpec {
        // The server wants at least one retry step (and more deliveries than steps).
        let max_deliver = self.max_attempts.max(2);
        let schedule =
            domain::retry_schedule_secs(self.retry_base_secs, self.retry_max_secs, max_deliver);
        ConsumerSpec {
            max_deliver,
            backoff_secs: schedule.into(),
            ..topology::NOTIFICATION_STOCK_LOW
        }
    }
}

/// Everything the notification service needs; tests build it in code.
pub type Config = larder_bus::config::ServiceConfig<NotificationSettings>;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: NotificationSettings,
    }

    /// Parses `args` as the command line alone: every argument's variable is taken off, so
    /// the SMTP_* and NOTIFICATION_* variables of whoever runs the tests change nothing.
    fn parse_without_env(args: &[&str]) -> Result<NotificationSettings, clap::Error> {
        let matches = Cli::command()
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(args)?;
        Ok(Cli::from_arg_matches(&matches)?.settings)
    }

    #[test]
    fn the_command_line_is_consistent_and_defaults_to_the_default_settings() {
        Cli::command().debug_assert();
        let parsed = parse_without_env(&["notification"]).unwrap();
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", NotificationSettings::default())
        );
    }

    #[test]
    fn a_single_delivery_is_refused_as_it_leaves_no_retry() {
        let error = parse_without_env(&["notification", "--notification-max-attempts", "1"])
            .expect_err("one delivery leaves no retry");
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(
            error.to_string().contains("--notification-max-attempts"),
            "{error}"
        );
    }

    #[test]
    fn the_default_settings_give_the_topology_consumer() {
        assert_eq!(
            NotificationSettings::default().consumer_spec(),
            topology::NOTIFICATION_STOCK_LOW
        );
    }

    #[test]
    fn short_schedules_for_tests_keep_the_server_rule_of_fewer_steps_than_deliveries() {
        let settings = NotificationSettings {
            max_attempts: 3,
            retry_base_secs: 1,
            retry_max_secs: 1,
            ..Default::default()
        };
        let spec = settings.consumer_spec();
        assert_eq!(spec.max_deliver, 3);
        assert_eq!(spec.backoff_secs[..], [1, 1]);
    }
}
