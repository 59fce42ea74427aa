//! Merchant operations served by other services (seed's ingredients, list, restock, courier
//! update) as the order service answers them on its own: who may call them, what a client gets
//! when the owning service does not answer, and how the owner's refusal of a field reads. The
//! calls themselves, answered by stock and delivery, are covered end to end
//! (tests/e2e/merchant_commands.rs).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, stand_in};

#[tokio::test]
async fn merchant_operations_are_for_merchants_only() {
    let app = spawn_app().await;
    let customer = app.api.new_customer().await.unwrap();
    let cases = [
        ("/order/seed", Value::Null),
        ("/ingredients/1/restock", json!({"amount": 1})),
    ];
    for (path, body) in cases {
        assert_problem(
            app.api.post(&customer, path, &body).await.unwrap(),
            StatusCode::FORBIDDEN,
            path,
        )
        .await;
        assert_problem(
            app.api.http().post(app.api.url(path)).send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            path,
        )
        .await;
    }
    assert_problem(
        app.api.get(&customer, "/ingredients").await.unwrap(),
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
    let (_, order_id) = app.placed_order().await;

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
        let response = app.api.post(&merchant, path, &body).await.unwrap();
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
    let response = app.api.get(&merchant, "/ingredients").await.unwrap();
    assert!(started.elapsed() < timeout + Duration::from_secs(2));
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "list").await;
}

#[tokio::test]
async fn a_courier_update_for_an_order_of_another_merchant_or_none_is_not_found() {
    let app = spawn_app().await;
    let merchant = app.merchant_token().await;
    let unknown = uuid::Uuid::new_v4();
    assert_problem(
        app.api
            .request_courier_update(&merchant, unknown, "dispatched")
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "unknown order",
    )
    .await;
}

#[tokio::test]
async fn a_restock_amount_stock_refuses_is_a_422_naming_the_field_amount() {
    // Arrange: a stand-in stock that refuses every restock, as stock refuses an amount that
    // would overflow the level.
    use larder_contract::commands::{IngredientLevel, Refusal, RestockIngredient, services::STOCK};
    let app = spawn_app().await;
    let merchant = app.merchant_token().await;
    let mut stock = stand_in(&app, STOCK, "a test's stock: refuses every restock amount").await;
    stock
        .serve(|_: RestockIngredient| async move {
            Err::<IngredientLevel, _>(Refusal::invalid("the new level would overflow"))
        })
        .await
        .expect("the stand-in serves restock-ingredient");

    // Act
    let response = app
        .api
        .post(&merchant, "/ingredients/1/restock", &json!({"amount": 500}))
        .await
        .unwrap();

    // Assert: stock's words come back under the field the client wrote.
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "amount 500").await;
    assert_eq!(problem["errors"][0]["field"], "amount", "{problem}");
    assert_eq!(
        problem["errors"][0]["message"], "the new level would overflow",
        "{problem}"
    );
    stock.stop().await;
}
