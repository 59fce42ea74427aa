//! The shipments handler: batches of `orders.confirmed` (create the order's shipment) and
//! `orders.cancelled` (drop a shipment not yet dispatched) from the delivery consumers
//! (SPEC §5 rules 1, 4 and 6).
//!
//! One transaction per batch (one statement for a batch of new shipments), one per event if the
//! batch fails, so one bad event never holds up the others; the reply (and so the ack) comes
//! after the commit.

use std::future::Future;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tracing::instrument;
use uuid::Uuid;

use larder_bus::batch;
use larder_bus::consume::{Delivery, HandleEvents, Outcome};
use larder_contract::Envelope;
use larder_contract::events::{OrderCancelled, OrderConfirmed};

use crate::actors::timer::{DeliveryTimer, WakeAt};
use crate::config::DeliverySettings;
use crate::store::{self, Cancelled, Inserted};
use larder_bus::trace::Within as _;

/// Creates and cancels shipments for the `delivery-orders-*` consumers. Cheap to clone.
#[derive(Clone)]
pub struct Shipments {
    db: DatabaseConnection,
    settings: DeliverySettings,
    /// Told when a new shipment's dispatch is due, so it happens on time rather than at the
    /// next poll.
    timer: Addr<DeliveryTimer>,
}

impl Shipments {
    pub fn new(
        db: DatabaseConnection,
        settings: DeliverySettings,
        timer: Addr<DeliveryTimer>,
    ) -> Self {
        Self {
            db,
            settings,
            timer,
        }
    }
}

impl HandleEvents<Envelope<OrderConfirmed>> for Shipments {
    async fn handle(&self, deliveries: Vec<Delivery<Envelope<OrderConfirmed>>>) -> Vec<Outcome> {
        create(&self.db, &self.settings, &self.timer, deliveries).await
    }
}

impl HandleEvents<Envelope<OrderCancelled>> for Shipments {
    async fn handle(&self, deliveries: Vec<Delivery<Envelope<OrderCancelled>>>) -> Vec<Outcome> {
        cancel(&self.db, deliveries).await
    }
}

/// The part of an order event this handler needs.
#[derive(Clone, Debug)]
struct OrderEvent {
    event_id: Uuid,
    order_id: Uuid,
    correlation_id: Option<String>,
    /// This order's span in the handler, in the order's trace.
    span: tracing::Span,
    /// The trace the shipment's events continue, with `span` as their parent.
    trace: Option<larder_contract::trace::TraceParent>,
}

impl OrderEvent {
    /// `event` of `order_id`, handled in `span` (opened in the event's trace).
    fn new<T>(event: &Envelope<T>, order_id: Uuid, span: tracing::Span) -> Self {
        Self {
            event_id: event.id,
            order_id,
            correlation_id: event.correlation_id.clone(),
            trace: event.trace.map(|t| t.within(&span)),
            span,
        }
    }
}

/// One outcome per delivery, in order: `Done` once committed (or already handled), `Retry` for a
/// database failure. Wakes the timer for the new shipments' dispatch.
#[instrument(skip_all, fields(orders = deliveries.len()))]
async fn create(
    db: &DatabaseConnection,
    settings: &DeliverySettings,
    timer: &Addr<DeliveryTimer>,
    deliveries: Vec<Delivery<Envelope<OrderConfirmed>>>,
) -> Vec<Outcome> {
    let events: Vec<OrderEvent> = deliveries
        .iter()
        .map(|d| {
            let order_id = d.event.data.order_id;
            let span = larder_bus::trace::event_span!("shipment_create", order_id, d.event.trace);
            OrderEvent::new(&d.event, order_id, span)
        })
        .collect();
    let results = settle(&events, move |events| async move {
        let txn = db.begin().await?;
        let confirmations: Vec<store::Confirmation> = events
            .iter()
            .map(|event| store::Confirmation {
                event_id: event.event_id,
                order_id: event.order_id,
                correlation_id: event.correlation_id.clone(),
                trace: event.trace,
            })
            .collect();
        let inserted = store::insert_shipments(&txn, &confirmations, Utc::now(), settings).await?;
        txn.commit().await?;
        Ok(inserted)
    })
    .await;

    let mut first_due: Option<DateTime<Utc>> = None;
    let outcomes = events
        .iter()
        .zip(results)
        .map(|(event, result)| match result {
            Ok(Inserted::New(shipment)) => {
                let due = shipment.next_step_at.map(|t| t.to_utc());
                event.span.in_scope(|| tracing::info!(shipment_id = %shipment.id, ?due, "shipment created"));
                if let Some(due) = due {
                    first_due = Some(first_due.map_or(due, |first| first.min(due)));
                }
                Outcome::Done
            }
            Ok(Inserted::Exists(status)) => {
                tracing::info!(order_id = %event.order_id, %status, "the order has a shipment already");
                Outcome::Done
            }
            Ok(Inserted::Duplicate) => {
                tracing::debug!(order_id = %event.order_id, "duplicate confirmation ignored");
                Outcome::Done
            }
            Err(error) => retry(event, &error),
        })
        .collect();
    if let Some(at) = first_due {
        timer.do_send(WakeAt(at));
    }
    outcomes
}

