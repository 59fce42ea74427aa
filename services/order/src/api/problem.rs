//! Errors over HTTP: every error, the framework's own included, becomes an RFC 9457
//! `application/problem+json` body (SPEC §3). Handlers return [`ApiError`]; the request
//! middleware ([`super::context`]) turns framework errors (routing, parsing, auth, size limit) into
//! problems and adds the request id to every one.

use poem::http::StatusCode;
use poem_openapi::{ApiResponse, Object, payload::Json};

use crate::domain::FieldError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem.
#[derive(Clone, Debug, Object)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[oai(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for a person.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    /// Field-level problems (validation), naming fields as the client wrote them.
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<ProblemField>>,
    /// The request's `X-Request-Id`: quote it when reporting a problem.
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
}

#[derive(Clone, Debug, Object)]
pub struct ProblemField {
    /// The field, e.g. `products[0].quantity`.
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<Option<String>>) -> Self {
        let (slug, title) = describe(status);
        Self {
            kind: format!("https://larder.dev/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
            request_id: None,
        }
    }
}

fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad-request", "Bad request"),
        401 => ("unauthorized", "Authentication required"),
        403 => ("forbidden", "Not allowed"),
        404 => ("not-found", "Not found"),
        405 => ("method-not-allowed", "Method not allowed"),
        408 => ("request-timeout", "Request timeout"),
        409 => ("conflict", "Conflict"),
        411 => ("length-required", "Length required"),
        413 => ("payload-too-large", "Payload too large"),
        415 => ("unsupported-media-type", "Unsupported media type"),
        422 => ("validation", "Validation failed"),
        429 => ("too-many-requests", "Too many requests"),
        431 => ("headers-too-large", "Request headers too large"),
        503 => ("unavailable", "Service unavailable"),
        _ if status.is_server_error() => ("internal", "Internal server error"),
        _ => ("error", "Request failed"),
    }
}

/// The errors operations return, each `application/problem+json`.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request could not be read (bad JSON, unknown field, wrong type).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing, expired or invalid bearer token, or wrong credentials.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// Authenticated, but this role may not do this.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such resource, or not yours.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The resource's state forbids it (duplicate email, order already dispatched).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The request is well-formed but breaks a rule; `errors` names the fields.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// The request body did not arrive in time (see `HTTP_BODY_TIMEOUT_SECS`).
    #[oai(status = 408, content_type = "application/problem+json")]
    RequestTimeout(Json<Problem>),
    /// The request body is larger than 64 KiB.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The body is not `application/json`.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// Too many attempts from this address or for this account: retry after `Retry-After`
    /// seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// The request headers are too large; the HTTP layer answers without a body.
    #[oai(status = 431)]
    HeadersTooLarge,
    /// Something failed on our side; quote the request id.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// At capacity (requests in flight, logins waiting for a hash), or a service this operation
    /// needs did not answer in time; retry after `Retry-After` seconds.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(
        Json<Problem>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u32,
    ),
}

impl ApiError {
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Unauthorized(Json(Problem::new(StatusCode::UNAUTHORIZED, detail.into())))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden(Json(Problem::new(StatusCode::FORBIDDEN, detail.into())))
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound(Json(Problem::new(StatusCode::NOT_FOUND, detail.into())))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict(Json(Problem::new(StatusCode::CONFLICT, detail.into())))
    }

    /// 422 with field-level errors.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        let mut problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail);
        problem.errors = Some(
            errors
                .into_iter()
                .map(|e| ProblemField {
                    field: e.field,
                    message: e.message,
                })
                .collect(),
        );
        Self::Unprocessable(Json(problem))
    }

    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// 429 with the seconds after which a retry may pass.
    pub fn too_many_requests(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::TooManyRequests(
            Json(Problem::new(StatusCode::TOO_MANY_REQUESTS, detail.into())),
            retry_after_secs.max(1),
        )
    }

    /// A 500 whose cause is logged, not shown: the client gets the request id to quote.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        tracing::error!(error.cause_chain = ?error, "request failed");
        Self::Internal(Json(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred. Quote the request id when reporting it.".to_owned(),
        )))
    }
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

impl ApiError {
    /// 503 with `Retry-After`: the request may succeed if tried again shortly.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable(
            Json(Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail.into())),
            RETRY_AFTER_SECS,
        )
    }
}

/// A merchant command's outcome from the owning service, as this API answers it: its refusals
/// keep their status (404, 409, 422), no answer in time is a 503, a broken reply a 500.
impl From<larder_bus::service::CallError> for ApiError {
    fn from(error: larder_bus::service::CallError) -> Self {
        use larder_bus::service::CallError;
        match error {
            CallError::Unavailable { .. } => {
                Self::unavailable(format!("{error}: try again in a moment"))
            }
            CallError::Refused { refusal, .. } => match refusal.code {
                400 | 422 => Self::Unprocessable(Json(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    refusal.detail,
                ))),
                404 => Self::not_found(refusal.detail),
                409 => Self::conflict(refusal.detail),
                _ => Self::internal(anyhow::anyhow!("{refusal}")),
            },
            CallError::BadReply { .. } => Self::internal(error),
        }
    }
}

/// A database that does not answer is "try again shortly" (503 with `Retry-After`): the client
/// can tell it from a failure. Anything else is a 500.
impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        if is_database_unavailable(&error) {
            tracing::warn!(%error, "the database is not answering");
            Self::unavailable("the database is not answering: try again in a moment")
        } else {
            Self::internal(error)
        }
    }
}

/// No connection could be had (whatever the server said), or the one in use was lost: SQLSTATE
/// classes 08 (connection exception) and 57P (operator intervention: shutting down, cannot
/// connect now).
pub fn is_database_unavailable(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let sqlx_error = match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            e.as_ref()
        }
        _ => return false,
    };
    match sqlx_error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}
