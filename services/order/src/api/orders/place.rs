//! `POST /order`, step by step: check the Idempotency-Key, price the request from the catalogue,
//! write the order with its `orders.created` through the group-commit writer, and answer: at
//! once, or once stock decided when `Prefer: wait` asked for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use larder_bus::trace::InTrace as _;
use larder_contract::Envelope;
use larder_contract::events::{OrderCreated, OrderedLine};
use larder_contract::trace::TraceParent;

use super::{Order, OrderLine, PlaceOrder, PlaceOrderResponse, StatusChange, load, location};
use crate::api::AppState;
use crate::api::context::InFlightSlot;
use crate::api::live;
use crate::api::problem::ApiError;
use crate::catalogue_cache::CatalogueEntry;
use crate::domain::{
    self, FieldError, OrderStatus, PricedOrder, PricingError, RequestedLine, ValidOrder,
};
use crate::order_writer;
use crate::push::OrderWatch;
use crate::store::{Inserted, NewOrder};

const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The key, trimmed; 1 to 255 characters when given.
pub(super) fn idempotency_key(header: Option<&str>) -> Result<Option<&str>, ApiError> {
    let key = header.map(str::trim);
    if let Some(key) = key
        && (key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS)
    {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"),
        ));
    }
    Ok(key)
}

/// A valid request, priced from the catalogue (never from the client).
pub(super) struct PricedRequest {
    order: ValidOrder,
    priced: PricedOrder,
    currency: String,
    catalogue: HashMap<i64, Arc<CatalogueEntry>>,
    fingerprint: String,
}

/// Validates the lines (SPEC §3) and prices them; unknown products are named by their line.
pub(super) async fn price(state: &AppState, body: &PlaceOrder) -> Result<PricedRequest, ApiError> {
    let requested: Vec<RequestedLine> = body
        .products
        .iter()
        .map(|l| RequestedLine {
            product_id: l.product_id,
            quantity: l.quantity,
        })
        .collect();
    let order = ValidOrder::parse(&requested).map_err(ApiError::validation)?;
    let catalogue = state.catalogue.get(&state.db, &order.product_ids()).await?;
    let products = catalogue
        .iter()
        .map(|(id, entry)| (*id, entry.product.clone()))
        .collect();
    let priced = domain::price(&order, &products).map_err(|e| pricing_error(e, &requested))?;
    let currency = catalogue[&priced.lines[0].product_id].currency.clone();
    let fingerprint = order.fingerprint();
    Ok(PricedRequest {
        order,
        priced,
        currency,
        catalogue,
        fingerprint,
    })
}

impl PricedRequest {
    /// Tells a replay of the same body from another body under the same key.
    pub(super) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The new order as it was written: everything it shows is known, so it is not read back.
    pub(super) fn into_pending_view(
        self,
        order_id: Uuid,
        customer_id: Uuid,
        created_at: DateTime<Utc>,
    ) -> Order {
        let pending = OrderStatus::Pending.as_str();
        Order {
            id: order_id,
            status: pending.to_owned(),
            customer_id,
            merchant_id: self.priced.merchant_id,
            total_cents: self.priced.total_cents,
            currency: self.currency,
            lines: self
                .priced
                .lines
                .into_iter()
                .map(|l| OrderLine {
                    product_id: l.product_id,
                    product_name: l.product_name,
                    quantity: l.quantity,
                    unit_price_cents: l.unit_price_cents,
                    line_total_cents: l.line_total_cents,
                })
                .collect(),
            history: vec![StatusChange {
                status: pending.to_owned(),
                at: created_at,
                note: None,
            }],
            rejection: None,
            shipment: None,
            created_at,
            updated_at: created_at,
        }
    }
}

/// SPEC §5 rule 1: the order and its event commit together, in one statement, grouped with the
/// other orders arriving meanwhile.
pub(super) async fn write(
    state: &AppState,
    request: &PricedRequest,
    order_id: Uuid,
    customer_id: Uuid,
    key: Option<&str>,
    correlation_id: &str,
    trace: TraceParent,
) -> Result<Inserted, ApiError> {
    let event = Envelope::new(
        OrderCreated {
            order_id,
            merchant_id: request.priced.merchant_id,
            customer_id,
            lines: request
                .order
                .lines()
                .map(|(product_id, quantity)| OrderedLine {
                    product_id,
                    quantity,
                    recipe: request.catalogue[&product_id].recipe.clone(),
                })
                .collect(),
        },
        Some(correlation_id.to_owned()),
    )
    .in_trace(Some(trace));
    let prepared = state.outbox.prepare(&event)?;
    let order = NewOrder {
        id: order_id,
        customer_id,
        currency: request.currency.clone(),
        priced: request.priced.clone(),
        idempotency_key: key.map(str::to_owned),
        fingerprint: request.fingerprint.clone(),
        correlation_id: Some(correlation_id.to_owned()),
    };
    Ok(order_writer::insert(&state.order_writer, order, prepared).await?)
}

