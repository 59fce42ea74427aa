//! The request middleware: request ids, the tracing span, the body size limit, and problem+json
//! for every error response (SPEC §3).

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;

use super::problem::{PROBLEM_JSON, Problem};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The request's id: the client's `X-Request-Id` when it sent a sensible one, else a new UUID.
/// Handlers read it as `Data<&RequestId>` and put it into events as `correlation_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    fn from_request(req: &Request) -> Self {
        let given = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()));
        Self(given.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned))
    }
}

/// The request middleware. `max_in_flight` bounds the requests being served at once: beyond
/// it, a request is refused at once with 503 (and `Retry-After`) instead of queueing, so an
/// overload costs clients a retry rather than costing every client seconds of latency and the
/// server unbounded memory.
pub struct RequestContext {
    pub max_in_flight: usize,
}

impl<E: Endpoint> Middleware<E> for RequestContext {
    type Output = RequestContextEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequestContextEndpoint {
            inner,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(self.max_in_flight)),
        }
    }
}

pub struct RequestContextEndpoint<E> {
    inner: E,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

impl<E: Endpoint> Endpoint for RequestContextEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let request_id = RequestId::from_request(&req);
        let span = tracing::info_span!(
            "request",
            request_id = %request_id.0,
            method = %req.method(),
            path = %req.uri().path(),
        );
        req.extensions_mut().insert(request_id.clone());
        async move {
            let started = std::time::Instant::now();
            let permit = self.in_flight.clone().try_acquire_owned();
            let result = match (&permit, limit_body(&mut req).await) {
                (Err(_), _) => Err(overloaded()),
                (Ok(_), Ok(())) => self.inner.call(req).await.map(IntoResponse::into_response),
                (Ok(_), Err(error)) => Err(error),
            };
            drop(permit);
            // An `ApiError` arrives here as a `poem::Error` carrying its problem response; a
            // framework error carries a plain-text one. Both become problems below.
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    if error.status().is_server_error() {
                        tracing::error!(error = %error, "request failed");
                    }
                    error.into_response()
                }
            };
            let mut response = with_request_id(response, &request_id).await;
            if let Ok(value) = HeaderValue::from_str(&request_id.0) {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            let status = response.status().as_u16();
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            if status >= 500 {
                tracing::error!(status, latency_ms, "response");
            } else {
                tracing::info!(status, latency_ms, "response");
            }
            Ok(response)
        }
        .instrument(span)
        .await
    }
}

/// Reads the body with a limit so a large or endless upload is refused with 413 before parsing.
async fn limit_body(req: &mut Request) -> poem::Result<()> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let body = req
        .take_body()
        .into_bytes_limit(MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    req.set_body(Body::from_bytes(body));
    Ok(())
}

fn overloaded() -> poem::Error {
    poem::Error::from_response(
        poem::Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header(header::RETRY_AFTER, "1")
            .body("the service is at capacity: retry in a moment"),
    )
}

fn too_large() -> poem::Error {
    poem::Error::from_string(
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
}

/// Error responses carry the request id in their problem body; a non-problem error response
/// (from a layer that does not know our format) is turned into one.
async fn with_request_id(mut response: Response, request_id: &RequestId) -> Response {
    if !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let is_problem = response
        .content_type()
        .is_some_and(|ct| ct.starts_with(PROBLEM_JSON));
    let status = response.status();
    let body = response.take_body().into_bytes().await.unwrap_or_default();
    let mut problem = if is_problem {
        serde_json::from_slice::<serde_json::Value>(&body).ok()
    } else {
        None
    }
    .unwrap_or_else(|| {
        // A server error's text may describe internals: the log has it, the client gets the id.
        // (A 503 is ours, saying "at capacity".)
        let detail = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            "An unexpected error occurred. Quote the request id when reporting it.".to_owned()
        } else {
            String::from_utf8_lossy(&body).trim().to_owned()
        };
        let problem = Problem::new(status, (!detail.is_empty()).then_some(detail));
        serde_json::from_str(&poem_openapi::types::ToJSON::to_json_string(&problem))
            .expect("a problem serialises to a JSON object")
    });
    problem["request_id"] = serde_json::Value::String(request_id.0.clone());
    let mut rebuilt = Response::builder()
        .status(status)
        .content_type(PROBLEM_JSON)
        .body(problem.to_string());
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}
