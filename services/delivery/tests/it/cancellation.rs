//! `orders.cancelled` drops a shipment not yet dispatched, even one whose confirmation it
//! overtook; a dispatched shipment is left to the courier (SPEC §5 rules 4 and 6).

use larder_bus::topology;

use crate::helpers::{TestApp, cancellation, confirmation, courier, quick_courier, spawn_app};

/// Confirms another order and waits until it is delivered: every timer due before it has fired
/// by then, so a test can tell that a step did not happen.
async fn after_a_later_order_is_delivered(app: &TestApp) {
    let later = confirmation();
    app.publish(&later).await;
    app.wait_for_steps(later.data.order_id, &["dispatched", "delivered"])
        .await;
    app.wait_until_settled().await;
}

#[actix::test]
async fn a_cancellation_before_dispatch_drops_the_shipment() {
    // Arrange: dispatch is far enough away for the cancellation to come first.
    let app = spawn_app(courier(1_500, 100)).await;
    let (confirmed, _) = app.confirm_new_order().await;
    let order_id = confirmed.data.order_id;

    // Act
    app.publish(&cancellation(&confirmed)).await;
    let shipment = app.wait_for_shipment(order_id, "cancelled").await;

    // Assert
    assert_eq!(shipment.next_step_at, None, "its timer is dropped");
    assert_eq!(shipment.dispatched_at, None);
    after_a_later_order_is_delivered(&app).await;
    assert_eq!(app.steps_of(order_id).await, Vec::<&str>::new());
    assert_eq!(
        app.shipment(order_id).await.map(|s| s.status.as_str()),
        Some("cancelled")
    );
    app.stop().await;
}

#[actix::test]
async fn a_cancellation_that_overtakes_the_confirmation_prevents_the_shipment() {
    // Arrange
    let app = spawn_app(quick_courier()).await;
    let confirmed = confirmation();
    let order_id = confirmed.data.order_id;

    // Act: the cancellation is handled before the confirmation arrives.
    app.publish(&cancellation(&confirmed)).await;
    app.wait_until_consumed(topology::DELIVERY_ORDERS_CANCELLED)
        .await;
    app.publish(&confirmed).await;
    app.wait_until_consumed(topology::DELIVERY_ORDERS_CONFIRMED)
        .await;

    // Assert
    let shipment = app
        .shipment(order_id)
        .await
        .expect("the cancellation is remembered");
    assert_eq!(shipment.status.as_str(), "cancelled");
    assert_eq!(shipment.next_step_at, None);
    after_a_later_order_is_delivered(&app).await;
    assert_eq!(
        app.steps_of(order_id).await,
        Vec::<&str>::new(),
        "never dispatched"
    );
    assert_eq!(
        app.shipment_count().await,
        2,
        "the cancelled order's and the later one's"
    );
    app.stop().await;
}

#[actix::test]
async fn a_cancellation_after_dispatch_leaves_the_shipment_to_the_courier() {
    // Arrange
    let app = spawn_app(quick_courier()).await;
    let confirmed = confirmation();
    let order_id = confirmed.data.order_id;
    app.publish(&confirmed).await;
    app.wait_for_steps(order_id, &["dispatched"]).await;

    // Act
    app.publish(&cancellation(&confirmed)).await;
    app.wait_until_consumed(topology::DELIVERY_ORDERS_CANCELLED)
        .await;

    // Assert
    let steps = app
        .wait_for_steps(order_id, &["dispatched", "delivered"])
        .await;
    app.wait_until_settled().await;
    assert_eq!(steps, ["dispatched", "delivered"]);
    assert_eq!(
        app.shipment(order_id).await.map(|s| s.status.as_str()),
        Some("delivered")
    );
    app.stop().await;
}
