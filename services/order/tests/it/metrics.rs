use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let app = spawn_app().await;
    let order_id = uuid::Uuid::new_v4();
    let login = app
        .api
        .login("nobody@example.com", "wrong-password")
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    let order = app
        .api
        .get_anonymous(&format!("/order/{order_id}"))
        .await
        .unwrap();
    assert_eq!(order.status(), StatusCode::UNAUTHORIZED);

    let response = app.api.get_anonymous("/metrics").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        response.headers()
    );
    let text = response.text().await.unwrap();
    let has = |needle: &str| text.lines().any(|line| line.contains(needle));
    assert!(
        has(r#"http_requests_total{method="POST",route="/auth/login",status="401"}"#),
        "{text}"
    );
    // The template (poem-openapi names path parameters `:param<n>`), never the id: one series
    // per route, however many orders.
    assert!(
        has(r#"http_requests_total{method="GET",route="/order/:param0",status="401"}"#),
        "{text}"
    );
    assert!(!text.contains(&order_id.to_string()), "{text}");
    assert!(has("http_request_duration_seconds"), "{text}");
}
