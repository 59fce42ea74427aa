//! The bearer security scheme (Swagger UI's Authorize button) and role checks.

use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};

use super::problem::ApiError;
use crate::auth::{Claims, Role, TokenError, TokenKeys};

/// An access token from `POST /auth/login`. Missing, expired or forged tokens are refused with 401
/// before the handler runs.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_token")]
pub struct BearerAuth(pub Claims);

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<Claims> {
    let keys = req
        .data::<TokenKeys>()
        .expect("TokenKeys is installed as endpoint data at startup");
    keys.verify(&bearer.token).map_err(|error| {
        let detail = match error {
            TokenError::Expired => "the access token has expired: log in again",
            TokenError::Invalid => "the access token is invalid",
        };
        poem::Error::from_string(detail, poem::http::StatusCode::UNAUTHORIZED)
    })
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
