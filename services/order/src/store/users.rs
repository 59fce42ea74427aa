//! Users and merchants: registration, the bootstrap merchant, sign-up, token versions.

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    SqlErr,
};
use uuid::Uuid;

use entities::{merchants, users};

use crate::auth::Role;

#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    #[error("a user with this email already exists")]
    DuplicateEmail,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Case-insensitive lookup (the unique index is on `lower(email)`).
pub async fn find_user_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<users::Model>, DbErr> {
    users::Entity::find()
        .filter(sea_orm::sea_query::Expr::cust_with_values(
            "lower(email) = lower($1)",
            [email],
        ))
        .one(db)
        .await
}

pub async fn insert_user(
    db: &impl ConnectionTrait,
    email: &str,
    password_hash: String,
    role: Role,
    merchant_id: Option<i64>,
) -> Result<users::Model, InsertUserError> {
    let user = users::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.to_owned()),
        password_hash: Set(password_hash),
        role: Set(role.as_str().to_owned()),
        merchant_id: Set(merchant_id),
        ..Default::default()
    };
    match users::Entity::insert(user).exec_with_returning(db).await {
        Ok(user) => Ok(user),
        // Two registrations racing for one email: the unique index decides.
        Err(e) if is_unique_violation(&e, "users_email_key") => {
            Err(InsertUserError::DuplicateEmail)
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates the merchant if no merchant has this name, else updates its email and currency.
pub async fn upsert_merchant(
    db: &impl ConnectionTrait,
    name: &str,
    email: &str,
    currency: &str,
) -> Result<merchants::Model, DbErr> {
    let merchant = merchants::ActiveModel {
        name: Set(name.to_owned()),
        email: Set(email.to_owned()),
        currency: Set(currency.to_owned()),
        ..Default::default()
    };
    merchants::Entity::insert(merchant)
        .on_conflict(
            OnConflict::column(merchants::Column::Name)
                .update_columns([merchants::Column::Email, merchants::Column::Currency])
                .to_owned(),
        )
        .exec_with_returning(db)
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    #[error("a merchant with this name already exists")]
    DuplicateName,
    #[error("a user with this email already exists")]
    DuplicateEmail,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Creates a merchant and its first merchant user in the caller's transaction, so a refused
/// login email leaves no merchant behind. Unlike [`upsert_merchant`] (the bootstrap's), an
/// existing name is a refusal: sign-up never takes over a merchant.
pub async fn insert_merchant_with_user(
    txn: &impl ConnectionTrait,
    merchant: &crate::domain::NewMerchant,
    login_email: &str,
    password_hash: String,
) -> Result<(merchants::Model, users::Model), SignUpError> {
    let inserted = merchants::Entity::insert(merchants::ActiveModel {
        name: Set(merchant.name.clone()),
        email: Set(merchant.alert_email.clone()),
        currency: Set(merchant.currency.clone()),
        ..Default::default()
    })
    .exec_with_returning(txn)
    .await;
    let merchant = match inserted {
        Ok(merchant) => merchant,
        // Two sign-ups racing for one name: the unique constraint decides.
        Err(e) if is_unique_violation(&e, "merchants_name_key") => {
            return Err(SignUpError::DuplicateName);
        }
        Err(e) => return Err(e.into()),
    };
    match insert_user(
        txn,
        login_email,
        password_hash,
        Role::Merchant,
        Some(merchant.id),
    )
    .await
    {
        Ok(user) => Ok((merchant, user)),
        Err(InsertUserError::DuplicateEmail) => Err(SignUpError::DuplicateEmail),
        Err(InsertUserError::Database(e)) => Err(e.into()),
    }
}

pub async fn find_merchant(
    db: &impl ConnectionTrait,
    merchant_id: i64,
) -> Result<Option<merchants::Model>, DbErr> {
    merchants::Entity::find_by_id(merchant_id).one(db).await
}

/// Whether a unique index or constraint named `name` refused the statement.
pub fn is_unique_violation(error: &DbErr, name: &str) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(message)) if message.contains(name))
}

/// The user's current token version, or `None` when the user does not exist (deleted, or a token
/// signed for an id that never existed): such tokens are refused.
pub async fn find_token_version(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Option<i64>, DbErr> {
    users::Entity::find_by_id(user_id)
        .select_only()
        .column(users::Column::TokenVersion)
        .into_tuple()
        .one(db)
        .await
}

/// The token version a login issues for `user` (see [`find_token_version`]).
pub fn token_version_of(user: &users::Model) -> i64 {
    user.token_version
}

/// Revokes every token issued to the user so far; returns whether the user exists.
pub async fn revoke_tokens(db: &impl ConnectionTrait, user_id: Uuid) -> Result<bool, DbErr> {
    let result = users::Entity::update_many()
        .col_expr(
            users::Column::TokenVersion,
            sea_orm::sea_query::Expr::cust("token_version + 1"),
        )
        .filter(users::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
