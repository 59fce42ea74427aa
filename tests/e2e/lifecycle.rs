//! End to end: an order's whole life, and cancelling at each stage.

use reqwest::StatusCode;

use crate::helpers::{Stack, eventually};
use larder_api_client::NewOrder;

#[tokio::test]
async fn an_order_is_confirmed_dispatched_and_delivered_with_its_history_in_order() {
    let stack = Stack::start().await;
    let (_merchant, burger, customer) = stack.shop().await;

    let id = stack
        .api
        .place_order(
            &customer,
            &NewOrder::of(burger, 2),
            &[("X-Request-Id", "e2e-flow-1")],
        )
        .await
        .unwrap()
        .id;
    stack.wait_for_status(&customer, id, "delivered").await;

    // Every event of its life carries the request's id (SPEC §3).
    let events = stack.events_of_order(id).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in [
        "order.created",
        "order.confirmed",
        "delivery.dispatched",
        "delivery.delivered",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    for event in &events {
        assert_eq!(event["correlation_id"], "e2e-flow-1", "{event}");
    }

    let order = stack.api.order(&customer, id).await.unwrap();
    let history = ["pending", "confirmed", "dispatched", "delivered"];
    assert_eq!(order.statuses(), history);
    let times: Vec<&str> = order.history.iter().map(|h| h.at.as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(order.shipment.unwrap().status, "delivered");
}

#[tokio::test]
async fn cancelling_a_confirmed_order_restores_the_stock_exactly() {
    // A courier that takes a minute: the order stays confirmed while we cancel it.
    let stack = Stack::start_with(&[("DELIVERY_DISPATCH_DELAY_MS", "60000")]).await;
    let (merchant, burger, customer) = stack.shop().await;
    let before = stack.api.levels(&merchant).await.unwrap();

    let id = stack
        .place_and_wait_for(&customer, burger, 3, "confirmed")
        .await;
    assert_ne!(
        stack.api.levels(&merchant).await.unwrap(),
        before,
        "the order reserved stock"
    );
    let response = stack.api.request_cancel(&customer, id).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    eventually("the stock is back", || async {
        stack.api.levels(&merchant).await.unwrap() == before
    })
    .await;
    stack.assert_stock_consistent().await;
    assert_eq!(
        stack.api.order(&customer, id).await.unwrap().status,
        "cancelled"
    );
}

#[tokio::test]
async fn cancelling_after_dispatch_is_a_conflict() {
    let stack = Stack::start().await;
    let (merchant, burger, customer) = stack.shop().await;
    let id = stack
        .place_and_wait_for(&customer, burger, 1, "confirmed")
        .await;

    // The merchant's courier update forces the dispatch.
    let response = stack
        .api
        .request_courier_update(&merchant, id, "dispatched")
        .await
        .unwrap();
    assert!(response.status() == StatusCode::ACCEPTED || response.status() == StatusCode::CONFLICT);
    stack
        .wait_for_one_of(&customer, id, &["dispatched", "delivered"])
        .await;

    let response = stack.api.request_cancel(&customer, id).await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
}

#[tokio::test]
async fn a_cancel_racing_the_creation_ends_cancelled_with_the_stock_untouched() {
    let stack = Stack::start().await;
    let (merchant, burger, customer) = stack.shop().await;
    let before = stack.api.levels(&merchant).await.unwrap();

    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = stack.api.place(&customer, burger, 4).await.unwrap();
        // No waiting: the cancellation is usually processed before or around the reservation.
        let response = stack.api.request_cancel(&customer, id).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        ids.push(id);
    }

    for id in &ids {
        assert_eq!(
            stack.api.order(&customer, *id).await.unwrap().status,
            "cancelled"
        );
    }
    eventually("every reservation is released", || async {
        stack.api.levels(&merchant).await.unwrap() == before
    })
    .await;
    // And it stays so: once stock processing has consumed every event, nothing was reserved late.
    stack.wait_until_consumed("stock-orders-created").await;
    stack.wait_until_consumed("stock-orders-cancelled").await;
    assert_eq!(stack.api.levels(&merchant).await.unwrap(), before);
    stack.assert_stock_consistent().await;
    for id in &ids {
        assert_eq!(
            stack.api.order(&customer, *id).await.unwrap().status,
            "cancelled"
        );
    }
}

/// SPEC §5 rule 4: a confirmed order's cancel is delivery's decision, so a cancel racing the
/// dispatch either cancels the order (the shipment never leaves, the stock comes back) or is
/// refused (the order is delivered, the stock stays reserved) — never both.
#[tokio::test]
async fn cancels_racing_the_dispatch_never_cancel_an_order_that_is_delivered() {
    let stack = Stack::start().await; // dispatch 300 ms after confirmation, delivery 300 ms later
    let (merchant, burger, customer) = stack.shop().await;
    let beef_before = stack.api.levels(&merchant).await.unwrap()[0].1;

    let mut placed = Vec::new();
    let mut answers = Vec::new();
    for i in 0..16 {
        let id = stack.api.place_one(&customer, burger).await.unwrap();
        eventually(&format!("order {id} is confirmed"), || async {
            stack.api.order(&customer, id).await.unwrap().status != "pending"
        })
        .await;
        // Spread the cancels from right away to well after the dispatch.
        tokio::time::sleep(std::time::Duration::from_millis(50 * (i % 12))).await;
        let response = stack.api.request_cancel(&customer, id).await.unwrap();
        answers.push(response.status());
        placed.push(id);
    }

    let mut cancelled = 0;
    let mut delivered = 0;
    for (id, answer) in placed.iter().zip(&answers) {
        let status = stack
            .wait_for_one_of(&customer, *id, &["cancelled", "delivered"])
            .await;
        let shipped = stack
            .events_of_order(*id)
            .await
            .iter()
            .any(|e| e["type"] == "delivery.dispatched" || e["type"] == "delivery.delivered");
        match status.as_str() {
            "cancelled" => {
                cancelled += 1;
                assert_eq!(*answer, StatusCode::ACCEPTED, "order {id}");
                assert!(!shipped, "cancelled order {id} was dispatched");
            }
            "delivered" => {
                delivered += 1;
                assert_eq!(
                    *answer,
                    StatusCode::CONFLICT,
                    "order {id}: the cancel was refused"
                );
            }
            other => panic!("order {id} ended {other}"),
        }
    }
    assert!(
        cancelled > 0 && delivered > 0,
        "the cancels should straddle the dispatch: {cancelled} cancelled, {delivered} delivered"
    );
    stack.wait_until_consumed("stock-orders-cancelled").await;
    assert_eq!(
        stack.api.levels(&merchant).await.unwrap()[0].1,
        beef_before - 150 * delivered,
        "exactly the delivered orders keep their beef"
    );
    stack.assert_stock_consistent().await;
}
