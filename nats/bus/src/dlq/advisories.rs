//! The server's own give-ups as dead letters: its max-deliveries and terminated advisories
//! (SPEC §5 rule 7), for what the consumer runner never saw.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::RawMessageErrorKind;
use futures::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{DeadLetter, publish, read_error};
use crate::topology::{DEAD_LETTERS, STREAMS};
use crate::{Namespace, NatsError};

/// The server's advisory when a consumer reached max deliveries with the message still unacked:
/// `<prefix>.<STREAM>.<CONSUMER>`.
pub const MAX_DELIVERIES_ADVISORY: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES";
/// The server's advisory when a message was terminated (`AckKind::Term`).
pub const TERMINATED_ADVISORY: &str = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED";
/// The reason of a dead letter that only the max-deliveries advisory saw.
pub const MAX_DELIVERIES_REASON: &str = "max deliveries reached (advisory)";
/// The reason of a dead letter that only the terminated advisory saw.
pub const TERMINATED_REASON: &str = "terminated (advisory)";

/// The fields both advisories share (nats-server 2.9 and newer; `reason` is 2.11+).
#[derive(Debug, Deserialize)]
struct ConsumerAdvisory {
    stream: String,
    consumer: String,
    stream_seq: u64,
    deliveries: i64,
    #[serde(default)]
    reason: Option<String>,
}

/// Turns the server's max-deliveries and terminated advisories into dead letters (SPEC §5 rule 7).
///
/// The consumer runner dead-letters what it gives up on itself. The advisories catch what it
/// never saw: a message whose deliveries all timed out (an instance crashed or hung with it in
/// hand) and was dropped by the server at `max_deliver`, or one terminated by other code. The
/// message is still in its (limits-retention) stream: it is fetched by sequence and published
/// with [`publish`], whose message id `dlq-<consumer>-<sequence>` makes it a no-op when the
/// runner had already dead-lettered the same message (inside the duplicate window).
///
/// Advisories are core NATS: one emitted while no watcher is subscribed is not seen. The server
/// emits max-deliveries when a consumer *pulls* after the last ack wait ran out, so a watcher
/// running in every service process hears it whenever someone consumes. Several watchers are
/// harmless: the message id dedups their dead letters.
pub struct AdvisoryWatcher {
    js: jetstream::Context,
    namespace: Namespace,
    advisories: futures::stream::SelectAll<async_nats::Subscriber>,
}

enum AdvisoryKind {
    MaxDeliveries,
    Terminated,
}

impl AdvisoryWatcher {
    /// Subscribes to both advisories of every stream of the namespace except `DLQ`, and returns
    /// once the server has the subscriptions (so nothing emitted after this is missed).
    pub async fn subscribe(js: &jetstream::Context, ns: &Namespace) -> Result<Self, NatsError> {
        let client = js.client();
        let mut advisories = futures::stream::SelectAll::new();
        for spec in STREAMS.iter().filter(|spec| spec.name != DEAD_LETTERS.name) {
            let stream = ns.stream(spec.name);
            for prefix in [MAX_DELIVERIES_ADVISORY, TERMINATED_ADVISORY] {
                let subscriber = client
                    .subscribe(format!("{prefix}.{stream}.*"))
                    .await
                    .map_err(|e| read_error(&stream, e))?;
                advisories.push(subscriber);
            }
        }
        client
            .flush()
            .await
            .map_err(|e| read_error(&ns.stream(DEAD_LETTERS.name), e))?;
        Ok(Self {
            js: js.clone(),
            namespace: ns.clone(),
            advisories,
        })
    }

