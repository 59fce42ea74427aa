//! `POST /auth/register`, `POST /auth/login`.

use std::sync::LazyLock;

use poem::Request;
use poem::web::Data;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use uuid::Uuid;

use super::limits::AuthLimits;
use super::problem::ApiError;
use super::{ApiTags, AppState};
use crate::auth::{self, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Role};
use crate::domain::FieldError;
use crate::store::{self, InsertUserError};

pub struct AuthApi;

#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct Credentials {
    /// Login name; compared case-insensitively.
    pub email: String,
    /// At least 8 characters.
    pub password: String,
}

impl Example for Credentials {
    fn example() -> Self {
        Self {
            email: "customer@example.com".into(),
            password: "correct-horse-battery".into(),
        }
    }
}

#[derive(Debug, Object)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    /// `customer` or `merchant`.
    pub role: String,
    /// The merchant a merchant user acts for.
    #[oai(skip_serializing_if_is_none)]
    pub merchant_id: Option<i64>,
}

#[derive(Debug, Object)]
pub struct AccessToken {
    /// Send as `Authorization: Bearer <access_token>` (Swagger UI: Authorize).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

#[derive(ApiResponse)]
enum RegisterResponse {
    /// The customer account was created; log in to get a token.
    #[oai(status = 201)]
    Created(Json<User>),
}

/// Characters PostgreSQL cannot store (NUL) and other control characters have no place in a
/// login: refused with 422 instead of failing in the database.
fn control_characters(credentials: &Credentials) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if credentials.email.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "email",
            "must not contain control characters",
        ));
    }
    if credentials.password.contains('\0') {
        errors.push(FieldError::new(
            "password",
            "must not contain NUL characters",
        ));
    }
    errors
}

/// Checks the shape of an email address and the password length, naming the bad fields.
fn validate_credentials(credentials: &Credentials) -> Result<String, Vec<FieldError>> {
    let email = credentials.email.trim();
    let mut errors = control_characters(credentials);
    let well_formed = errors.is_empty()
        && email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if !well_formed {
        errors.push(FieldError::new(
            "email",
            "must be an email address like name@example.com",
        ));
    }
    let chars = credentials.password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        errors.push(FieldError::new(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    } else if chars > MAX_PASSWORD_CHARS {
        errors.push(FieldError::new(
            "password",
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    if errors.is_empty() {
        Ok(email.to_owned())
    } else {
        Err(errors)
    }
}

/// Verifying against this when the email is unknown keeps login time the same either way, so
/// timing does not reveal which emails have accounts.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| auth::hash_password("not-a-real-password").expect("hashing a constant works"));

/// The client's address, for the per-address limit. Behind a proxy this is the proxy's.
fn client_ip(req: &Request) -> Option<std::net::IpAddr> {
    req.remote_addr().as_socket_addr().map(|a| a.ip())
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Register a customer
    ///
    /// Creates a customer account. Emails are unique regardless of case: a second registration
    /// with the same address is a 409.
    #[oai(path = "/auth/register", method = "post")]
    async fn register(
        &self,
        req: &Request,
        state: Data<&AppState>,
        limits: Data<&AuthLimits>,
        body: Json<Credentials>,
    ) -> Result<RegisterResponse, ApiError> {
        limits.check_client(client_ip(req))?;
        let email = validate_credentials(&body).map_err(ApiError::validation)?;
        let password = body.0.password;
        let hash = limits
            .hash(move || auth::hash_password(&password))
            .await?
            .map_err(ApiError::internal)?;
        match store::insert_user(&state.db, &email, hash, Role::Customer, None).await {
            Ok(user) => Ok(RegisterResponse::Created(Json(User {
                id: user.id,
                email: user.email,
                role: user.role,
                merchant_id: user.merchant_id,
            }))),
            Err(InsertUserError::DuplicateEmail) => Err(ApiError::conflict(format!(
                "an account for {email} already exists"
            ))),
            Err(InsertUserError::Database(e)) => Err(e.into()),
        }
    }

    /// Log in
    ///
    /// Exchanges email and password for a bearer token (HS256 JWT with `sub`, `role`,
    /// `merchant_id`, `iat`, `exp`). Wrong email or password: 401, without saying which.
    #[oai(path = "/auth/login", method = "post")]
    async fn login(
        &self,
        req: &Request,
        state: Data<&AppState>,
        limits: Data<&AuthLimits>,
        body: Json<Credentials>,
    ) -> Result<Json<AccessToken>, ApiError> {
        limits.check_client(client_ip(req))?;
        let invalid = control_characters(&body);
        if !invalid.is_empty() {
            return Err(ApiError::validation(invalid));
        }
        let Credentials { email, password } = body.0;
        limits.check_account(&email)?;
        let user = store::find_user_by_email(&state.db, email.trim()).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        // On the hashing pool, the first unknown-email login's dummy hash included.
        let matches = limits
            .hash(move || auth::verify_password(&password, hash.as_deref().unwrap_or(&DUMMY_HASH)))
            .await?;
        let (Some(user), true) = (user, matches) else {
            limits.record_failure(&email);
            return Err(ApiError::unauthorized("wrong email or password"));
        };
        let role = Role::parse(&user.role)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown role {:?}", user.role)))?;
        let version = store::token_version_of(&user);
        let token = state.keys.issue_versioned(
            user.id,
            role,
            user.merchant_id,
            version,
            chrono::Utc::now().timestamp(),
        );
        Ok(Json(AccessToken {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: state.keys.ttl_secs,
        }))
    }
}
