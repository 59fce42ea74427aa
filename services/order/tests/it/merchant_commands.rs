//! Merchant operations served by other services (seed's ingredients, list, restock, courier
//! update) as the order service answers them on its own: who may call them, and what a client
//! gets when the owning service does not answer. The calls themselves, answered by stock and
//! delivery, are covered end to end (tests/e2e/merchant_commands.rs).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, burgers, spawn_app, spawn_app_with};

#[tokio::test]
async fn merchant_operations_are_for_merchants_only() {
    let app = spawn_app().await;
    let customer = app.customer_token().await;
    let cases = [
        ("/order/seed", Value::Null),
        ("/ingredients/1/restock", json!({"amount": 1})),
    ];
    for (path, body) in cases {
        assert_problem(
            app.post_json(path, &customer, &body).await,
            StatusCode::FORBIDDEN,
            path,
        )
        .await;
        assert_problem(
            app.client.post(app.url(path)).send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            path,
        )
        .await;
    }
    assert_problem(
        app.get("/ingredients", &customer).await,
        StatusCode::FORBIDDEN,
        "customer lists ingredients",
    )
    .await;
}

#[tokio::test]
async fn without_stock_or_delivery_running_merchant_operations_answer_503_within_the_timeout() {
    let timeout = Duration::from_millis(700);
    let app = spawn_app_with(|s| s.service_request_timeout_ms = timeout.as_millis() as u64).await;
    let merchant = app.merchant_token().await;
    let burger = app.seed().await;
    let customer = app.customer_token().await;
    let order: Value = app
        .post_order(&customer, &burgers(burger, 1))
        .await
        .json()
        .await
        .unwrap();
    let order_id = order["id"].as_str().unwrap();

    let courier_path = format!("/order/{order_id}/delivery");
    let calls = [
        ("seed", "/order/seed", Value::Null),
        ("restock", "/ingredients/1/restock", json!({"amount": 5})),
        (
            "courier update",
            courier_path.as_str(),
            json!({"status": "dispatched"}),
        ),
    ];
    for (what, path, body) in calls {
        let started = Instant::now();
        let response = app.post_json(path, &merchant, &body).await;
        assert!(
            started.elapsed() < timeout + Duration::from_secs(2),
            "{what} took {:?}",
            started.elapsed()
        );
        assert!(
            response.headers().contains_key("retry-after"),
            "{what}: no Retry-After"
        );
        let body = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, what).await;
        assert!(
            body["detail"].as_str().unwrap().contains("did not answer"),
            "{what}: {body}"
        );
    }
    let started = Instant::now();
    let response = app.get("/ingredients", &merchant).await;
    assert!(started.elapsed() < timeout + Duration::from_secs(2));
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "list").await;
}

#[tokio::test]
async fn a_courier_update_for_an_order_of_another_merchant_or_none_is_not_found() {
    let app = spawn_app().await;
    let merchant = app.merchant_token().await;
    assert_problem(
        app.post_json(
            &format!("/order/{}/delivery", uuid::Uuid::new_v4()),
            &merchant,
            &json!({"status": "dispatched"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "unknown order",
    )
    .await;
}
