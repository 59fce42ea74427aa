//! End to end: merchant sign-up gives a merchant its own catalogue, stock and alerts;
//! an order's status as it happens (`GET /order/{id}/events`, `Prefer: wait`) on an API instance
//! whose consumers did not process the events.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Stack, eventually, free_port};
use larder_api_client::{Client, NewOrder};

/// The `data` of each `status` event of a `text/event-stream` response, until the server ends
/// it; fails if that takes longer than `within`.
async fn statuses_until_the_end(response: reqwest::Response, within: Duration) -> Vec<Value> {
    assert_eq!(response.status(), StatusCode::OK, "an event stream");
    tokio::time::timeout(within, async move {
        let mut response = response;
        let (mut buffer, mut events) = (String::new(), Vec::new());
        while let Some(chunk) = response.chunk().await.expect("the stream reads") {
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    events.push(serde_json::from_str(data).unwrap());
                }
            }
        }
        events
    })
    .await
    .expect("the stream ends")
}

fn status_names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_merchant_who_signs_up_has_its_own_catalogue_stock_orders_and_alerts() {
    let stack = Stack::start().await;
    let alerts = format!("kitchen-{}@deli.example", uuid::Uuid::new_v4().simple());
    let deli = stack.sign_up_merchant("Corner Deli", &alerts, "GBP").await;
    let bootstrap = stack.merchant().await;

    let deli_burger = stack.seed(&deli).await;
    let burger = stack.seed(&bootstrap).await;
    assert_ne!(deli_burger, burger, "a catalogue of its own");
    let catalogue = stack.api.seed(&deli).await.unwrap();
    assert_eq!(catalogue.products[0].currency, "GBP");

    // 26 burgers take the deli's onion from 1 000 g to 480 g: below half, one alert, to the deli.
    let customer = stack.api.new_customer().await.unwrap();
    let order = stack
        .place_and_wait_for(&customer, deli_burger, 26, "confirmed")
        .await;
    assert_eq!(
        stack.api.levels(&deli).await.unwrap(),
        vec![
            ("Beef".into(), 20_000 - 26 * 150),
            ("Cheese".into(), 5_000 - 26 * 30),
            ("Onion".into(), 1_000 - 26 * 20),
        ]
    );
    assert_eq!(
        stack.api.levels(&bootstrap).await.unwrap(),
        vec![
            ("Beef".into(), 20_000),
            ("Cheese".into(), 5_000),
            ("Onion".into(), 1_000)
        ],
        "the other merchant's stock is untouched"
    );
    eventually("the deli's low-stock email arrives", || async {
        !stack.mail.emails().await.is_empty()
    })
    .await;
    let emails = stack.mail.emails().await;
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert_eq!(emails[0].to[0].address, alerts);
    assert!(emails[0].subject.contains("Onion"));

    let deli_orders = stack.api.get_json::<Value>(&deli, "/orders").await.unwrap();
    assert_eq!(deli_orders["total"], 1);
    assert_eq!(deli_orders["items"][0]["id"], order.to_string());
    assert_eq!(
        stack
            .api
            .get_json::<Value>(&bootstrap, "/orders")
            .await
            .unwrap()["total"],
        0
    );
}

/// A second API instance that consumes nothing (`ORDER_API_ONLY`): every status its clients see
/// was settled by the first instance's consumers and pushed over NATS.
#[tokio::test]
async fn clients_of_an_instance_that_consumes_nothing_see_each_status_as_it_happens() {
    let mut stack = Stack::start_separately().await;
    let other_port = free_port();
    // Through the stack's connections, as the test's other requests.
    let other = Client::with_http(
        stack.api.http().clone(),
        &format!("http://127.0.0.1:{other_port}"),
    );
    stack.spawn_with_env(
        &["order"],
        &[
            ("HTTP_ADDR", &format!("127.0.0.1:{other_port}")),
            ("ORDER_API_ONLY", "true"),
        ],
    );
    stack.wait_until_ready(other.base_url()).await;
    let (_merchant, burger, customer) = stack.shop().await;

    // With stock away the order stays pending while the stream opens; then stock comes back.
    stack.kill(1);
    let order = stack.api.place_one(&customer, burger).await.unwrap();
    let stream = other
        .get(&customer, &format!("/order/{order}/events"))
        .await
        .unwrap();
    stack.respawn(1, &["stock"]);
    let events = statuses_until_the_end(stream, Duration::from_secs(30)).await;
    assert_eq!(
        status_names(&events),
        ["pending", "confirmed", "dispatched", "delivered"],
        "{events:?}"
    );
    assert_eq!(events[3]["final"], true);

    // The outcome in the answer, from the same instance: confirmed, and rejected for a shortage.
    let wait = async |quantity: i64| {
        let order = NewOrder::of(burger, quantity);
        other
            .post_order(&customer, &order, &[("Prefer", "wait=10")])
            .await
    };
    let confirmed = wait(1).await.unwrap();
    assert_eq!(confirmed.status(), StatusCode::CREATED);
    assert_eq!(confirmed.headers()["preference-applied"], "wait=10");
    assert_eq!(
        confirmed.json::<Value>().await.unwrap()["status"],
        "confirmed"
    );
    let rejected = wait(1_000).await.unwrap();
    assert_eq!(rejected.status(), StatusCode::CREATED);
    let rejected: Value = rejected.json().await.unwrap();
    assert_eq!(rejected["status"], "rejected");
    assert!(
        !rejected["rejection"]["shortages"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{rejected}"
    );
}
