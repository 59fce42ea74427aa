//! Dead letters (SPEC §5 rule 7): a message no handler can process goes to `dlq.<consumer>` in the
//! `DLQ` stream, body unchanged, with its original headers and `Larder-Dlq-*` headers saying
//! which consumer gave up, why, and after how many deliveries.
//!
//! - [`publish`]: store one (the consumer runner calls it).
//! - [`list`]: the newest dead letters of a namespace (`larder dlq list`).
//! - [`replay`]: put one back on its original subject under a new message id (`larder dlq replay`).
//! - [`advisories`] ([`watch_advisories`], [`AdvisoryWatcher`]): dead-letter what the server gave
//!   up on without the runner seeing it (its max-deliveries and terminated advisories).

use async_nats::HeaderMap;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::RawMessageErrorKind;
use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::topology::DEAD_LETTERS;
use crate::{Namespace, NatsError};
use larder_contract::subjects;

pub mod advisories;

pub use advisories::{
    AdvisoryWatcher, MAX_DELIVERIES_ADVISORY, MAX_DELIVERIES_REASON, TERMINATED_ADVISORY,
    TERMINATED_REASON, watch_advisories,
};

pub const CONSUMER_HEADER: &str = "Larder-Dlq-Consumer";
pub const REASON_HEADER: &str = "Larder-Dlq-Reason";
pub const SUBJECT_HEADER: &str = "Larder-Dlq-Subject";
pub const STREAM_SEQUENCE_HEADER: &str = "Larder-Dlq-Stream-Sequence";
pub const DELIVERIES_HEADER: &str = "Larder-Dlq-Deliveries";

/// A message a consumer gave up on.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The consumer's durable name, without namespace.
    pub consumer: String,
    /// The subject the message was published on.
    pub subject: String,
    pub stream_sequence: u64,
    pub deliveries: i64,
    pub reason: String,
    pub headers: Option<HeaderMap>,
    pub payload: Bytes,
}

/// Publishes the dead letter and waits for the server to store it. The message id is derived from
/// consumer and stream sequence, so publishing the same dead letter twice stores it once.
pub async fn publish(
    js: &jetstream::Context,
    ns: &Namespace,
    dead: DeadLetter,
) -> Result<(), NatsError> {
    let subject = ns.subject(&subjects::dead_letter(&dead.consumer));
    let mut headers = HeaderMap::new();
    if let Some(original) = &dead.headers {
        for (name, values) in original.iter() {
            // The original message id would make the server drop this as a duplicate.
            if AsRef::<str>::as_ref(name) == "Nats-Msg-Id" {
                continue;
            }
            for value in values {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    // Header values are single lines.
    let reason = dead.reason.replace(['\r', '\n'], " ");
    headers.insert(CONSUMER_HEADER, dead.consumer.as_str());
    headers.insert(REASON_HEADER, reason.as_str());
    headers.insert(SUBJECT_HEADER, dead.subject.as_str());
    headers.insert(
        STREAM_SEQUENCE_HEADER,
        dead.stream_sequence.to_string().as_str(),
    );
    headers.insert(DELIVERIES_HEADER, dead.deliveries.to_string().as_str());
    let message = PublishMessage::build()
        .payload(dead.payload)
        .headers(headers)
        .message_id(format!("dlq-{}-{}", dead.consumer, dead.stream_sequence));
    let publish_error = |source| NatsError::Publish {
        subject: subject.clone(),
        source,
    };
    js.send_publish(subject.clone(), message)
        .await
        .map_err(publish_error)?
        .await
        .map_err(publish_error)?;
    Ok(())
}

/// Why a dead letter could not be read or replayed: a wrong sequence (match the variants), or
/// the server ([`DeadLetterError::Nats`]).
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("no dead letter at sequence {0}")]
    NotFound(u64),
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("message {0} of the dead-letter stream has no {SUBJECT_HEADER} header")]
    NotADeadLetter(u64),
    #[error(
        "dead letter {sequence} came from {subject:?}, which is not a subject of this namespace"
    )]
    ForeignSubject { sequence: u64, subject: String },
}

