//! Merchant sign-up (`POST /auth/merchants`): who may, what it checks, and that a new merchant
//! sees only its own orders.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};
use larder_api_client::NewOrder;
use order::config::{MerchantSignup, OrderSettings, Profile};

const OPERATOR_TOKEN: &str = "an-operator-token-of-at-least-32-bytes";

fn sign_up_body(name: &str, email: &str) -> Value {
    json!({
        "name": name,
        "alert_email": "kitchen@deli.example",
        "currency": "GBP",
        "email": email,
        "password": "deli-password",
    })
}

fn fresh_email() -> String {
    format!("owner{}@deli.example", uuid::Uuid::new_v4().simple())
}

async fn sign_up(app: &TestApp, body: &Value, operator_token: Option<&str>) -> reqwest::Response {
    let mut request = app
        .api
        .http()
        .post(app.api.url("/auth/merchants"))
        .json(body);
    if let Some(token) = operator_token {
        request = request.header("X-Operator-Token", token);
    }
    request.send().await.unwrap()
}

/// An app whose merchant sign-up is `policy`, with [`OPERATOR_TOKEN`] configured (which only
/// [`MerchantSignup::Operator`] asks for).
async fn spawn_app_with_signup(policy: MerchantSignup) -> TestApp {
    spawn_app_with(|s| {
        s.merchant_signup = Some(policy);
        s.merchant_signup_token = Some(OPERATOR_TOKEN.into());
    })
    .await
}

/// This service's half of a catalogue for `merchant_id` (stock does not run in these tests).
async fn seed_for(app: &TestApp, merchant_id: i64) -> i64 {
    let recipe = [larder_contract::events::IngredientAmount {
        ingredient_id: 101,
        amount: 150,
    }];
    order::store::upsert_product_with_recipe(&app.order_db, merchant_id, "Sandwich", 650, &recipe)
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn a_signed_up_merchant_logs_in_and_sees_only_its_own_orders() {
    let app = spawn_app().await;
    let email = fresh_email();

    let response = sign_up(&app, &sign_up_body("Corner Deli", &email), None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let account: Value = response.json().await.unwrap();
    let merchant_id = account["merchant"]["id"].as_i64().unwrap();
    assert_eq!(account["merchant"]["name"], "Corner Deli");
    assert_eq!(account["merchant"]["alert_email"], "kitchen@deli.example");
    assert_eq!(account["merchant"]["currency"], "GBP");
    assert_eq!(account["user"]["role"], "merchant");
    assert_eq!(account["user"]["merchant_id"], merchant_id);

    // Its own catalogue, priced in its own currency, next to the bootstrap merchant's.
    let deli = app.api.sign_in(&email, "deli-password").await.unwrap();
    let sandwich = seed_for(&app, merchant_id).await;
    let (burger, customer) = app.burger_and_customer().await;
    let deli_order = app
        .api
        .place_order(&customer, &NewOrder::of(sandwich, 2), &[])
        .await
        .unwrap();
    assert_eq!(deli_order.merchant_id, merchant_id);
    assert_eq!(deli_order.currency, "GBP");
    assert_eq!(deli_order.total_cents, 1300);
    let burger_order = app.api.place_one(&customer, burger).await.unwrap();

    let listed: Value = app.api.get_json(&deli, "/orders").await.unwrap();
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], deli_order.id.to_string());
    let theirs = app
        .api
        .get(&deli, &format!("/order/{burger_order}"))
        .await
        .unwrap();
    assert_problem(theirs, StatusCode::NOT_FOUND, "another merchant's order").await;
    let bootstrap = app.merchant_token().await;
    let listed: Value = app.api.get_json(&bootstrap, "/orders").await.unwrap();
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], burger_order.to_string());
    let mine = app
        .api
        .get(&deli, &format!("/order/{}", deli_order.id))
        .await
        .unwrap();
    assert_eq!(mine.status(), StatusCode::OK);
}

