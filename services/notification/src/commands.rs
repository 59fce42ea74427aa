//! The command notification serves over NATS request/reply (service `notification`): a
//! merchant's low-stock alerts with what became of their emails. The order API's console asks
//! for them; this service is the only reader and writer of its tables.

use larder_bus::Namespace;
use larder_bus::service::{CommandService, ServiceError};
use larder_contract::commands::{Alert, ListAlerts, Refusal};
use sea_orm::DatabaseConnection;

use entities::notifications;

use crate::store;

/// The most alerts one `list-alerts` answers.
pub const MAX_ALERTS: u32 = 100;

/// Starts the `notification` service with its endpoint.
pub async fn serve(
    client: &async_nats::Client,
    namespace: &Namespace,
    db: DatabaseConnection,
) -> Result<CommandService, ServiceError> {
    let mut service = CommandService::start(
        client,
        namespace,
        larder_contract::commands::services::NOTIFICATION,
        "Larder notification: low-stock alerts and their emails",
        env!("CARGO_PKG_VERSION"),
    )
    .await?;
    service
        .serve(move |command: ListAlerts| {
            let db = db.clone();
            async move { list(&db, command).await }
        })
        .await?;
    Ok(service)
}

pub async fn list(db: &DatabaseConnection, command: ListAlerts) -> Result<Vec<Alert>, Refusal> {
    let limit = command.limit.clamp(1, MAX_ALERTS);
    let rows = store::list_for_merchant(db, command.merchant_id, u64::from(limit))
        .await
        .map_err(|error| {
            tracing::error!(%error, "listing alerts failed");
            Refusal::internal()
        })?;
    Ok(rows.into_iter().map(alert_view).collect())
}

fn alert_view(row: notifications::Model) -> Alert {
    Alert {
        event_id: row.event_id,
        ingredient_id: row.ingredient_id,
        ingredient: row.ingredient_name,
        unit: row.unit.unwrap_or_default(),
        level: row.level.unwrap_or_default(),
        reference_level: row.reference_level.unwrap_or_default(),
        percent: row.percent.unwrap_or_default(),
        recipient: row.recipient,
        email_status: row.status.as_str().to_owned(),
        attempts: row.attempts,
        last_error: row.last_error,
        raised_at: row.created_at.to_utc(),
        sent_at: row.sent_at.map(|at| at.to_utc()),
    }
}
