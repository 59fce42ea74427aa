//! The stock service's SQL: reservation and release batches, and the merchant commands it serves
//! over NATS (seed, list, restock; see [`crate::commands`]). Every function runs on the caller's
//! connection or transaction; the callers commit.
//!
//! Lock order, the same everywhere so concurrent transactions (of this instance, another
//! instance, or a restock) never deadlock:
//! 1. inbox rows of the events being handled (ascending event id);
//! 2. the per-order advisory locks of the orders being reserved or released (ascending key);
//! 3. the ingredient rows (`ORDER BY id FOR UPDATE`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};
use uuid::Uuid;

use entities::{inbox as inbox_table, ingredients, stock_movements};
use larder_bus::inbox;
use larder_bus::outbox::Outbox;
use larder_bus::topology;
use larder_contract::Envelope;
use larder_contract::events::{
    IngredientAmount, OrderCancelled, OrderConfirmed, OrderCreated, OrderRejected, StockLow,
};

use crate::domain::{
    self, Amount, InvalidRestock, InvalidSeed, Level, MerchantLevel, Movement, ReleaseBatch,
    ReleaseError, ReleaseOutcome, ReservationBatch, ReservationOutcome, Seed, Shortages,
};

/// Why a stock movement happened; the domain's type, here where the rows are written.
pub use crate::domain::Reason;
/// One ingredient to seed; the command's own type.
pub use larder_contract::commands::IngredientSeed;

/// The inbox consumer of `orders.created`: the durable's name (without namespace).
pub const RESERVATIONS_CONSUMER: &str = topology::STOCK_ORDERS_CREATED.durable;
/// The inbox consumer of `orders.cancelled`.
pub const RELEASES_CONSUMER: &str = topology::STOCK_ORDERS_CANCELLED.durable;
/// Inbox rows under this consumer hold the ids of *orders* (not events) cancelled before they
/// reserved anything: their `orders.created`, if it comes later, reserves and emits nothing.
pub const CANCELLED_ORDER_MARKER: &str = "stock-cancelled-order";

/// Rows per multi-row INSERT, well under PostgreSQL's 65 535 bind parameters.
const ROWS_PER_STATEMENT: usize = 1_000;

/// Salt of the per-order advisory lock keys ("stockord"), so they do not line up with the
/// migration lock or other services' keys by accident.
const ORDER_LOCK_SALT: u64 = 0x7374_6f63_6b6f_7264;

/// What [`reserve_orders`] did with one `orders.created`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Every ingredient reserved; `orders.confirmed` (and any `stock.low`) written to the outbox.
    Confirmed,
    /// Something was short; nothing reserved; `orders.rejected` written to the outbox.
    Rejected,
    /// This event, or another event for the same order, was handled before: nothing done.
    Duplicate,
    /// The order was cancelled before stock saw it: nothing reserved, nothing emitted.
    Cancelled,
}

/// What [`release_orders`] did with one `orders.cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// The order's reservation was put back.
    Released,
    /// The order had reserved nothing (not seen yet, or rejected): it is marked cancelled so a
    /// later `orders.created` reserves nothing.
    NothingReserved,
    /// This event, or another for the same order, was handled before: nothing done.
    Duplicate,
}

