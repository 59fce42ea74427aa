//! What the merchant console reads (README "The merchant console"): one merchant's live feed
//! (`GET /merchant/events`, Server-Sent Events), its low-stock alerts with their email status
//! (`GET /alerts`, served by notification over NATS), and the dead letters that concern it with
//! a replay (`GET /dead-letters`, `POST /dead-letters/{sequence}/replay`). The page itself is
//! [`super::console_page`].
//!
//! The feed is woken by pushes ([`crate::push`]) and reads the truth from the owner each time:
//! orders from this service's tables, levels from stock, alerts from notification, dead letters
//! from the `DLQ` stream. Wake-ups that come close together are read once.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use larder_bus::dlq::{self, DeadLetterError, DeadLetterRecord};
use larder_contract::commands::{Alert, ListAlerts, ListIngredients};
use poem::web::Data;
use poem::web::sse::Event;
use poem_openapi::param::Path;
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::types::ToJSON as _;
use poem_openapi::{ApiResponse, Object, OpenApi, Union};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use uuid::Uuid;

use super::ingredients::Ingredient;
use super::orders::OrderSummary;
use super::problem::ApiError;
use super::security::BearerAuth;
use super::{ApiTags, AppState};
use crate::push::{FeedSignal, MerchantFeed, Pushed};
use crate::store::{self, OrderScope};

/// Orders the feed starts with (the newest).
const RECENT_ORDERS: u64 = 20;
/// Alerts the console shows (the newest).
const RECENT_ALERTS: u32 = 20;
/// Dead letters read from the stream per listing; those concerning the merchant are shown.
const DEAD_LETTERS_READ: usize = 100;
/// Wake-ups within this long of the first are read together.
const COALESCE: Duration = Duration::from_millis(150);
/// How often the feed reads everything again without a push: a lost push is late by this at most.
const RECHECK: Duration = Duration::from_secs(30);

pub struct ConsoleApi;

