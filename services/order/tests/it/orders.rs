use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{assert_json, assert_problem, burgers, spawn_app};

#[tokio::test]
async fn an_order_is_stored_pending_priced_by_the_server_and_readable_by_owner_and_merchant() {
    let app = spawn_app().await;
    let (burger, customer) = app.burger_and_customer().await;

    let response = app.api.post_order(&customer, &json!({"products": [{"product_id": burger, "quantity": 2}, {"product_id": burger, "quantity": 1}]}), &[]).await.unwrap();

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/order/{}", order["id"].as_str().unwrap())
    );
    assert_eq!(order["status"], "pending");
    assert_eq!(
        order["lines"].as_array().unwrap().len(),
        1,
        "duplicate lines merged"
    );
    assert_eq!(order["lines"][0]["quantity"], 3);
    assert_eq!(order["total_cents"], 3 * 899);
    assert_eq!(order["currency"], "EUR");
    assert_eq!(order["history"][0]["status"], "pending");

    let read: Value = app.api.get_json(&customer, &location).await.unwrap();
    assert_eq!(read["id"], order["id"]);
    let merchant = app.merchant_token().await;
    assert_eq!(
        app.api.get(&merchant, &location).await.unwrap().status(),
        StatusCode::OK
    );

    let stranger = app.api.new_customer().await.unwrap();
    assert_problem(
        app.api.get(&stranger, &location).await.unwrap(),
        StatusCode::NOT_FOUND,
        "another customer's order",
    )
    .await;
    assert_problem(
        app.api
            .get(&customer, &format!("/order/{}", Uuid::new_v4()))
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "unknown order",
    )
    .await;
}

