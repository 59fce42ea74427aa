//! `POST /auth/register`, `POST /auth/login`, `POST /auth/merchants` (merchant sign-up).

use std::sync::LazyLock;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use uuid::Uuid;

use super::limits::AuthLimits;
use super::problem::ApiError;
use super::text::JsonString;
use super::{ApiTags, AppState};
use crate::auth::{self, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Role};
use crate::config::MerchantSignup;
use crate::domain::{FieldError, NewMerchant};
use crate::store::{self, InsertUserError, SignUpError};

pub struct AuthApi;

#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct Credentials {
    /// Login name; compared case-insensitively.
    pub email: JsonString,
    /// At least 8 characters.
    pub password: JsonString,
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

/// A new merchant and the login of its first merchant user.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct MerchantSignUp {
    /// The merchant's name, unique, 1 to 100 characters.
    pub name: JsonString,
    /// Where the merchant's low-stock alerts are sent.
    pub alert_email: JsonString,
    /// ISO 4217 code of its prices, e.g. `EUR`.
    pub currency: JsonString,
    /// The merchant user's login; compared case-insensitively, unique across all accounts.
    pub email: JsonString,
    /// At least 8 characters.
    pub password: JsonString,
}

impl Example for MerchantSignUp {
    fn example() -> Self {
        Self {
            name: "Corner Deli".into(),
            alert_email: "kitchen@deli.example".into(),
            currency: "EUR".into(),
            email: "owner@deli.example".into(),
            password: "correct-horse-battery".into(),
        }
    }
}

#[derive(Debug, Object)]
pub struct Merchant {
    pub id: i64,
    pub name: String,
    /// Low-stock alerts go here.
    pub alert_email: String,
    pub currency: String,
}

#[derive(Debug, Object)]
pub struct MerchantAccount {
    pub merchant: Merchant,
    /// The merchant user: log in with its email to act for the merchant.
    pub user: User,
}

#[derive(ApiResponse)]
enum SignUpResponse {
    /// The merchant and its merchant user exist; log in, then `POST /order/seed` gives it its
    /// catalogue and stock.
    #[oai(status = 201)]
    Created(Json<MerchantAccount>),
}

/// Who may create merchants, and the operator token when one is asked for (README "Merchant
/// sign-up").
#[derive(Clone)]
pub struct SignUpPolicy {
    pub policy: MerchantSignup,
    operator_token: Option<String>,
}

impl SignUpPolicy {
    pub fn new(policy: MerchantSignup, operator_token: Option<String>) -> Self {
        Self {
            policy,
            operator_token,
        }
    }

    /// 403 unless this policy lets the caller (with `token` in `X-Operator-Token`) sign up.
    fn admit(&self, token: Option<&str>) -> Result<(), ApiError> {
        match self.policy {
            MerchantSignup::Open => Ok(()),
            MerchantSignup::Closed => Err(ApiError::forbidden(
                "merchant sign-up is closed on this service (MERCHANT_SIGNUP=closed)",
            )),
            MerchantSignup::Operator => match (&self.operator_token, token) {
                (Some(expected), Some(given)) if same_secret(expected, given) => Ok(()),
                _ => Err(ApiError::forbidden(
                    "merchant sign-up needs the operator token in X-Operator-Token",
                )),
            },
        }
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell how
/// much of a guessed token was right.
fn same_secret(expected: &str, given: &str) -> bool {
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
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
    if errors.is_empty() && !crate::domain::is_email_address(email) {
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
        let password = body.0.password.0;
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

    /// Sign up a merchant
    ///
    /// Creates a merchant (name, low-stock alert address, currency) and its merchant user, who
    /// logs in with `email` and `password` and then seeds the merchant's own catalogue and stock
    /// with `POST /order/seed`. Who may call it depends on `MERCHANT_SIGNUP`: anyone (`open`, the
    /// dev default), only with the operator token in `X-Operator-Token` (`operator`), or nobody
    /// (`closed`): 403 otherwise. Limited per client address like register (429). A taken name
    /// or email is a 409.
    #[oai(path = "/auth/merchants", method = "post")]
    async fn sign_up_merchant(
        &self,
        req: &Request,
        state: Data<&AppState>,
        limits: Data<&AuthLimits>,
        /// `MERCHANT_SIGNUP_TOKEN`, when the service asks for it (`MERCHANT_SIGNUP=operator`).
        #[oai(name = "X-Operator-Token")]
        operator_token: Header<Option<String>>,
        body: Json<MerchantSignUp>,
    ) -> Result<SignUpResponse, ApiError> {
        limits.check_client(client_ip(req))?;
        state.signup.admit(operator_token.0.as_deref())?;
        let MerchantSignUp {
            name,
            alert_email,
            currency,
            email,
            password,
        } = body.0;
        let merchant = NewMerchant::parse(&name, &alert_email, &currency);
        let login = validate_credentials(&Credentials {
            email,
            password: password.clone(),
        });
        let (merchant, email) = match (merchant, login) {
            (Ok(merchant), Ok(email)) => (merchant, email),
            (merchant, login) => {
                let mut errors = merchant.err().unwrap_or_default();
                errors.extend(login.err().unwrap_or_default());
                return Err(ApiError::validation(errors));
            }
        };
        let hash = limits
            .hash(move || auth::hash_password(&password))
            .await?
            .map_err(ApiError::internal)?;
        let txn = sea_orm::TransactionTrait::begin(&state.db).await?;
        let (created, user) =
            match store::insert_merchant_with_user(&txn, &merchant, &email, hash).await {
                Ok(created) => created,
                Err(SignUpError::DuplicateName) => {
                    return Err(ApiError::conflict(format!(
                        "a merchant named {:?} already exists",
                        merchant.name
                    )));
                }
                Err(SignUpError::DuplicateEmail) => {
                    return Err(ApiError::conflict(format!(
                        "an account for {email} already exists"
                    )));
                }
                Err(SignUpError::Database(e)) => return Err(e.into()),
            };
        txn.commit().await?;
        tracing::info!(merchant_id = created.id, merchant = %created.name, policy = state.signup.policy.as_str(), "merchant signed up");
        Ok(SignUpResponse::Created(Json(MerchantAccount {
            merchant: Merchant {
                id: created.id,
                name: created.name,
                alert_email: created.email,
                currency: created.currency,
            },
            user: User {
                id: user.id,
                email: user.email,
                role: user.role,
                merchant_id: user.merchant_id,
            },
        })))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_admits_whom_it_says() {
        let token = "t".repeat(40);
        let open = SignUpPolicy::new(MerchantSignup::Open, None);
        let operator = SignUpPolicy::new(MerchantSignup::Operator, Some(token.clone()));
        let closed = SignUpPolicy::new(MerchantSignup::Closed, Some(token.clone()));
        assert!(open.admit(None).is_ok());
        assert!(operator.admit(Some(&token)).is_ok());
        for (policy, given) in [
            (&operator, None),
            (&operator, Some("t")),
            (&operator, Some(&*"u".repeat(40))),
            (&closed, Some(&*token)),
        ] {
            assert!(
                matches!(policy.admit(given), Err(ApiError::Forbidden(_))),
                "{:?} with {given:?}",
                policy.policy
            );
        }
    }
}
