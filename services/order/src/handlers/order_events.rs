//! Moves orders forward on `orders.confirmed`, `orders.rejected` and `delivery.*` (SPEC §5 rule 4).
//! `delivery.cancelled` completes a confirmed order's cancel that delivery accepted: the order is
//! cancelled and `orders.cancelled` goes out in the same transaction, so stock releases.
//!
//! A plain handler: it turns each event into a [`Transition`] and lets [`settle`] apply a batch of them in
//! one transaction, falling back to one transaction per event when the batch fails, so one bad
//! event never holds up the others. After each commit the changes it made are pushed to every
//! API instance ([`crate::push`]), for the clients following those orders.

use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use uuid::Uuid;

use larder_bus::batch;
use larder_bus::consume::{Delivery, HandleEvents, Outcome};
use larder_bus::outbox::Outbox;
use larder_bus::topology::{
    ORDER_DEAD_ORDERS_CREATED, ORDER_DELIVERY, ORDER_ORDERS_CONFIRMED, ORDER_ORDERS_REJECTED,
};
use larder_contract::Envelope;
use larder_contract::events::{
    DeadOrderCreated, DeliveryEvent, OrderCancelled, OrderConfirmed, OrderRejected,
};

use crate::domain::{self, OrderStatus, Settle};
use crate::push::{Committed, StatusPublisher};
use crate::store;
use larder_bus::trace::InTrace as _;

/// How long an event that overtook its predecessor waits before it is delivered again.
const NOT_YET_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Clone)]
pub struct OrderEvents {
    db: DatabaseConnection,
    outbox: Outbox,
    pushes: StatusPublisher,
}

impl OrderEvents {
    pub fn new(db: DatabaseConnection, outbox: Outbox, pushes: StatusPublisher) -> Self {
        Self { db, outbox, pushes }
    }
}

/// One event's effect on one order.
#[derive(Clone, Debug)]
pub struct Transition {
    pub order_id: Uuid,
    pub to: OrderStatus,
    pub rejection: Option<serde_json::Value>,
    pub note: Option<String>,
    /// Set when the move is a cancel delivery accepted: if it applies, `orders.cancelled`
    /// (releasing the stock) is emitted with this correlation id.
    pub announce_cancel: Option<Option<String>>,
    /// What a delivery event says of the shipment.
    pub shipment: Option<store::ShipmentFact>,
    /// The trace of the event (the order's, from its request on).
    pub trace: Option<larder_contract::trace::TraceParent>,
}

impl HandleEvents<Envelope<OrderConfirmed>> for OrderEvents {
    async fn handle(&self, batch: Vec<Delivery<Envelope<OrderConfirmed>>>) -> Vec<Outcome> {
        let transitions = batch
            .iter()
            .map(|d| Transition {
                order_id: d.event.data.order_id,
                to: OrderStatus::Confirmed,
                rejection: None,
                note: None,
                announce_cancel: None,
                shipment: None,
                trace: d.event.trace,
            })
            .collect();
        self.settle(ORDER_ORDERS_CONFIRMED.durable, transitions)
            .await
    }
}

impl HandleEvents<Envelope<OrderRejected>> for OrderEvents {
    async fn handle(&self, batch: Vec<Delivery<Envelope<OrderRejected>>>) -> Vec<Outcome> {
        let transitions = batch
            .iter()
            .map(|d| {
                let short: Vec<&str> = d
                    .event
                    .data
                    .shortages
                    .iter()
                    .map(|s| s.ingredient.as_str())
                    .collect();
                Transition {
                    order_id: d.event.data.order_id,
                    to: OrderStatus::Rejected,
                    rejection: serde_json::to_value(&d.event.data.shortages).ok(),
                    note: Some(format!("not enough {}", short.join(", "))),
                    announce_cancel: None,
                    shipment: None,
                    trace: d.event.trace,
                }
            })
            .collect();
        self.settle(ORDER_ORDERS_REJECTED.durable, transitions)
            .await
    }
}

/// Stock dead-lettered the order's `orders.created` (it can never be processed, or every retry
/// failed): a pending order is rejected with the reason, so nothing stays pending forever. The
/// dead letter stays in the DLQ stream for the operator.
impl HandleEvents<DeadOrderCreated> for OrderEvents {
    async fn handle(&self, batch: Vec<Delivery<DeadOrderCreated>>) -> Vec<Outcome> {
        let transitions = batch
            .iter()
            .map(|d| {
                let reason = d
                    .headers
                    .get(larder_bus::dlq::REASON_HEADER)
                    .map_or("no reason given", |v| v.as_str());
                Transition {
                    order_id: d.event.order_id,
                    to: OrderStatus::Rejected,
                    rejection: None,
                    note: Some(format!("stock could not process the order: {reason}")),
                    announce_cancel: None,
                    shipment: None,
                    trace: None,
                }
            })
            .collect();
        self.settle(ORDER_DEAD_ORDERS_CREATED.durable, transitions)
            .await
    }
}

