//! The merchant commands served over NATS: seed, list and restock the ingredients.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect,
};

use entities::ingredients;

use super::rows::{insert_movements, level_of, statement};
use super::{IngredientSeed, Reason};
use crate::domain::{Amount, InvalidRestock, InvalidSeed, Movement, Seed};

/// Why a seed was refused.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Invalid(#[from] InvalidSeed),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Idempotent: upsert by (merchant_id, name); stock = reference_level = level;
/// low_stock_alerted = false; a `seed` movement with delta = level - previous stock (none when
/// 0), so the movements still sum to the stock. Returns the rows, in input order.
///
/// The seeds arrive as the command carries them and are checked here, once ([`Seed::parse`]),
/// before anything is written.
///
/// Run it in a transaction (pass a `DatabaseTransaction`): the row and its movement belong
/// together.
pub async fn seed_ingredients(
    db: &impl ConnectionTrait,
    merchant_id: i64,
    merchant_email: &str,
    seeds: &[IngredientSeed],
) -> Result<Vec<ingredients::Model>, SeedError> {
    let seeds = Seed::parse_all(seeds)?;
    // Lock the merchant's existing rows first, by ascending id like every other writer (no
    // deadlock with a reservation batch), and learn their stock for the seed movements.
    let names: Vec<&str> = seeds.iter().map(|s| s.name.as_str()).collect();
    let mut previous: HashMap<String, i64> = ingredients::Entity::find()
        .filter(ingredients::Column::MerchantId.eq(merchant_id))
        .filter(ingredients::Column::Name.is_in(names))
        .order_by_asc(ingredients::Column::Id)
        .lock_exclusive()
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.name, row.stock))
        .collect();

    let mut rows = Vec::with_capacity(seeds.len());
    let mut movements = Vec::new();
    for seed in seeds {
        let row = db
            .query_one_raw(statement(
                "INSERT INTO ingredients \
                     (merchant_id, name, unit, stock, reference_level, low_stock_alerted, merchant_email) \
                 VALUES ($1, $2, $3, $4, $4, false, $5) \
                 ON CONFLICT ON CONSTRAINT ingredients_merchant_id_name_key DO UPDATE SET \
                     unit = EXCLUDED.unit, stock = EXCLUDED.stock, \
                     reference_level = EXCLUDED.reference_level, low_stock_alerted = false, \
                     merchant_email = EXCLUDED.merchant_email, updated_at = now() \
                 RETURNING *",
                vec![
                    merchant_id.into(),
                    seed.name.clone().into(),
                    seed.unit.as_str().into(),
                    seed.level.get().into(),
                    merchant_email.into(),
                ],
            ))
            .await?
            .ok_or_else(|| DbErr::RecordNotInserted)?;
        let row = ingredients::Model::from_query_result(&row, "")?;
        let before = previous.insert(row.name.clone(), row.stock).unwrap_or(0);
        if row.stock != before {
            movements.push(Movement {
                order_id: None,
                ingredient_id: row.id,
                delta: row.stock - before,
                reason: Reason::Seed,
            });
        }
        rows.push(row);
    }
    insert_movements(db, &movements).await?;
    Ok(rows)
}

/// The merchant's ingredients, by ascending id.
pub async fn list_ingredients(
    db: &impl ConnectionTrait,
    merchant_id: i64,
) -> Result<Vec<ingredients::Model>, DbErr> {
    ingredients::Entity::find()
        .filter(ingredients::Column::MerchantId.eq(merchant_id))
        .order_by_asc(ingredients::Column::Id)
        .all(db)
        .await
}

/// Why a restock was refused.
#[derive(Debug, thiserror::Error)]
pub enum RestockError {
    #[error("ingredient not found")]
    NotFound,
    /// Not positive, or more than the level can hold.
    #[error(transparent)]
    InvalidAmount(#[from] InvalidRestock),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Locks the row; adds `amount`; raises reference_level to the new level when above it;
/// re-arms the alert when the level is back at or above 50 % (SPEC §3, §5 rule 3); writes a
/// `restock` movement. Only the merchant's own ingredient (else `NotFound`).
///
/// `amount` is the command's number: it becomes an [`Amount`] here, the one check of it on
/// the stock side, before any row is touched.
pub async fn restock(
    txn: &DatabaseTransaction,
    merchant_id: i64,
    ingredient_id: i64,
    amount: i64,
) -> Result<ingredients::Model, RestockError> {
    let amount = Amount::parse(amount).map_err(InvalidRestock::from)?;
    // SPEC §5 rule 2: the row lock serialises the restock with reservations and releases.
    let row = ingredients::Entity::find_by_id(ingredient_id)
        .filter(ingredients::Column::MerchantId.eq(merchant_id))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(RestockError::NotFound)?;
    let level = level_of(&row)
        .restocked(amount)
        .map_err(InvalidRestock::from)?;
    let updated = txn
        .query_one_raw(statement(
            "UPDATE ingredients SET stock = $1, reference_level = $2, low_stock_alerted = $3, \
                 updated_at = now() \
             WHERE id = $4 RETURNING *",
            vec![
                level.stock.into(),
                level.reference_level.into(),
                level.low_stock_alerted.into(),
                row.id.into(),
            ],
        ))
        .await?
        .ok_or(RestockError::NotFound)?;
    let updated = ingredients::Model::from_query_result(&updated, "")?;
    insert_movements(
        txn,
        &[Movement {
            order_id: None,
            ingredient_id: row.id,
            delta: amount.get(),
            reason: Reason::Restock,
        }],
    )
    .await?;
    Ok(updated)
}
