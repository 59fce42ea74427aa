//! SPEC §6: a W3C `traceparent` travels from the HTTP request through every event's NATS
//! headers, and each service exports its spans over OTLP when an endpoint is configured. Here
//! the four services run as processes of their own, exporting to a collector of the test's own
//! (it records what arrives at `/v1/traces`); the trace id a client sends with `POST /order`
//! must come back in the spans of the order, stock and delivery processes.

use std::sync::{Arc, Mutex};

use poem::listener::{Acceptor, Listener};
use poem::web::Data;
use poem::{EndpointExt, Route, handler, post};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Stack, eventually};
use larder_api_client::NewOrder;

type Received = Arc<Mutex<Vec<Vec<u8>>>>;

#[handler]
fn collect(body: Vec<u8>, received: Data<&Received>) -> StatusCode {
    received.lock().unwrap().push(body);
    StatusCode::OK
}

/// An OTLP/HTTP collector that keeps every export's body (protobuf, where trace ids are raw
/// bytes and the service name is a plain string). Returns its endpoint.
async fn start_collector(received: Received, stop: CancellationToken) -> String {
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let address = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let app = Route::new().at("/v1/traces", post(collect)).data(received);
    tokio::spawn(async move {
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, stop.cancelled_owned(), None)
            .await
    });
    format!("http://{address}")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_trace_of_a_post_order_continues_through_stock_order_and_delivery() {
    let received = Received::default();
    let stop = CancellationToken::new();
    let endpoint = start_collector(Arc::clone(&received), stop.clone()).await;
    let stack = Stack::start_commands_with(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
        &[&["order"], &["stock"], &["delivery"], &["notification"]],
    )
    .await;
    let (_merchant, burger, customer) = stack.shop().await;

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let id = stack
        .api
        .place_order(
            &customer,
            &NewOrder::of(burger, 1),
            &[("traceparent", &traceparent)],
        )
        .await
        .unwrap()
        .id;
    stack.wait_for_status(&customer, id, "delivered").await;

    // Every event of the order carries the trace in its headers.
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    for service in ["larder-order", "larder-stock", "larder-delivery"] {
        eventually(
            &format!("{service} exported a span of trace {trace_id}"),
            || async {
                received
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|body| contains(body, service.as_bytes()) && contains(body, &trace_bytes))
            },
        )
        .await;
    }
    // And every event of its life carries the trace in its NATS headers.
    let mut traced = Vec::new();
    for name in ["ORDERS", "DELIVERY"] {
        let stream = stack
            .nats
            .jetstream
            .get_stream(stack.nats.namespace().stream(name))
            .await
            .unwrap();
        let last = stream.cached_info().state.last_sequence;
        for seq in 1..=last {
            let Ok(message) = stream.get_raw_message(seq).await else {
                continue;
            };
            let event: Value = serde_json::from_slice(&message.payload).unwrap();
            if event["data"]["order_id"] != id.to_string() {
                continue;
            }
            let header = message
                .headers
                .get("traceparent")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            assert!(
                header.starts_with(&format!("00-{trace_id}-")),
                "{} has traceparent {header:?}",
                event["type"]
            );
            traced.push(event["type"].as_str().unwrap().to_owned());
        }
    }
    traced.sort();
    assert_eq!(
        traced,
        [
            "delivery.delivered",
            "delivery.dispatched",
            "order.confirmed",
            "order.created"
        ]
    );
    stop.cancel();
}
