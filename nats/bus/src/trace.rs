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
//!
//! The `traceparent` itself (its parsing and its text) is the contract's
//! ([`larder_contract::trace`]); this module ties it to headers and spans.

use larder_contract::trace::{SpanId, TRACEPARENT_HEADER, TraceParent};
use larder_contract::{Envelope, Event};
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `traceparent` of a NATS message, its name in any case (other clients may send
/// `Traceparent`).
pub fn from_headers(headers: &async_nats::HeaderMap) -> Option<TraceParent> {
    let value = headers.get(TRACEPARENT_HEADER).or_else(|| {
        headers.iter().find_map(|(name, values)| {
            let name: &[u8] = name.as_ref();
            name.eq_ignore_ascii_case(TRACEPARENT_HEADER.as_bytes())
                .then(|| values.first())
                .flatten()
        })
    })?;
    TraceParent::parse(value.as_str())
}

/// A trace continued inside a span.
pub trait Within {
    /// The same trace with `span` as the parent: what an event caused inside `span` carries.
    /// `span`'s OpenTelemetry id when the process exports traces, else a new id.
    fn within(self, span: &tracing::Span) -> Self;
}

impl Within for TraceParent {
    fn within(self, span: &tracing::Span) -> Self {
        let context = span.context();
        let otel = context.span().span_context().clone();
        if otel.is_valid() && otel.trace_id().to_bytes() == self.trace_id.0 {
            return self.with_parent(SpanId(otel.span_id().to_bytes()));
        }
        self.with_parent(SpanId::random())
    }
}

/// An event put in a trace.
pub trait InTrace: Sized {
    /// This event in `trace`, with the current span as its parent.
    fn in_trace(self, trace: Option<TraceParent>) -> Self;
}

impl<T> InTrace for Envelope<T> {
    fn in_trace(mut self, trace: Option<TraceParent>) -> Self {
        self.trace = trace.map(|t| t.within(&tracing::Span::current()));
        self
    }
}

/// A new event caused by `cause`: its correlation id, and its trace with the current span (the
/// handler's span of `cause`, see [`event_span`]) as parent.
pub fn following<T: Event, C>(data: T, cause: &Envelope<C>) -> Envelope<T> {
    Envelope::new(data, cause.correlation_id.clone()).in_trace(cause.trace)
}

/// The remote parent, for OpenTelemetry.
fn span_context(trace: TraceParent) -> SpanContext {
    let flags = if trace.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(trace.trace_id.0),
        opentelemetry::trace::SpanId::from_bytes(trace.parent_id.0),
        flags,
        true,
        TraceState::default(),
    )
}

/// Makes `trace` the parent of `span` (before the span is entered: OpenTelemetry fixes a span's
/// parent when it starts) and records its trace id on the span as `trace_id`, so the logs show it
/// too. A span without a trace is left alone.
pub fn continue_trace(span: &tracing::Span, trace: Option<TraceParent>) {
    let Some(trace) = trace else {
        return;
    };
    span.record("trace_id", tracing::field::display(trace.trace_id));
    let parent = opentelemetry::Context::new().with_remote_span_context(span_context(trace));
    // Only fails when the span has started or no OpenTelemetry layer runs: the trace id field
    // still ties the logs together.
    let _ = span.set_parent(parent);
}

/// The span of one event in a handler: `name` with the order id and the trace id, its parent
/// the event's trace. The events the handler emits for it name this span
/// ([`Within::within`]).
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
    fn the_header_is_found_in_any_case() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        assert!(from_headers(&headers).is_some());
    }

    #[test]
    fn a_child_keeps_the_trace_and_takes_a_new_parent() {
        let root = TraceParent::new_root();
        let child = root.within(&tracing::Span::none());
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.parent_id, root.parent_id);
    }
}