/// One outcome per delivery, in order, as for [`create`].
#[instrument(skip_all, fields(orders = deliveries.len()))]
async fn cancel(
    db: &DatabaseConnection,
    deliveries: Vec<Delivery<Envelope<OrderCancelled>>>,
) -> Vec<Outcome> {
    let events: Vec<OrderEvent> = deliveries
        .iter()
        .map(|d| {
            let order_id = d.event.data.order_id;
            let span = larder_bus::trace::event_span!("shipment_cancel", order_id, d.event.trace);
            OrderEvent::new(&d.event, order_id, span)
        })
        .collect();

    let results = settle(&events, move |events| async move {
        let txn = db.begin().await?;
        let now = Utc::now();
        let mut cancelled = Vec::with_capacity(events.len());
        for event in events {
            cancelled
                .push(store::cancel_shipment(&txn, event.event_id, event.order_id, now).await?);
        }
        txn.commit().await?;
        Ok(cancelled)
    })
    .await;

    events
        .iter()
        .zip(results)
        .map(|(event, result)| match result {
            Ok(Cancelled::Dropped) => {
                tracing::info!(order_id = %event.order_id, "shipment cancelled before dispatch");
                Outcome::Done
            }
            Ok(Cancelled::Remembered) => {
                tracing::info!(order_id = %event.order_id, "cancelled before its confirmation: no shipment will be created");
                Outcome::Done
            }
            Ok(Cancelled::TooLate(status)) => {
                tracing::warn!(order_id = %event.order_id, %status, "cancellation after dispatch ignored");
                Outcome::Done
            }
            Ok(Cancelled::AlreadyCancelled | Cancelled::Duplicate) => Outcome::Done,
            Err(error) => retry(event, &error),
        })
        .collect()
}

fn retry(event: &OrderEvent, error: &DbErr) -> Outcome {
    tracing::warn!(order_id = %event.order_id, %error, "shipment update failed; will retry");
    Outcome::Retry {
        reason: error.to_string(),
    }
}

/// Applies `apply` to the whole batch in one transaction; if that fails, to each event in a
/// transaction of its own. One result per event, in order.
///
/// Within a transaction events are applied in ascending order id, so two instances handling
/// overlapping batches (a redelivery) take the shipments' locks in the same order.
async fn settle<'a, R, F, Fut>(events: &'a [OrderEvent], apply: F) -> Vec<Result<R, DbErr>>
where
    F: Fn(Vec<&'a OrderEvent>) -> Fut,
    Fut: Future<Output = Result<Vec<R>, DbErr>>,
{
    let mut by_order: Vec<(usize, &OrderEvent)> = events.iter().enumerate().collect();
    by_order.sort_by_key(|(_, e)| e.order_id);
    let sorted: Vec<&OrderEvent> = by_order.iter().map(|(_, e)| *e).collect();
    let results = batch::all_else_each(&sorted, |events| apply(events.to_vec())).await;
    let mut placed: Vec<(usize, Result<R, DbErr>)> = by_order
        .iter()
        .map(|(index, _)| *index)
        .zip(results)
        .collect();
    placed.sort_by_key(|(index, _)| *index);
    placed.into_iter().map(|(_, result)| result).collect()
}
