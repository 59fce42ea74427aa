//! Statements both kinds of work share: locking ingredient rows, writing levels and movements.

use std::collections::BTreeSet;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};

use entities::ingredients;
use larder_bus::batch::json_rows;
use uuid::Uuid;

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

/// Appends movements in one statement; their ids follow the order given.
pub(super) async fn insert_movements(
    db: &impl ConnectionTrait,
    movements: &[Movement],
) -> Result<(), DbErr> {
    /// A movement as the statement reads it; `n` keeps the given order.
    #[derive(serde::Serialize)]
    struct Row {
        n: usize,
        order_id: Option<Uuid>,
        ingredient_id: i64,
        delta: i64,
        reason: &'static str,
    }
    if movements.is_empty() {
        return Ok(());
    }
    let rows: Vec<Row> = movements
        .iter()
        .enumerate()
        .map(|(n, m)| Row {
            n,
            order_id: m.order_id,
            ingredient_id: m.ingredient_id,
            delta: m.delta,
            reason: m.reason.as_str(),
        })
        .collect();
    // One statement whatever the batch's size: one prepared statement and cached plan per
    // connection, where a multi-row VALUES made one per size.
    db.execute_raw(statement(
        "INSERT INTO stock_movements (order_id, ingredient_id, delta, reason) \
         SELECT m.order_id, m.ingredient_id, m.delta, m.reason \
         FROM jsonb_to_recordset($1::jsonb) \
             AS m(n BIGINT, order_id UUID, ingredient_id BIGINT, delta BIGINT, reason TEXT) \
         ORDER BY m.n",
        vec![json_rows(&rows)?.into()],
    ))
    .await?;
    Ok(())
}
