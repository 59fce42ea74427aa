//! The timers are durable: a restart loses no step, and instances side by side never take one
//! twice (SPEC §5 rule 6).

use std::collections::HashSet;

use chrono::{TimeDelta, Utc};
use delivery::store;
use futures::future::join_all;
use sea_orm::TransactionTrait;
use uuid::Uuid;

use crate::helpers::{
    DeliveryEventExt, confirmation, courier, eventually, quick_courier, spawn_app, spawn_instances,
};

#[actix::test]
async fn timers_survive_a_restart_before_and_between_steps() {
    // Arrange: slow enough steps for each restart to land before the next one is due.
    let delays = courier(2_000, 2_000);
    let mut app = spawn_app(delays).await;
    let (confirmed, created) = app.confirm_new_order().await;
    let order_id = confirmed.data.order_id;

    // Act 1: the service stops before the dispatch is due, and starts again.
    app.stop_instances().await;
    let stopped = app.shipment(order_id).await.expect("the shipment exists");
    assert_eq!(
        stopped.status.as_str(),
        "pending",
        "the service stopped before the dispatch was due"
    );
    assert_eq!(app.steps_of(order_id).await, Vec::<&str>::new());
    app.start_instance().await;

    // Assert 1: the new instance dispatches it, on time.
    let dispatched = app.wait_for_shipment(order_id, "dispatched").await;
    let due = created
        .next_step_at
        .expect("a pending shipment has a due time");
    let dispatched_at = dispatched.dispatched_at.expect("dispatched_at is set");
    assert!(dispatched_at >= due, "not dispatched before it was due");

    // Act 2: the service stops between the steps, and starts again.
    app.stop_instances().await;
    assert_eq!(
        app.shipment(order_id).await.map(|s| s.status.as_str()),
        Some("dispatched"),
        "the service stopped before the delivery was due"
    );
    assert_eq!(
        app.steps_of(order_id).await,
        ["dispatched"],
        "the dispatch was published on shutdown"
    );
    app.start_instance().await;

    // Assert 2: delivered, each step announced once.
    let delivered = app.wait_for_shipment(order_id, "delivered").await;
    app.wait_for_steps(order_id, &["dispatched", "delivered"])
        .await;
    app.wait_until_settled().await;
    assert_eq!(app.steps_of(order_id).await, ["dispatched", "delivered"]);
    let delivered_at = delivered.delivered_at.expect("delivered_at is set");
    assert!(delivered_at - dispatched_at >= TimeDelta::seconds(2));
    assert_eq!(app.shipment_count().await, 1);
    app.stop().await;
}

#[actix::test]
async fn two_instances_never_double_a_step() {
    // Arrange
    let app = spawn_instances(2, quick_courier()).await;
    let orders: Vec<_> = (0..30).map(|_| confirmation()).collect();

    // Act
    for confirmed in &orders {
        app.publish(confirmed).await;
    }
    eventually("every order is delivered", || async {
        app.delivery_events().await.len() >= 2 * orders.len()
    })
    .await;
    app.wait_until_settled().await;

    // Assert
    let events = app.delivery_events().await;
    assert_eq!(events.len(), 2 * orders.len(), "two events per order");
    for confirmed in &orders {
        let order_id = confirmed.data.order_id;
        let steps: Vec<_> = events
            .iter()
            .filter(|e| e.order_id() == order_id)
            .map(DeliveryEventExt::step)
            .collect();
        assert_eq!(steps, ["dispatched", "delivered"], "order {order_id}");
    }
    assert_eq!(app.shipment_count().await, orders.len() as u64);
    app.stop().await;
}

#[actix::test]
async fn concurrent_rounds_claim_disjoint_shipments_and_step_each_once() {
    // Arrange: ten shipments due at once, no instance running.
    let mut app = spawn_instances(0, quick_courier()).await;
    app.settings = courier(0, 3_600_000);
    let (db, settings, outbox) = (app.db(), &app.settings, app.outbox());
    let txn = db.begin().await.unwrap();
    let created_at = Utc::now() - TimeDelta::seconds(1);
    for _ in 0..10 {
        let inserted = store::insert_shipment(
            &txn,
            Uuid::now_v7(),
            Uuid::now_v7(),
            None,
            created_at,
            settings,
        )
        .await
        .unwrap();
        assert!(matches!(inserted, store::Inserted::New(_)));
    }
    txn.commit().await.unwrap();

    // Act: two rounds at the same time, as two instances would run them.
    let first = db.begin().await.unwrap();
    let second = db.begin().await.unwrap();
    let now = Utc::now();
    let claimed_first = store::claim_due(&first, now, 4).await.unwrap();
    let claimed_second = store::claim_due(&second, now, 100).await.unwrap();
    let advanced = join_all([
        store::advance_due(&first, &outbox, now, 100, settings),
        store::advance_due(&second, &outbox, now, 100, settings),
    ])
    .await;
    first.commit().await.unwrap();
    second.commit().await.unwrap();

    // Assert
    assert_eq!(claimed_first.len(), 4);
    assert_eq!(
        claimed_second.len(),
        6,
        "the first round's rows are skipped"
    );
    let first_ids: HashSet<_> = claimed_first.iter().map(|s| s.id).collect();
    assert!(claimed_second.iter().all(|s| !first_ids.contains(&s.id)));
    for (round, shipments) in advanced.into_iter().enumerate() {
        let shipments = shipments.unwrap();
        let expected = [4, 6][round];
        assert_eq!(
            shipments.len(),
            expected,
            "round {round} steps what it claimed"
        );
    }
    let shipments = app.shipments().await;
    assert!(shipments.iter().all(|s| s.status.as_str() == "dispatched"));
    let txn = db.begin().await.unwrap();
    assert!(
        store::claim_due(&txn, Utc::now(), 100)
            .await
            .unwrap()
            .is_empty(),
        "nothing is due any more"
    );
    txn.rollback().await.unwrap();
    let outbox_rows = crate::helpers::unpublished_events(db).await;
    assert_eq!(outbox_rows, 10, "one dispatched event per shipment");
    app.stop().await;
}
