//! SeaORM queries on `shipments`, each in the caller's transaction, with the inbox record or the
//! outbox events that go with the change (SPEC §5 rules 1 and 6).
//!
//! - [`insert_shipments`]: a batch of `orders.confirmed` -> one pending shipment per order, in
//!   one statement ([`insert_shipment`] for one).
//! - [`cancel_shipment`]: `orders.cancelled` -> a pending shipment is dropped; a cancellation that
//!   overtook the confirmation is remembered, so no shipment is ever created for the order.
//! - [`cancel_on_request`]: a confirmed order's cancel request -> dropped and announced, or
//!   refused once dispatched.
//! - [`claim_due`], [`advance_due`]: the durable timers; a round's steps in one statement.
//! - [`force_next_step`]: a courier update from the order API.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
    Statement, Value,
};
use uuid::Uuid;

use entities::shipments;
use larder_bus::batch::json_rows;
use larder_bus::inbox::{self, Recorded};
use larder_bus::outbox::Outbox;
use larder_bus::topology::{DELIVERY_ORDERS_CANCELLED, DELIVERY_ORDERS_CONFIRMED};
use larder_contract::Envelope;
use larder_contract::events::{DeliveryCancelled, DeliveryDelivered, DeliveryDispatched};
use larder_contract::trace::TraceParent;

use crate::config::DeliverySettings;
use crate::domain::{self, ForceRefusal, OnCancel, ShipmentStatus, Step, plan_force};
use larder_bus::trace::InTrace as _;

/// The inbox consumer of `orders.confirmed`.
pub const CONFIRMED_CONSUMER: &str = DELIVERY_ORDERS_CONFIRMED.durable;
/// The inbox consumer of `orders.cancelled`.
pub const CANCELLED_CONSUMER: &str = DELIVERY_ORDERS_CANCELLED.durable;

/// What an `orders.confirmed` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// A new pending shipment, its dispatch due at `next_step_at`.
    New(shipments::Model),
    /// The order already has a shipment (a cancelled one when the cancellation came first).
    Exists(ShipmentStatus),
    /// This event was handled before: nothing changed.
    Duplicate,
}

/// One `orders.confirmed` for [`insert_shipments`].
#[derive(Clone, Debug)]
pub struct Confirmation {
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub correlation_id: Option<String>,
    /// The trace the shipment's events continue.
    pub trace: Option<TraceParent>,
}

/// A new shipment, as [`insert_shipments`]' insert reads it.
#[derive(serde::Serialize)]
struct NewShipment<'a> {
    id: Uuid,
    order_id: Uuid,
    correlation_id: Option<&'a str>,
    traceparent: Option<String>,
}

/// A shipment's next status, as [`advance_due`]'s update reads it.
#[derive(serde::Serialize)]
struct StepRow {
    id: Uuid,
    status: &'static str,
    next_step_at: Option<DateTime<Utc>>,
}

/// Creates the pending shipment of a confirmed order, its dispatch due after the dispatch delay,
/// in the caller's transaction: [`insert_shipments`] for one.
pub async fn insert_shipment(
    txn: &DatabaseTransaction,
    event_id: Uuid,
    order_id: Uuid,
    correlation_id: Option<&str>,
    now: DateTime<Utc>,
    settings: &DeliverySettings,
) -> Result<Inserted, DbErr> {
    let confirmation = Confirmation {
        event_id,
        order_id,
        correlation_id: correlation_id.map(str::to_owned),
        trace: None,
    };
    insert_shipments(txn, std::slice::from_ref(&confirmation), now, settings)
        .await?
        .pop()
        .ok_or_else(|| DbErr::Custom("an insert gave no result".into()))
}

