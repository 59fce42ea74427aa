//! Every error a client can provoke is problem+json with the request id (SPEC §3).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, burgers, spawn_app, spawn_app_with};

#[tokio::test]
async fn framework_errors_are_problem_json_too() {
    let app = spawn_app().await;
    let token = app.api.new_customer().await.unwrap();
    let c = app.api.http();

    let cases = vec![
        (
            "unknown route",
            c.get(app.api.url("/nope")),
            StatusCode::NOT_FOUND,
        ),
        (
            "wrong method",
            c.delete(app.api.url("/orders")).bearer_auth(&token),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "bad JSON",
            c.post(app.api.url("/order"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"products\": ["),
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong content type",
            c.post(app.api.url("/order"))
                .bearer_auth(&token)
                .header("content-type", "text/plain")
                .body("products"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "missing token",
            c.get(app.api.url("/orders")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "garbage token",
            c.get(app.api.url("/orders")).bearer_auth("garbage"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "bad path parameter",
            c.get(app.api.url("/order/not-a-uuid")).bearer_auth(&token),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (what, request, status) in cases {
        let response = request.send().await.unwrap();
        assert_problem(response, status, what).await;
    }

    // Its own client: the server answers 413 without reading the body and closes that
    // connection, which a pooled client would otherwise reuse for the next request.
    let response = reqwest::Client::new()
        .post(app.api.url("/order"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"products\": [], \"pad\": \"{}\"}}",
            "x".repeat(100_000)
        ))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "body too large").await;
}

#[tokio::test]
async fn forged_and_expired_tokens_are_refused() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let forged = order::auth::TokenKeys::new("not-the-server-secret", 3600).issue(
        uuid::Uuid::new_v4(),
        order::auth::Role::Merchant,
        Some(1),
        now,
    );
    let expired = order::auth::TokenKeys::new(order::config::DEV_JWT_SECRET, 60).issue(
        uuid::Uuid::new_v4(),
        order::auth::Role::Customer,
        None,
        now - 3600,
    );
    for (what, token) in [("forged", forged), ("expired", expired)] {
        let response = app
            .api
            .post_order(&token, &burgers(1, 1), &[])
            .await
            .unwrap();
        let problem = assert_problem(response, StatusCode::UNAUTHORIZED, what).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("token"),
            "{what}: {problem}"
        );
    }
}

/// `GET path` without a token, with the client's `X-Request-Id`.
async fn get_with_request_id(app: &TestApp, path: &str, request_id: &str) -> reqwest::Response {
    app.api
        .http()
        .get(app.api.url(path))
        .header("X-Request-Id", request_id)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_request_id_is_taken_from_the_request_or_generated_and_always_returned() {
    let app = spawn_app().await;
    let response = get_with_request_id(&app, "/health", "my-trace-42").await;
    assert_eq!(response.headers()["x-request-id"], "my-trace-42");

    let response = app.api.get_anonymous("/health").await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");

    let response = get_with_request_id(&app, "/nope", "trace-404").await;
    let problem = assert_problem(response, StatusCode::NOT_FOUND, "404").await;
    assert_eq!(problem["request_id"], "trace-404");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health: serde_json::Value = app
        .api
        .get_anonymous("/health")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"service": "order", "status": "ok"}));
    let ready = app.api.get_anonymous("/ready").await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["nats"], "ok");
}

#[tokio::test]
async fn beyond_its_in_flight_limit_the_api_sheds_load_with_503_and_retry_after() {
    let app = spawn_app_with(|settings| settings.http_max_in_flight = 0).await;
    let response = app.api.get_anonymous("/orders").await.unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let problem = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "at capacity").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("capacity"),
        "{problem}"
    );
    // Probes are not counted: they tell the truth under any load.
    for probe in ["/health", "/ready"] {
        let response = app.api.get_anonymous(probe).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{probe}");
    }
}

#[test]
fn outside_the_dev_profile_the_default_jwt_secret_is_refused() {
    use order::config::{DEV_JWT_SECRET, OrderSettings, Profile};
    let prod_default = OrderSettings {
        profile: Profile::Prod,
        ..OrderSettings::default()
    };
    assert!(order::startup::refuse_default_secret_outside_dev(&prod_default).is_err());
    let prod_short = OrderSettings {
        profile: Profile::Prod,
        jwt_secret: "s3cret-of-our-own".into(),
        ..OrderSettings::default()
    };
    let error = order::startup::refuse_default_secret_outside_dev(&prod_short).unwrap_err();
    assert!(
        error.to_string().contains("shorter than 32 bytes")
            && error.to_string().contains("JWT_SECRET="),
        "says what is wrong and how to set one: {error}"
    );
    let prod_own = OrderSettings {
        profile: Profile::Prod,
        jwt_secret: "a-secret-of-our-own-that-is-long-enough-for-hs256".into(),
        ..OrderSettings::default()
    };
    assert!(order::startup::refuse_default_secret_outside_dev(&prod_own).is_ok());
    let dev_default = OrderSettings {
        jwt_secret: DEV_JWT_SECRET.into(),
        ..OrderSettings::default()
    };
    assert!(order::startup::refuse_default_secret_outside_dev(&dev_default).is_ok());
}
