//! Releases: batches of `orders.cancelled` from the `stock-orders-cancelled` consumer, putting
//! back exactly what each order reserved, once (SPEC §5 rules 1, 2 and 4).
//!
//! Like reservations: one transaction per batch, one per event if the batch fails, the reply
//! (and so the ack) after the commit.

use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tracing::instrument;

use larder_bus::batch;
use larder_bus::consume::{Delivery, HandleEvents, Outcome};
use larder_bus::push::Pusher;
use larder_contract::Envelope;
use larder_contract::events::OrderCancelled;

use crate::store::{self, Released};

/// Handles the `stock-orders-cancelled` consumer's batches. Holds no state of its own.
#[derive(Clone)]
pub struct ReleaseOrders {
    db: DatabaseConnection,
    pushes: Pusher,
}

impl ReleaseOrders {
    pub fn new(db: DatabaseConnection, pushes: Pusher) -> Self {
        Self { db, pushes }
    }
}

impl HandleEvents<Envelope<OrderCancelled>> for ReleaseOrders {
    async fn handle(&self, deliveries: Vec<Delivery<Envelope<OrderCancelled>>>) -> Vec<Outcome> {
        release(&self.db, &self.pushes, deliveries).await
    }
}

/// One outcome per delivery, in order: `Done` once committed (or already handled), `Retry` for a
/// database failure.
#[instrument(skip_all, fields(orders = deliveries.len()))]
async fn release(
    db: &DatabaseConnection,
    pushes: &Pusher,
    deliveries: Vec<Delivery<Envelope<OrderCancelled>>>,
) -> Vec<Outcome> {
    let events: Vec<Envelope<OrderCancelled>> = deliveries.into_iter().map(|d| d.event).collect();
    let mut outcomes = vec![Outcome::Done; events.len()];
    let results = batch::all_else_each(&events, |events| release_in_transaction(db, events)).await;
    let mut released_merchants = Vec::new();
    for ((outcome, event), result) in outcomes.iter_mut().zip(&events).zip(results) {
        match result {
            Ok(released) => {
                log_outcome(event, released);
                if released == Released::Released {
                    released_merchants.push(event.data.merchant_id);
                }
            }
            Err(error) => {
                tracing::warn!(order_id = %event.data.order_id, %error, "release failed; will retry");
                *outcome = retry(&error);
            }
        }
    }
    super::announce_levels_changed(pushes, released_merchants).await;
    outcomes
}

/// SPEC §5 rule 1: the release and the inbox record commit together.
async fn release_in_transaction(
    db: &DatabaseConnection,
    events: &[Envelope<OrderCancelled>],
) -> Result<Vec<Released>, DbErr> {
    let txn = db.begin().await?;
    // On an error the transaction is dropped, which rolls it back.
    let released = store::release_orders(&txn, events).await?;
    txn.commit().await?;
    Ok(released)
}

fn retry(error: &DbErr) -> Outcome {
    Outcome::Retry {
        reason: format!("database error: {error}"),
    }
}

fn log_outcome(event: &Envelope<OrderCancelled>, released: Released) {
    tracing::debug!(
        order_id = %event.data.order_id,
        correlation_id = event.correlation_id.as_deref().unwrap_or(""),
        outcome = ?released,
        "cancellation handled"
    );
}
