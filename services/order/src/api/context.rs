//! The request middleware: request ids, the tracing span, the body size and time limits, the
//! in-flight limit, panics as 500s, security headers, and problem+json for every error response
//! (SPEC §3).

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt as _;
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

/// The request middleware.
///
/// - The body is read first, within `body_timeout` and [`MAX_BODY_BYTES`] (408 / 413), so a
///   slow upload holds a connection (capped by the server) but never an in-flight slot.
/// - `max_in_flight` then bounds the requests being served at once: beyond it, a request is
///   refused at once with 503 (and `Retry-After`) instead of queueing. `/health`, `/ready` and
///   `/metrics` bypass it, so they answer under any load.
/// - A panic in a handler becomes a 500 problem; the panic message is logged once, without a
///   backtrace ([`install_panic_hook`]).
/// - Every error becomes a problem with the request id; the security headers go on every
///   response ([`security_headers`]).
pub struct RequestContext {
    pub max_in_flight: usize,
    pub body_timeout: Duration,
}

impl<E: Endpoint> Middleware<E> for RequestContext {
    type Output = RequestContextEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        install_panic_hook();
        RequestContextEndpoint {
            inner,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(self.max_in_flight)),
            body_timeout: self.body_timeout,
            routes: Routes::from_spec(&super::spec_json()),
        }
    }
}

/// The request's slot of the in-flight limit, in its extensions (`Data<&InFlightSlot>`). A
/// handler about to wait rather than work (`POST /order` with `Prefer: wait`) gives it back, so
/// the limit meant for short requests counts work, not waiting; waiting has a bound of its own.
#[derive(Clone)]
pub struct InFlightSlot(
    std::sync::Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>,
);

impl InFlightSlot {
    /// Frees the slot now (it is freed when the handler returns anyway).
    pub fn release(&self) {
        // Only a permit is inside: a panicking holder cannot have broken anything.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

pub struct RequestContextEndpoint<E> {
    inner: E,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    body_timeout: Duration,
    routes: Routes,
}

/// Paths that answer whatever the load: probes must see the truth, not a 503 from the limit.
fn bypasses_in_flight_limit(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

tokio::task_local! {
    /// Set while a handler runs, so the panic hook knows the panic is caught and answered.
    static IN_HANDLER: ();
}

/// Installs (once) a panic hook that logs a handler's panic as one error event, with its
/// message and location but no backtrace, and leaves every other panic to the previous hook.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_HANDLER.try_with(|_| ()).is_ok() {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic payload".to_owned());
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                tracing::error!(panic = %message, %location, "a handler panicked");
            } else {
                previous(info);
            }
        }));
    });
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
            trace_id = tracing::field::Empty,
        );
        // The caller's trace (W3C `traceparent`), else a new one: every event this request
        // causes continues it.
        let trace = req
            .headers()
            .get(larder_contract::trace::TRACEPARENT_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(larder_contract::trace::TraceParent::parse)
            .unwrap_or_else(larder_contract::trace::TraceParent::new_root);
        larder_bus::trace::continue_trace(&span, Some(trace));
        req.extensions_mut().insert(trace);
        req.extensions_mut().insert(request_id.clone());
        async move {
            let started = std::time::Instant::now();
            let path = req.uri().path().to_owned();
            let result = match check_idempotency_key(&req) {
                Err(error) => Err(error),
                Ok(()) => match limit_body(&mut req, self.body_timeout).await {
                    Err(error) => Err(error),
                    Ok(()) => {
                        let permit = if bypasses_in_flight_limit(&path) {
                            None
                        } else {
                            match self.in_flight.clone().try_acquire_owned() {
                                Ok(permit) => Some(permit),
                                Err(_) => {
                                    return finish(
                                        Err(overloaded()),
                                        &request_id,
                                        &self.routes,
                                        &path,
                                        started,
                                    )
                                    .await;
                                }
                            }
                        };
                        let permit =
                            InFlightSlot(std::sync::Arc::new(std::sync::Mutex::new(permit)));
                        req.extensions_mut().insert(permit.clone());
                        let call = IN_HANDLER.scope((), self.inner.call(req));
                        let result = match AssertUnwindSafe(call).catch_unwind().await {
                            Ok(result) => result.map(IntoResponse::into_response),
                            Err(_) => {
                                Err(poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))
                            }
                        };
                        permit.release();
                        result
                    }
                },
            };
            finish(result, &request_id, &self.routes, &path, started).await
        }
        .instrument(span)
        .await
    }
}

