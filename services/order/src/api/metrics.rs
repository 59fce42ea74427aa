//! Prometheus: every request counted and timed by route template and status, and `GET /metrics`
//! rendering whatever the process recorded (its consumers, relays and, in `larder all`, every
//! service's figures). The process installs the recorder and hands its handle over; without one
//! `/metrics` is a 404.

use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, PathPattern, Request, Response};

/// The histogram of [`record`]. Its buckets are set where the recorder is installed.
pub const REQUEST_DURATION: &str = "http_request_duration_seconds";

/// Counts and times one request: `http_requests_total{method, route, status}` and
/// [`REQUEST_DURATION`]`{method, route}`. The route is the matched template (`/order/:id`), never
/// the raw path, so ids do not become series; `unmatched` when no route matched.
pub async fn record<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let result = ep.call(req).await.map(IntoResponse::into_response);
    let (status, route) = match &result {
        Ok(response) => (response.status(), response.data::<PathPattern>()),
        Err(error) => (error.status(), error.data::<PathPattern>()),
    };
    let route = route.map_or_else(|| "unmatched".to_owned(), |pattern| pattern.0.to_string());
    metrics::counter!(
        "http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.as_str().to_owned(),
    )
    .increment(1);
    metrics::histogram!(REQUEST_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    result
}

/// `GET /metrics`: the Prometheus text format.
pub fn render(handle: Option<&PrometheusHandle>) -> Response {
    match handle {
        Some(handle) => Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(handle.render()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