/// A dead letter as stored in the namespace's `DLQ` stream: what `larder dlq list` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetterRecord {
    /// Its sequence in the `DLQ` stream: what [`replay`] takes.
    pub sequence: u64,
    /// The consumer that gave up (durable name without namespace).
    pub consumer: String,
    /// The subject the message was first published on (namespaced, as stored).
    pub subject: String,
    /// The message's sequence in its own stream.
    pub stream_sequence: Option<u64>,
    /// Deliveries made before the consumer gave up.
    pub deliveries: Option<i64>,
    pub reason: String,
    /// When the dead letter was stored.
    pub stored_at: DateTime<Utc>,
    pub payload_bytes: usize,
    /// The first [`PREVIEW_CHARS`] characters of the body (lossy UTF-8).
    pub payload_preview: String,
    /// The envelope's `data.merchant_id` and `data.order_id`, when the body is an envelope
    /// that has them: whom the dead letter concerns (none for an unparseable body).
    pub merchant_id: Option<i64>,
    pub order_id: Option<uuid::Uuid>,
}

/// Characters of the body a [`DeadLetterRecord`] shows.
pub const PREVIEW_CHARS: usize = 200;

impl DeadLetterRecord {
    fn from_stored(message: &StreamMessage) -> Self {
        let header = |name: &str| {
            message
                .headers
                .get(name)
                .map(|value| value.as_str().to_owned())
        };
        let text = String::from_utf8_lossy(&message.payload);
        let mut payload_preview: String = text.chars().take(PREVIEW_CHARS).collect();
        if text.chars().nth(PREVIEW_CHARS).is_some() {
            payload_preview.push('…');
        }
        // Only the two fields are read: the rest of the body may be anything.
        #[derive(serde::Deserialize)]
        struct Concerns {
            merchant_id: Option<i64>,
            order_id: Option<uuid::Uuid>,
        }
        #[derive(serde::Deserialize)]
        struct Body {
            data: Concerns,
        }
        let concerns = serde_json::from_slice::<Body>(&message.payload).ok();
        Self {
            merchant_id: concerns.as_ref().and_then(|c| c.data.merchant_id),
            order_id: concerns.and_then(|c| c.data.order_id),
            sequence: message.sequence,
            consumer: header(CONSUMER_HEADER).unwrap_or_default(),
            subject: header(SUBJECT_HEADER).unwrap_or_default(),
            stream_sequence: header(STREAM_SEQUENCE_HEADER).and_then(|s| s.parse().ok()),
            deliveries: header(DELIVERIES_HEADER).and_then(|s| s.parse().ok()),
            reason: header(REASON_HEADER).unwrap_or_default(),
            stored_at: stored_at(message),
            payload_bytes: message.payload.len(),
            payload_preview,
        }
    }
}

fn stored_at(message: &StreamMessage) -> DateTime<Utc> {
    i64::try_from(message.time.unix_timestamp_nanos())
        .map(DateTime::from_timestamp_nanos)
        .unwrap_or_default()
}

/// Where [`replay`] put the message back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplayedTo {
    /// The original subject, now holding the message again.
    pub subject: String,
    /// The stream that stored it, and its new sequence there.
    pub stream: String,
    pub stream_sequence: u64,
    /// The new `Nats-Msg-Id`: `replay-<dlq sequence>-<uuid>`.
    pub message_id: String,
}

pub(crate) fn read_error(stream: &str, source: impl Into<async_nats::Error>) -> NatsError {
    NatsError::ReadStream {
        stream: stream.to_owned(),
        source: source.into(),
    }
}

/// The namespace's `DLQ` stream, its name and its state (first and last sequence, count).
async fn dead_letter_stream(
    js: &jetstream::Context,
    ns: &Namespace,
) -> Result<(String, jetstream::stream::Stream, jetstream::stream::State), NatsError> {
    let name = ns.stream(DEAD_LETTERS.name);
    let stream = js
        .get_stream(&name)
        .await
        .map_err(|e| read_error(&name, e))?;
    let state = stream
        .get_info()
        .await
        .map_err(|e| read_error(&name, e))?
        .state;
    Ok((name, stream, state))
}

/// Reads a stored message by sequence; `DeadLetterError::NotFound` when there is none.
async fn stored_dead_letter(
    stream: &jetstream::stream::Stream,
    name: &str,
    sequence: u64,
) -> Result<StreamMessage, DeadLetterError> {
    stream
        .get_raw_message(sequence)
        .await
        .map_err(|e| match e.kind() {
            RawMessageErrorKind::NoMessageFound => DeadLetterError::NotFound(sequence),
            _ => read_error(name, e).into(),
        })
}

