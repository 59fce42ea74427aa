//! Passwords (argon2id) and access tokens (JWT, HS256). Plain functions; the HTTP layer decides
//! what a failure means to the client.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Minimum password length (SPEC §3).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer passwords only cost hashing time.
pub const MAX_PASSWORD_CHARS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Merchant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Merchant => "merchant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Self::Customer),
            "merchant" => Some(Self::Merchant),
            _ => None,
        }
    }
}

/// What an access token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub role: Role,
    /// Set for merchant users: the merchant they act for.
    pub merchant_id: Option<i64>,
    pub iat: i64,
    pub exp: i64,
    /// The user's token version when the token was issued; a token whose version is no longer
    /// the user's is revoked. Absent in tokens from before versions: 0.
    #[serde(default)]
    pub ver: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// An argon2id PHC string with a random salt. Slow by design: call it off the async threads.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// Signs and checks access tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub ttl_secs: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

impl TokenKeys {
    pub fn new(secret: &str, ttl_secs: u64) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
        }
    }

    pub fn issue(&self, user_id: Uuid, role: Role, merchant_id: Option<i64>, now: i64) -> String {
        self.issue_versioned(user_id, role, merchant_id, 0, now)
    }

    /// A token carrying the user's current token version (see [`Claims::ver`]).
    pub fn issue_versioned(
        &self,
        user_id: Uuid,
        role: Role,
        merchant_id: Option<i64>,
        version: i64,
        now: i64,
    ) -> String {
        let claims = Claims {
            sub: user_id,
            role,
            merchant_id,
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
            ver: version,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_carry_role_and_merchant_and_expire() {
        let keys = TokenKeys::new("secret", 60);
        let user = Uuid::new_v4();
        let token = keys.issue(user, Role::Merchant, Some(3), now());
        let claims = keys.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.role, claims.merchant_id),
            (user, Role::Merchant, Some(3))
        );

        let expired = keys.issue(user, Role::Customer, None, now() - 3600);
        assert!(matches!(keys.verify(&expired), Err(TokenError::Expired)));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let forged =
            TokenKeys::new("other", 60).issue(Uuid::new_v4(), Role::Merchant, Some(1), now());
        assert!(matches!(
            TokenKeys::new("secret", 60).verify(&forged),
            Err(TokenError::Invalid)
        ));
        assert!(matches!(
            TokenKeys::new("secret", 60).verify("garbage"),
            Err(TokenError::Invalid)
        ));
    }
}
