//! Cancelling: allowed while pending or confirmed, when delivery agrees (here a stand-in that
//! always does), announced with `orders.cancelled`, refused once dispatched.

use larder_contract::subjects;
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{
    TestApp, assert_problem, confirmed, delivery_agreeing_to_cancels, dispatched, eventually,
    publish, spawn_app,
};

/// The `orders.cancelled` envelopes on the namespace's ORDERS stream.
async fn cancellations(app: &TestApp) -> Vec<Value> {
    app.nats
        .messages_on(subjects::ORDERS_CANCELLED)
        .await
        .iter()
        .map(|message| serde_json::from_slice(&message.payload).unwrap())
        .collect()
}

#[tokio::test]
async fn a_customer_cancels_a_pending_order_once_and_the_cancellation_is_announced() {
    let app = spawn_app().await;
    let _delivery = delivery_agreeing_to_cancels(&app).await;
    let (token, id) = app.placed_order().await;

    let response = app
        .api
        .http()
        .post(app.api.url(&format!("/order/{id}/cancel")))
        .bearer_auth(&token)
        .header("X-Request-Id", "cancel-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "cancelled");

    let again = app.api.request_cancel(&token, id).await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::ACCEPTED,
        "cancelling twice is harmless"
    );

    eventually("orders.cancelled is published", || async {
        !cancellations(&app).await.is_empty()
    })
    .await;
    let events = cancellations(&app).await;
    assert_eq!(events.len(), 1, "announced once");
    assert_eq!(events[0]["data"]["order_id"], id.to_string());
    assert_eq!(events[0]["correlation_id"], "cancel-1");

    let stranger = app.api.new_customer().await.unwrap();
    assert_problem(
        app.api.request_cancel(&stranger, id).await.unwrap(),
        StatusCode::NOT_FOUND,
        "someone else's order",
    )
    .await;
}

/// A pending order may already be confirmed by stock and dispatched by delivery, whose events
/// have not reached this service yet: its cancel is delivery's decision too, so with no
/// delivery answering it is a 503 and the order stays as it is.
#[tokio::test]
async fn a_pending_order_is_not_cancelled_without_deliverys_word() {
    let app = spawn_app().await;
    let (token, id) = app.placed_order().await;

    let response = app.api.request_cancel(&token, id).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let order = app.api.order(&token, id).await.unwrap();
    assert_eq!(order.status, "pending");
    assert!(cancellations(&app).await.is_empty(), "nothing announced");
}

#[tokio::test]
async fn a_dispatched_order_can_no_longer_be_cancelled() {
    let app = spawn_app().await;
    let (token, id) = app.placed_order().await;
    publish(&app, &confirmed(id)).await;
    publish(&app, &dispatched(id, Uuid::new_v4())).await;
    app.wait_for_status(&token, id, "dispatched").await;

    let problem = assert_problem(
        app.api.request_cancel(&token, id).await.unwrap(),
        StatusCode::CONFLICT,
        "cancel after dispatch",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("dispatched"),
        "{problem}"
    );
}