/// A low-stock alert and what became of its email.
#[derive(Debug, Object)]
pub struct LowStockAlert {
    /// The `stock.low` event's id.
    pub event_id: Uuid,
    pub ingredient_id: i64,
    pub ingredient: String,
    pub unit: String,
    /// The level, reference level and whole percent when it fell below 50 %.
    pub level: i64,
    pub reference_level: i64,
    pub percent: i64,
    /// Where the email goes: the merchant's alert address.
    pub recipient: String,
    /// `pending` (being sent, or waiting for the SMTP server), `sent` or `failed`.
    pub email_status: String,
    pub attempts: i32,
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
    pub raised_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<Alert> for LowStockAlert {
    fn from(alert: Alert) -> Self {
        Self {
            event_id: alert.event_id,
            ingredient_id: alert.ingredient_id,
            ingredient: alert.ingredient,
            unit: alert.unit,
            level: alert.level,
            reference_level: alert.reference_level,
            percent: alert.percent,
            recipient: alert.recipient,
            email_status: alert.email_status,
            attempts: alert.attempts,
            last_error: alert.last_error,
            raised_at: alert.raised_at,
            sent_at: alert.sent_at,
        }
    }
}

/// A message a consumer gave up on, stored in the `DLQ` stream.
#[derive(Debug, Object)]
pub struct DeadLetter {
    /// Its sequence in the `DLQ` stream: what the replay takes.
    pub sequence: u64,
    /// The consumer that gave up.
    pub consumer: String,
    /// The subject it was published on.
    pub subject: String,
    pub reason: String,
    /// Deliveries made before the consumer gave up.
    #[oai(skip_serializing_if_is_none)]
    pub deliveries: Option<i64>,
    /// The order it concerns.
    #[oai(skip_serializing_if_is_none)]
    pub order_id: Option<Uuid>,
    pub stored_at: DateTime<Utc>,
    /// The start of the message's body.
    pub payload_preview: String,
}

impl From<DeadLetterRecord> for DeadLetter {
    fn from(record: DeadLetterRecord) -> Self {
        Self {
            sequence: record.sequence,
            consumer: record.consumer,
            subject: record.subject,
            reason: record.reason,
            deliveries: record.deliveries,
            order_id: record.order_id,
            stored_at: record.stored_at,
            payload_preview: record.payload_preview,
        }
    }
}

/// Where a replayed dead letter went.
#[derive(Debug, Object)]
pub struct Replayed {
    /// The original subject, holding the message again: its consumers see it again (their
    /// inboxes still skip it if it had been processed).
    pub subject: String,
    pub stream: String,
    pub stream_sequence: u64,
}

/// An order of the merchant moved.
#[derive(Debug, Object)]
pub struct OrderMoved {
    pub order_id: Uuid,
    /// `pending` (new), `confirmed`, `rejected`, `dispatched`, `delivered` or `cancelled`.
    pub status: String,
    /// When this instance heard of it.
    pub at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct RecentOrders {
    /// Newest first.
    pub items: Vec<OrderSummary>,
}

#[derive(Debug, Object)]
pub struct Ingredients {
    /// By ascending id.
    pub items: Vec<Ingredient>,
}

#[derive(Debug, Object)]
pub struct Alerts {
    /// Newest first.
    pub items: Vec<LowStockAlert>,
}

#[derive(Debug, Object)]
pub struct DeadLetters {
    /// Oldest first.
    pub items: Vec<DeadLetter>,
}

/// One event of the merchant's feed; its SSE `event` field is its `kind`.
#[derive(Debug, Union)]
#[oai(discriminator_name = "kind")]
pub enum FeedEvent {
    /// The newest orders: sent first, and again when the feed fell behind.
    #[oai(mapping = "orders")]
    Orders(RecentOrders),
    /// One order moved.
    #[oai(mapping = "order")]
    Order(OrderMoved),
    /// Every ingredient's level: sent first, and after each change.
    #[oai(mapping = "ingredients")]
    Ingredients(Ingredients),
    /// The newest alerts: sent first, and after each change (new, sent, failed).
    #[oai(mapping = "alerts")]
    Alerts(Alerts),
    /// The dead letters that concern the merchant: sent first, and after each new one.
    #[oai(mapping = "dead_letters")]
    DeadLetters(DeadLetters),
}

impl FeedEvent {
    fn kind(&self) -> &'static str {
        match self {
            Self::Orders(_) => "orders",
            Self::Order(_) => "order",
            Self::Ingredients(_) => "ingredients",
            Self::Alerts(_) => "alerts",
            Self::DeadLetters(_) => "dead_letters",
        }
    }
}

#[derive(ApiResponse)]
enum FeedResponse {
    /// `text/event-stream`: `orders`, `ingredients`, `alerts` and `dead_letters` first, then an
    /// `order` event per order move and a fresh `ingredients`, `alerts` or `dead_letters` after
    /// each change; keep-alive comments in between. It ends after `SSE_MAX_SECS` (120 s by
    /// default): reconnect to go on.
    #[oai(status = 200)]
    Stream(EventStream<BoxStream<'static, FeedEvent>>),
}

#[derive(ApiResponse)]
enum ReplayResponse {
    /// Published again on its original subject.
    #[oai(status = 202)]
    Accepted(Json<Replayed>),
}

#[OpenApi(tag = "ApiTags::Console")]
impl ConsoleApi {
    /// Follow the merchant's activity
    ///
    /// Merchant only. Server-Sent Events: the newest orders, every ingredient's level, the
    /// low-stock alerts and the dead letters first; then each order move as it happens and the
    /// levels, alerts or dead letters again whenever they change. What the merchant console
    /// shows. At most `SSE_MAX_STREAMS` streams are open at once: beyond, 503 with
    /// `Retry-After`. A service that does not answer leaves its part out until the next change.
    #[oai(path = "/merchant/events", method = "get")]
    async fn events(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<FeedResponse, ApiError> {
        let merchant_id = auth.merchant_id()?;
        let permit = state.live.stream()?;
        // Listen before reading: a change committed after the reads is then pushed to us.
        let listener = state.listeners.merchants.watch(merchant_id);
        let mut feed = Feed {
            state: state.clone(),
            merchant_id,
            listener,
            queue: VecDeque::new(),
            until: Instant::now() + state.live.stream_lifetime,
            _permit: permit,
        };
        feed.read(Stale::ALL).await;
        let stream = futures::stream::unfold(feed, Feed::next).boxed();
        Ok(FeedResponse::Stream(
            EventStream::new(stream)
                .keep_alive(state.live.keep_alive)
                .to_event(|event| Event::message(event.to_json_string()).event_type(event.kind())),
        ))
    }

    /// List low-stock alerts
    ///
    /// Merchant only. The caller's newest low-stock alerts, newest first, each with its email's
    /// status (`pending`, `sent`, `failed`), attempts and last error. Served by the
    /// notification service: 503 with `Retry-After` when it does not answer in time.
    #[oai(path = "/alerts", method = "get")]
    async fn alerts(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<Vec<LowStockAlert>>, ApiError> {
        let merchant_id = auth.merchant_id()?;
        Ok(Json(list_alerts(&state, merchant_id).await?))
    }

    /// List dead letters
    ///
    /// Merchant only. The dead letters of the newest 100 that concern the caller (an event of
    /// one of its orders or ingredients), oldest first. A message that names no merchant or
    /// order (an unreadable one) is for operators: `larder dlq list`.
    #[oai(path = "/dead-letters", method = "get")]
    async fn dead_letters(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<Vec<DeadLetter>>, ApiError> {
        let merchant_id = auth.merchant_id()?;
        Ok(Json(list_dead_letters(&state, merchant_id).await?))
    }

    /// Replay a dead letter
    ///
    /// Merchant only, for a dead letter that concerns the caller. Publishes it again on its
    /// original subject under a new message id, so its consumer handles it again; the dead
    /// letter stays listed, and replaying it twice delivers it twice (an event already handled
    /// is skipped by the consumer's inbox). 404 for a dead letter that does not exist or does
    /// not concern the caller.
    #[oai(path = "/dead-letters/:sequence/replay", method = "post")]
    async fn replay(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The dead letter's sequence, from `GET /dead-letters`.
        sequence: Path<u64>,
    ) -> Result<ReplayResponse, ApiError> {
        let merchant_id = auth.merchant_id()?;
        let jetstream = async_nats::jetstream::new(state.nats.clone());
        let namespace = state.outbox.namespace();
        let not_found = || ApiError::not_found(format!("no dead letter {}", sequence.0));
        let record = dlq::get(&jetstream, namespace, sequence.0)
            .await
            .map_err(bus_error)?
            .ok_or_else(not_found)?;
        if !concerning(&state, merchant_id, vec![record])
            .await?
            .is_empty()
        {
            let replayed = dlq::replay(&jetstream, namespace, sequence.0)
                .await
                .map_err(bus_error)?;
            tracing::info!(sequence = sequence.0, subject = %replayed.subject, "dead letter replayed");
            return Ok(ReplayResponse::Accepted(Json(Replayed {
                subject: replayed.subject,
                stream: replayed.stream,
                stream_sequence: replayed.stream_sequence,
            })));
        }
        Err(not_found())
    }
}

async fn list_alerts(state: &AppState, merchant_id: i64) -> Result<Vec<LowStockAlert>, ApiError> {
    let alerts = state
        .call(&ListAlerts {
            merchant_id,
            limit: RECENT_ALERTS,
        })
        .await?;
    Ok(alerts.into_iter().map(LowStockAlert::from).collect())
}

async fn list_dead_letters(
    state: &AppState,
    merchant_id: i64,
) -> Result<Vec<DeadLetter>, ApiError> {
    let jetstream = async_nats::jetstream::new(state.nats.clone());
    let records = dlq::list(&jetstream, state.outbox.namespace(), DEAD_LETTERS_READ)
        .await
        .map_err(bus_error)?;
    Ok(concerning(state, merchant_id, records)
        .await?
        .into_iter()
        .map(DeadLetter::from)
        .collect())
}

/// The records that concern the merchant: those naming it, and those naming one of its orders.
async fn concerning(
    state: &AppState,
    merchant_id: i64,
    records: Vec<DeadLetterRecord>,
) -> Result<Vec<DeadLetterRecord>, ApiError> {
    let unattributed: Vec<Uuid> = records
        .iter()
        .filter(|r| r.merchant_id.is_none())
        .filter_map(|r| r.order_id)
        .collect();
    let merchants = store::merchants_of(&state.db, &unattributed).await?;
    Ok(records
        .into_iter()
        .filter(|r| {
            r.merchant_id
                .or_else(|| r.order_id.and_then(|id| merchants.get(&id).copied()))
                == Some(merchant_id)
        })
        .collect())
}

/// The bus did not answer (503), or the sequence is not a replayable dead letter (404, 409).
fn bus_error(error: DeadLetterError) -> ApiError {
    match error {
        DeadLetterError::NotFound(sequence) => {
            ApiError::not_found(format!("no dead letter {sequence}"))
        }
        DeadLetterError::NotADeadLetter(_) | DeadLetterError::ForeignSubject { .. } => {
            ApiError::conflict(error.to_string())
        }
        DeadLetterError::Nats(error) => {
            tracing::warn!(%error, "the dead-letter stream could not be read");
            ApiError::unavailable("NATS is not answering: try again in a moment")
        }
    }
}

/// What a feed must read again.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Stale {
    orders: bool,
    ingredients: bool,
    alerts: bool,
    dead_letters: bool,
}

impl Stale {
    const ALL: Self = Self {
        orders: true,
        ingredients: true,
        alerts: true,
        dead_letters: true,
    };
}

/// One open feed: what is left to send, and the merchant's listener.
struct Feed {
    state: AppState,
    merchant_id: i64,
    listener: MerchantFeed,
    queue: VecDeque<FeedEvent>,
    until: Instant,
    /// Held for the stream's life (`SSE_MAX_STREAMS`).
    _permit: OwnedSemaphorePermit,
}

impl Feed {
    async fn next(mut self) -> Option<(FeedEvent, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((event, self));
            }
            let mut stale = Stale::default();
            tokio::select! {
                pushed = self.listener.changed() => self.note(pushed, &mut stale),
                () = tokio::time::sleep(RECHECK) => stale = Stale::ALL,
                () = tokio::time::sleep_until(self.until) => return None,
                () = self.state.live.shutdown.cancelled() => return None,
            }
            if stale != Stale::default() {
                // A batch of orders moves stock, then alerts: read once for all of it.
                tokio::select! {
                    () = tokio::time::sleep(COALESCE) => {}
                    () = self.state.live.shutdown.cancelled() => return None,
                }
            }
            while let Some(pushed) = self.listener.try_changed() {
                self.note(pushed, &mut stale);
            }
            self.read(stale).await;
        }
    }

