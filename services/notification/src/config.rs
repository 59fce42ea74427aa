//! The notification service's configuration.

use std::fmt;

use migration::database::DatabaseConfig;
use nats::{NatsConfig, OutboxConfig};

/// Settings only the notification service has: where mail goes out.
#[derive(Clone, clap::Args)]
pub struct NotificationSettings {
    #[arg(long = "smtp-host", env = "SMTP_HOST", default_value = "127.0.0.1")]
    pub smtp_host: String,
    /// 1025 is MailHog's (and maildev's) SMTP port.
    #[arg(long = "smtp-port", env = "SMTP_PORT", default_value_t = 1025)]
    pub smtp_port: u16,
    #[arg(
        long = "smtp-from",
        env = "SMTP_FROM",
        default_value = "Larder <alerts@larder.local>"
    )]
    pub smtp_from: String,
    #[arg(long = "smtp-username", env = "SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    #[arg(long = "smtp-password", env = "SMTP_PASSWORD")]
    pub smtp_password: Option<String>,
    /// STARTTLS/TLS to the SMTP server (off for a local inbox).
    #[arg(long = "smtp-tls", env = "SMTP_TLS", default_value_t = false)]
    pub smtp_tls: bool,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            smtp_host: "127.0.0.1".into(),
            smtp_port: 1025,
            smtp_from: "Larder <alerts@larder.local>".into(),
            smtp_username: None,
            smtp_password: None,
            smtp_tls: false,
        }
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
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub outbox: OutboxConfig,
    pub settings: NotificationSettings,
}
