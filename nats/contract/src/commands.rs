//! Merchant commands one service asks another to carry out over NATS request/reply (SPEC §3):
//! the order API asks stock to seed, list and restock ingredients, and delivery to apply a
//! courier update. Each command names its subject, endpoint and reply type here, so the caller
//! and the serving service agree on one definition.
//!
//! The subjects live under `svc.`, outside every stream's subjects (the bus's topology tests
//! check it): a request on `stock.…` would be captured by the STOCK stream, which answers with
//! a publish ack instead of the service.
//! A refusal travels as the service API's error headers with an HTTP-like code
//! ([`Refusal`]); the caller maps it to its own answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// A request one service serves for another, with the reply it answers.
pub trait Command: Serialize + DeserializeOwned + Send + Sync + 'static {
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// The serving service, as `nats micro ls` lists it (before any namespace prefix).
    const SERVICE: &'static str;
    /// The endpoint's name in `nats micro info` and its stats.
    const ENDPOINT: &'static str;
    /// The subject it is served on, without namespace.
    const SUBJECT: &'static str;
}

/// Why a service refused a command: `code` is an HTTP status (404, 409, 422, 400, 500) and
/// `detail` says why, for a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Refusal {
    pub code: u16,
    pub detail: String,
}

impl Refusal {
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self {
            code: 404,
            detail: detail.into(),
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self {
            code: 409,
            detail: detail.into(),
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self {
            code: 422,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self {
            code: 400,
            detail: detail.into(),
        }
    }

    /// The cause is logged by the service; the caller learns only that it failed.
    pub fn internal() -> Self {
        Self {
            code: 500,
            detail: "the service failed to carry out the command".into(),
        }
    }
}

pub mod services {
    pub const STOCK: &str = "stock";
    pub const DELIVERY: &str = "delivery";
    pub const NOTIFICATION: &str = "notification";
}

// ---------------------------------------------------------------------------------------------
// Stock

/// One ingredient of a merchant's catalogue to seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngredientSeed {
    pub name: String,
    /// `g`, `ml` or `pcs`.
    pub unit: String,
    /// The level to set, which becomes the reference level (100 %); > 0.
    pub level: i64,
}

/// Seed (or re-seed) a merchant's ingredients: levels and reference levels set, alerts re-armed.
/// Idempotent. The merchant's alert address travels with it: stock keeps it for `stock.low`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedIngredients {
    pub merchant_id: i64,
    pub merchant_email: String,
    pub ingredients: Vec<IngredientSeed>,
}

/// The merchant's ingredients, by ascending id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListIngredients {
    pub merchant_id: i64,
}

/// Add `amount` to one of the merchant's ingredients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestockIngredient {
    pub merchant_id: i64,
    pub ingredient_id: i64,
    pub amount: i64,
}

/// An ingredient's level as stock reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngredientLevel {
    pub id: i64,
    pub name: String,
    pub unit: String,
    pub stock: i64,
    pub reference_level: i64,
    /// Whole percent of the reference level, rounded down.
    pub percent: i64,
    /// True once `stock.low` was emitted, until a restock re-arms it.
    pub low_stock_alerted: bool,
}

impl Command for SeedIngredients {
    type Reply = Vec<IngredientLevel>;
    const SERVICE: &'static str = services::STOCK;
    const ENDPOINT: &'static str = "seed-ingredients";
    const SUBJECT: &'static str = "svc.stock.ingredients.seed";
}

impl Command for ListIngredients {
    type Reply = Vec<IngredientLevel>;
    const SERVICE: &'static str = services::STOCK;
    const ENDPOINT: &'static str = "list-ingredients";
    const SUBJECT: &'static str = "svc.stock.ingredients.list";
}

impl Command for RestockIngredient {
    type Reply = IngredientLevel;
    const SERVICE: &'static str = services::STOCK;
    const ENDPOINT: &'static str = "restock-ingredient";
    const SUBJECT: &'static str = "svc.stock.ingredients.restock";
}

// ---------------------------------------------------------------------------------------------
// Delivery

/// The step a courier reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CourierStep {
    Dispatched,
    Delivered,
}

impl CourierStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dispatched => "dispatched",
            Self::Delivered => "delivered",
        }
    }
}

/// Force the order's shipment to `step` now, as a courier update would (`delivered` on an
/// undispatched shipment dispatches it first). Forcing the status it already has changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyCourierUpdate {
    pub order_id: Uuid,
    pub step: CourierStep,
}

/// A shipment as delivery reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentState {
    pub id: Uuid,
    pub order_id: Uuid,
    /// `pending`, `dispatched`, `delivered` or `cancelled`.
    pub status: String,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A confirmed order's customer or merchant wants it cancelled: delivery decides. A shipment not
/// yet dispatched (or none yet) is dropped for good and the reply says so; one already with the
/// courier is refused (409). An accepted cancel is also announced as `delivery.cancelled`, so
/// the order is cancelled even if the caller never hears the reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelShipment {
    pub order_id: Uuid,
    /// The request id of the cancel, carried into `delivery.cancelled`.
    pub correlation_id: Option<String>,
}

impl Command for CancelShipment {
    type Reply = ShipmentState;
    const SERVICE: &'static str = services::DELIVERY;
    const ENDPOINT: &'static str = "cancel-shipment";
    const SUBJECT: &'static str = "svc.delivery.shipments.cancel";
}

impl Command for ApplyCourierUpdate {
    type Reply = ShipmentState;
    const SERVICE: &'static str = services::DELIVERY;
    const ENDPOINT: &'static str = "courier-update";
    const SUBJECT: &'static str = "svc.delivery.shipments.courier-update";
}

// ---------------------------------------------------------------------------------------------
// Notification

/// The merchant's newest low-stock alerts (at most `limit`), newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListAlerts {
    pub merchant_id: i64,
    pub limit: u32,
}

/// One low-stock alert and what became of its email.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The `stock.low` event's envelope id.
    pub event_id: Uuid,
    pub ingredient_id: i64,
    pub ingredient: String,
    pub unit: String,
    /// The level, reference and whole percent when it fell below 50 %.
    pub level: i64,
    pub reference_level: i64,
    pub percent: i64,
    pub recipient: String,
    /// `pending` (being sent, or waiting for the SMTP server), `sent` or `failed`.
    pub email_status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub raised_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl Command for ListAlerts {
    type Reply = Vec<Alert>;
    const SERVICE: &'static str = services::NOTIFICATION;
    const ENDPOINT: &'static str = "list-alerts";
    const SUBJECT: &'static str = "svc.notification.alerts.list";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn courier_steps_are_lower_case_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&CourierStep::Delivered).unwrap(),
            "\"delivered\""
        );
    }
}
