//! Sending one email over SMTP with lettre's pooled async transport, and telling a dead server
//! (retry when it is back, feeds the circuit breaker) from a deferred message (retry later) and a
//! refusal (dead-letter).

use anyhow::Context as _;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use crate::config::NotificationSettings;
use crate::domain::LowStockEmail;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Why an email did not go out.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The server could not be reached, timed out, or said it is closing the channel (421): it
    /// is down for every message, not just this one. Counts as a circuit-breaker failure.
    #[error("SMTP server unavailable: {0}")]
    Unavailable(String),
    /// The server is up but deferred this message (another 4xx, e.g. a full mailbox): try this
    /// message again later; the others are not held up.
    #[error("SMTP server deferred the message: {0}")]
    Deferred(String),
    /// The server refused the message for good (5xx): retrying the same message cannot help
    /// (RFC 5321 §4.2.1). The server did answer.
    #[error("refused by the SMTP server: {0}")]
    Permanent(String),
    /// The message cannot be built (an invalid recipient address); the server was not contacted.
    #[error("invalid email: {0}")]
    Invalid(String),
}

/// RFC 5321 §3.8: "421 Service not available, closing transmission channel".
const SERVICE_NOT_AVAILABLE: u16 = 421;

impl From<lettre::transport::smtp::Error> for MailError {
    fn from(error: lettre::transport::smtp::Error) -> Self {
        let code = error.status().map(u16::from);
        if error.is_permanent() {
            Self::Permanent(error.to_string())
        } else if error.is_transient() && code != Some(SERVICE_NOT_AVAILABLE) {
            Self::Deferred(error.to_string())
        } else {
            // Connection refused, TLS, timeouts, a dropped connection, 421.
            Self::Unavailable(error.to_string())
        }
    }
}

/// The SMTP client. Build it inside the tokio runtime (the pool spawns a reaper task).
pub struct Mailer {
    // Always `Some` until dropped; see `Drop`.
    transport: Option<Transport>,
    from: Mailbox,
}

impl Mailer {
    /// A pooled transport from the settings: plain SMTP to `host:port` when TLS is off (a local
    /// inbox), STARTTLS when on; credentials when a username is set; the configured timeout.
    pub fn new(settings: &NotificationSettings) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .smtp_from
            .parse()
            .with_context(|| format!("Failed to parse SMTP_FROM {:?}", settings.smtp_from))?;
        let mut builder = if settings.smtp_tls {
            Transport::starttls_relay(&settings.smtp_host)
                .context("Failed to set up STARTTLS to the SMTP server")?
        } else {
            Transport::builder_dangerous(settings.smtp_host.as_str())
        }
        .port(settings.smtp_port)
        .timeout(Some(settings.smtp_timeout()));
        if let Some(username) = &settings.smtp_username {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                settings.smtp_password.clone().unwrap_or_default(),
            ));
        }
        Ok(Self {
            transport: Some(builder.build()),
            from,
        })
    }

    /// Sends `email` to `to`. The Message-ID is derived from the event id, so the copies a crash
    /// between send and record could produce carry the same id (receivers may fold them).
    pub async fn send(
        &self,
        to: &str,
        email: &LowStockEmail,
        event_id: Uuid,
    ) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| MailError::Invalid(format!("invalid recipient address {to:?}: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!("<stock-low-{event_id}@larder.local>")))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| MailError::Invalid(format!("could not build the email: {e}")))?;
        self.transport
            .as_ref()
            .expect("the transport is only taken in Drop")
            .send(message)
            .await?;
        Ok(())
    }
}

/// lettre's pool spawns a task on the tokio runtime when dropped and panics without one. Startup stops the notifier inside the runtime; this covers a drop that still
/// happens outside it (a test that panicked): enter a throwaway runtime for the drop.
impl Drop for Mailer {
    fn drop(&mut self) {
        let Some(transport) = self.transport.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(transport);
            return;
        }
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(runtime) => {
                let _guard = runtime.enter();
                drop(transport);
            }
            // Without any runtime, leaking the idle connections beats a panic in Drop.
            Err(_) => std::mem::forget(transport),
        }
    }
}
