//! A confirmed order gets one shipment, dispatched and then delivered after the configured
//! delays, each step announced once (SPEC §5 rules 1 and 6).

use chrono::TimeDelta;
use larder_bus::topology;
use uuid::Uuid;

use crate::helpers::{DeliveryEventExt, confirmation, quick_courier, spawn_app};

#[actix::test]
async fn a_confirmed_order_is_dispatched_then_delivered_once_each() {
    // Arrange
    let app = spawn_app(quick_courier()).await;
    let confirmed = confirmation();
    let order_id = confirmed.data.order_id;

    // Act
    app.publish(&confirmed).await;
    let steps = app
        .wait_for_steps(order_id, &["dispatched", "delivered"])
        .await;
    app.wait_until_settled().await;

    // Assert
    assert_eq!(
        steps,
        ["dispatched", "delivered"],
        "each step once, in order"
    );
    assert_eq!(
        app.steps_of(order_id).await,
        steps,
        "nothing else once settled"
    );
    assert_eq!(app.shipment_count().await, 1);
    let shipment = app
        .shipment(order_id)
        .await
        .expect("the order has a shipment");
    assert_eq!(shipment.status.as_str(), "delivered");
    assert_eq!(shipment.next_step_at, None, "no timer left");
    let dispatched_at = shipment.dispatched_at.expect("dispatched_at is set");
    let delivered_at = shipment.delivered_at.expect("delivered_at is set");
    assert!(
        dispatched_at - shipment.created_at >= TimeDelta::milliseconds(200),
        "dispatched after the dispatch delay"
    );
    assert!(
        delivered_at - dispatched_at >= TimeDelta::milliseconds(400),
        "delivered after the deliver delay"
    );
    for event in app.delivery_events().await {
        assert_eq!(event.shipment_id(), shipment.id, "events name the shipment");
    }
    app.stop().await;
}

#[actix::test]
async fn a_redelivered_or_repeated_confirmation_creates_nothing_more() {
    // Arrange
    let app = spawn_app(quick_courier()).await;
    let (confirmed, first) = app.confirm_new_order().await;
    let order_id = confirmed.data.order_id;

    // Act: the same envelope under a new message id (a replay), and another confirmation of
    // the same order (a new envelope id).
    app.publish_with_message_id(&confirmed, &format!("replay-{}", Uuid::new_v4()))
        .await;
    let mut again = confirmation();
    again.data.order_id = order_id;
    app.publish(&again).await;
    app.wait_until_consumed(topology::DELIVERY_ORDERS_CONFIRMED)
        .await;

    // Assert
    assert_eq!(app.shipment_count().await, 1, "one shipment per order");
    let steps = app
        .wait_for_steps(order_id, &["dispatched", "delivered"])
        .await;
    app.wait_until_settled().await;
    assert_eq!(app.steps_of(order_id).await, ["dispatched", "delivered"]);
    assert_eq!(steps, ["dispatched", "delivered"]);
    let last = app.shipment(order_id).await.expect("the shipment exists");
    assert_eq!(last.id, first.id, "still the first shipment");
    app.stop().await;
}
