//! The transactional outbox (SPEC §5 rule 1): a state change and the events it causes commit in
//! one transaction. [`Outbox::enqueue`] writes the event as a row through the caller's
//! connection or transaction; the [`relay`](crate::relay) publishes it afterwards.

use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use serde_json::json;

use entities::outbox;

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
        outbox::Entity::insert(self.row(event)?)
            .exec_without_returning(db)
            .await?;
        Ok(())
    }

    /// Adds many events of one type, a thousand rows per statement (each row takes five of
    /// PostgreSQL's 65 535 parameters).
    pub async fn enqueue_all<E: Event>(
        &self,
        db: &impl ConnectionTrait,
        events: &[Envelope<E>],
    ) -> Result<(), DbErr> {
        if events.is_empty() {
            return Ok(());
        }
        for chunk in events.chunks(1_000) {
            let rows = chunk
                .iter()
                .map(|e| self.row(e))
                .collect::<Result<Vec<_>, _>>()?;
            outbox::Entity::insert_many(rows)
                .exec_without_returning(db)
                .await?;
        }
        Ok(())
    }

    /// The outbox row's values, for a caller that writes the row in a statement of its own (the
    /// order API inserts an order and its event in one statement).
    pub fn prepare<E: Event>(&self, event: &Envelope<E>) -> Result<PreparedEvent, DbErr> {
        let payload =
            serde_json::to_value(event).map_err(|e| DbErr::Custom(format!("encode event: {e}")))?;
        let mut headers = json!({ EVENT_TYPE_HEADER: event.kind });
        if let Some(trace) = &event.trace {
            headers[larder_contract::trace::TRACEPARENT_HEADER] = json!(trace.to_string());
        }
        if let Some(correlation_id) = &event.correlation_id {
            headers[CORRELATION_ID_HEADER] = json!(correlation_id);
        }
        Ok(PreparedEvent {
            id: event.id,
            subject: self.namespace.subject(E::SUBJECT),
            payload,
            headers,
        })
    }

    fn row<E: Event>(&self, event: &Envelope<E>) -> Result<outbox::ActiveModel, DbErr> {
        let prepared = self.prepare(event)?;
        Ok(outbox::ActiveModel {
            id: Set(prepared.id),
            subject: Set(prepared.subject),
            payload: Set(prepared.payload),
            headers: Set(prepared.headers),
            ..Default::default()
        })
    }
}

/// An outbox row's values: `INSERT INTO outbox (id, subject, payload, headers)`.
#[derive(Clone, Debug)]
pub struct PreparedEvent {
    pub id: uuid::Uuid,
    pub subject: String,
    pub payload: serde_json::Value,
    pub headers: serde_json::Value,
}
