//! The event envelope (SPEC §4): `{id, type, version, occurred_at, correlation_id, data}`.
//!
//! `id` identifies the event for good: it is the outbox row id, the `Nats-Msg-Id` the relay
//! publishes with, and what consumers record in their inbox. A replay publishes the same envelope
//! under a new message id, and inboxes still recognise it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::trace::TraceParent;

/// An event payload: its type name, schema version and subject.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The envelope's `type`, e.g. `order.created`.
    const TYPE: &'static str;
    /// The payload's schema version; a consumer refuses versions it does not know (SPEC §5 rule 7).
    const VERSION: u16;
    /// The subject it is published on, without namespace.
    const SUBJECT: &'static str;
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u16,
    pub occurred_at: DateTime<Utc>,
    /// The `X-Request-Id` of the request that caused this event, carried from event to event.
    pub correlation_id: Option<String>,
    pub data: T,
    /// The trace it belongs to: not in the JSON, in the message's `traceparent` header
    /// ([`crate::trace`]; the bus reads and writes it).
    #[serde(skip)]
    pub trace: Option<TraceParent>,
}

impl<T: Event> Envelope<T> {
    /// A new event with a time-ordered id.
    pub fn new(data: T, correlation_id: Option<String>) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: T::TYPE.to_owned(),
            version: T::VERSION,
            occurred_at: Utc::now(),
            correlation_id,
            data,
            trace: None,
        }
    }
}

/// Why a message could not be turned into an event. Every variant is poison: retrying cannot help.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JSON event envelope: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("unexpected event type {found:?} (expected {expected})")]
    UnknownType { found: String, expected: String },
    #[error("unknown version {found} of {kind} (this consumer knows version {known})")]
    UnknownVersion {
        kind: String,
        found: u16,
        known: u16,
    },
    #[error("invalid {kind} data: {source}")]
    InvalidData {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Something a consumer can decode from a message payload: one event type, or an enum of several
/// (for a consumer following a wildcard subject).
pub trait Decode: Sized + Send + 'static {
    fn decode(payload: &[u8]) -> Result<Self, DecodeError>;
    /// The envelope id: what the inbox records.
    fn event_id(&self) -> Uuid;
    /// The trace of the message's `traceparent` header, for the envelope (see [`Envelope::trace`]).
    fn set_trace(&mut self, trace: Option<TraceParent>);
}

/// The envelope with its data still raw: the first step of decoding.
#[derive(Deserialize)]
pub struct RawEnvelope {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u16,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
    /// Kept as text until the type is known, then decoded once into it.
    pub data: Box<serde_json::value::RawValue>,
}

impl RawEnvelope {
    pub fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(payload).map_err(DecodeError::Malformed)
    }

    /// Checks type and version, then decodes the data.
    pub fn into_event<T: Event>(self) -> Result<Envelope<T>, DecodeError> {
        if self.kind != T::TYPE {
            return Err(DecodeError::UnknownType {
                found: self.kind,
                expected: T::TYPE.to_owned(),
            });
        }
        if self.version != T::VERSION {
            return Err(DecodeError::UnknownVersion {
                kind: self.kind,
                found: self.version,
                known: T::VERSION,
            });
        }
        let data =
            serde_json::from_str(self.data.get()).map_err(|source| DecodeError::InvalidData {
                kind: self.kind.clone(),
                source,
            })?;
        Ok(Envelope {
            id: self.id,
            kind: self.kind,
            version: self.version,
            occurred_at: self.occurred_at,
            correlation_id: self.correlation_id,
            data,
            trace: None,
        })
    }
}

impl<T: Event> Decode for Envelope<T> {
    fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        RawEnvelope::parse(payload)?.into_event()
    }

    fn event_id(&self) -> Uuid {
        self.id
    }

    fn set_trace(&mut self, trace: Option<TraceParent>) {
        self.trace = trace;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OrderCancelled;

    fn cancelled() -> Envelope<OrderCancelled> {
        Envelope::new(
            OrderCancelled {
                order_id: Uuid::new_v4(),
                merchant_id: 1,
                release_stock: true,
            },
            Some("req-1".into()),
        )
    }

    #[test]
    fn an_envelope_round_trips_with_the_spec_field_names() {
        let event = cancelled();
        let json = serde_json::to_value(&event).unwrap();
        for field in [
            "id",
            "type",
            "version",
            "occurred_at",
            "correlation_id",
            "data",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["type"], "order.cancelled");
        let bytes = serde_json::to_vec(&event).unwrap();
        assert_eq!(Envelope::<OrderCancelled>::decode(&bytes).unwrap(), event);
    }

    #[test]
    fn poison_is_told_apart_by_reason() {
        let cases: [(&[u8], &str); 3] = [
            (b"not json", "Malformed"),
            (br#"{"id":"00000000-0000-0000-0000-000000000001","type":"order.cancelled","version":99,"occurred_at":"2026-01-01T00:00:00Z","correlation_id":null,"data":{}}"#, "UnknownVersion"),
            (br#"{"id":"00000000-0000-0000-0000-000000000001","type":"order.cancelled","version":1,"occurred_at":"2026-01-01T00:00:00Z","correlation_id":null,"data":{"order_id":7}}"#, "InvalidData"),
        ];
        for (payload, expected) in cases {
            let error = Envelope::<OrderCancelled>::decode(payload).unwrap_err();
            assert!(
                format!("{error:?}").starts_with(expected),
                "{error:?} should be {expected}"
            );
        }
    }
}