/// Reserves a batch of orders in the caller's transaction, in stream order, and returns what
/// happened to each, in the same order (SPEC §5 rules 1-3).
///
/// The ingredient rows the batch touches are locked once, then [`ReservationBatch::plan`]
/// evaluates every order in memory against the levels the orders before it left, then the plan
/// is written: the stock movements, the new levels and alert states, the outbox events
/// (carrying each incoming envelope's `correlation_id`) and the inbox records. Either all of it
/// commits or none does; the caller acks after the commit.
pub async fn reserve_orders(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    orders: &[Envelope<OrderCreated>],
) -> Result<Vec<Reserved>, DbErr> {
    // SPEC §5 rule 1: the inbox record commits with the effects, so a redelivery (same envelope
    // id, whatever its Nats-Msg-Id) finds it and changes nothing.
    let event_ids: BTreeSet<Uuid> = orders.iter().map(|o| o.id).collect();
    let new_events = record_events(txn, RESERVATIONS_CONSUMER, &event_ids).await?;
    let mut batch = ReservationBatch::new(orders.iter().map(|o| (o.id, &o.data)), &new_events);

    if batch.has_open() {
        // The cancel race (SPEC §5 rule 4): once the order's lock is held, a cancellation
        // either committed before (its marker is visible: each statement of a READ COMMITTED
        // transaction sees what committed before it started) or will run after this
        // transaction.
        let order_ids = batch.open_orders();
        lock_orders(txn, &order_ids).await?;
        let cancelled = find_cancelled_orders(txn, &order_ids).await?;
        let already_reserved = find_orders_with(txn, &order_ids, Reason::Reserve).await?;
        batch.skip(&cancelled, &already_reserved);
    }
    if !batch.has_open() {
        // Every entry is decided already: the plan needs no levels, so none are locked.
        return Ok(batch.plan([]).outcomes.iter().map(reserved).collect());
    }

    // SPEC §5 rule 2: lock every ingredient row the batch touches, once, in id order.
    let rows: HashMap<i64, ingredients::Model> = lock_ingredients(txn, &batch.ingredient_ids())
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let plan = batch.plan(rows.values().map(|row| MerchantLevel {
        merchant_id: row.merchant_id,
        ingredient_id: row.id,
        level: level_of(row),
    }));

    let mut movements = Vec::new();
    let mut confirmed = Vec::new();
    let mut rejected = Vec::new();
    let mut low = Vec::new();
    for (cause, outcome) in orders.iter().zip(&plan.outcomes) {
        // Only an evaluated order causes events (and gets a span).
        if matches!(
            outcome,
            ReservationOutcome::Duplicate | ReservationOutcome::Cancelled
        ) {
            continue;
        }
        let order = &cause.data;
        // The events this order causes continue its trace, with this span as their parent.
        let span = larder_bus::trace::event_span!("reserve", order.order_id, cause.trace);
        let _in_order = span.enter();
        match outcome {
            ReservationOutcome::Confirmed {
                reservation,
                alerts,
            } => {
                for alert in alerts {
                    let row = &rows[&alert.ingredient_id];
                    low.push(larder_bus::trace::following(
                        StockLow {
                            ingredient_id: row.id,
                            ingredient: row.name.clone(),
                            unit: row.unit.clone(),
                            level: alert.level,
                            reference_level: alert.reference_level,
                            percent: alert.percent,
                            merchant_id: row.merchant_id,
                            merchant_email: row.merchant_email.clone(),
                            order_id: Some(order.order_id),
                        },
                        cause,
                    ));
                }
                movements.extend(reservation.amounts.iter().map(
                    |&IngredientAmount {
                         ingredient_id,
                         amount,
                     }| Movement {
                        order_id: Some(order.order_id),
                        ingredient_id,
                        delta: -amount,
                        reason: Reason::Reserve,
                    },
                ));
                confirmed.push(larder_bus::trace::following(
                    OrderConfirmed {
                        order_id: order.order_id,
                        merchant_id: order.merchant_id,
                        reserved: reservation.amounts.clone(),
                    },
                    cause,
                ));
                tracing::debug!("reserved");
            }
            ReservationOutcome::Rejected(Shortages(shortages)) => {
                rejected.push(larder_bus::trace::following(
                    OrderRejected {
                        order_id: order.order_id,
                        merchant_id: order.merchant_id,
                        shortages: shortages.clone(),
                    },
                    cause,
                ));
                tracing::debug!("rejected: short of stock");
            }
            ReservationOutcome::Duplicate | ReservationOutcome::Cancelled => {}
        }
    }

    let updates: Vec<(i64, &Level)> = plan.levels.iter().map(|(id, level)| (*id, level)).collect();
    update_levels(txn, &updates).await?;
    insert_movements(txn, &movements).await?;
    for chunk in confirmed.chunks(ROWS_PER_STATEMENT) {
        outbox.enqueue_all(txn, chunk).await?;
    }
    for chunk in rejected.chunks(ROWS_PER_STATEMENT) {
        outbox.enqueue_all(txn, chunk).await?;
    }
    for chunk in low.chunks(ROWS_PER_STATEMENT) {
        outbox.enqueue_all(txn, chunk).await?;
    }
    Ok(plan.outcomes.iter().map(reserved).collect())
}

fn reserved(outcome: &ReservationOutcome) -> Reserved {
    match outcome {
        ReservationOutcome::Confirmed { .. } => Reserved::Confirmed,
        ReservationOutcome::Rejected(_) => Reserved::Rejected,
        ReservationOutcome::Duplicate => Reserved::Duplicate,
        ReservationOutcome::Cancelled => Reserved::Cancelled,
    }
}