/// Creates the pending shipments of confirmed orders, their dispatch due after the dispatch
/// delay, with one statement in the caller's transaction; one result per confirmation, in order.
///
/// One shipment per order (`shipments_order_id_key`): a second confirmation of the order, or a
/// confirmation after the order's cancellation was remembered, inserts nothing. That natural key
/// makes a redelivery a no-op by itself, so no inbox row is written: a repeated event answers
/// [`Inserted::Exists`].
pub async fn insert_shipments(
    txn: &DatabaseTransaction,
    confirmations: &[Confirmation],
    now: DateTime<Utc>,
    settings: &DeliverySettings,
) -> Result<Vec<Inserted>, DbErr> {
    if confirmations.is_empty() {
        return Ok(Vec::new());
    }
    // Each order once, in ascending order id: instances inserting overlapping batches take the
    // unique index's locks in the same order.
    let mut orders: Vec<&Confirmation> = Vec::with_capacity(confirmations.len());
    for confirmation in confirmations {
        if !orders.iter().any(|c| c.order_id == confirmation.order_id) {
            orders.push(confirmation);
        }
    }
    orders.sort_by_key(|c| c.order_id);
    let rows: Vec<NewShipment> = orders
        .iter()
        .map(|c| NewShipment {
            id: Uuid::now_v7(),
            order_id: c.order_id,
            correlation_id: c.correlation_id.as_deref(),
            traceparent: c.trace.map(|t| t.to_string()),
        })
        .collect();
    let status = ShipmentStatus::Pending;
    let inserted = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO shipments (id, order_id, status, next_step_at, created_at, updated_at, correlation_id, traceparent) \
             SELECT v.id, v.order_id, $2, $3, $4, $4, v.correlation_id, v.traceparent \
             FROM jsonb_to_recordset($1::jsonb) AS v(id uuid, order_id uuid, correlation_id text, traceparent text) \
             ORDER BY v.order_id \
             ON CONFLICT ON CONSTRAINT shipments_order_id_key DO NOTHING \
             RETURNING *",
            [
                json_rows(&rows)?.into(),
                status.as_str().into(),
                Value::from(domain::next_step_at(status, now, settings).map(|t| t.fixed_offset())),
                now.fixed_offset().into(),
            ],
        ))
        .await?
        .iter()
        .map(|row| shipments::Model::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()?;
    let mut new: std::collections::HashMap<Uuid, shipments::Model> =
        inserted.into_iter().map(|s| (s.order_id, s)).collect();
    let existing_orders: Vec<Uuid> = orders
        .iter()
        .map(|c| c.order_id)
        .filter(|id| !new.contains_key(id))
        .collect();
    let mut existing: std::collections::HashMap<Uuid, ShipmentStatus> =
        std::collections::HashMap::new();
    if !existing_orders.is_empty() {
        for shipment in shipments::Entity::find()
            .filter(shipments::Column::OrderId.is_in(existing_orders))
            .all(txn)
            .await?
        {
            existing.insert(shipment.order_id, shipment.status);
        }
    }
    confirmations
        .iter()
        .map(|c| {
            // The first confirmation of a new shipment gets it; any other one finds it there.
            if let Some(shipment) = new.remove(&c.order_id) {
                existing.insert(c.order_id, shipment.status);
                Ok(Inserted::New(shipment))
            } else {
                existing
                    .get(&c.order_id)
                    .map(|status| Inserted::Exists(*status))
                    .ok_or_else(|| DbErr::RecordNotFound(format!("the shipment of {}", c.order_id)))
            }
        })
        .collect()
}

/// What an `orders.cancelled` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The pending shipment was cancelled; it will not be dispatched.
    Dropped,
    /// No shipment yet (the cancellation overtook the confirmation): a cancelled one was recorded
    /// in its place, so a later confirmation creates none.
    Remembered,
    /// The shipment was cancelled already.
    AlreadyCancelled,
    /// The courier has it: left alone.
    TooLate(ShipmentStatus),
    /// This event was handled before: nothing changed.
    Duplicate,
}

