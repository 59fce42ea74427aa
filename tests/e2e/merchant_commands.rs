//! Merchant operations on another service's data travel as NATS requests to the owning service
//! (SPEC §3): stock seeds, lists and restocks ingredients, delivery applies courier updates. Here
//! every service runs as a process of its own, as in production.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Stack, eventually};

const STOCK: usize = 1;

async fn problem(response: reqwest::Response, status: StatusCode, what: &str) -> Value {
    assert_eq!(response.status(), status, "{what}");
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}"
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn seed_list_and_restock_are_served_by_the_stock_process() {
    let stack = Stack::start_separately().await;
    let merchant = stack.merchant().await;

    let seed = async || -> Value {
        stack
            .api
            .post_json(&merchant, "/order/seed", &Value::Null)
            .await
            .unwrap()
    };
    let (first, second) = (seed().await, seed().await);
    assert_eq!(first, second, "seeding twice gives the same catalogue");
    let recipe: Vec<(String, i64)> = first["products"][0]["recipe"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ingredient"].as_str().unwrap().to_owned(),
                r["amount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        recipe,
        [
            ("Beef".into(), 150),
            ("Cheese".into(), 30),
            ("Onion".into(), 20)
        ]
    );
    assert_eq!(
        stack.api.levels(&merchant).await.unwrap(),
        [
            ("Beef".into(), 20_000),
            ("Cheese".into(), 5_000),
            ("Onion".into(), 1_000)
        ]
    );

    let onion = stack.ingredient(&merchant, "Onion").await;
    assert_eq!((onion.percent, onion.alert.as_str()), (100, "armed"));
    let restocked = stack.api.restock(&merchant, onion.id, 500).await.unwrap();
    assert_eq!(
        (restocked.stock, restocked.reference_level),
        (1_500, 1_500),
        "a level above the reference becomes the reference"
    );
    let restock = format!("/ingredients/{}/restock", onion.id);

    // The stock service's refusals keep their meaning over HTTP.
    let cases = [
        (
            restock.as_str(),
            json!({"amount": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/ingredients/999999/restock",
            json!({"amount": 1}),
            StatusCode::NOT_FOUND,
        ),
        (
            restock.as_str(),
            json!({"amount": 1, "x": 1}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (path, body, status) in cases {
        problem(
            stack.api.post(&merchant, path, &body).await.unwrap(),
            status,
            path,
        )
        .await;
    }
    stack.assert_stock_consistent().await;
}

#[tokio::test]
async fn with_the_stock_process_down_ingredient_calls_answer_503_and_recover_when_it_is_back() {
    let mut stack = Stack::start_separately().await;
    let merchant = stack.merchant().await;
    stack.seed(&merchant).await;
    let onion = stack.api.levels(&merchant).await.unwrap()[2].clone();
    let onion_id = stack.api.ingredients(&merchant).await.unwrap()[2].id;
    let restock = format!("/ingredients/{onion_id}/restock");

    stack.kill(STOCK);
    let started = Instant::now();
    let response = stack.api.get(&merchant, "/ingredients").await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "list while stock is down",
    )
    .await;
    let response = stack
        .api
        .post(&merchant, &restock, &json!({"amount": 100}))
        .await
        .unwrap();
    problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "restock while stock is down",
    )
    .await;
    // The default timeout is 3 s; no responders answers at once.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    stack.spawn(&["stock"]);
    eventually("the stock service answers again", || async {
        stack
            .api
            .get(&merchant, "/ingredients")
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    assert_eq!(
        stack.api.levels(&merchant).await.unwrap()[2],
        onion,
        "the refused restock changed nothing"
    );
    let restocked = stack.api.restock(&merchant, onion_id, 100).await;
    restocked.expect("the restock is accepted (200)");
    assert_eq!(
        stack.api.levels(&merchant).await.unwrap()[2].1,
        onion.1 + 100
    );
    stack.assert_stock_consistent().await;
}

#[tokio::test]
async fn an_order_goes_the_whole_way_with_every_service_in_its_own_process() {
    let stack = Stack::start_separately().await;
    let (merchant, burger, customer) = stack.shop().await;

    let delivered = stack
        .place_and_wait_for(&customer, burger, 1, "delivered")
        .await;
    let order = stack
        .api
        .get_json::<Value>(&customer, &format!("/order/{delivered}"))
        .await
        .unwrap();
    assert_eq!(order["shipment"]["status"], "delivered", "{order}");
    assert!(order["shipment"]["delivered_at"].is_string(), "{order}");

    // A courier update goes to the delivery process; the order follows its events.
    let forced = stack
        .place_and_wait_for(&customer, burger, 1, "confirmed")
        .await;
    let response = stack
        .api
        .request_courier_update(&merchant, forced, "delivered")
        .await
        .unwrap();
    // Delivery's timers may already have moved it; either way it ends delivered.
    assert!(
        [StatusCode::ACCEPTED, StatusCode::CONFLICT].contains(&response.status()),
        "{}",
        response.status()
    );
    stack.wait_for_status(&customer, forced, "delivered").await;
    stack.assert_stock_consistent().await;
    assert_eq!(
        stack.api.levels(&merchant).await.unwrap()[0].1,
        20_000 - 2 * 150
    );
}

#[tokio::test]
async fn stock_delivery_and_notification_answer_service_discovery_with_their_names_and_versions() {
    let stack = Stack::start_separately().await;
    let client = &stack.nats.client;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    let ns = stack.nats.namespace();
    let expected = [
        ns.durable("stock"),
        ns.durable("delivery"),
        ns.durable("notification"),
    ];
    let mut seen = std::collections::BTreeMap::new();
    // A PING is a broadcast: every instance of every service answers; collect for a while.
    let give_up = Instant::now() + Duration::from_secs(30);
    while !expected.iter().all(|name| seen.contains_key(name)) {
        assert!(
            Instant::now() < give_up,
            "no PING answer from {expected:?}: {seen:?}"
        );
        client
            .publish_with_reply("$SRV.PING", inbox.clone(), "".into())
            .await
            .unwrap();
        let round = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(round);
        loop {
            tokio::select! {
                () = &mut round => break,
                Some(message) = replies.next() => {
                    let ping: Value = serde_json::from_slice(&message.payload).unwrap();
                    if let Some(name) = ping["name"].as_str() {
                        seen.insert(name.to_owned(), ping.clone());
                    }
                }
            }
        }
    }
    for name in &expected {
        let ping = &seen[name];
        assert_eq!(ping["type"], "io.nats.micro.v1.ping_response", "{ping}");
        assert_eq!(ping["version"], env!("CARGO_PKG_VERSION"), "{ping}");
        assert_eq!(ping["metadata"]["namespace"], ns.as_str(), "{ping}");
    }
}