    fn note(&mut self, pushed: Pushed<FeedSignal>, stale: &mut Stale) {
        match pushed {
            Pushed::Value(FeedSignal::Order { order_id, status }) => {
                self.queue.push_back(FeedEvent::Order(OrderMoved {
                    order_id,
                    status: status.as_str().to_owned(),
                    at: Utc::now(),
                }));
            }
            Pushed::Value(FeedSignal::Stock) => stale.ingredients = true,
            Pushed::Value(FeedSignal::Alerts) => stale.alerts = true,
            Pushed::Value(FeedSignal::DeadLetter) => stale.dead_letters = true,
            Pushed::Missed => *stale = Stale::ALL,
        }
    }

    /// Reads what is stale from its owner and queues it; a part whose owner does not answer is
    /// left out (logged) until the next change or re-check.
    async fn read(&mut self, stale: Stale) {
        let (state, merchant_id) = (&self.state, self.merchant_id);
        if stale.orders {
            match store::list_orders(
                &state.db,
                OrderScope::Merchant(merchant_id),
                None,
                1,
                RECENT_ORDERS,
            )
            .await
            {
                Ok((orders, _)) => self.queue.push_back(FeedEvent::Orders(RecentOrders {
                    items: orders.into_iter().map(OrderSummary::from).collect(),
                })),
                Err(error) => tracing::warn!(%error, "the feed could not read the orders"),
            }
        }
        if stale.ingredients {
            match state.call(&ListIngredients { merchant_id }).await {
                Ok(levels) => self.queue.push_back(FeedEvent::Ingredients(Ingredients {
                    items: levels.into_iter().map(Ingredient::from).collect(),
                })),
                Err(_) => tracing::warn!("the feed could not read the ingredients"),
            }
        }
        if stale.alerts {
            match list_alerts(state, merchant_id).await {
                Ok(items) => self.queue.push_back(FeedEvent::Alerts(Alerts { items })),
                Err(_) => tracing::warn!("the feed could not read the alerts"),
            }
        }
        if stale.dead_letters {
            match list_dead_letters(state, merchant_id).await {
                Ok(items) => self
                    .queue
                    .push_back(FeedEvent::DeadLetters(DeadLetters { items })),
                Err(_) => tracing::warn!("the feed could not read the dead letters"),
            }
        }
    }
}
