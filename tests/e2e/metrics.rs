//! Every service serves Prometheus `/metrics`: the order service on its HTTP port, the others,
//! each a process of its own here, on `--metrics-addr`. One order that takes the onion below 50 %
//! shows up in each service's figures.

use reqwest::StatusCode;

use crate::helpers::{Stack, eventually, free_port};

#[tokio::test]
async fn every_service_serves_its_own_metrics() {
    let addresses: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let stack = Stack::start_commands(&[
        &["order"],
        &["stock", "--metrics-addr", &addresses[0]],
        &["delivery", "--metrics-addr", &addresses[1]],
        &["notification", "--metrics-addr", &addresses[2]],
    ])
    .await;
    let (_merchant, burger, customer) = stack.shop().await;
    // 30 burgers take 600 g of the 1 kg of onion: below 50 %, one alert.
    stack
        .place_and_wait_for(&customer, burger, 30, "delivered")
        .await;

    let order = format!("{}/metrics", stack.api.base_url());
    let [stock, delivery, notification] =
        [0, 1, 2].map(|i| format!("http://{}/metrics", addresses[i]));
    let expected: [(&str, &[&str]); 4] = [
        (
            &order,
            &[
                r#"http_requests_total{method="POST",route="/order",status="202"}"#,
                r#"larder_orders_total{status="pending"}"#,
                r#"larder_orders_total{status="confirmed"}"#,
                r#"larder_orders_total{status="delivered"}"#,
                r#"larder_consumer_pending{consumer="order-orders-confirmed"}"#,
                r#"larder_outbox_waiting{service="order"}"#,
                "http_request_duration_seconds_bucket",
            ],
        ),
        (
            &stock,
            &[
                r#"larder_stock_decisions_total{decision="confirmed"}"#,
                "larder_stock_reservation_batch_size_bucket",
                "larder_stock_reservation_batch_seconds_bucket",
                r#"larder_consumer_ack_pending{consumer="stock-orders-created"}"#,
                r#"larder_outbox_oldest_age_seconds{service="stock"}"#,
            ],
        ),
        (
            &delivery,
            &[
                r#"larder_consumer_redelivered{consumer="delivery-orders-confirmed"}"#,
                r#"larder_outbox_waiting{service="delivery"}"#,
            ],
        ),
        (
            &notification,
            &[
                r#"larder_emails_total{result="sent"} 1"#,
                "larder_smtp_breaker_open 0",
                r#"larder_consumer_pending{consumer="notification-stock-low"}"#,
            ],
        ),
    ];
    for (url, lines) in expected {
        eventually(&format!("{url} shows {lines:?}"), || async {
            let Ok(response) = stack.api.http().get(url).send().await else {
                return false;
            };
            if response.status() != StatusCode::OK {
                return false;
            }
            let text = response.text().await.unwrap_or_default();
            lines
                .iter()
                .all(|wanted| text.lines().any(|line| line.starts_with(wanted)))
        })
        .await;
    }
    // A service's figures are its own: stock's process has no HTTP requests to count.
    let stock_text = stack
        .api
        .http()
        .get(&stock)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!stock_text.contains("http_requests_total"), "{stock_text}");
}
