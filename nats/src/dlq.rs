//! Dead letters (SPEC §5 rule 7): a message no handler can process goes to `dlq.<consumer>` in the
//! `DLQ` stream, body unchanged, with its original headers and `Larder-Dlq-*` headers saying
//! which consumer gave up, why, and after how many deliveries.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;

use crate::topology::subjects;
use crate::{Namespace, NatsError};

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
