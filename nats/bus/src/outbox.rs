//! The transactional outbox (SPEC §5 rule 1): a state change and the events it causes commit in
//! one transaction. [`Outbox::enqueue`] writes the event as a row through the caller's
//! connection or transaction; the [`relay`](crate::relay) publishes it afterwards.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use serde_json::value::RawValue;

use crate::namespace::Namespace;
use larder_contract::envelope::{Envelope, Event};

/// Header carrying the envelope's correlation id, for operators reading streams.
pub const CORRELATION_ID_HEADER: &str = "Correlation-Id";
/// Header carrying the envelope's type.
pub const EVENT_TYPE_HEADER: &str = "Event-Type";

/// Writes events into the outbox table, under the service's namespace.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    namespace: Namespace,
}

impl Outbox {
    pub fn new(namespace: Namespace) -> Self {
        Self { namespace }
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Adds one event to the caller's transaction. The row id is the envelope id, which the relay
    /// publishes as `Nats-Msg-Id`.
    pub async fn enqueue<E: Event>(
        &self,
        db: &impl ConnectionTrait,
        event: &Envelope<E>,
    ) -> Result<(), DbErr> {
        self.enqueue_all(db, std::slice::from_ref(event)).await
    }

    /// Adds many events of one type in one statement, in their order. Each column goes as one
    /// array: four parameters whatever the number of rows, and the JSON as the text serde wrote,
    /// which PostgreSQL parses into `jsonb` (no `serde_json::Value` tree per row on this side).
    pub async fn enqueue_all<E: Event>(
        &self,
        db: &impl ConnectionTrait,
        events: &[Envelope<E>],
    ) -> Result<(), DbErr> {
        if events.is_empty() {
            return Ok(());
        }
        let subject = self.namespace.subject(E::SUBJECT);
        let (mut ids, mut payloads, mut headers) = (
            Vec::with_capacity(events.len()),
            Vec::with_capacity(events.len()),
            Vec::with_capacity(events.len()),
        );
        for event in events {
            let (payload, event_headers) = encode(event)?;
            ids.push(event.id);
            payloads.push(Box::<str>::from(payload).into_string());
            headers.push(Box::<str>::from(event_headers).into_string());
        }
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO outbox (id, subject, payload, headers) \
             SELECT e.id, $2, e.payload::jsonb, e.headers::jsonb \
             FROM unnest($1::uuid[], $3::text[], $4::text[]) WITH ORDINALITY \
                 AS e(id, payload, headers, n) \
             ORDER BY e.n",
            [ids.into(), subject.into(), payloads.into(), headers.into()],
        ))
        .await?;
        Ok(())
    }

    /// The outbox row's values, for a caller that writes the row in a statement of its own (the
    /// order API inserts an order and its event in one statement).
    pub fn prepare<E: Event>(&self, event: &Envelope<E>) -> Result<PreparedEvent, DbErr> {
        let (payload, headers) = encode(event)?;
        Ok(PreparedEvent {
            id: event.id,
            subject: self.namespace.subject(E::SUBJECT),
            payload,
            headers,
        })
    }
}

/// An event's outbox payload (the envelope) and headers (a flat JSON object), encoded.
fn encode<E: Event>(event: &Envelope<E>) -> Result<(Box<RawValue>, Box<RawValue>), DbErr> {
    let encode_error = |e: serde_json::Error| DbErr::Custom(format!("encode event: {e}"));
    let payload = serde_json::value::to_raw_value(event).map_err(encode_error)?;
    let mut headers = vec![(EVENT_TYPE_HEADER, event.kind.clone())];
    if let Some(trace) = &event.trace {
        headers.push((
            larder_contract::trace::TRACEPARENT_HEADER,
            trace.to_string(),
        ));
    }
    if let Some(correlation_id) = &event.correlation_id {
        headers.push((CORRELATION_ID_HEADER, correlation_id.clone()));
    }
    let headers = serde_json::value::to_raw_value(&HeaderObject(&headers)).map_err(encode_error)?;
    Ok((payload, headers))
}

/// Header pairs as the outbox's flat JSON object.
struct HeaderObject<'a>(&'a [(&'static str, String)]);

impl serde::Serialize for HeaderObject<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (name, value)))
    }
}

/// An outbox row's values: `INSERT INTO outbox (id, subject, payload, headers)`.
#[derive(Clone, Debug)]
pub struct PreparedEvent {
    pub id: uuid::Uuid,
    pub subject: String,
    /// The envelope, encoded.
    pub payload: Box<RawValue>,
    /// A flat JSON object: header name -> string value.
    pub headers: Box<RawValue>,
}