impl HandleEvents<DeliveryEvent> for OrderEvents {
    async fn handle(&self, batch: Vec<Delivery<DeliveryEvent>>) -> Vec<Outcome> {
        let transitions = batch
            .iter()
            .map(|d: &Delivery<DeliveryEvent>| {
                let fact = |shipment_id, dispatched_at, delivered_at| store::ShipmentFact {
                    shipment_id,
                    dispatched_at,
                    delivered_at,
                };
                let (order_id, to, note, announce_cancel, shipment) = match &d.event {
                    DeliveryEvent::Dispatched(e) => (
                        e.data.order_id,
                        OrderStatus::Dispatched,
                        format!("shipment {}", e.data.shipment_id),
                        None,
                        fact(e.data.shipment_id, Some(e.data.at), None),
                    ),
                    DeliveryEvent::Delivered(e) => (
                        e.data.order_id,
                        OrderStatus::Delivered,
                        format!("shipment {}", e.data.shipment_id),
                        None,
                        fact(e.data.shipment_id, None, Some(e.data.at)),
                    ),
                    DeliveryEvent::Cancelled(e) => (
                        e.data.order_id,
                        OrderStatus::Cancelled,
                        format!(
                            "cancelled: delivery dropped shipment {}",
                            e.data.shipment_id
                        ),
                        Some(e.correlation_id.clone()),
                        fact(e.data.shipment_id, None, None),
                    ),
                };
                let trace = match &d.event {
                    DeliveryEvent::Dispatched(e) => e.trace,
                    DeliveryEvent::Delivered(e) => e.trace,
                    DeliveryEvent::Cancelled(e) => e.trace,
                };
                Transition {
                    order_id,
                    to,
                    rejection: None,
                    note: Some(note),
                    announce_cancel,
                    shipment: Some(shipment),
                    trace,
                }
            })
            .collect();
        self.settle(ORDER_DELIVERY.durable, transitions).await
    }
}

/// Applies a batch in one transaction; if that fails, each transition in its own. Answers one
/// outcome per transition, after the commit, and pushes what changed (after the commit too: a
/// watcher that reads the order on a push sees the change).
impl OrderEvents {
    #[tracing::instrument(skip_all, fields(consumer = consumer, events = transitions.len()))]
    async fn settle(&self, consumer: &'static str, transitions: Vec<Transition>) -> Vec<Outcome> {
        let results = batch::all_else_each(&transitions, |transitions| {
            settle_in_one_transaction(&self.db, &self.outbox, transitions)
        })
        .await;
        let mut changed = Vec::new();
        let outcomes = results
            .into_iter()
            .map(|result| match result {
                Ok((outcome, applied)) => {
                    changed.extend(applied);
                    outcome
                }
                Err(error) => Outcome::Retry {
                    reason: error.to_string(),
                },
            })
            .collect();
        self.pushes.publish(&changed).await;
        outcomes
    }
}

/// Per transition, its outcome and, when it applied, the status change to announce.
async fn settle_in_one_transaction(
    db: &DatabaseConnection,
    outbox: &Outbox,
    transitions: &[Transition],
) -> Result<Vec<(Outcome, Option<Committed>)>, DbErr> {
    let moves: Vec<store::Move> = transitions
        .iter()
        .map(|t| store::Move {
            order_id: t.order_id,
            to: t.to,
            rejection: t.rejection.clone(),
            note: t.note.clone(),
            shipment: t.shipment,
        })
        .collect();
    let txn = db.begin().await?;
    let store::Advanced { settled, merchants } = store::advance_orders(&txn, &moves).await?;
    // A cancel delivery accepted releases the stock, announced in the same transaction.
    let mut cancelled = Vec::new();
    for (t, settled) in transitions.iter().zip(&settled) {
        if let (Some(correlation_id), Some((found, Settle::Apply))) = (&t.announce_cancel, settled)
        {
            cancelled.push((t.order_id, *found, correlation_id.clone(), t.trace));
        }
    }
    if !cancelled.is_empty() {
        let events: Vec<Envelope<OrderCancelled>> = cancelled
            .into_iter()
            .map(|(order_id, found, correlation_id, trace)| {
                larder_bus::trace::event_span!("order_cancel", order_id, trace).in_scope(|| {
                    Envelope::new(
                        OrderCancelled {
                            order_id,
                            merchant_id: merchants[&order_id],
                            release_stock: domain::reservation_confirmed(found),
                        },
                        correlation_id,
                    )
                    .in_trace(trace)
                })
            })
            .collect();
        outbox.enqueue_all(&txn, &events).await?;
    }
    txn.commit().await?;
    for (t, settled) in transitions.iter().zip(&settled) {
        if let Some((_, Settle::Apply)) = settled {
            metrics::counter!("larder_orders_total", "status" => t.to.as_str()).increment(1);
            larder_bus::trace::event_span!("order_status", t.order_id, t.trace)
                .in_scope(|| tracing::debug!(status = %t.to, "order moved"));
        }
    }
    let outcomes = transitions
        .iter()
        .zip(settled)
        .map(|(t, settled)| {
            let applied = matches!(settled, Some((_, Settle::Apply))).then(|| Committed {
                order_id: t.order_id,
                merchant_id: merchants[&t.order_id],
                status: t.to,
            });
            let outcome = match settled {
            None => Outcome::Reject {
                reason: format!("order {} does not exist", t.order_id),
            },
            // The event it follows is on another subject and will arrive shortly.
            Some((current, Settle::NotYet)) => Outcome::RetryAfter {
                delay: NOT_YET_DELAY,
                reason: format!("order {} is {current}, not ready for {}", t.order_id, t.to),
            },
            Some((current, Settle::Ignore)) => {
                tracing::debug!(order_id = %t.order_id, %current, to = %t.to, "late or duplicate event ignored");
                Outcome::Done
            }
            Some((_, Settle::Apply)) => Outcome::Done,
            };
            (outcome, applied)
        })
        .collect();
    Ok(outcomes)
}
