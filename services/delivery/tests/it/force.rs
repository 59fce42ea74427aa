//! `force_next_step`, the order API's courier update: steps in order, idempotent, refused when
//! there is no step to take (SPEC §3 `POST /order/{id}/delivery`).

use chrono::{TimeDelta, Utc};
use delivery::domain::{ShipmentStatus, Step};
use delivery::store::{self, ForceStepError};
use entities::shipments;
use sea_orm::TransactionTrait;
use uuid::Uuid;

use crate::helpers::{TestApp, cancellation, confirmation, courier, idle_courier, spawn_app};

impl TestApp {
    /// Forces the order's shipment to `to` in a transaction of its own, as the order API does.
    async fn force(&self, order_id: Uuid, to: Step) -> Result<shipments::Model, ForceStepError> {
        let txn = self.db().begin().await.expect("a transaction begins");
        let forced =
            store::force_next_step(&txn, &self.outbox(), order_id, to, &self.settings).await;
        txn.commit().await.expect("the transaction commits");
        forced
    }
}

#[actix::test]
async fn forcing_delivered_on_a_pending_shipment_dispatches_it_first_and_is_idempotent() {
    // Arrange: the courier never comes by itself.
    let app = spawn_app(idle_courier()).await;
    let (confirmed, pending) = app.confirm_new_order().await;
    let order_id = confirmed.data.order_id;

    // Act
    let delivered = app.force(order_id, Step::Delivered).await.expect("forced");

    // Assert
    assert_eq!(delivered.id, pending.id);
    assert_eq!(delivered.status.as_str(), "delivered");
    assert_eq!(delivered.next_step_at, None);
    assert!(delivered.dispatched_at.is_some() && delivered.delivered_at.is_some());
    let steps = app
        .wait_for_steps(order_id, &["dispatched", "delivered"])
        .await;
    assert_eq!(steps, ["dispatched", "delivered"], "two events, in order");

    // Act again: the same update repeated, and a late "dispatched".
    let again = app
        .force(order_id, Step::Delivered)
        .await
        .expect("idempotent");
    let late = app.force(order_id, Step::Dispatched).await;

    // Assert
    assert_eq!(again, delivered, "nothing changed");
    assert!(
        matches!(
            late,
            Err(ForceStepError::Illegal {
                current: ShipmentStatus::Delivered,
                requested: Step::Dispatched,
            })
        ),
        "{late:?}"
    );
    app.wait_until_settled().await;
    assert_eq!(app.steps_of(order_id).await, ["dispatched", "delivered"]);
    app.stop().await;
}

#[actix::test]
async fn a_forced_dispatch_is_delivered_by_the_timer_once() {
    // Arrange: no dispatch by itself, a quick delivery once dispatched.
    let app = spawn_app(courier(3_600_000, 300)).await;
    let (confirmed, _) = app.confirm_new_order().await;
    let order_id = confirmed.data.order_id;

    // Act
    let before = Utc::now();
    let dispatched = app.force(order_id, Step::Dispatched).await.expect("forced");
    let again = app
        .force(order_id, Step::Dispatched)
        .await
        .expect("idempotent");

    // Assert
    assert_eq!(dispatched.status.as_str(), "dispatched");
    assert_eq!(again, dispatched);
    let due = dispatched.next_step_at.expect("delivery is scheduled");
    assert!(due >= before + TimeDelta::milliseconds(300));
    let steps = app
        .wait_for_steps(order_id, &["dispatched", "delivered"])
        .await;
    app.wait_until_settled().await;
    assert_eq!(steps, ["dispatched", "delivered"]);
    assert_eq!(app.steps_of(order_id).await, steps);
    app.stop().await;
}

#[actix::test]
async fn forcing_is_refused_without_a_shipment_or_after_a_cancellation() {
    // Arrange
    let app = spawn_app(idle_courier()).await;
    let confirmed = confirmation();
    let order_id = confirmed.data.order_id;

    // Act + Assert: nothing yet.
    let none = app.force(order_id, Step::Dispatched).await;
    assert!(matches!(none, Err(ForceStepError::NoShipment)), "{none:?}");

    // Act + Assert: cancelled before it was ever confirmed.
    app.publish(&cancellation(&confirmed)).await;
    app.wait_for_shipment(order_id, "cancelled").await;
    for to in Step::ALL {
        let refused = app.force(order_id, to).await;
        assert!(
            matches!(
                refused,
                Err(ForceStepError::Finished(ShipmentStatus::Cancelled))
            ),
            "{to}: {refused:?}"
        );
    }
    // A status a courier does not report ("pending", "cancelled", "shipped") is no `Step`: the
    // wire's `CourierStep` cannot carry one, and the domain's `Step::from_str` refuses it.
    app.wait_until_settled().await;
    assert!(app.delivery_events().await.is_empty(), "no step was taken");
    app.stop().await;
}