/// Releases what each cancelled order reserved, in the caller's transaction, and returns what
/// happened to each, in order.
///
/// [`ReleaseBatch::plan`] decides what goes back: exactly what the order reserved (its
/// `reserve` movements, negated, as `release` movements), at most once: the inbox skips a
/// redelivered event, the plan skips what was given back already, and the unique index on
/// `(order_id, ingredient_id, reason)` would refuse a second release anyway. `release_stock` is
/// not trusted to decide: a pending order may already hold a reservation whose
/// `orders.confirmed` the order service has not read yet, so whatever is reserved is released.
/// An order that reserved nothing is marked cancelled, so its `orders.created`, arriving later,
/// reserves nothing.
pub async fn release_orders(
    txn: &DatabaseTransaction,
    events: &[Envelope<OrderCancelled>],
) -> Result<Vec<Released>, DbErr> {
    // SPEC §5 rule 1: inbox record in the same transaction as the release.
    let event_ids: BTreeSet<Uuid> = events.iter().map(|e| e.id).collect();
    let new_events = record_events(txn, RELEASES_CONSUMER, &event_ids).await?;
    let entries: Vec<(Uuid, Uuid)> = events.iter().map(|e| (e.id, e.data.order_id)).collect();
    let batch = ReleaseBatch::new(&entries, &new_events);
    let order_ids = batch.open_orders();
    if order_ids.is_empty() {
        return Ok(vec![Released::Duplicate; events.len()]);
    }

    // The cancel race: serialised with the order's reservation by the order's lock (see
    // `reserve_orders`). After it, the order's movements are final until this commits.
    lock_orders(txn, &order_ids).await?;
    let movements = find_movements(txn, &order_ids).await?;
    let outcomes = batch.plan(&movements);

    let unreserved: BTreeSet<Uuid> = entries
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome == ReleaseOutcome::NothingReserved)
        .map(|((_, order_id), _)| *order_id)
        .collect();
    record_events(txn, CANCELLED_ORDER_MARKER, &unreserved).await?;
    let back: Vec<(Uuid, IngredientAmount)> = entries
        .iter()
        .zip(&outcomes)
        .filter_map(|((_, order_id), outcome)| match outcome {
            ReleaseOutcome::Release(back) => {
                Some(back.iter().map(|amount| (*order_id, amount.clone())))
            }
            ReleaseOutcome::NothingReserved | ReleaseOutcome::Duplicate => None,
        })
        .flatten()
        .collect();
    let released = outcomes
        .iter()
        .map(|outcome| match outcome {
            ReleaseOutcome::Release(_) => Released::Released,
            ReleaseOutcome::NothingReserved => Released::NothingReserved,
            ReleaseOutcome::Duplicate => Released::Duplicate,
        })
        .collect();
    if back.is_empty() {
        return Ok(released);
    }

    // SPEC §5 rule 2: same lock order as reservations: ingredient rows by ascending id.
    let ingredient_ids: BTreeSet<i64> = back.iter().map(|(_, b)| b.ingredient_id).collect();
    let mut levels: BTreeMap<i64, Level> = lock_ingredients(txn, &ingredient_ids)
        .await?
        .iter()
        .map(|row| (row.id, level_of(row)))
        .collect();
    domain::put_back(&mut levels, back.iter().map(|(_, b)| b)).map_err(|error| match error {
        ReleaseError::UnknownIngredient(id) => DbErr::RecordNotFound(format!("ingredient {id}")),
        overflow @ ReleaseError::Overflow { .. } => DbErr::Custom(overflow.to_string()),
    })?;
    let updates: Vec<(i64, &Level)> = levels.iter().map(|(id, level)| (*id, level)).collect();
    update_levels(txn, &updates).await?;
    let movements: Vec<Movement> = back
        .into_iter()
        .map(|(order_id, back)| Movement {
            order_id: Some(order_id),
            ingredient_id: back.ingredient_id,
            delta: back.amount,
            reason: Reason::Release,
        })
        .collect();
    insert_movements(txn, &movements).await?;
    Ok(released)
}

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

fn level_of(row: &ingredients::Model) -> Level {
    Level {
        name: row.name.clone(),
        stock: row.stock,
        reference_level: row.reference_level,
        low_stock_alerted: row.low_stock_alerted,
    }
}

fn statement(sql: impl Into<String>, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Records the events in `consumer`'s inbox, in ascending id order (so two transactions
/// recording overlapping batches wait for each other instead of deadlocking), and returns the
/// ids that were new.
async fn record_events(
    db: &impl ConnectionTrait,
    consumer: &str,
    ids: &BTreeSet<Uuid>,
) -> Result<HashSet<Uuid>, DbErr> {
    let ids: Vec<Uuid> = ids.iter().copied().collect();
    let mut new = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        new.extend(inbox::record_all(db, consumer, chunk).await?);
    }
    Ok(new)
}