/// Turns the outcome into the response: problems for errors, the request id, the headers.
async fn finish(
    result: poem::Result<Response>,
    request_id: &RequestId,
    routes: &Routes,
    path: &str,
    started: std::time::Instant,
) -> poem::Result<Response> {
    // The matched route, kept for the request metrics around this middleware: the responses
    // below are rebuilt.
    let route = match &result {
        Ok(response) => response.data::<poem::PathPattern>(),
        Err(error) => error.data::<poem::PathPattern>(),
    }
    .cloned();
    // An `ApiError` arrives here as a `poem::Error` carrying its problem response; a
    // framework error carries a plain-text one. Both become problems below.
    let response = match result {
        // A declared JSON response with an error status (`/ready`'s 503) is the answer itself.
        Ok(response)
            if response
                .content_type()
                .is_some_and(|ct| ct.starts_with("application/json")) =>
        {
            let mut response = response;
            if let Ok(value) = HeaderValue::from_str(&request_id.0) {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            security_headers(&mut response, routes, path);
            return Ok(response);
        }
        Ok(response) => response,
        Err(error) => {
            if error.status().is_server_error() && error.status() != StatusCode::SERVICE_UNAVAILABLE
            {
                tracing::error!(error = %error, "request failed");
            }
            framework_problem(&error).unwrap_or_else(|| error.into_response())
        }
    };
    let mut response = with_request_id(response, request_id).await;
    if let Ok(value) = HeaderValue::from_str(&request_id.0) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    security_headers(&mut response, routes, path);
    if let Some(route) = route {
        response.set_data(route);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    // A 503 (a dependency away, readiness failing, load shed) is expected in operation and
    // says so to the client: a warning, not an error.
    if status == 503 {
        tracing::warn!(status, latency_ms, "response");
    } else if status >= 500 {
        tracing::error!(status, latency_ms, "response");
    } else {
        tracing::info!(status, latency_ms, "response");
    }
    Ok(response)
}

/// poem-openapi's own errors (a parameter or body that does not parse, a missing content type or
/// token) as problems that name the field, as `ApiError::validation` does.
fn framework_problem(error: &poem::Error) -> Option<Response> {
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };
    let status = error.status();
    let (field, message) = if let Some(e) = error.downcast_ref::<ParseParamError>() {
        (e.name.to_owned(), e.reason.clone())
    } else if let Some(e) = error.downcast_ref::<ParsePathError>() {
        (e.name.to_owned(), e.reason.clone())
    } else if let Some(e) = error.downcast_ref::<ParseRequestPayloadError>() {
        ("body".to_owned(), e.reason.replace("param0", "body"))
    } else if let Some(e) = error.downcast_ref::<ContentTypeError>() {
        let mut problem = Problem::new(status, e.to_string());
        problem.errors = None;
        return Some(problem_response(status, &problem));
    } else if error.is::<AuthorizationError>() {
        let problem = Problem::new(
            status,
            "a bearer token is required: `Authorization: Bearer <token>` from `POST /auth/login`"
                .to_owned(),
        );
        return Some(problem_response(status, &problem));
    } else {
        return None;
    };
    let mut problem = Problem::new(status, format!("{field}: {message}"));
    problem.errors = Some(vec![super::problem::ProblemField { field, message }]);
    Some(problem_response(status, &problem))
}

fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    Response::builder()
        .status(status)
        .content_type(PROBLEM_JSON)
        .body(poem_openapi::types::ToJSON::to_json_string(problem))
}

/// SPEC §3: a same key with the same body returns the first order, so the key must be stored
/// exactly. Header values that are not visible ASCII (which a string extractor silently drops)
/// are refused with 422 instead of being ignored.
fn check_idempotency_key(req: &Request) -> poem::Result<()> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(());
    };
    if value.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)) {
        return Ok(());
    }
    Err(poem::Error::from_response(
        super::problem::ApiError::invalid_field(
            "Idempotency-Key",
            "must be printable ASCII (letters, digits, punctuation, spaces)",
        )
        .into_response(),
    ))
}

/// Reads the body with a limit and a deadline, so a large, endless or stalled upload is refused
/// (413, 408) before parsing.
async fn limit_body(req: &mut Request, deadline: Duration) -> poem::Result<()> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let read = req.take_body().into_bytes_limit(MAX_BODY_BYTES);
    let body = match tokio::time::timeout(deadline, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return Err(too_large()),
        Err(_) => return Err(too_slow(deadline)),
    };
    req.set_body(Body::from_bytes(body));
    Ok(())
}

fn overloaded() -> poem::Error {
    poem::Error::from_response(
        super::problem::ApiError::unavailable("the service is at capacity: retry in a moment")
            .into_response(),
    )
}

fn too_slow(deadline: Duration) -> poem::Error {
    // The rest of the body may still be on its way: close the connection rather than read it.
    poem::Error::from_response(
        Response::builder()
            .status(StatusCode::REQUEST_TIMEOUT)
            .header(header::CONNECTION, "close")
            .body(format!(
                "the request body did not arrive within {} s",
                deadline.as_secs_f64()
            )),
    )
}

fn too_large() -> poem::Error {
    poem::Error::from_string(
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
}

/// Headers every response gets, and those some statuses need (SPEC §3, RFC 9110, RFC 6750).
fn security_headers(response: &mut Response, routes: &Routes, path: &str) {
    let status = response.status();
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Nothing here is meant to be framed, Swagger UI included (clickjacking).
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The console runs only its own script and talks only to this origin.
    let policy = if path.starts_with("/console") {
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
    } else {
        "frame-ancestors 'none'"
    };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    if path.starts_with("/auth/") {
        // Tokens and credentials must not sit in caches.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if status == StatusCode::UNAUTHORIZED && !headers.contains_key(header::WWW_AUTHENTICATE) {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"larder\""),
        );
    }
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = routes.allow(path)
        && let Ok(value) = HeaderValue::from_str(&allow)
    {
        headers.insert(header::ALLOW, value);
    }
}

/// The methods each path of the spec accepts, for the `Allow` header of a 405.
struct Routes(Vec<(Vec<String>, String)>);

impl Routes {
    fn from_spec(spec: &str) -> Self {
        let spec: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes = vec![(vec!["openapi.json".to_owned()], "GET, HEAD".to_owned())];
        if let Some(paths) = spec["paths"].as_object() {
            for (path, operations) in paths {
                let mut methods: Vec<String> = operations
                    .as_object()
                    .map(|ops| ops.keys().map(|m| m.to_uppercase()).collect())
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".to_owned());
                }
                let segments = path
                    .trim_matches('/')
                    .split('/')
                    .map(str::to_owned)
                    .collect();
                routes.push((segments, methods.join(", ")));
            }
        }
        Self(routes)
    }

    fn allow(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.0.iter().find_map(|(template, methods)| {
            let matches = template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s);
            matches.then(|| methods.clone())
        })
    }
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
