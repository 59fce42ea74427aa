use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{MERCHANT_EMAIL, MERCHANT_PASSWORD, assert_json, assert_problem, spawn_app};

#[tokio::test]
async fn a_customer_registers_logs_in_and_gets_a_bearer_token_with_its_role() {
    let app = spawn_app().await;

    let registered = app.api.register("Ada@Example.com", "password-123").await;
    let user = assert_json(registered.unwrap(), StatusCode::CREATED).await;
    assert_eq!(user["role"], "customer");
    assert!(user.get("password_hash").is_none());

    // Emails compare case-insensitively.
    let logged_in = app.api.login("ada@example.com", "password-123").await;
    let token = assert_json(logged_in.unwrap(), StatusCode::OK).await;
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    let claims = decode_payload(token["access_token"].as_str().unwrap());
    assert_eq!(claims["role"], "customer");
    assert_eq!(claims["sub"], user["id"]);
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
}

#[tokio::test]
async fn the_bootstrap_merchant_exists_at_start_and_its_token_names_its_merchant() {
    let app = spawn_app().await;
    let token = app.merchant_token().await;
    let claims = decode_payload(&token);
    assert_eq!(claims["role"], "merchant");
    assert!(claims["merchant_id"].is_i64());
}

#[tokio::test]
async fn registration_refuses_duplicates_and_invalid_credentials() {
    let app = spawn_app().await;
    assert_eq!(
        app.api
            .register("bob@example.com", "password-123")
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );

    let cases = [
        (
            json!({"email": "BOB@example.com", "password": "password-123"}),
            StatusCode::CONFLICT,
            None,
        ),
        (
            json!({"email": MERCHANT_EMAIL, "password": "password-123"}),
            StatusCode::CONFLICT,
            None,
        ),
        (
            json!({"email": "new@example.com", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("password"),
        ),
        (
            json!({"email": "not-an-email", "password": "password-123"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("email"),
        ),
        (
            json!({"email": "new@example.com"}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            json!({"email": "new@example.com", "password": "password-123", "admin": true}),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (body, status, field) in cases {
        let response = app
            .api
            .post_anonymous("/auth/register", &body)
            .await
            .unwrap();
        let problem = assert_problem(response, status, &body.to_string()).await;
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{body}");
        }
    }
}

#[tokio::test]
async fn login_refuses_wrong_credentials_without_saying_which_part_was_wrong() {
    let app = spawn_app().await;
    let wrong_password = assert_problem(
        app.api
            .login(MERCHANT_EMAIL, "wrong-password")
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "wrong password",
    )
    .await;
    let unknown_email = assert_problem(
        app.api
            .login("nobody@example.com", MERCHANT_PASSWORD)
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unknown email",
    )
    .await;
    assert_eq!(wrong_password["detail"], unknown_email["detail"]);
}

/// The JWT's claims, without checking the signature (the server does that).
fn decode_payload(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64_url_decode(payload);
    serde_json::from_slice(&bytes).unwrap()
}

fn base64_url_decode(input: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in input.bytes() {
        let value = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}