/// A `Prefer: wait=N` being honoured: its waiter's place (`PREFER_WAIT_MAX_WAITERS`) and the
/// watch on the order.
pub(super) struct Wait {
    secs: u64,
    _place: OwnedSemaphorePermit,
    watch: OrderWatch,
}

impl Wait {
    /// A wait, when asked for and a waiter's place is free. The watch starts before the insert,
    /// so an outcome however quick is not missed.
    pub(super) fn asked(state: &AppState, prefer: Option<&str>, order_id: Uuid) -> Option<Self> {
        let secs = prefer.and_then(live::requested_wait)?;
        let place = state.live.waiter()?;
        Some(Self {
            secs,
            _place: place,
            watch: state.listeners.orders.watch(order_id),
        })
    }

    /// Waiting is not work: the in-flight slot goes back, the waiter's place is held.
    async fn for_outcome(
        mut self,
        state: &AppState,
        in_flight: &InFlightSlot,
    ) -> Result<Order, ApiError> {
        in_flight.release();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.secs);
        live::wait_for_outcome(state, &mut self.watch, deadline).await
    }

    fn applied(&self) -> String {
        format!("wait={}", self.secs)
    }
}

/// The answer for a new order: 202 at once, or after the wait 201 with the decision (202 when
/// it is still pending).
pub(super) async fn answer_created(
    state: &AppState,
    view: Order,
    wait: Option<Wait>,
    in_flight: &InFlightSlot,
) -> Result<PlaceOrderResponse, ApiError> {
    metrics::counter!("larder_orders_total", "status" => OrderStatus::Pending.as_str())
        .increment(1);
    let at = location(view.id);
    let Some(wait) = wait else {
        return Ok(PlaceOrderResponse::Accepted(Json(view), at, None));
    };
    let applied = wait.applied();
    let order = wait.for_outcome(state, in_flight).await?;
    if order.status == OrderStatus::Pending.as_str() {
        Ok(PlaceOrderResponse::Accepted(Json(order), at, Some(applied)))
    } else {
        Ok(PlaceOrderResponse::Decided(Json(order), at, applied))
    }
}

/// The answer for a replay of the same key and body: the first order as it is now, after the
/// wait when one was asked for and it is still pending.
pub(super) async fn answer_replayed(
    state: &AppState,
    first: Uuid,
    wait: Option<Wait>,
    in_flight: &InFlightSlot,
) -> Result<PlaceOrderResponse, ApiError> {
    let at = location(first);
    // The first order's id is known only now: watch it, then read it.
    let wait = wait.map(|wait| Wait {
        watch: state.listeners.orders.watch(first),
        ..wait
    });
    let details = load(state, first).await?;
    let Some(wait) = wait.filter(|_| details.status == OrderStatus::Pending.as_str()) else {
        return Ok(PlaceOrderResponse::Replayed(Json(details), at, None));
    };
    let applied = wait.applied();
    let details = wait.for_outcome(state, in_flight).await?;
    Ok(PlaceOrderResponse::Replayed(
        Json(details),
        at,
        Some(applied),
    ))
}

/// Names the lines whose product is unknown, as the client wrote them.
fn pricing_error(error: PricingError, requested: &[RequestedLine]) -> ApiError {
    match error {
        PricingError::UnknownProducts(ids) => ApiError::validation(
            requested
                .iter()
                .enumerate()
                .filter(|(_, line)| ids.contains(&line.product_id))
                .map(|(i, line)| {
                    FieldError::new(
                        format!("products[{i}].product_id"),
                        format!("unknown product {}", line.product_id),
                    )
                })
                .collect(),
        ),
        PricingError::MixedMerchants(merchants) => ApiError::invalid_field(
            "products",
            format!(
                "an order goes to one merchant, these products belong to merchants {merchants:?}"
            ),
        ),
    }
}
