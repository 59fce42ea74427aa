//! The order service's consumers move orders forward, never back (SPEC §5 rule 4).

use std::time::Duration;

use larder_bus::topology::{ORDER_ORDERS_CONFIRMED, ORDER_ORDERS_REJECTED};
use larder_contract::events::Shortage;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, confirmed, dispatched, publish, rejected_for, spawn_app};

/// `GET /order/{id}` as JSON, for the parts the typed order does not decode by name.
async fn order_json(app: &TestApp, token: &str, id: Uuid) -> Value {
    app.api
        .get_json(token, &format!("/order/{id}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn confirmed_moves_a_pending_order_forward_once() {
    let app = spawn_app().await;
    let (token, id) = app.placed_order().await;
    let confirmed = confirmed(id);

    publish(&app, &confirmed).await;
    publish(&app, &confirmed).await; // redelivered under a new message id

    app.wait_for_status(&token, id, "confirmed").await;
    // A late rejection does not move it back.
    publish(&app, &rejected_for(id, vec![])).await;
    for consumer in [ORDER_ORDERS_CONFIRMED, ORDER_ORDERS_REJECTED] {
        app.nats
            .wait_until_consumed(consumer, Duration::from_secs(10))
            .await;
    }
    let order = app.api.order(&token, id).await.unwrap();
    assert_eq!(order.status, "confirmed");
    assert_eq!(order.statuses(), ["pending", "confirmed"]);
}

#[tokio::test]
async fn a_rejection_is_shown_with_its_shortages() {
    let app = spawn_app().await;
    let (token, id) = app.placed_order().await;
    let shortage = Shortage {
        ingredient_id: 3,
        ingredient: "Onion".into(),
        required: 20,
        available: 0,
    };

    publish(&app, &rejected_for(id, vec![shortage])).await;

    app.wait_for_status(&token, id, "rejected").await;
    let order = order_json(&app, &token, id).await;
    assert_eq!(order["rejection"]["shortages"][0]["ingredient"], "Onion");
    assert_eq!(order["rejection"]["shortages"][0]["required"], 20);
    assert_eq!(order["rejection"]["shortages"][0]["available"], 0);
}

#[tokio::test]
async fn a_dispatch_that_overtakes_the_confirmation_waits_for_it() {
    let app = spawn_app().await;
    let (token, id) = app.placed_order().await;

    publish(&app, &dispatched(id, Uuid::new_v4())).await;
    publish(&app, &confirmed(id)).await;

    app.wait_for_status(&token, id, "dispatched").await;
    let order = app.api.order(&token, id).await.unwrap();
    assert_eq!(order.statuses(), ["pending", "confirmed", "dispatched"]);
}

/// An `orders.created` that stock dead-letters (it can never be processed) rejects its order with
/// the reason, instead of leaving it pending forever.
#[tokio::test]
async fn an_order_whose_creation_stock_dead_lettered_is_rejected_with_the_reason() {
    let app = spawn_app().await;
    let (token, id) = app.placed_order().await;
    let created = loop {
        let found = app
            .nats
            .messages_on(larder_contract::subjects::ORDERS_CREATED)
            .await
            .into_iter()
            .find(|m| {
                serde_json::from_slice::<Value>(&m.payload).unwrap()["data"]["order_id"]
                    == id.to_string()
            });
        match found {
            Some(message) => break message,
            None => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    };

    larder_bus::dlq::publish(
        &app.nats.jetstream,
        app.nats.namespace(),
        larder_bus::dlq::DeadLetter {
            consumer: larder_bus::topology::STOCK_ORDERS_CREATED
                .durable
                .to_owned(),
            subject: created.subject.to_string(),
            stream_sequence: created.sequence,
            deliveries: 1,
            reason: "poison: invalid order: a line has no recipe".into(),
            headers: Some(created.headers.clone()),
            payload: created.payload.clone(),
        },
    )
    .await
    .unwrap();

    app.wait_for_status(&token, id, "rejected").await;
    let order = order_json(&app, &token, id).await;
    let note = order["history"][1]["note"].as_str().unwrap_or_default();
    assert!(note.contains("a line has no recipe"), "{order}");
}
