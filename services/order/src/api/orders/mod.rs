//! `POST /order`, `GET /order/{id}`, `GET /orders`, `POST /order/{id}/cancel`,
//! `POST /order/{id}/delivery`; what they take and answer is [`views`]; `POST /order`'s steps are
//! [`place`].

mod place;
pub mod views;

pub use views::*;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{ApiResponse, OpenApi, payload::Json};
use sea_orm::TransactionTrait;
use uuid::Uuid;

use larder_contract::Envelope;
use larder_contract::commands::{ApplyCourierUpdate, CancelShipment, CourierStep};
use larder_contract::events::OrderCancelled;

use super::context::{InFlightSlot, RequestId};
use super::problem::ApiError;
use super::security::BearerAuth;
use super::{ApiTags, AppState};
use crate::auth::Role;
use crate::domain::{self, Cancellation, FieldError, OrderStatus};
use crate::push;
use crate::store::{self, Inserted, OrderScope};
use larder_bus::trace::InTrace as _;

pub struct OrdersApi;

#[derive(ApiResponse)]
enum PlaceOrderResponse {
    /// Stored and acknowledged; stock processing will confirm or reject it. After a
    /// `Prefer: wait` that ran out, with `Preference-Applied` saying how long the wait was.
    #[oai(status = 202)]
    Accepted(
        Json<Order>,
        #[oai(header = "Location")] String,
        /// `wait=N`: the server waited N seconds for the outcome.
        #[oai(header = "Preference-Applied")]
        Option<String>,
    ),
    /// `Prefer: wait=N` and stock decided within N seconds: the order `confirmed` or
    /// `rejected` (or `cancelled` meanwhile).
    #[oai(status = 201)]
    Decided(
        Json<Order>,
        #[oai(header = "Location")] String,
        /// `wait=N`, the wait honoured (N capped at 10).
        #[oai(header = "Preference-Applied")]
        String,
    ),
    /// The same Idempotency-Key and body were seen before: the first order as it is now (after
    /// waiting for its outcome when `Prefer: wait` asked and it was still pending).
    #[oai(status = 200)]
    Replayed(
        Json<Order>,
        #[oai(header = "Location")] String,
        /// `wait=N` when the server waited for the outcome.
        #[oai(header = "Preference-Applied")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
enum CancelResponse {
    /// The order is cancelled; reserved stock will be released and no shipment will leave.
    #[oai(status = 202)]
    Accepted(Json<Order>),
}

#[derive(ApiResponse)]
enum CourierResponse {
    /// The shipment moved; the order follows when the delivery event is processed.
    #[oai(status = 202)]
    Accepted(Json<Shipment>),
}

#[OpenApi(tag = "ApiTags::Orders")]
impl OrdersApi {
    /// Place an order
    ///
    /// Stores the order as `pending` and answers at once (202 with a `Location`); stock
    /// processing then reserves every ingredient or none and the order becomes `confirmed` or
    /// `rejected` (follow it with `GET /order/{id}/events`, or poll `GET /order/{id}`). With
    /// `Prefer: wait=N` (RFC 7240; N up to 10 seconds, more is capped at 10) the answer waits up
    /// to N seconds for that outcome: 201 with the decided order, else the 202; both with
    /// `Preference-Applied: wait=N`. When too many requests are waiting already
    /// (`PREFER_WAIT_MAX_WAITERS`), the preference is not honoured: the 202 at once, without
    /// `Preference-Applied`. Prices come from the catalogue, never from the request. With an
    /// `Idempotency-Key`, a retry with the same body returns the first order (200) and a
    /// different body under the same key is a 422.
    #[oai(path = "/order", method = "post")]
    #[allow(clippy::too_many_arguments)] // one per extractor, as poem-openapi wants them
    async fn place(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        trace: Data<&larder_contract::trace::TraceParent>,
        in_flight: Data<&InFlightSlot>,
        auth: BearerAuth,
        /// Any string up to 255 characters, unique per attempt; resend it on retries.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        /// `wait=N`: wait up to N seconds (at most 10) for the order to be confirmed or rejected
        /// and answer with it (RFC 7240). Other preferences are ignored.
        #[oai(name = "Prefer")]
        prefer: Header<Option<String>>,
        body: Json<PlaceOrder>,
    ) -> Result<PlaceOrderResponse, ApiError> {
        let key = place::idempotency_key(idempotency_key.0.as_deref())?;
        let request = place::price(&state, &body).await?;
        let order_id = Uuid::now_v7();
        let wait = place::Wait::asked(&state, prefer.0.as_deref(), order_id);
        let customer_id = auth.0.sub;
        let inserted = place::write(
            &state,
            &request,
            order_id,
            customer_id,
            key,
            &request_id.0.0,
            *trace.0,
        )
        .await?;
        match inserted {
            Inserted::CreatedAt(created_at) => {
                let view = request.into_pending_view(order_id, customer_id, created_at);
                place::answer_created(&state, view, wait, &in_flight).await
            }
            Inserted::AlreadyExists {
                order_id: first,
                fingerprint,
            } => {
                if fingerprint.as_deref() != Some(request.fingerprint()) {
                    return Err(ApiError::invalid_field(
                        "Idempotency-Key",
                        "was already used for an order with a different body",
                    ));
                }
                place::answer_replayed(&state, first, wait, &in_flight).await
            }
        }
    }

    /// Get an order
    ///
    /// The order with its lines, status history, rejection details and shipment. Visible to
    /// the customer who placed it and to its merchant; anyone else gets 404.
    #[oai(path = "/order/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The order id (from `POST /order`).
        id: Path<Uuid>,
    ) -> Result<Json<Order>, ApiError> {
        let details = store::find_order(&state.db, id.0)
            .await?
            .filter(|d| may_see(&auth, &d.order))
            .ok_or_else(|| ApiError::not_found(format!("no order {}", id.0)))?;
        Ok(Json(to_view(details)))
    }

    /// List orders
    ///
    /// The caller's own orders; for a merchant, every order of its merchant. Newest first,
    /// paged, optionally filtered by status.
    #[oai(path = "/orders", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Only orders in this status.
        status: Query<Option<StatusFilter>>,
        /// Page number, 1 to 1 000 000.
        #[oai(default = "default_page")]
        page: Query<u64>,
        /// Orders per page, 1 to 100.
        #[oai(default = "default_per_page")]
        per_page: Query<u64>,
    ) -> Result<Json<OrderPage>, ApiError> {
        let mut errors = Vec::new();
        // The offset is (page - 1) * per_page: bounded so it never overflows.
        if !(1..=MAX_PAGE).contains(&page.0) {
            errors.push(FieldError::new(
                "page",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page.0) {
            errors.push(FieldError::new(
                "per_page",
                format!("must be between 1 and {MAX_PER_PAGE}"),
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let scope = match (auth.0.role, auth.0.merchant_id) {
            (Role::Merchant, Some(merchant_id)) => OrderScope::Merchant(merchant_id),
            _ => OrderScope::Customer(auth.0.sub),
        };
        let (items, total) = store::list_orders(
            &state.db,
            scope,
            status.0.map(Into::into),
            page.0,
            per_page.0,
        )
        .await?;
        Ok(Json(OrderPage {
            items: items.into_iter().map(OrderSummary::from).collect(),
            page: page.0,
            per_page: per_page.0,
            total,
        }))
    }

    /// Cancel an order
    ///
    /// A `pending` or `confirmed` order's cancel is decided by delivery (a pending order may
    /// already be confirmed by stock and on its way): only if it drops the undispatched shipment,
    /// or remembers the order has none so none is ever made, is the order cancelled and whatever
    /// stock it reserved released; if the courier already has it, 409 says so and the order goes
    /// on to delivery. Cancelling a cancelled order again changes nothing
    /// (202). Once dispatched, delivered or rejected: 409. 503 with `Retry-After` when delivery
    /// does not answer in time (nothing changed: try again).
    #[oai(path = "/order/:id/cancel", method = "post")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        trace: Data<&larder_contract::trace::TraceParent>,
        auth: BearerAuth,
        /// The order id.
        id: Path<Uuid>,
    ) -> Result<CancelResponse, ApiError> {
        let correlation_id = Some(request_id.0.0.clone());
        let mut delivery_agreed = false;
        // The order's merchant, once this request has cancelled it.
        let mut cancelled_now = None;
        let txn = loop {
            let txn = state.db.begin().await?;
            let order = store::find_order_for_update(&txn, id.0)
                .await?
                .filter(|o| may_see(&auth, o))
                .ok_or_else(|| ApiError::not_found(format!("no order {}", id.0)))?;
            let current = order.status;
            match domain::cancellation(current) {
                Cancellation::AlreadyCancelled => break txn,
                Cancellation::AskDelivery if !delivery_agreed => {
                    // Delivery owns the dispatch decision: it drops an undispatched shipment
                    // (and announces it with `delivery.cancelled`, which completes this cancel
                    // even if we stop here) or refuses once the courier has it. The order's
                    // row is not held meanwhile; it is decided again under the lock.
                    drop(txn);
                    state
                        .call(&CancelShipment {
                            order_id: id.0,
                            correlation_id: correlation_id.clone(),
                        })
                        .await?;
                    delivery_agreed = true;
                }
                Cancellation::AskDelivery => {
                    let who = if auth.0.sub == order.customer_id {
                        "customer"
                    } else {
                        "merchant"
                    };
                    store::advance_order(
                        &txn,
                        id.0,
                        OrderStatus::Cancelled,
                        None,
                        Some(format!("cancelled by the {who}")),
                    )
                    .await?;
                    let event = Envelope::new(
                        OrderCancelled {
                            order_id: id.0,
                            merchant_id: order.merchant_id,
                            release_stock: domain::reservation_confirmed(current),
                        },
                        correlation_id.clone(),
                    )
                    .in_trace(Some(*trace.0));
                    state.outbox.enqueue(&txn, &event).await?;
                    cancelled_now = Some(order.merchant_id);
                    break txn;
                }
                Cancellation::Refused => {
                    return Err(ApiError::conflict(format!(
                        "the order is {current}: it can no longer be cancelled"
                    )));
                }
            }
        };
        txn.commit().await?;
        if let Some(merchant_id) = cancelled_now {
            metrics::counter!("larder_orders_total", "status" => OrderStatus::Cancelled.as_str())
                .increment(1);
            // Clients following the order, on any instance, see it end.
            state
                .pushes
                .publish(&[push::Committed {
                    order_id: id.0,
                    merchant_id,
                    status: OrderStatus::Cancelled,
                }])
                .await;
        }
        Ok(CancelResponse::Accepted(Json(load(&state, id.0).await?)))
    }

    /// Simulate a courier update
    ///
    /// Merchant only. Forces the order's shipment to `dispatched` or `delivered` now instead of
    /// waiting for the delivery timers (`delivered` on an undispatched shipment dispatches it
    /// first). The order's status follows as the delivery events are processed. 409 when the
    /// order has no shipment yet or the step is not possible. Served by the delivery service:
    /// 503 with `Retry-After` when it does not answer in time.
    #[oai(path = "/order/:id/delivery", method = "post")]
    async fn courier_update(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The order id.
        id: Path<Uuid>,
        body: Json<CourierUpdate>,
    ) -> Result<CourierResponse, ApiError> {
        let merchant_id = auth.merchant_id()?;
        store::find_order_summary(&state.db, id.0)
            .await?
            .filter(|o| o.merchant_id == merchant_id)
            .ok_or_else(|| ApiError::not_found(format!("no order {}", id.0)))?;
        let step = match body.status {
            CourierStatus::Dispatched => CourierStep::Dispatched,
            CourierStatus::Delivered => CourierStep::Delivered,
        };
        let shipment = state
            .call(&ApplyCourierUpdate {
                order_id: id.0,
                step,
            })
            .await?;
        Ok(CourierResponse::Accepted(Json(Shipment {
            id: shipment.id,
            status: shipment.status,
            dispatched_at: shipment.dispatched_at,
            delivered_at: shipment.delivered_at,
        })))
    }
}

/// The last page a client may ask for (`page` in `GET /orders`).
pub const MAX_PAGE: u64 = 1_000_000;
/// The largest `per_page` in `GET /orders`.
pub const MAX_PER_PAGE: u64 = 100;

fn default_page() -> u64 {
    1
}

fn default_per_page() -> u64 {
    20
}

fn location(order_id: Uuid) -> String {
    format!("/order/{order_id}")
}

/// The owner, or a merchant user of the order's merchant.
pub fn may_see(auth: &BearerAuth, order: &entities::orders::Model) -> bool {
    order.customer_id == auth.0.sub
        || (auth.0.role == Role::Merchant && auth.0.merchant_id == Some(order.merchant_id))
}

pub async fn load(state: &AppState, order_id: Uuid) -> Result<Order, ApiError> {
    let details = store::find_order(&state.db, order_id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("order {order_id} vanished")))?;
    Ok(to_view(details))
}
