use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn seeding_is_for_merchants_idempotent_and_returns_the_burger_catalogue() {
    let app = spawn_app().await;
    let merchant = app.merchant_token().await;
    let customer = app.customer_token().await;

    assert_problem(
        app.post_json("/order/seed", &customer, &Value::Null).await,
        StatusCode::FORBIDDEN,
        "customer",
    )
    .await;
    assert_problem(
        app.client
            .post(app.url("/order/seed"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "no token",
    )
    .await;

    let first: Value = app
        .post_json("/order/seed", &merchant, &Value::Null)
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .post_json("/order/seed", &merchant, &Value::Null)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first, second, "seeding twice gives the same catalogue");
    let burger = &first["products"][0];
    assert_eq!(burger["name"], "Burger");
    let recipe: Vec<(String, i64)> = burger["recipe"]
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
        vec![
            ("Beef".into(), 150),
            ("Cheese".into(), 30),
            ("Onion".into(), 20)
        ]
    );
    let levels: Vec<(String, i64)> = first["ingredients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["stock"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        vec![
            ("Beef".into(), 20_000),
            ("Cheese".into(), 5_000),
            ("Onion".into(), 1_000)
        ]
    );
}

#[tokio::test]
async fn a_merchant_lists_and_restocks_ingredients() {
    let app = spawn_app().await;
    app.seed().await;
    let merchant = app.merchant_token().await;

    let ingredients: Value = app
        .get("/ingredients", &merchant)
        .await
        .json()
        .await
        .unwrap();
    let onion = ingredients
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "Onion")
        .unwrap()
        .clone();
    assert_eq!(onion["percent"], 100);
    assert_eq!(onion["alert"], "armed");
    let onion_id = onion["id"].as_i64().unwrap();

    let response = app
        .post_json(
            &format!("/ingredients/{onion_id}/restock"),
            &merchant,
            &json!({"amount": 500}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let restocked: Value = response.json().await.unwrap();
    assert_eq!(restocked["stock"], 1_500);
    assert_eq!(
        restocked["reference_level"], 1_500,
        "a level above the reference becomes the reference"
    );

    let customer = app.customer_token().await;
    let cases = vec![
        (
            "customer lists",
            app.get("/ingredients", &customer).await,
            StatusCode::FORBIDDEN,
        ),
        (
            "zero amount",
            app.post_json(
                &format!("/ingredients/{onion_id}/restock"),
                &merchant,
                &json!({"amount": 0}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown ingredient",
            app.post_json(
                "/ingredients/999999/restock",
                &merchant,
                &json!({"amount": 1}),
            )
            .await,
            StatusCode::NOT_FOUND,
        ),
        (
            "unknown field",
            app.post_json(
                &format!("/ingredients/{onion_id}/restock"),
                &merchant,
                &json!({"amount": 1, "x": 1}),
            )
            .await,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (what, response, status) in cases {
        assert_problem(response, status, what).await;
    }
}