/// Applies an order's cancellation to its shipment and records `event_id` in the
/// `delivery-orders-cancelled` inbox, in the caller's transaction.
pub async fn cancel_shipment(
    txn: &DatabaseTransaction,
    event_id: Uuid,
    order_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Cancelled, DbErr> {
    if inbox::record(txn, CANCELLED_CONSUMER, event_id).await? == Recorded::Duplicate {
        return Ok(Cancelled::Duplicate);
    }
    Ok(drop_shipment(txn, order_id, now).await?.0)
}

/// Drops the order's shipment unless the courier has it; with no shipment yet, records a
/// cancelled one so that none is ever created. Returns what happened and the shipment row
/// (none when it was too late). The caller's transaction holds the row lock until it commits.
async fn drop_shipment(
    txn: &DatabaseTransaction,
    order_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(Cancelled, Option<shipments::Model>), DbErr> {
    // Two rounds at most: when the tombstone's insert finds a shipment after all, a concurrent
    // confirmation has just committed it, and the second round locks and reads it.
    for _ in 0..2 {
        if let Some(shipment) = find_shipment_for_update(txn, order_id).await? {
            return match domain::on_cancel(shipment.status) {
                OnCancel::Cancel => {
                    let dropped =
                        set_status(txn, shipment, ShipmentStatus::Cancelled, now, None).await?;
                    Ok((Cancelled::Dropped, Some(dropped)))
                }
                OnCancel::AlreadyCancelled => Ok((Cancelled::AlreadyCancelled, Some(shipment))),
                OnCancel::TooLate => Ok((Cancelled::TooLate(shipment.status), None)),
            };
        }
        // SPEC §5 rule 4: the unique order id makes a later `orders.confirmed` a no-op.
        if let Some(tombstone) =
            insert_if_absent(txn, order_id, ShipmentStatus::Cancelled, None, now, None).await?
        {
            return Ok((Cancelled::Remembered, Some(tombstone)));
        }
    }
    Err(DbErr::Custom(format!(
        "the shipment of order {order_id} appeared and vanished while cancelling it"
    )))
}

/// Why delivery refused to cancel.
#[derive(Debug, thiserror::Error)]
pub enum CancelRefusal {
    #[error("the shipment is already {0}: the order can no longer be cancelled")]
    TooLate(ShipmentStatus),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Delivery's decision on a confirmed order's cancel request (SPEC §5 rule 4): a shipment not
/// yet dispatched is dropped (or, when there is none yet, one is recorded cancelled so none is
/// ever created) and `delivery.cancelled` is enqueued in the caller's transaction; one with the
/// courier refuses. Asking again after an accepted cancel accepts again and emits nothing new.
///
/// The shipment's row lock orders this with the timer and courier updates: whichever commits
/// first wins, so a shipment is never both dispatched and cancelled.
pub async fn cancel_on_request(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    order_id: Uuid,
    correlation_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<shipments::Model, CancelRefusal> {
    match drop_shipment(txn, order_id, now).await? {
        (Cancelled::TooLate(status), _) => Err(CancelRefusal::TooLate(status)),
        (outcome, Some(shipment)) => {
            if matches!(outcome, Cancelled::Dropped | Cancelled::Remembered) {
                let event = DeliveryCancelled {
                    order_id,
                    shipment_id: shipment.id,
                    at: now,
                };
                outbox
                    .enqueue(txn, &Envelope::new(event, correlation_id))
                    .await?;
                tracing::info!(%order_id, shipment_id = %shipment.id, ?outcome, "shipment cancelled on request");
            }
            Ok(shipment)
        }
        (outcome, None) => Err(CancelRefusal::Database(DbErr::Custom(format!(
            "cancelling order {order_id}'s shipment gave {outcome:?} without a shipment"
        )))),
    }
}

/// Locks and returns up to `limit` shipments whose next step is due at `now`, earliest first.
///
/// SPEC §5 rule 6, durable timers: `FOR UPDATE SKIP LOCKED`, so another instance's round (or a
/// forced step) holding a row is skipped rather than waited for, and no step is taken twice; the
/// due time lives in the row, so a restart loses none.
pub async fn claim_due(
    txn: &DatabaseTransaction,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<shipments::Model>, DbErr> {
    shipments::Entity::find()
        .filter(shipments::Column::NextStepAt.lte(now.fixed_offset()))
        .filter(shipments::Column::Status.is_in([
            ShipmentStatus::Pending.as_str(),
            ShipmentStatus::Dispatched.as_str(),
        ]))
        .order_by_asc(shipments::Column::NextStepAt)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(txn)
        .await
}

/// One round of the timers: claims up to `limit` due shipments ([`claim_due`]) and takes the next
/// step of each, with its event in the outbox, in the caller's transaction: one statement for the
/// steps and one per event type. Returns the shipments as they are now, in the order claimed;
/// fewer than `limit` means nothing else was due (or the rest is claimed).
pub async fn advance_due(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    now: DateTime<Utc>,
    limit: u64,
    settings: &DeliverySettings,
) -> Result<Vec<shipments::Model>, DbErr> {
    let due = claim_due(txn, now, limit).await?;
    let mut taken: std::collections::HashMap<Uuid, Step> =
        std::collections::HashMap::with_capacity(due.len());
    let mut steps = Vec::with_capacity(due.len());
    for shipment in &due {
        let from = shipment.status;
        // Not claimable (see the query); a final shipment has no step to take.
        let Some(next) = domain::next_step(from) else {
            continue;
        };
        domain::advance(from, next.status())
            .map_err(|illegal| DbErr::Custom(illegal.to_string()))?;
        taken.insert(shipment.id, next);
        steps.push(StepRow {
            id: shipment.id,
            status: next.as_str(),
            next_step_at: domain::next_step_at(next.status(), now, settings),
        });
    }
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    // The update reaches into a table that grows with every order: planned for its arguments,
    // not with a plan cached while it was small, and given the ids again as an array, it looks
    // them up by primary key, as many as there are (the JSON's size is a blind guess). Not the
    // claim before it: its cached plan walks the due-time index in order and stops at `limit`,
    // where a plan for today's `now` would fetch and sort every due shipment.
    larder_bus::batch::plan_for_arguments(txn).await?;
    let ids: Vec<Uuid> = taken.keys().copied().collect();
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE shipments s SET status = v.status, next_step_at = v.next_step_at, updated_at = $2, \
                 dispatched_at = CASE WHEN v.status = 'dispatched' THEN $2 ELSE s.dispatched_at END, \
                 delivered_at = CASE WHEN v.status = 'delivered' THEN $2 ELSE s.delivered_at END \
             FROM jsonb_to_recordset($1::jsonb) AS v(id uuid, status text, next_step_at timestamptz) \
             WHERE s.id = v.id AND s.id = ANY($3) \
             RETURNING s.*",
            [
                json_rows(&steps)?.into(),
                now.fixed_offset().into(),
                ids.into(),
            ],
        ))
        .await?;
    let mut updated: std::collections::HashMap<Uuid, shipments::Model> = rows
        .iter()
        .map(|row| shipments::Model::from_query_result(row, "").map(|s| (s.id, s)))
        .collect::<Result<_, _>>()?;
    let advanced: Vec<shipments::Model> = due
        .iter()
        .filter_map(|claimed| updated.remove(&claimed.id))
        .collect();
    let (mut dispatched, mut delivered) = (Vec::new(), Vec::new());
    for shipment in &advanced {
        let (order_id, shipment_id) = (shipment.order_id, shipment.id);
        // The confirmation's correlation id, kept on the row for the timer's later steps.
        let correlation_id = shipment.correlation_id.clone();
        let trace = shipment_trace(shipment);
        let span = larder_bus::trace::event_span!("shipment_step", order_id, trace);
        let _in_step = span.enter();
        let step = taken.get(&shipment_id).copied().ok_or_else(|| {
            DbErr::Custom(format!("shipment {shipment_id} was stepped without a plan"))
        })?;
        match step {
            Step::Dispatched => dispatched.push(
                Envelope::new(
                    DeliveryDispatched {
                        order_id,
                        shipment_id,
                        at: now,
                    },
                    correlation_id,
                )
                .in_trace(trace),
            ),
            Step::Delivered => delivered.push(
                Envelope::new(
                    DeliveryDelivered {
                        order_id,
                        shipment_id,
                        at: now,
                    },
                    correlation_id,
                )
                .in_trace(trace),
            ),
        }
        tracing::info!(%shipment_id, status = %shipment.status, "shipment advanced");
    }
    outbox.enqueue_all(txn, &dispatched).await?;
    outbox.enqueue_all(txn, &delivered).await?;
    Ok(advanced)
}

/// The trace a shipment's events continue, kept on its row.
fn shipment_trace(shipment: &shipments::Model) -> Option<TraceParent> {
    shipment.traceparent.as_deref().and_then(TraceParent::parse)
}

/// Why [`force_next_step`] refused.
#[derive(Debug, thiserror::Error)]
pub enum ForceStepError {
    #[error("no shipment for this order yet")]
    NoShipment,
    #[error("the shipment is {0}: no further step")]
    Finished(ShipmentStatus),
    #[error("the shipment is {current}, it cannot become {requested}")]
    Illegal {
        current: ShipmentStatus,
        requested: Step,
    },
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<ForceRefusal> for ForceStepError {
    fn from(refusal: ForceRefusal) -> Self {
        match refusal {
            ForceRefusal::Finished(status) => Self::Finished(status),
            ForceRefusal::Illegal { current, requested } => Self::Illegal { current, requested },
        }
    }
}

/// Forces the shipment of `order_id` to the status `to` leads to now, as a courier update would;
/// emits the event(s) through the outbox in the caller's transaction. Forcing `delivered` on a pending
/// shipment first dispatches it (two events, in order). Forcing the status it already has is Ok (idempotent).
///
/// The shipment's row is locked (`FOR UPDATE`, waiting for a timer round that holds it), so a
/// forced step and a due one never both happen. After a forced dispatch, delivery is due the
/// deliver delay later.
#[tracing::instrument(skip_all, fields(%order_id, to = %to))]
pub async fn force_next_step(
    txn: &DatabaseTransaction,
    outbox: &larder_bus::outbox::Outbox,
    order_id: Uuid,
    to: Step,
    settings: &DeliverySettings,
) -> Result<entities::shipments::Model, ForceStepError> {
    let mut shipment = find_shipment_for_update(txn, order_id)
        .await?
        .ok_or(ForceStepError::NoShipment)?;
    let steps = plan_force(shipment.status, to)?;
    let now = Utc::now();
    for step in steps {
        shipment = take_step(txn, outbox, shipment, step, now, settings).await?;
    }
    Ok(shipment)
}

/// Moves a locked shipment one step forward at `now`, schedules the step after it, and enqueues
/// the step's event.
async fn take_step(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    shipment: shipments::Model,
    step: Step,
    now: DateTime<Utc>,
    settings: &DeliverySettings,
) -> Result<shipments::Model, DbErr> {
    let to = step.status();
    let next_step_at = domain::next_step_at(to, now, settings);
    let updated = set_status(txn, shipment, to, now, next_step_at).await?;
    // The confirmation's correlation id, kept on the row for the timer's later steps.
    let (order_id, shipment_id) = (updated.order_id, updated.id);
    let correlation_id = updated.correlation_id.clone();
    let trace = shipment_trace(&updated);
    let span = larder_bus::trace::event_span!("shipment_step", order_id, trace);
    match step {
        Step::Dispatched => {
            let event = DeliveryDispatched {
                order_id,
                shipment_id,
                at: now,
            };
            let event =
                span.in_scope(|| Envelope::new(event, correlation_id.clone()).in_trace(trace));
            outbox.enqueue(txn, &event).await?;
        }
        Step::Delivered => {
            let event = DeliveryDelivered {
                order_id,
                shipment_id,
                at: now,
            };
            let event =
                span.in_scope(|| Envelope::new(event, correlation_id.clone()).in_trace(trace));
            outbox.enqueue(txn, &event).await?;
        }
    }
    tracing::info!(%order_id, %shipment_id, status = %to, "shipment advanced");
    Ok(updated)
}

/// Writes a transition the caller has checked (and locked the row for): the new status, its
/// timestamp, and the due time of the next step (`None`: no timer).
async fn set_status(
    txn: &DatabaseTransaction,
    shipment: shipments::Model,
    to: ShipmentStatus,
    now: DateTime<Utc>,
    next_step_at: Option<DateTime<Utc>>,
) -> Result<shipments::Model, DbErr> {
    domain::advance(shipment.status, to).map_err(|illegal| DbErr::Custom(illegal.to_string()))?;
    let mut row: shipments::ActiveModel = shipment.into();
    row.status = Set(to);
    row.next_step_at = Set(next_step_at.map(|t| t.fixed_offset()));
    row.updated_at = Set(now.fixed_offset());
    match to {
        ShipmentStatus::Dispatched => row.dispatched_at = Set(Some(now.fixed_offset())),
        ShipmentStatus::Delivered => row.delivered_at = Set(Some(now.fixed_offset())),
        ShipmentStatus::Pending | ShipmentStatus::Cancelled => {}
    }
    row.update(txn).await
}

/// Inserts the order's shipment unless it has one (`shipments_order_id_key`); `None` when it had.
async fn insert_if_absent(
    txn: &DatabaseTransaction,
    order_id: Uuid,
    status: ShipmentStatus,
    next_step_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    correlation_id: Option<&str>,
) -> Result<Option<shipments::Model>, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO shipments (id, order_id, status, next_step_at, created_at, updated_at, correlation_id) \
             VALUES ($1, $2, $3, $4, $5, $5, $6) \
             ON CONFLICT ON CONSTRAINT shipments_order_id_key DO NOTHING \
             RETURNING *",
            [
                Uuid::now_v7().into(),
                order_id.into(),
                status.as_str().into(),
                Value::from(next_step_at.map(|t| t.fixed_offset())),
                now.fixed_offset().into(),
                correlation_id.map(str::to_owned).into(),
            ],
        ))
        .await?;
    row.map(|row| shipments::Model::from_query_result(&row, ""))
        .transpose()
}

async fn find_shipment_for_update(
    txn: &DatabaseTransaction,
    order_id: Uuid,
) -> Result<Option<shipments::Model>, DbErr> {
    shipments::Entity::find()
        .filter(shipments::Column::OrderId.eq(order_id))
        .lock_exclusive()
        .one(txn)
        .await
}
