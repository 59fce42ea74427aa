//! W3C Trace Context (`traceparent`) across the bus: the header an HTTP request brings (or one
//! made for it) travels in every event's NATS headers, from event to event, so one trace covers
//! an order's whole life (SPEC §6).
//!
//! An event's trace is transport metadata, not part of the envelope's JSON: [`Outbox`] writes it
//! into the row's headers, the relay publishes them, and the consumer runner puts it back on the
//! decoded envelope. Each handler opens a span per event with [`event_span`]; when the process
//! exports traces (OpenTelemetry), that span's parent is the remote span of the header, and the
//! events it causes name that span as theirs.
//!
//! [`Outbox`]: crate::outbox::Outbox

use std::fmt;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header, in W3C's spelling.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// One `traceparent`: `00-<trace id>-<parent span id>-<flags>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    /// The span of the sender: the parent of the receiver's span.
    pub parent_id: SpanId,
    pub sampled: bool,
}

impl TraceParent {
    /// A new trace (a request that brought none).
    pub fn new_root() -> Self {
        Self {
            trace_id: TraceId::from_bytes(uuid::Uuid::new_v4().into_bytes()),
            parent_id: random_span_id(),
            sampled: true,
        }
    }

    /// The header value, if it is a valid version-00 `traceparent` (W3C Trace Context §3.2):
    /// lowercase hex, neither id all zeros.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if version != "00" || parts.next().is_some() {
            return None;
        }
        if !(lower_hex(trace, 32) && lower_hex(parent, 16) && lower_hex(flags, 2)) {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let parent_id = SpanId::from_hex(parent).ok()?;
        if trace_id == TraceId::INVALID || parent_id == SpanId::INVALID {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            parent_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` of a NATS message, its name in any case (other clients may send
    /// `Traceparent`).
    pub fn from_headers(headers: &async_nats::HeaderMap) -> Option<Self> {
        let value = headers.get(TRACEPARENT_HEADER).or_else(|| {
            headers.iter().find_map(|(name, values)| {
                let name: &[u8] = name.as_ref();
                name.eq_ignore_ascii_case(TRACEPARENT_HEADER.as_bytes())
                    .then(|| values.first())
                    .flatten()
            })
        })?;
        Self::parse(value.as_str())
    }

    /// The same trace with `span` as the parent: what an event caused inside `span` carries.
    /// `span`'s OpenTelemetry id when the process exports traces, else a new id.
    pub fn from_span(self, span: &tracing::Span) -> Self {
        let context = span.context();
        let otel = context.span().span_context().clone();
        if otel.is_valid() && otel.trace_id() == self.trace_id {
            return Self {
                parent_id: otel.span_id(),
                ..self
            };
        }
        Self {
            parent_id: random_span_id(),
            ..self
        }
    }

    /// The remote parent, for OpenTelemetry.
    fn span_context(self) -> SpanContext {
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            self.trace_id,
            self.parent_id,
            flags,
            true,
            TraceState::default(),
        )
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = if self.sampled { "01" } else { "00" };
        write!(f, "00-{}-{}-{flags}", self.trace_id, self.parent_id)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

fn random_span_id() -> SpanId {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[..8]);
    SpanId::from_bytes(id)
}

/// Makes `trace` the parent of `span` (before the span is entered: OpenTelemetry fixes a span's
/// parent when it starts) and records its trace id on the span as `trace_id`, so the logs show it
/// too. A span without a trace is left alone.
pub fn continue_trace(span: &tracing::Span, trace: Option<TraceParent>) {
    let Some(trace) = trace else {
        return;
    };
    span.record("trace_id", tracing::field::display(trace.trace_id));
    let parent = opentelemetry::Context::new().with_remote_span_context(trace.span_context());
    // Only fails when the span has started or no OpenTelemetry layer runs: the trace id field
    // still ties the logs together.
    let _ = span.set_parent(parent);
}

/// The span of one event in a handler: `name` with the order id and the trace id, its parent
/// the event's trace. The events the handler emits for it name this span
/// ([`TraceParent::from_span`]).
#[macro_export]
macro_rules! event_span {
    ($name:literal, $order_id:expr, $trace:expr) => {{
        let span = tracing::info_span!($name, order_id = %$order_id, trace_id = tracing::field::Empty);
        $crate::trace::continue_trace(&span, $trace);
        span
    }};
}
pub use crate::event_span;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_round_trips() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(value).unwrap();
        assert_eq!(parsed.to_string(), value);
        assert!(parsed.sampled);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for value in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn the_header_is_found_in_any_case() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        assert!(TraceParent::from_headers(&headers).is_some());
    }

    #[test]
    fn a_child_keeps_the_trace_and_takes_a_new_parent() {
        let root = TraceParent::new_root();
        let child = root.from_span(&tracing::Span::none());
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.parent_id, root.parent_id);
    }
}