#[tokio::test]
async fn invalid_orders_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let (burger, token) = app.burger_and_customer().await;
    let hundred_and_one: Vec<Value> = (1..=101)
        .map(|i| json!({"product_id": i, "quantity": 1}))
        .collect();

    let cases = vec![
        (
            "no products",
            json!({"products": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("products"),
        ),
        (
            "zero quantity",
            burgers(burger, 0),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("products[0].quantity"),
        ),
        (
            "huge quantity",
            burgers(burger, 10_001),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("products[0].quantity"),
        ),
        (
            "negative quantity",
            burgers(burger, -1),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("products[0].quantity"),
        ),
        (
            "too many lines",
            json!({"products": hundred_and_one}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("products"),
        ),
        (
            "unknown product",
            json!({"products": [{"product_id": burger, "quantity": 1}, {"product_id": 999_999, "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("products[1].product_id"),
        ),
        (
            "missing field",
            json!({"products": [{"product_id": burger}]}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        ("missing products", json!({}), StatusCode::BAD_REQUEST, None),
        (
            "unknown field",
            json!({"products": [], "coupon": "FREE"}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "unknown line field",
            json!({"products": [{"product_id": burger, "quantity": 1, "price_cents": 1}]}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "wrong type",
            json!({"products": [{"product_id": "one", "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (what, body, status, field) in cases {
        let problem = assert_problem(
            app.api.post_order(&token, &body, &[]).await.unwrap(),
            status,
            what,
        )
        .await;
        if let Some(field) = field {
            let fields: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&field), "{what}: {problem}");
        }
    }
    let problem = assert_problem(
        app.api
            .post_order(
                &token,
                &json!({"products": [{"product_id": 999_999, "quantity": 1}]}),
                &[],
            )
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown product id is named",
    )
    .await;
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("999999"),
        "{problem}"
    );
}

#[tokio::test]
async fn an_order_goes_to_one_merchant() {
    let app = spawn_app().await;
    let (burger, token) = app.burger_and_customer().await;
    let other =
        order::store::upsert_merchant(&app.order_db, "Other Shop", "other@example.com", "EUR")
            .await
            .unwrap();
    let fries =
        order::store::upsert_product_with_recipe(&app.order_db, other.id, "Fries", 300, &[])
            .await
            .unwrap();

    let body = json!({"products": [{"product_id": burger, "quantity": 1}, {"product_id": fries.id, "quantity": 1}]});
    let problem = assert_problem(
        app.api.post_order(&token, &body, &[]).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "mixed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "products");
}

#[tokio::test]
async fn a_replay_with_the_same_key_returns_the_first_order_and_another_body_is_refused() {
    let app = spawn_app().await;
    let (burger, token) = app.burger_and_customer().await;

    // Every request of this test sends the same key.
    let order_with_the_key = async |token: &str, quantity: i64| {
        app.api
            .post_order(
                token,
                &burgers(burger, quantity),
                &[("Idempotency-Key", "key-1")],
            )
            .await
            .unwrap()
    };

    let first = assert_json(order_with_the_key(&token, 2).await, StatusCode::ACCEPTED).await;
    let replay = assert_json(order_with_the_key(&token, 2).await, StatusCode::OK).await;
    assert_eq!(replay["id"], first["id"]);

    let problem = assert_problem(
        order_with_the_key(&token, 3).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "same key, other body",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");

    // Keys are per customer.
    let someone_else = app.api.new_customer().await.unwrap();
    let theirs = order_with_the_key(&someone_else, 2).await;
    assert_eq!(theirs.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_make_one_order_and_twenty_identical_answers() {
    let app = spawn_app().await;
    let (burger, token) = app.burger_and_customer().await;

    let body = burgers(burger, 1);
    let requests = (0..20).map(|_| {
        app.api
            .post_order(&token, &body, &[("Idempotency-Key", "race")])
    });
    let responses = futures::future::join_all(requests).await;

    let mut statuses = Vec::new();
    let mut bodies = HashSet::new();
    for response in responses {
        let response = response.unwrap();
        statuses.push(response.status());
        let mut body: Value = response.json().await.unwrap();
        body.as_object_mut().unwrap().remove("updated_at");
        bodies.insert(body.to_string());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(bodies.len(), 1, "every answer shows the same order");
    let orders: Value = app.api.get_json(&token, "/orders").await.unwrap();
    assert_eq!(orders["total"], 1);
}

#[tokio::test]
async fn orders_created_on_the_stream_carries_the_request_id_as_correlation_id() {
    let app = spawn_app().await;
    let (burger, token) = app.burger_and_customer().await;

    let response = app
        .api
        .post_order(
            &token,
            &burgers(burger, 2),
            &[("X-Request-Id", "corr-abc-123")],
        )
        .await
        .unwrap();
    let order = assert_json(response, StatusCode::ACCEPTED).await;

    let stream_name = app.nats.namespace().stream("ORDERS");
    crate::helpers::eventually("orders.created is on the stream", || async {
        let mut stream = app.nats.jetstream.get_stream(&stream_name).await.unwrap();
        stream.info().await.unwrap().state.messages > 0
    })
    .await;
    let stream = app.nats.jetstream.get_stream(&stream_name).await.unwrap();
    let message = stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        message.subject.as_str(),
        app.nats.namespace().subject("orders.created")
    );
    let envelope: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(envelope["type"], "order.created");
    assert_eq!(envelope["correlation_id"], "corr-abc-123");
    assert_eq!(envelope["data"]["order_id"], order["id"]);
    assert_eq!(envelope["data"]["lines"][0]["quantity"], 2);
    assert_eq!(
        envelope["data"]["lines"][0]["recipe"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        message.headers.get("Nats-Msg-Id").unwrap().as_str(),
        envelope["id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn listing_is_newest_first_paged_filtered_and_scoped_to_the_caller() {
    let app = spawn_app().await;
    let (burger, alice) = app.burger_and_customer().await;
    let bob = app.api.new_customer().await.unwrap();
    let mut ids = Vec::new();
    for quantity in 1..=3 {
        ids.push(app.api.place(&alice, burger, quantity).await.unwrap());
    }
    app.api.place_one(&bob, burger).await.unwrap();

    let page: Value = app
        .api
        .get_json(&alice, "/orders?per_page=2")
        .await
        .unwrap();
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["id"], ids[2].to_string(), "newest first");
    let page2: Value = app
        .api
        .get_json(&alice, "/orders?per_page=2&page=2")
        .await
        .unwrap();
    assert_eq!(page2["items"][0]["id"], ids[0].to_string());

    // A merchant sees all of its orders, and may filter them by status.
    let merchant = app.merchant_token().await;
    for (query, total) in [
        ("/orders", 4),
        ("/orders?status=pending", 4),
        ("/orders?status=confirmed", 0),
    ] {
        let listed: Value = app.api.get_json(&merchant, query).await.unwrap();
        assert_eq!(listed["total"], total, "{query}");
    }

    assert_problem(
        app.api.get(&alice, "/orders?per_page=0").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "per_page 0",
    )
    .await;
    assert_problem(
        app.api.get(&alice, "/orders?status=lost").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "unknown status",
    )
    .await;
}
