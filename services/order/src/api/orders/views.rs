//! What the order operations take and answer: the request bodies, the order as the API shows
//! it, and the conversion from the store's rows.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use poem_openapi::types::Example;
use uuid::Uuid;

use larder_contract::events::Shortage;

use crate::domain::OrderStatus;
use crate::store::OrderDetails;

#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct PlaceOrder {
    /// 1 to 100 lines; lines of the same product are merged. All products of one merchant.
    pub products: Vec<OrderLineRequest>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct OrderLineRequest {
    /// A product id from the catalogue (`POST /order/seed` returns them).
    pub product_id: i64,
    /// 1 to 10 000.
    pub quantity: i64,
}

impl Example for PlaceOrder {
    fn example() -> Self {
        Self {
            products: vec![OrderLineRequest {
                product_id: 1,
                quantity: 2,
            }],
        }
    }
}

/// An order as the API shows it.
#[derive(Debug, Object)]
pub struct Order {
    pub id: Uuid,
    /// `pending`, `confirmed`, `rejected`, `dispatched`, `delivered` or `cancelled`.
    pub status: String,
    pub customer_id: Uuid,
    pub merchant_id: i64,
    /// Sum of the lines, in minor units (cents), priced by the server.
    pub total_cents: i64,
    pub currency: String,
    pub lines: Vec<OrderLine>,
    /// Every status the order went through, oldest first.
    pub history: Vec<StatusChange>,
    /// Why stock processing rejected the order.
    #[oai(skip_serializing_if_is_none)]
    pub rejection: Option<Rejection>,
    /// The delivery, once delivery reported it (dispatched, delivered, or dropped on a cancel).
    #[oai(skip_serializing_if_is_none)]
    pub shipment: Option<Shipment>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct OrderLine {
    pub product_id: i64,
    pub product_name: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

#[derive(Debug, Object)]
pub struct StatusChange {
    pub status: String,
    pub at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub note: Option<String>,
}

#[derive(Debug, Object)]
pub struct Rejection {
    /// Every ingredient that was short: nothing was reserved.
    pub shortages: Vec<ShortageView>,
}

#[derive(Debug, Object)]
pub struct ShortageView {
    pub ingredient_id: i64,
    pub ingredient: String,
    /// What the order needed, in the ingredient's base unit.
    pub required: i64,
    /// What was in stock.
    pub available: i64,
}

#[derive(Debug, Object)]
pub struct Shipment {
    pub id: Uuid,
    /// `pending`, `dispatched`, `delivered` or `cancelled` (the order shows `dispatched`,
    /// `delivered` or `cancelled`: what delivery's events told it).
    pub status: String,
    #[oai(skip_serializing_if_is_none)]
    pub dispatched_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
pub struct OrderPage {
    /// Newest first.
    pub items: Vec<OrderSummary>,
    pub page: u64,
    pub per_page: u64,
    /// Orders matching the filter, over all pages.
    pub total: u64,
}

#[derive(Debug, Object)]
pub struct OrderSummary {
    pub id: Uuid,
    pub status: String,
    pub merchant_id: i64,
    pub total_cents: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

impl From<entities::orders::Model> for OrderSummary {
    fn from(o: entities::orders::Model) -> Self {
        Self {
            id: o.id,
            status: o.status.as_str().to_owned(),
            merchant_id: o.merchant_id,
            total_cents: o.total_cents,
            currency: o.currency,
            created_at: o.created_at.with_timezone(&Utc),
        }
    }
}

#[derive(Debug, Clone, Copy, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum StatusFilter {
    Pending,
    Confirmed,
    Rejected,
    Dispatched,
    Delivered,
    Cancelled,
}

impl From<StatusFilter> for OrderStatus {
    fn from(filter: StatusFilter) -> Self {
        match filter {
            StatusFilter::Pending => Self::Pending,
            StatusFilter::Confirmed => Self::Confirmed,
            StatusFilter::Rejected => Self::Rejected,
            StatusFilter::Dispatched => Self::Dispatched,
            StatusFilter::Delivered => Self::Delivered,
            StatusFilter::Cancelled => Self::Cancelled,
        }
    }
}

#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct CourierUpdate {
    /// `dispatched` or `delivered`.
    pub status: CourierStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum CourierStatus {
    Dispatched,
    Delivered,
}

impl Example for CourierUpdate {
    fn example() -> Self {
        Self {
            status: CourierStatus::Dispatched,
        }
    }
}

pub fn to_view(details: OrderDetails) -> Order {
    let OrderDetails {
        order,
        lines,
        history,
        shipment,
    } = details;
    let rejection = order
        .rejection
        .and_then(|json| serde_json::from_value::<Vec<Shortage>>(json).ok())
        .map(|shortages| Rejection {
            shortages: shortages
                .into_iter()
                .map(|s| ShortageView {
                    ingredient_id: s.ingredient_id,
                    ingredient: s.ingredient,
                    required: s.required,
                    available: s.available,
                })
                .collect(),
        });
    Order {
        id: order.id,
        status: order.status.as_str().to_owned(),
        customer_id: order.customer_id,
        merchant_id: order.merchant_id,
        total_cents: order.total_cents,
        currency: order.currency,
        lines: lines
            .into_iter()
            .map(|l| OrderLine {
                product_id: l.product_id,
                product_name: l.product_name,
                quantity: i64::from(l.quantity),
                unit_price_cents: l.unit_price_cents,
                line_total_cents: l.line_total_cents,
            })
            .collect(),
        history: history
            .into_iter()
            .map(|h| StatusChange {
                status: h.status.as_str().to_owned(),
                at: h.at.with_timezone(&Utc),
                note: h.note,
            })
            .collect(),
        rejection,
        shipment: shipment.map(|s| Shipment {
            id: s.id,
            status: s.status.to_owned(),
            dispatched_at: s.dispatched_at,
            delivered_at: s.delivered_at,
        }),
        created_at: order.created_at.with_timezone(&Utc),
        updated_at: order.updated_at.with_timezone(&Utc),
    }
}