#[tokio::test]
async fn sign_up_names_every_bad_field_and_refuses_taken_names_and_emails() {
    let app = spawn_app().await;
    let bad = json!({
        "name": " ",
        "alert_email": "kitchen",
        "currency": "pounds",
        "email": "owner",
        "password": "short",
    });
    let problem = assert_problem(
        sign_up(&app, &bad, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad fields",
    )
    .await;
    let mut fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["alert_email", "currency", "email", "name", "password"]
    );
    let unknown_field = json!({ "name": "Deli", "alert_email": "a@b.example", "currency": "EUR",
        "email": fresh_email(), "password": "deli-password", "role": "admin" });
    assert_problem(
        sign_up(&app, &unknown_field, None).await,
        StatusCode::BAD_REQUEST,
        "an unknown field",
    )
    .await;

    // A number is not a string, however many digits it has (the spec says `type: string`).
    let mut numeric = sign_up_body("Numbers Deli", &fresh_email());
    numeric["password"] = json!(123_456_789);
    assert_problem(
        sign_up(&app, &numeric, None).await,
        StatusCode::BAD_REQUEST,
        "a numeric password",
    )
    .await;
    let register = app
        .api
        .post_anonymous(
            "/auth/register",
            &json!({ "email": fresh_email(), "password": 123_456_789 }),
        )
        .await
        .unwrap();
    assert_problem(
        register,
        StatusCode::BAD_REQUEST,
        "a numeric password to register",
    )
    .await;

    let first = sign_up(&app, &sign_up_body("Corner Deli", &fresh_email()), None).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let same_name = sign_up(&app, &sign_up_body("Corner Deli", &fresh_email()), None).await;
    assert_problem(same_name, StatusCode::CONFLICT, "a taken name").await;
    let bootstrap_login = sign_up(
        &app,
        &sign_up_body("Another Deli", "MERCHANT@larder.local"),
        None,
    )
    .await;
    let problem = assert_problem(bootstrap_login, StatusCode::CONFLICT, "a taken email").await;
    assert!(problem["detail"].as_str().unwrap().contains("account"));
    // The refused sign-up left no merchant behind: the name is still free.
    let retry = sign_up(&app, &sign_up_body("Another Deli", &fresh_email()), None).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_operator_sign_up_needs_the_operator_token() {
    let app = spawn_app_with_signup(MerchantSignup::Operator).await;
    for (token, what) in [(None, "no token"), (Some("guess"), "a wrong token")] {
        let response = sign_up(&app, &sign_up_body("Corner Deli", &fresh_email()), token).await;
        let problem = assert_problem(response, StatusCode::FORBIDDEN, what).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("X-Operator-Token")
        );
    }
    let response = sign_up(
        &app,
        &sign_up_body("Corner Deli", &fresh_email()),
        Some(OPERATOR_TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_closed_sign_up_refuses_everyone() {
    let app = spawn_app_with_signup(MerchantSignup::Closed).await;
    let response = sign_up(
        &app,
        &sign_up_body("Corner Deli", &fresh_email()),
        Some(OPERATOR_TOKEN),
    )
    .await;
    assert_problem(response, StatusCode::FORBIDDEN, "closed").await;
}

#[tokio::test]
async fn sign_up_counts_against_the_per_address_limit_of_register() {
    let app = spawn_app_with(|s| s.auth_rate_per_ip_per_min = 2).await;
    let first = app
        .api
        .register(&fresh_email(), "password-123")
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = sign_up(&app, &sign_up_body("Corner Deli", &fresh_email()), None).await;
    assert_eq!(second.status(), StatusCode::CREATED);
    let third = sign_up(&app, &sign_up_body("Other Deli", &fresh_email()), None).await;
    let retry_after = third.headers().get("retry-after").cloned();
    assert_problem(third, StatusCode::TOO_MANY_REQUESTS, "over the limit").await;
    assert!(retry_after.is_some(), "429 says when to retry");
}

#[test]
fn the_profile_decides_the_default_policy_and_operator_needs_a_strong_token() {
    use order::startup::refuse_unusable_signup;
    let dev = OrderSettings::default();
    assert_eq!(dev.merchant_signup(), MerchantSignup::Open);
    let prod = OrderSettings {
        profile: Profile::Prod,
        ..OrderSettings::default()
    };
    assert_eq!(prod.merchant_signup(), MerchantSignup::Closed);
    let prod_with_token = OrderSettings {
        merchant_signup_token: Some(OPERATOR_TOKEN.into()),
        ..prod.clone()
    };
    assert_eq!(prod_with_token.merchant_signup(), MerchantSignup::Operator);
    assert!(refuse_unusable_signup(&prod_with_token).is_ok());

    let operator = |token: Option<&str>| OrderSettings {
        merchant_signup: Some(MerchantSignup::Operator),
        merchant_signup_token: token.map(str::to_owned),
        ..OrderSettings::default()
    };
    for (token, says) in [
        (None, "needs MERCHANT_SIGNUP_TOKEN"),
        (Some(""), "needs"),
        (Some("short"), "shorter than 32"),
    ] {
        let error = refuse_unusable_signup(&operator(token))
            .unwrap_err()
            .to_string();
        assert!(error.contains(says), "{token:?}: {error}");
    }
}
