//! Reservations: batches of `orders.created` from the `stock-orders-created` consumer (SPEC §5
//! rules 1-3).
//!
//! A batch is reserved in one transaction (every order hits the same few ingredient rows, so a
//! transaction per order would serialise on their locks). If the batch fails, each order gets a
//! transaction of its own, so one bad order never sinks the others. The reply, which the consumer
//! runner turns into acks, comes after the commit.

use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tracing::instrument;

use larder_bus::batch;
use larder_bus::consume::{Delivery, HandleEvents, Outcome};
use larder_bus::outbox::Outbox;
use larder_bus::push::Pusher;
use larder_contract::Envelope;
use larder_contract::events::OrderCreated;

use crate::domain;
use crate::store::{self, Reserved};

/// Handles the `stock-orders-created` consumer's batches. Holds no state of its own: one value
/// per runner, cheap to clone.
#[derive(Clone)]
pub struct ReserveOrders {
    db: DatabaseConnection,
    outbox: Outbox,
    pushes: Pusher,
}

impl ReserveOrders {
    pub fn new(db: DatabaseConnection, outbox: Outbox, pushes: Pusher) -> Self {
        Self { db, outbox, pushes }
    }
}

impl HandleEvents<Envelope<OrderCreated>> for ReserveOrders {
    async fn handle(&self, deliveries: Vec<Delivery<Envelope<OrderCreated>>>) -> Vec<Outcome> {
        reserve(&self.db, &self.outbox, &self.pushes, deliveries).await
    }
}

/// One outcome per delivery, in order: `Done` once committed (or already handled), `Reject` for
/// an order no stock could ever satisfy the shape of, `Retry` for a database failure.
#[instrument(skip_all, fields(orders = deliveries.len()))]
async fn reserve(
    db: &DatabaseConnection,
    outbox: &Outbox,
    pushes: &Pusher,
    deliveries: Vec<Delivery<Envelope<OrderCreated>>>,
) -> Vec<Outcome> {
    let mut outcomes = vec![Outcome::Done; deliveries.len()];
    let mut positions = Vec::with_capacity(deliveries.len());
    let mut orders = Vec::with_capacity(deliveries.len());
    for (position, delivery) in deliveries.into_iter().enumerate() {
        let order = delivery.event;
        match domain::validate_order(&order.data) {
            Ok(()) => {
                positions.push(position);
                orders.push(order);
            }
            // SPEC §5 rule 7: retrying cannot help; the runner dead-letters it with the reason.
            Err(invalid) => {
                tracing::warn!(order_id = %order.data.order_id, event_id = %order.id, %invalid, "invalid order");
                outcomes[position] = Outcome::Reject {
                    reason: format!("invalid order {}: {invalid}", order.data.order_id),
                };
            }
        }
    }
    if orders.is_empty() {
        return outcomes;
    }

    let results =
        batch::all_else_each(&orders, |orders| reserve_in_transaction(db, outbox, orders)).await;
    let mut reserved = Vec::with_capacity(orders.len());
    for ((position, order), result) in positions.into_iter().zip(&orders).zip(results) {
        match result {
            Ok(outcome) => reserved.push((order, outcome)),
            Err(error) => {
                tracing::warn!(order_id = %order.data.order_id, %error, "reservation failed; will retry");
                outcomes[position] = retry(&error);
            }
        }
    }
    log_outcomes(&reserved);
    // The merchants whose levels the committed reservations lowered.
    let confirmed_merchants: Vec<i64> = reserved
        .iter()
        .filter(|(_, outcome)| *outcome == Reserved::Confirmed)
        .map(|(order, _)| order.data.merchant_id)
        .collect();
    super::announce_levels_changed(pushes, confirmed_merchants).await;
    outcomes
}

/// SPEC §5 rule 1: the effects, the events and the inbox records commit together.
async fn reserve_in_transaction(
    db: &DatabaseConnection,
    outbox: &Outbox,
    orders: &[Envelope<OrderCreated>],
) -> Result<Vec<Reserved>, DbErr> {
    let started = std::time::Instant::now();
    let txn = db.begin().await?;
    // On an error the transaction is dropped, which rolls it back.
    let reserved = store::reserve_orders(&txn, outbox, orders).await?;
    txn.commit().await?;
    metrics::histogram!("larder_stock_reservation_batch_size").record(orders.len() as f64);
    metrics::histogram!("larder_stock_reservation_batch_seconds")
        .record(started.elapsed().as_secs_f64());
    for decision in &reserved {
        let decision = match decision {
            Reserved::Confirmed => "confirmed",
            Reserved::Rejected => "rejected",
            Reserved::Duplicate => "duplicate",
            Reserved::Cancelled => "cancelled",
        };
        metrics::counter!("larder_stock_decisions_total", "decision" => decision).increment(1);
    }
    Ok(reserved)
}

fn retry(error: &DbErr) -> Outcome {
    Outcome::Retry {
        reason: format!("database error: {error}"),
    }
}

fn log_outcomes(reserved: &[(&Envelope<OrderCreated>, Reserved)]) {
    let count = |kind: Reserved| reserved.iter().filter(|(_, r)| *r == kind).count();
    tracing::debug!(
        confirmed = count(Reserved::Confirmed),
        rejected = count(Reserved::Rejected),
        duplicates = count(Reserved::Duplicate),
        cancelled = count(Reserved::Cancelled),
        "batch committed"
    );
    for (order, outcome) in reserved {
        tracing::debug!(
            order_id = %order.data.order_id,
            correlation_id = order.correlation_id.as_deref().unwrap_or(""),
            ?outcome,
            "order handled"
        );
    }
}
