//! The commands delivery serves over NATS request/reply (service `delivery`) for the order API: a
//! courier update forcing a shipment's next step, and the decision on a confirmed order's cancel.
//! The shipment and the events they cause stay in this service's tables and outbox.

use chrono::Utc;
use larder_bus::Namespace;
use larder_bus::outbox::Outbox;
use larder_bus::service::{CommandService, ServiceError};
use larder_contract::commands::{ApplyCourierUpdate, CancelShipment, Refusal, ShipmentState};
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::config::DeliverySettings;
use crate::store::{self, CancelRefusal, ForceStepError};

/// Starts the `delivery` service with its endpoints.
pub async fn serve(
    client: &async_nats::Client,
    namespace: &Namespace,
    db: DatabaseConnection,
    settings: DeliverySettings,
) -> Result<CommandService, ServiceError> {
    let mut service = CommandService::start(
        client,
        namespace,
        larder_contract::commands::services::DELIVERY,
        "Larder delivery: courier updates",
        env!("CARGO_PKG_VERSION"),
    )
    .await?;
    let outbox = Outbox::new(namespace.clone());
    let (cancelling, cancel_outbox) = (db.clone(), outbox.clone());
    service
        .serve(move |command: CancelShipment| {
            let (db, outbox) = (cancelling.clone(), cancel_outbox.clone());
            async move { cancel(&db, &outbox, command).await }
        })
        .await?;
    service
        .serve(move |command: ApplyCourierUpdate| {
            let (db, outbox, settings) = (db.clone(), outbox.clone(), settings.clone());
            async move { courier_update(&db, &outbox, &settings, command).await }
        })
        .await?;
    Ok(service)
}

pub async fn courier_update(
    db: &DatabaseConnection,
    outbox: &Outbox,
    settings: &DeliverySettings,
    command: ApplyCourierUpdate,
) -> Result<ShipmentState, Refusal> {
    let failed = |error: sea_orm::DbErr| {
        tracing::error!(%error, order_id = %command.order_id, "courier update failed");
        Refusal::internal()
    };
    let txn = db.begin().await.map_err(failed)?;
    let shipment = store::force_next_step(
        &txn,
        outbox,
        command.order_id,
        command.step.into(),
        settings,
    )
    .await
    .map_err(|error| match error {
        ForceStepError::Database(e) => failed(e),
        other => Refusal::conflict(other.to_string()),
    })?;
    txn.commit().await.map_err(failed)?;
    Ok(shipment_state(shipment))
}

pub async fn cancel(
    db: &DatabaseConnection,
    outbox: &Outbox,
    command: CancelShipment,
) -> Result<ShipmentState, Refusal> {
    let failed = |error: sea_orm::DbErr| {
        tracing::error!(%error, order_id = %command.order_id, "cancel request failed");
        Refusal::internal()
    };
    let txn = db.begin().await.map_err(failed)?;
    let shipment = store::cancel_on_request(
        &txn,
        outbox,
        command.order_id,
        command.correlation_id.clone(),
        Utc::now(),
    )
    .await
    .map_err(|error| match error {
        CancelRefusal::Database(e) => failed(e),
        too_late @ CancelRefusal::TooLate(_) => Refusal::conflict(too_late.to_string()),
    })?;
    txn.commit().await.map_err(failed)?;
    Ok(shipment_state(shipment))
}

fn shipment_state(shipment: entities::shipments::Model) -> ShipmentState {
    ShipmentState {
        id: shipment.id,
        order_id: shipment.order_id,
        status: shipment.status.as_str().to_owned(),
        dispatched_at: shipment.dispatched_at.map(|t| t.with_timezone(&Utc)),
        delivered_at: shipment.delivered_at.map(|t| t.with_timezone(&Utc)),
    }
}
