//! Every event payload of SPEC §4, versioned. Names are past tense; amounts are integers in the
//! ingredient's base unit (g, ml, pcs), money integer cents.
//!
//! Consumers are tolerant readers: an added field is ignored by old consumers. Changing a payload
//! in a way old consumers cannot read (a removed or retyped field) means a new `VERSION`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{Decode, DecodeError, Envelope, Event, RawEnvelope};
use crate::subjects;

/// A customer placed an order; stock processing reserves its ingredients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    pub order_id: Uuid,
    pub merchant_id: i64,
    pub customer_id: Uuid,
    pub lines: Vec<OrderedLine>,
}

/// One product line and the recipe of one unit of it, as it was when the order was placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderedLine {
    pub product_id: i64,
    pub quantity: i64,
    pub recipe: Vec<IngredientAmount>,
}

/// An amount of one ingredient, in its base unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngredientAmount {
    pub ingredient_id: i64,
    pub amount: i64,
}

/// Every ingredient of the order was reserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    pub order_id: Uuid,
    pub merchant_id: i64,
    pub reserved: Vec<IngredientAmount>,
}

/// At least one ingredient was short; nothing was reserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRejected {
    pub order_id: Uuid,
    pub merchant_id: i64,
    pub shortages: Vec<Shortage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortage {
    pub ingredient_id: i64,
    pub ingredient: String,
    pub required: i64,
    pub available: i64,
}

/// The order was cancelled while pending or confirmed; stock releases what it reserved, delivery
/// drops a shipment not yet dispatched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    pub merchant_id: i64,
    /// False when the order was still pending: stock may not have seen it yet and must make sure
    /// it never reserves for it.
    pub release_stock: bool,
}

/// An ingredient fell from at or above 50 % of its reference level to below it (SPEC §5 rule 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLow {
    pub ingredient_id: i64,
    pub ingredient: String,
    pub unit: String,
    pub level: i64,
    pub reference_level: i64,
    /// Whole percent of the reference level, rounded down.
    pub percent: i64,
    pub merchant_id: i64,
    pub merchant_email: String,
    /// The order whose reservation crossed the threshold.
    pub order_id: Option<Uuid>,
}

/// The courier picked the order up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryDispatched {
    pub order_id: Uuid,
    pub shipment_id: Uuid,
    pub at: DateTime<Utc>,
}

/// The order reached the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryDelivered {
    pub order_id: Uuid,
    pub shipment_id: Uuid,
    pub at: DateTime<Utc>,
}

/// Delivery accepted a cancel: the order's shipment was dropped before dispatch (or will never
/// be created). The order service cancels the order and releases its stock on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryCancelled {
    pub order_id: Uuid,
    pub shipment_id: Uuid,
    pub at: DateTime<Utc>,
}

macro_rules! event {
    ($ty:ty, $kind:literal, $version:literal, $subject:expr) => {
        impl Event for $ty {
            const TYPE: &'static str = $kind;
            const VERSION: u16 = $version;
            const SUBJECT: &'static str = $subject;
        }
    };
}

event!(OrderCreated, "order.created", 1, subjects::ORDERS_CREATED);
event!(
    OrderConfirmed,
    "order.confirmed",
    1,
    subjects::ORDERS_CONFIRMED
);
event!(
    OrderRejected,
    "order.rejected",
    1,
    subjects::ORDERS_REJECTED
);
event!(
    OrderCancelled,
    "order.cancelled",
    1,
    subjects::ORDERS_CANCELLED
);
event!(StockLow, "stock.low", 1, subjects::STOCK_LOW);
event!(
    DeliveryDispatched,
    "delivery.dispatched",
    1,
    subjects::DELIVERY_DISPATCHED
);
event!(
    DeliveryDelivered,
    "delivery.delivered",
    1,
    subjects::DELIVERY_DELIVERED
);

event!(
    DeliveryCancelled,
    "delivery.cancelled",
    1,
    subjects::DELIVERY_CANCELLED
);

/// What the order service's `delivery.>` consumer receives.
#[derive(Clone, Debug, PartialEq)]
pub enum DeliveryEvent {
    Dispatched(Envelope<DeliveryDispatched>),
    Delivered(Envelope<DeliveryDelivered>),
    Cancelled(Envelope<DeliveryCancelled>),
}

impl Decode for DeliveryEvent {
    fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let raw = RawEnvelope::parse(payload)?;
        match raw.kind.as_str() {
            DeliveryDispatched::TYPE => raw.into_event().map(Self::Dispatched),
            DeliveryDelivered::TYPE => raw.into_event().map(Self::Delivered),
            DeliveryCancelled::TYPE => raw.into_event().map(Self::Cancelled),
            _ => Err(DecodeError::UnknownType {
                found: raw.kind,
                expected: format!(
                    "{}, {} or {}",
                    DeliveryDispatched::TYPE,
                    DeliveryDelivered::TYPE,
                    DeliveryCancelled::TYPE
                ),
            }),
        }
    }

    fn event_id(&self) -> Uuid {
        match self {
            Self::Dispatched(e) => e.id,
            Self::Delivered(e) => e.id,
            Self::Cancelled(e) => e.id,
        }
    }

    fn set_trace(&mut self, trace: Option<crate::trace::TraceParent>) {
        match self {
            Self::Dispatched(e) => e.trace = trace,
            Self::Delivered(e) => e.trace = trace,
            Self::Cancelled(e) => e.trace = trace,
        }
    }
}

/// A dead letter of an `orders.created`: which order it was for, whatever else its payload
/// holds (it was dead-lettered because something in it could not be processed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadOrderCreated {
    /// The dead event's envelope id.
    pub event_id: Uuid,
    pub order_id: Uuid,
}

impl Decode for DeadOrderCreated {
    fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct OrderId {
            order_id: Uuid,
        }
        let raw = RawEnvelope::parse(payload)?;
        let OrderId { order_id } =
            serde_json::from_str(raw.data.get()).map_err(|source| DecodeError::InvalidData {
                kind: raw.kind,
                source,
            })?;
        Ok(Self {
            event_id: raw.id,
            order_id,
        })
    }

    fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// A dead letter's trace is of no use to the order it rejects: the rejection starts afresh.
    fn set_trace(&mut self, _: Option<crate::trace::TraceParent>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_consumer_decodes_both_delivery_events_and_nothing_else() {
        let at = Utc::now();
        let dispatched = Envelope::new(
            DeliveryDispatched {
                order_id: Uuid::new_v4(),
                shipment_id: Uuid::new_v4(),
                at,
            },
            None,
        );
        let bytes = serde_json::to_vec(&dispatched).unwrap();
        assert_eq!(
            DeliveryEvent::decode(&bytes).unwrap(),
            DeliveryEvent::Dispatched(dispatched.clone())
        );

        let other = Envelope::new(
            OrderCancelled {
                order_id: Uuid::new_v4(),
                merchant_id: 1,
                release_stock: false,
            },
            None,
        );
        let bytes = serde_json::to_vec(&other).unwrap();
        assert!(matches!(
            DeliveryEvent::decode(&bytes),
            Err(DecodeError::UnknownType { .. })
        ));
    }
}
