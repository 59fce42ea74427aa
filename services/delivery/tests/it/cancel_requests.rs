//! The `cancel-shipment` command (SPEC §5 rule 4): delivery decides a confirmed order's cancel.
//! An undispatched shipment is dropped and `delivery.cancelled` announces it; a dispatched one
//! is refused; with no shipment yet, none is ever created.

use std::time::Duration;

use larder_bus::service::{CallError, call};
use larder_bus::topology;
use larder_contract::commands::{ApplyCourierUpdate, CancelShipment, CourierStep};
use larder_contract::events::DeliveryCancelled;
use larder_contract::subjects;
use uuid::Uuid;

use crate::helpers::{TestApp, confirmation, courier, spawn_app};

// Generous: the suite runs many services at once on a small machine; this is not a timing test.
const TIMEOUT: Duration = Duration::from_secs(20);

async fn cancel(
    app: &TestApp,
    order_id: Uuid,
) -> Result<larder_contract::commands::ShipmentState, CallError> {
    call(
        &app.nats.client,
        app.nats.namespace(),
        &CancelShipment {
            order_id,
            correlation_id: Some("cancel-test".into()),
        },
        TIMEOUT,
    )
    .await
}

async fn cancellations_announced(app: &TestApp, order_id: Uuid) -> usize {
    app.messages_on(subjects::DELIVERY_CANCELLED)
        .await
        .iter()
        .map(|m| {
            serde_json::from_slice::<larder_contract::Envelope<DeliveryCancelled>>(&m.payload)
                .unwrap()
        })
        .filter(|e| {
            e.data.order_id == order_id && e.correlation_id.as_deref() == Some("cancel-test")
        })
        .count()
}

#[actix::test]
async fn an_undispatched_shipment_is_dropped_and_the_drop_announced_once() {
    let app = spawn_app(courier(1_500, 100)).await;
    let (confirmed, _) = app.confirm_new_order().await;
    let order_id = confirmed.data.order_id;

    let first = cancel(&app, order_id).await.expect("accepted");
    let again = cancel(&app, order_id).await.expect("accepted again");

    assert_eq!(
        (first.status.as_str(), again.status.as_str()),
        ("cancelled", "cancelled")
    );
    app.wait_until_published().await;
    assert_eq!(cancellations_announced(&app, order_id).await, 1);
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert_eq!(
        app.steps_of(order_id).await,
        Vec::<&str>::new(),
        "never dispatched"
    );
    app.stop().await;
}

#[actix::test]
async fn a_dispatched_shipment_refuses_the_cancel() {
    let app = spawn_app(courier(60_000, 60_000)).await;
    let (confirmed, _) = app.confirm_new_order().await;
    let order_id = confirmed.data.order_id;
    call(
        &app.nats.client,
        app.nats.namespace(),
        &ApplyCourierUpdate {
            order_id,
            step: CourierStep::Dispatched,
        },
        TIMEOUT,
    )
    .await
    .expect("the courier update applies");

    match cancel(&app, order_id).await {
        Err(CallError::Refused { refusal, .. }) => {
            assert_eq!(refusal.code, 409);
            assert!(refusal.detail.contains("dispatched"), "{}", refusal.detail);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        app.shipment(order_id).await.unwrap().status.as_str(),
        "dispatched"
    );
    app.wait_until_published().await;
    assert_eq!(cancellations_announced(&app, order_id).await, 0);
    app.stop().await;
}

#[actix::test]
async fn a_cancel_before_the_shipment_exists_means_none_is_ever_created() {
    let app = spawn_app(courier(100, 100)).await;
    let confirmed = confirmation();
    let order_id = confirmed.data.order_id;

    cancel(&app, order_id).await.expect("accepted");
    app.publish(&confirmed).await;
    app.wait_until_consumed(topology::DELIVERY_ORDERS_CONFIRMED)
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    assert_eq!(
        app.shipment(order_id).await.unwrap().status.as_str(),
        "cancelled"
    );
    assert_eq!(app.steps_of(order_id).await, Vec::<&str>::new());
    app.wait_until_published().await;
    assert_eq!(cancellations_announced(&app, order_id).await, 1);
    app.stop().await;
}
