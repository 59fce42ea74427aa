//! Reservation and release batches: the handlers of `orders.created` and `orders.cancelled`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use entities::{inbox as inbox_table, ingredients, stock_movements};
use larder_bus::batch::{probe_by_index, scans_allowed};
use larder_bus::inbox;
use larder_bus::outbox::Outbox;
use larder_contract::Envelope;
use larder_contract::events::{
    IngredientAmount, OrderCancelled, OrderConfirmed, OrderCreated, OrderRejected, StockLow,
};

use super::rows::{insert_movements, level_of, lock_ingredients, statement, update_levels};
use super::{
    CANCELLED_ORDER_MARKER, RELEASES_CONSUMER, RESERVATIONS_CONSUMER, ROWS_PER_STATEMENT, Reason,
};
use crate::domain::{
    self, Level, MerchantLevel, Movement, ReleaseBatch, ReleaseError, ReleaseOutcome,
    ReservationBatch, ReservationOutcome, Shortages,
};

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
/// The batch's orders are locked first, so what any other transaction decided for them has
/// committed (or waits for this one). Then [`ReservationBatch::plan`] evaluates every order not
/// decided before in memory against the levels the orders before it left, on the ingredient rows
/// the batch touches, locked once, and the plan is written: the stock movements, the new levels and
/// alert states, the outbox events (carrying each incoming envelope's `correlation_id`) and the
/// inbox records of the decisions that wrote no movement. Either all of it commits or none does;
/// the caller acks after the commit.
pub async fn reserve_orders(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    orders: &[Envelope<OrderCreated>],
) -> Result<Vec<Reserved>, DbErr> {
    // The cancel race (SPEC §5 rule 4) and a redelivery handled by another instance at the same
    // time: once the orders' locks are held, a cancellation or an earlier decision either
    // committed before (visible: each statement of a READ COMMITTED transaction sees what
    // committed before it started) or will run after this transaction.
    let order_ids: BTreeSet<Uuid> = orders.iter().map(|o| o.data.order_id).collect();
    lock_orders(txn, &order_ids).await?;
    // SPEC §5 rule 1 by two keys. A reservation is unique per order: its movements say it was
    // made, so a confirmed order needs no inbox row. A decision that wrote no movement (a
    // rejection) left its envelope id in the inbox.
    let event_ids: BTreeSet<Uuid> = orders.iter().map(|o| o.id).collect();
    // By index, however large the inbox and the movements have grown (see `probe_by_index`).
    probe_by_index(txn).await?;
    let decided = find_recorded(txn, RESERVATIONS_CONSUMER, &event_ids).await?;
    let cancelled = find_recorded(txn, CANCELLED_ORDER_MARKER, &order_ids).await?;
    let already_reserved = find_orders_with(txn, &order_ids, Reason::Reserve).await?;
    scans_allowed(txn).await?;
    let new_events: HashSet<Uuid> = event_ids
        .iter()
        .filter(|id| !decided.contains(id))
        .copied()
        .collect();
    let mut batch = ReservationBatch::new(orders.iter().map(|o| (o.id, &o.data)), &new_events);
    batch.skip(&cancelled, &already_reserved);
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
    let mut unkeyed = BTreeSet::new();
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
                if reservation.amounts.is_empty() {
                    // Nothing to reserve, so no movement keys the decision.
                    unkeyed.insert(cause.id);
                }
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
                unkeyed.insert(cause.id);
                tracing::debug!("rejected: short of stock");
            }
            ReservationOutcome::Duplicate | ReservationOutcome::Cancelled => {}
        }
    }

    let updates: Vec<(i64, &Level)> = plan.levels.iter().map(|(id, level)| (*id, level)).collect();
    update_levels(txn, &updates).await?;
    insert_movements(txn, &movements).await?;
    record_events(txn, RESERVATIONS_CONSUMER, &unkeyed).await?;
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
    probe_by_index(txn).await?;
    let movements = find_movements(txn, &order_ids).await?;
    scans_allowed(txn).await?;
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

/// The ids among `ids` recorded in `consumer`'s inbox: events, or for
/// [`CANCELLED_ORDER_MARKER`] the orders cancelled before they reserved anything.
async fn find_recorded(
    txn: &DatabaseTransaction,
    consumer: &str,
    ids: &BTreeSet<Uuid>,
) -> Result<HashSet<Uuid>, DbErr> {
    let mut recorded = HashSet::new();
    let ids: Vec<Uuid> = ids.iter().copied().collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let found: Vec<Uuid> = inbox_table::Entity::find()
            .select_only()
            .column(inbox_table::Column::EventId)
            .filter(inbox_table::Column::Consumer.eq(consumer))
            .filter(inbox_table::Column::EventId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(txn)
            .await?;
        recorded.extend(found);
    }
    Ok(recorded)
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