    /// Handles advisories until `shutdown` is cancelled (or the connection is closed for good).
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(namespace = %self.namespace, "watching max-deliveries and terminated advisories");
        loop {
            let advisory = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                next = self.advisories.next() => match next {
                    Some(advisory) => advisory,
                    None => break,
                },
            };
            self.handle(advisory).await;
        }
        tracing::info!("stopped watching advisories");
    }

    async fn handle(&self, advisory: async_nats::Message) {
        let kind = if advisory.subject.starts_with(MAX_DELIVERIES_ADVISORY) {
            AdvisoryKind::MaxDeliveries
        } else {
            AdvisoryKind::Terminated
        };
        let parsed: ConsumerAdvisory = match serde_json::from_slice(&advisory.payload) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!(subject = %advisory.subject, %error, "unreadable advisory");
                return;
            }
        };
        let reason = match (kind, parsed.reason.as_deref()) {
            (AdvisoryKind::MaxDeliveries, _) => MAX_DELIVERIES_REASON.to_owned(),
            (AdvisoryKind::Terminated, Some(why)) if !why.is_empty() => {
                format!("{TERMINATED_REASON}: {why}")
            }
            (AdvisoryKind::Terminated, _) => TERMINATED_REASON.to_owned(),
        };
        // The runner names dead letters by the durable without namespace: the same message id.
        let own_prefix = self.namespace.durable("");
        let consumer = parsed
            .consumer
            .strip_prefix(own_prefix.as_str())
            .unwrap_or(&parsed.consumer)
            .to_owned();

        let mut delay = Duration::from_millis(200);
        for attempt in 1..=5 {
            match self.dead_letter(&parsed, &consumer, &reason).await {
                Ok(()) => return,
                Err(DeadLetterFailure::Gone) => {
                    tracing::error!(stream = %parsed.stream, stream_sequence = parsed.stream_seq, %consumer, %reason,
                        "message no longer in its stream: cannot dead-letter it");
                    return;
                }
                Err(DeadLetterFailure::Nats(error)) => {
                    tracing::warn!(stream = %parsed.stream, stream_sequence = parsed.stream_seq, %consumer, attempt, error = %error,
                        "could not dead-letter from an advisory; retrying");
                }
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        tracing::error!(stream = %parsed.stream, stream_sequence = parsed.stream_seq, %consumer, %reason,
            "gave up dead-lettering from an advisory");
    }

    async fn dead_letter(
        &self,
        advisory: &ConsumerAdvisory,
        consumer: &str,
        reason: &str,
    ) -> Result<(), DeadLetterFailure> {
        let stream = self
            .js
            .get_stream(&advisory.stream)
            .await
            .map_err(|e| DeadLetterFailure::Nats(read_error(&advisory.stream, e)))?;
        let stored = match stream.get_raw_message(advisory.stream_seq).await {
            Ok(stored) => stored,
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {
                return Err(DeadLetterFailure::Gone);
            }
            Err(e) => return Err(DeadLetterFailure::Nats(read_error(&advisory.stream, e))),
        };
        tracing::error!(stream = %advisory.stream, stream_sequence = advisory.stream_seq, %consumer,
            deliveries = advisory.deliveries, %reason, "dead-lettering message from an advisory");
        publish(
            &self.js,
            &self.namespace,
            DeadLetter {
                consumer: consumer.to_owned(),
                subject: stored.subject.to_string(),
                stream_sequence: advisory.stream_seq,
                deliveries: advisory.deliveries,
                reason: reason.to_owned(),
                headers: Some(stored.headers),
                payload: stored.payload,
            },
        )
        .await
        .map_err(DeadLetterFailure::Nats)
    }
}

enum DeadLetterFailure {
    /// Aged out or deleted: nothing left to dead-letter.
    Gone,
    Nats(NatsError),
}

/// Subscribes to the advisories of the namespace's streams and dead-letters from them until
/// `shutdown` is cancelled; see [`AdvisoryWatcher`]. Run one in every service process (or at
/// least one per deployment): `tokio::spawn(dlq::watch_advisories(js, ns, shutdown))`.
pub async fn watch_advisories(
    js: jetstream::Context,
    ns: Namespace,
    shutdown: CancellationToken,
) -> Result<(), NatsError> {
    AdvisoryWatcher::subscribe(&js, &ns)
        .await?
        .run(shutdown)
        .await;
    Ok(())
}
