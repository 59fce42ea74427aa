//! Statements both kinds of work share: locking ingredient rows, writing levels and movements.

use std::collections::BTreeSet;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};

use entities::{ingredients, stock_movements};

use super::ROWS_PER_STATEMENT;
use crate::domain::{Level, Movement};

pub(super) fn level_of(row: &ingredients::Model) -> Level {
    Level {
        name: row.name.clone(),
        stock: row.stock,
        reference_level: row.reference_level,
        low_stock_alerted: row.low_stock_alerted,
    }
}

pub(super) fn statement(sql: impl Into<String>, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// SPEC §5 rule 2: locks the ingredient rows, in ascending id order, always the same order
/// whichever transaction and instance takes them, so no two ever deadlock; held until commit,
/// so no two transactions ever reserve the same stock. (`id IN (...)` is `id = ANY(...)`.)
pub(super) async fn lock_ingredients(
    txn: &DatabaseTransaction,
    ids: &BTreeSet<i64>,
) -> Result<Vec<ingredients::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    ingredients::Entity::find()
        .filter(ingredients::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(ingredients::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await
}

/// Writes the new levels and alert states in one statement per chunk (`UPDATE ... FROM
/// (VALUES ...)`). The rows are locked already, so the statement's own row order does not matter.
/// Stock never goes negative: the domain never plans it and `ingredients_stock_non_negative`
/// refuses it if it ever did.
pub(super) async fn update_levels(
    txn: &DatabaseTransaction,
    levels: &[(i64, &Level)],
) -> Result<(), DbErr> {
    for chunk in levels.chunks(ROWS_PER_STATEMENT) {
        if chunk.is_empty() {
            continue;
        }
        let rows = (0..chunk.len())
            .map(|i| {
                let n = i * 3;
                format!(
                    "(${}::bigint, ${}::bigint, ${}::boolean)",
                    n + 1,
                    n + 2,
                    n + 3
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let values = chunk
            .iter()
            .flat_map(|(id, level)| {
                [
                    Value::from(*id),
                    level.stock.into(),
                    level.low_stock_alerted.into(),
                ]
            })
            .collect();
        txn.execute_raw(statement(
            format!(
                "UPDATE ingredients AS i \
                 SET stock = v.stock, low_stock_alerted = v.alerted, updated_at = now() \
                 FROM (VALUES {rows}) AS v(id, stock, alerted) WHERE i.id = v.id"
            ),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Appends movements, many rows per statement.
pub(super) async fn insert_movements(
    db: &impl ConnectionTrait,
    movements: &[Movement],
) -> Result<(), DbErr> {
    for chunk in movements.chunks(ROWS_PER_STATEMENT) {
        if chunk.is_empty() {
            continue;
        }
        let rows = chunk.iter().map(|m| stock_movements::ActiveModel {
            order_id: Set(m.order_id),
            ingredient_id: Set(m.ingredient_id),
            delta: Set(m.delta),
            reason: Set(m.reason),
            ..Default::default()
        });
        stock_movements::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}