/// The advisory lock key of an order.
fn order_lock_key(order_id: Uuid) -> i64 {
    let (high, low) = order_id.as_u64_pair();
    i64::from_ne_bytes((high ^ low ^ ORDER_LOCK_SALT).to_ne_bytes())
}

/// Takes a transaction-scoped advisory lock per order, in ascending key order. The reservation
/// and the release of one order hold it, so they never interleave: whichever commits first, the
/// other sees its effects. Two orders sharing a key (a 64-bit hash collision) only wait for
/// each other.
async fn lock_orders(txn: &DatabaseTransaction, order_ids: &BTreeSet<Uuid>) -> Result<(), DbErr> {
    let keys: BTreeSet<i64> = order_ids.iter().map(|id| order_lock_key(*id)).collect();
    let keys: Vec<i64> = keys.into_iter().collect();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let rows = (1..=chunk.len())
            .map(|n| format!("(${n}::bigint)"))
            .collect::<Vec<_>>()
            .join(", ");
        // ORDER BY: PostgreSQL evaluates the (volatile) lock function after sorting.
        txn.execute_raw(statement(
            format!(
                "SELECT pg_advisory_xact_lock(v.key) FROM (VALUES {rows}) AS v(key) ORDER BY v.key"
            ),
            chunk.iter().map(|k| (*k).into()).collect(),
        ))
        .await?;
    }
    Ok(())
}

/// The orders among `order_ids` that were cancelled before they reserved anything.
async fn find_cancelled_orders(
    txn: &DatabaseTransaction,
    order_ids: &BTreeSet<Uuid>,
) -> Result<HashSet<Uuid>, DbErr> {
    let mut cancelled = HashSet::new();
    let ids: Vec<Uuid> = order_ids.iter().copied().collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let found: Vec<Uuid> = inbox_table::Entity::find()
            .select_only()
            .column(inbox_table::Column::EventId)
            .filter(inbox_table::Column::Consumer.eq(CANCELLED_ORDER_MARKER))
            .filter(inbox_table::Column::EventId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(txn)
            .await?;
        cancelled.extend(found);
    }
    Ok(cancelled)
}

/// The orders among `order_ids` that have a movement with this reason.
async fn find_orders_with(
    txn: &DatabaseTransaction,
    order_ids: &BTreeSet<Uuid>,
    reason: Reason,
) -> Result<HashSet<Uuid>, DbErr> {
    let mut found = HashSet::new();
    let ids: Vec<Uuid> = order_ids.iter().copied().collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let orders: Vec<Option<Uuid>> = stock_movements::Entity::find()
            .select_only()
            .column(stock_movements::Column::OrderId)
            .distinct()
            .filter(stock_movements::Column::OrderId.is_in(chunk.iter().copied()))
            .filter(stock_movements::Column::Reason.eq(reason))
            .into_tuple()
            .all(txn)
            .await?;
        found.extend(orders.into_iter().flatten());
    }
    Ok(found)
}

/// The reserve and release movements of the orders, each order's in the order they were written.
async fn find_movements(
    txn: &DatabaseTransaction,
    order_ids: &BTreeSet<Uuid>,
) -> Result<Vec<Movement>, DbErr> {
    let mut movements = Vec::new();
    let ids: Vec<Uuid> = order_ids.iter().copied().collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let rows = stock_movements::Entity::find()
            .filter(stock_movements::Column::OrderId.is_in(chunk.iter().copied()))
            .filter(stock_movements::Column::Reason.is_in([Reason::Reserve, Reason::Release]))
            .order_by_asc(stock_movements::Column::Id)
            .all(txn)
            .await?;
        for row in rows {
            movements.push(Movement {
                reason: row.reason,
                order_id: row.order_id,
                ingredient_id: row.ingredient_id,
                delta: row.delta,
            });
        }
    }
    Ok(movements)
}

/// SPEC §5 rule 2: locks the ingredient rows, in ascending id order, always the same order
/// whichever transaction and instance takes them, so no two ever deadlock; held until commit,
/// so no two transactions ever reserve the same stock. (`id IN (...)` is `id = ANY(...)`.)
async fn lock_ingredients(
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
async fn update_levels(txn: &DatabaseTransaction, levels: &[(i64, &Level)]) -> Result<(), DbErr> {
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
async fn insert_movements(db: &impl ConnectionTrait, movements: &[Movement]) -> Result<(), DbErr> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_lock_keys_differ_per_order() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(order_lock_key(a), order_lock_key(a));
        assert_ne!(order_lock_key(a), order_lock_key(b));
    }
}
