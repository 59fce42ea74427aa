//! Faults under load (the short profile): every service as a process of its own on a NATS server
//! of the test's own; while orders arrive, each service kind is killed with SIGKILL and started
//! again, and the NATS server is killed and restarted on its store. Then the invariants: every
//! accepted order exists once and ends delivered, each event of its life is in the streams once,
//! its stock is reserved once, and the stock equals its movements and is never negative.

use std::time::{Duration, Instant};

use nats::testing::TestNats;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cluster::NatsCluster;
use crate::helpers::Stack;

/// Process indexes of [`Stack::start_separately`].
const SERVICES: [(usize, &str); 4] = [
    (0, "order"),
    (1, "stock"),
    (2, "delivery"),
    (3, "notification"),
];

/// Offers burger orders one after the other until `stop`, each retried (with its own
/// Idempotency-Key) until the API accepts it, as a careful client would while the API is away.
/// Returns the ids of the accepted orders.
async fn offer_orders(
    client: reqwest::Client,
    base: String,
    token: String,
    burger: i64,
    stop: tokio_util::sync::CancellationToken,
) -> Vec<String> {
    let mut accepted = Vec::new();
    for n in 0.. {
        if stop.is_cancelled() {
            break;
        }
        let key = format!("fault-{n}");
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            let sent = client
                .post(format!("{base}/order"))
                .bearer_auth(&token)
                .header("Idempotency-Key", &key)
                .json(&json!({"products": [{"product_id": burger, "quantity": 1}]}))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if let Ok(response) = sent
                && matches!(response.status(), StatusCode::ACCEPTED | StatusCode::OK)
            {
                let order: Value = response.json().await.unwrap();
                accepted.push(order["id"].as_str().unwrap().to_owned());
                break;
            }
            assert!(Instant::now() < give_up, "order {key} was never accepted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    accepted
}

#[tokio::test]
async fn orders_survive_a_kill_of_every_service_and_a_nats_restart() {
    let mut server = NatsCluster::start(1).await;
    let nats = TestNats::on(&server.url(), 1).await;
    let mut stack = Stack::start_separately_on(nats).await;
    let merchant = stack.merchant().await;
    let burger = stack.seed(&merchant).await;
    let customer = stack.new_customer().await;
    // Plenty of everything: every order must be confirmed, so that any loss shows.
    for ingredient in stack
        .get(&merchant, "/ingredients")
        .await
        .as_array()
        .unwrap()
    {
        let restock = format!("/ingredients/{}/restock", ingredient["id"]);
        let response = stack
            .post(&merchant, &restock, &json!({"amount": 1_000_000}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let beef_before = stack.levels(&merchant).await[0].1;

    // The load runs through every fault.
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn(offer_orders(
        stack.client.clone(),
        stack.address.clone(),
        customer.clone(),
        burger,
        stop.clone(),
    ));
    for (index, name) in SERVICES {
        tokio::time::sleep(Duration::from_millis(700)).await;
        stack.kill(index);
        tokio::time::sleep(Duration::from_millis(500)).await;
        stack.respawn(index, &[name]);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart(0);
    server.wait_for_jetstream().await;
    let back = Instant::now();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.cancel();
    let orders = load.await.unwrap();
    assert!(
        orders.len() >= 20,
        "only {} orders were accepted",
        orders.len()
    );

    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let mut waiting = Vec::new();
        for id in &orders {
            let order = stack
                .client
                .get(stack.url(&format!("/order/{id}")))
                .bearer_auth(&customer)
                .send()
                .await;
            let status = match order {
                Ok(r) if r.status() == StatusCode::OK => {
                    r.json::<Value>().await.unwrap()["status"].clone()
                }
                _ => Value::Null,
            };
            if status != "delivered" {
                waiting.push((id.clone(), status));
            }
        }
        if waiting.is_empty() {
            break;
        }
        if Instant::now() > give_up {
            for (id, status) in &waiting {
                let kinds: Vec<Value> = stack
                    .events_of_order(id)
                    .await
                    .iter()
                    .map(|e| e["type"].clone())
                    .collect();
                eprintln!("order {id} is {status}; its events: {kinds:?}");
            }
            panic!(
                "{} of {} orders never got delivered",
                waiting.len(),
                orders.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "faults: {} orders delivered {:?} after NATS was back",
        orders.len(),
        back.elapsed()
    );

    let mut unique = orders.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        orders.len(),
        "every accepted order is one order"
    );
    for id in &orders {
        let events = stack.events_of_order(id).await;
        for kind in [
            "order.created",
            "order.confirmed",
            "delivery.dispatched",
            "delivery.delivered",
        ] {
            let count = events.iter().filter(|e| e["type"] == kind).count();
            assert_eq!(count, 1, "order {id}: {count} {kind} events");
        }
    }
    assert_eq!(
        stack.levels(&merchant).await[0].1,
        beef_before - 150 * orders.len() as i64,
        "each order reserved its beef exactly once"
    );
    stack.assert_stock_consistent().await;
}