/// The newest `limit` dead letters of the namespace (every consumer), oldest first and newest
/// last, as `larder dlq list` shows them. Reads by sequence, so it works on any server version
/// and changes nothing in the stream (no consumer is created).
pub async fn list(
    js: &jetstream::Context,
    ns: &Namespace,
    limit: usize,
) -> Result<Vec<DeadLetterRecord>, DeadLetterError> {
    let (name, stream, state) = dead_letter_stream(js, ns).await?;
    let mut records = Vec::with_capacity(limit.min(1024));
    if state.messages == 0 {
        return Ok(records);
    }
    // Newest first, skipping deleted sequences, until `limit` are found.
    let mut sequence = state.last_sequence;
    while records.len() < limit && sequence >= state.first_sequence && sequence > 0 {
        match stored_dead_letter(&stream, &name, sequence).await {
            Ok(message) => records.push(DeadLetterRecord::from_stored(&message)),
            // Deleted from the stream: skipped.
            Err(DeadLetterError::NotFound(_)) => {}
            Err(error) => return Err(error),
        }
        sequence -= 1;
    }
    records.reverse();
    Ok(records)
}

/// Dead letter `sequence`, or `None` when the namespace's `DLQ` stream holds no such message.
pub async fn get(
    js: &jetstream::Context,
    ns: &Namespace,
    sequence: u64,
) -> Result<Option<DeadLetterRecord>, DeadLetterError> {
    let (name, stream, state) = dead_letter_stream(js, ns).await?;
    // The server answers a sequence outside the stream with an error of its own: none here.
    if sequence < state.first_sequence.max(1) || sequence > state.last_sequence {
        return Ok(None);
    }
    match stored_dead_letter(&stream, &name, sequence).await {
        Ok(message) => Ok(Some(DeadLetterRecord::from_stored(&message))),
        Err(DeadLetterError::NotFound(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Whether a header of a stored dead letter goes back out with a replay: not the dead-letter
/// headers, and none of the `Nats-*` control headers (the old message id would be dropped as a
/// duplicate; expectations or a rollup would misfire).
fn replayable_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !lower.starts_with("larder-dlq-") && !lower.starts_with("nats-")
}

/// Re-publishes dead letter `sequence` (from [`list`]) to its original subject: the stored body
/// and original headers, without the `Larder-Dlq-*` ones, under a new `Nats-Msg-Id`
/// (`replay-<sequence>-<uuid>`) so the stream stores it again and its consumers see it again.
/// Their inboxes still recognise the envelope id if it had been processed. The dead letter stays
/// in the `DLQ` stream; replaying it twice delivers it twice.
pub async fn replay(
    js: &jetstream::Context,
    ns: &Namespace,
    sequence: u64,
) -> Result<ReplayedTo, DeadLetterError> {
    let (name, stream, _) = dead_letter_stream(js, ns).await?;
    let stored = stored_dead_letter(&stream, &name, sequence).await?;
    let subject = stored
        .headers
        .get(SUBJECT_HEADER)
        .map(|value| value.as_str().to_owned())
        .filter(|subject| !subject.is_empty())
        .ok_or(DeadLetterError::NotADeadLetter(sequence))?;
    // Never outside the namespace, and never back into the dead-letter stream itself.
    let local = ns.strip_subject(&subject);
    let dlq_root = DEAD_LETTERS.subjects.trim_end_matches('>');
    if local.is_none_or(|local| local.starts_with(dlq_root)) {
        return Err(DeadLetterError::ForeignSubject { sequence, subject });
    }

    let mut headers = HeaderMap::new();
    for (header, values) in stored.headers.iter() {
        if replayable_header(header.as_ref()) {
            for value in values {
                headers.append(header.clone(), value.clone());
            }
        }
    }
    let message_id = format!("replay-{sequence}-{}", uuid::Uuid::new_v4().simple());
    let message = PublishMessage::build()
        .payload(stored.payload)
        .headers(headers)
        .message_id(message_id.clone());
    let publish_error = |source| NatsError::Publish {
        subject: subject.clone(),
        source,
    };
    let ack = js
        .send_publish(subject.clone(), message)
        .await
        .map_err(publish_error)?
        .await
        .map_err(publish_error)?;
    tracing::info!(dlq_sequence = sequence, %subject, stream = %ack.stream, stream_sequence = ack.sequence, "dead letter replayed");
    Ok(ReplayedTo {
        subject,
        stream: ack.stream,
        stream_sequence: ack.sequence,
        message_id,
    })
}
