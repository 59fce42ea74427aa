//! The order service alone across a restart of its NATS server (a server of the test's own, on
//! its store): what it accepted before, during and after is announced once, and its consumers
//! take every later event. The fault suite checks the whole stack under load; this names the
//! service when its relay or its consumers do not come back.

use std::collections::HashMap;
use std::time::Duration;

use larder_bus::testing::{NatsCluster, TestNats};
use migration::testing::TestDatabase;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{
    TestApp, confirmed, delivered, dispatched, eventually, publish, spawn_app_on,
};

/// Longer than a JetStream publish waits for its ack (5 s): the relay's publishes of the outage
/// fail and are retried, not merely held by the client until it reconnects.
const OUTAGE: Duration = Duration::from_secs(6);

/// How many `orders.created` the stream holds per order.
async fn announced(app: &TestApp) -> HashMap<Uuid, usize> {
    let mut counts = HashMap::new();
    for message in app.nats.messages_on("orders.created").await {
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        let id = event["data"]["order_id"].as_str().unwrap().parse().unwrap();
        *counts.entry(id).or_default() += 1;
    }
    counts
}

async fn unpublished(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .await
}

/// Stock's confirmation and delivery's two steps, as those services would publish them.
async fn confirm_dispatch_and_deliver(app: &TestApp, id: Uuid) {
    let shipment_id = Uuid::new_v4();
    publish(app, &confirmed(id)).await;
    publish(app, &dispatched(id, shipment_id)).await;
    publish(app, &delivered(id, shipment_id)).await;
}

#[tokio::test]
async fn orders_placed_around_a_nats_restart_are_announced_once_and_followed_to_delivered() {
    // Declared first, dropped last: the app shuts down while its server still runs.
    let mut nats_server = NatsCluster::start(1).await;
    let nats = TestNats::on(&nats_server.url(), 1).await;
    let app = spawn_app_on(TestDatabase::new().await, nats, |_| {}).await;
    let (burger, token) = app.burger_and_customer().await;

    let before = app.api.place_one(&token, burger).await.unwrap();
    eventually("the first order is announced", || async {
        announced(&app).await.contains_key(&before)
    })
    .await;

    nats_server.kill(0);
    // Accepted into the outbox while NATS is away; the relay's attempts fail meanwhile.
    let during = app.api.place_one(&token, burger).await.unwrap();
    tokio::time::sleep(OUTAGE).await;
    nats_server.restart(0);
    let after = app.api.place_one(&token, burger).await.unwrap();

    let orders = [before, during, after];
    eventually("the outbox is published", || async {
        unpublished(&app).await == 0
    })
    .await;
    eventually("every order is announced", || async {
        let counts = announced(&app).await;
        orders.iter().all(|id| counts.contains_key(id))
    })
    .await;
    let counts = announced(&app).await;
    for id in orders {
        assert_eq!(counts[&id], 1, "orders.created of {id}: {counts:?}");
    }
    assert_eq!(counts.len(), orders.len(), "{counts:?}");

    for id in orders {
        confirm_dispatch_and_deliver(&app, id).await;
    }
    for id in orders {
        app.wait_for_status(&token, id, "delivered").await;
        let order = app.api.order(&token, id).await.unwrap();
        let history = ["pending", "confirmed", "dispatched", "delivered"];
        assert_eq!(order.statuses(), history, "order {id}");
    }
}
