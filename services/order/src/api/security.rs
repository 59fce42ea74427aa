//! The bearer security scheme (Swagger UI's Authorize button) and role checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::{IntoResponse, Request};
use poem_openapi::{SecurityScheme, auth::Bearer};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::AppState;
use super::problem::ApiError;
use crate::auth::{Claims, Role, TokenError, TokenKeys};
use crate::store;

/// An access token from `POST /auth/login`. Missing, expired or forged tokens are refused with 401
/// before the handler runs.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_token")]
pub struct BearerAuth(pub Claims);

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<Claims> {
    let keys = req
        .data::<TokenKeys>()
        .expect("TokenKeys is installed as endpoint data at startup");
    let claims = keys.verify(&bearer.token).map_err(|error| {
        let detail = match error {
            TokenError::Expired => "the access token has expired: log in again",
            TokenError::Invalid => "the access token is invalid",
        };
        unauthorized(detail)
    })?;
    // A valid signature is not enough: the user must still exist and the token not be revoked.
    let users = req
        .data::<KnownUsers>()
        .expect("KnownUsers is installed as endpoint data at startup");
    let state = req
        .data::<AppState>()
        .expect("AppState is installed as endpoint data at startup");
    match users.token_version(&state.db, claims.sub).await {
        Ok(Some(version)) if version == claims.ver => Ok(claims),
        Ok(Some(_)) => Err(unauthorized("the access token was revoked: log in again")),
        Ok(None) => Err(unauthorized(
            "the access token belongs to no account: log in again",
        )),
        // A database that is away is a 503, anything else a 500 (see `From<DbErr>`).
        Err(error) => Err(poem::Error::from_response(
            ApiError::from(error).into_response(),
        )),
    }
}

fn unauthorized(detail: &str) -> poem::Error {
    poem::Error::from_string(detail, poem::http::StatusCode::UNAUTHORIZED)
}

/// Users' token versions, remembered for a second so an authenticated request does not cost a
/// query; a deletion or revocation therefore takes effect within a second.
#[derive(Clone, Default)]
pub struct KnownUsers(Arc<Mutex<HashMap<Uuid, (i64, Instant)>>>);

const KNOWN_USERS_TTL: Duration = Duration::from_secs(1);
/// Beyond this many remembered users, start afresh (bounded memory).
const KNOWN_USERS_MAX: usize = 100_000;

impl KnownUsers {
    async fn token_version(
        &self,
        db: &DatabaseConnection,
        user: Uuid,
    ) -> Result<Option<i64>, sea_orm::DbErr> {
        if let Some((version, at)) = self.lock().get(&user).copied()
            && at.elapsed() < KNOWN_USERS_TTL
        {
            return Ok(Some(version));
        }
        let found = store::find_token_version(db, user).await?;
        let mut known = self.lock();
        if known.len() >= KNOWN_USERS_MAX {
            known.clear();
        }
        match found {
            Some(version) => known.insert(user, (version, Instant::now())),
            None => known.remove(&user),
        };
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (i64, Instant)>> {
        // The map holds no invariant a panicking holder could break.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl BearerAuth {
    /// The merchant the caller acts for; 403 for customers.
    pub fn merchant_id(&self) -> Result<i64, ApiError> {
        match (self.0.role, self.0.merchant_id) {
            (Role::Merchant, Some(id)) => Ok(id),
            _ => Err(ApiError::forbidden("only merchants may do this")),
        }
    }
}
