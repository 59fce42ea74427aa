//! Order status as it happens: `GET /order/{id}/events` (Server-Sent Events) and the waiting half
//! of `POST /order` with `Prefer: wait=N` (RFC 7240). Both are woken by the status pushes every
//! instance publishes after its commits ([`crate::push`]) and read the truth from PostgreSQL.
//!
//! Neither may starve short requests. A stream's handler returns as soon as the stream is set
//! up, so the in-flight limit is not held while it runs; streams have their own bound
//! (`SSE_MAX_STREAMS`, then 503) and a lifetime (`SSE_MAX_SECS`, then the client resumes with
//! `Last-Event-ID`). A `Prefer: wait` request gives its in-flight slot back while it waits and
//! counts against `PREFER_WAIT_MAX_WAITERS` instead; beyond that the preference is not honoured.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use poem::web::Data;
use poem::web::sse::Event;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::EventStream;
use poem_openapi::types::ToJSON as _;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::DatabaseConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::orders::{Order, load, may_see};
use super::problem::ApiError;
use super::security::BearerAuth;
use super::{ApiTags, AppState};
use crate::config::OrderSettings;
use crate::domain::{self, OrderStatus};
use crate::push::OrderWatch;
use crate::store;

/// The longest `Prefer: wait` honoured (SPEC §3); a longer one is capped to it.
pub const MAX_PREFER_WAIT_SECS: u64 = 10;
/// How often a stream reads the order without a push: a lost push delays it by this at most.
const RECHECK: Duration = Duration::from_secs(5);
/// Keep-alive comments, so proxies and the idle timeout see a quiet stream is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub struct LiveApi;

/// The bounds of live requests, shared by the handlers (see the module docs).
#[derive(Clone)]
pub struct LiveLimits {
    streams: Arc<Semaphore>,
    waiters: Arc<Semaphore>,
    /// How long one event stream stays open at most.
    pub stream_lifetime: Duration,
    /// Between keep-alive comments: under the connection idle timeout.
    pub keep_alive: Duration,
    /// Ends every stream at shutdown, so the graceful shutdown does not wait for them.
    pub shutdown: CancellationToken,
}

impl LiveLimits {
    pub fn new(settings: &OrderSettings, shutdown: CancellationToken) -> Self {
        let idle = Duration::from_secs(settings.http_idle_timeout_secs.max(2));
        Self {
            streams: Arc::new(Semaphore::new(settings.sse_max_streams)),
            waiters: Arc::new(Semaphore::new(settings.prefer_wait_max_waiters)),
            stream_lifetime: Duration::from_secs(settings.sse_max_secs.max(1)),
            keep_alive: KEEP_ALIVE.min(idle / 2),
            shutdown,
        }
    }

    /// A place among the open event streams (`SSE_MAX_STREAMS`), or 503.
    pub fn stream(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            ApiError::unavailable("too many event streams are open: retry in a moment")
        })
    }

    /// A place among the waiters, if one is free.
    pub fn waiter(&self) -> Option<OwnedSemaphorePermit> {
        self.waiters.clone().try_acquire_owned().ok()
    }
}

/// One status change of an order, as `GET /order/{id}/events` sends it (`event: status`).
#[derive(Debug, Object)]
pub struct StatusEvent {
    /// The change's id, also the event's SSE `id`: send it as `Last-Event-ID` to resume after it.
    pub id: i64,
    pub order_id: Uuid,
    /// `pending`, `confirmed`, `rejected`, `dispatched`, `delivered` or `cancelled`.
    pub status: String,
    pub at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub note: Option<String>,
    /// True for a final status (`rejected`, `delivered`, `cancelled`): the stream ends after it.
    #[oai(rename = "final")]
    pub is_final: bool,
}

impl StatusEvent {
    fn of(change: entities::order_status_history::Model) -> Self {
        let is_final = domain::is_final(change.status);
        Self {
            id: change.id,
            order_id: change.order_id,
            status: change.status.as_str().to_owned(),
            at: change.at.with_timezone(&Utc),
            note: change.note,
            is_final,
        }
    }
}

#[derive(ApiResponse)]
enum EventsResponse {
    /// `text/event-stream`: one `status` event per status change, the first being the current
    /// status (or, with `Last-Event-ID`, the changes after that one); keep-alive comments in
    /// between. It ends after a final status, or after `SSE_MAX_SECS` (120 s by default;
    /// reconnect with `Last-Event-ID` to go on).
    #[oai(status = 200)]
    Stream(EventStream<BoxStream<'static, StatusEvent>>),
    /// `Last-Event-ID` named the order's last change and the order is final: nothing more will
    /// come (an `EventSource` stops reconnecting on a 204).
    #[oai(status = 204)]
    Finished,
}

#[OpenApi(tag = "ApiTags::Orders")]
impl LiveApi {
    /// Follow an order's status
    ///
    /// Server-Sent Events from the moment of the request: the current status first, then each
    /// change as it happens, until the order is final (`delivered`, `rejected`, `cancelled`);
    /// for at most `SSE_MAX_SECS`, after which a client resumes with `Last-Event-ID`. Visible to
    /// the customer who placed the order and to its merchant; anyone else gets 404. At most
    /// `SSE_MAX_STREAMS` streams are open at once: beyond, 503 with `Retry-After`.
    #[oai(path = "/order/:id/events", method = "get")]
    async fn events(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The order id.
        id: Path<Uuid>,
        /// The `id` of the last event received: the stream resumes after it (an `EventSource`
        /// sends it when it reconnects).
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<i64>>,
    ) -> Result<EventsResponse, ApiError> {
        let permit = state.live.stream()?;
        // Watch before reading: a change committed after the read is then pushed to us.
        let watch = state.listeners.orders.watch(id.0);
        let order = store::find_order_summary(&state.db, id.0)
            .await?
            .filter(|order| may_see(&auth, order))
            .ok_or_else(|| ApiError::not_found(format!("no order {}", id.0)))?;
        let changes = store::find_status_changes(&state.db, id.0, last_event_id.0).await?;
        let is_final = domain::is_final(order.status);
        if last_event_id.0.is_some() && changes.is_empty() && is_final {
            return Ok(EventsResponse::Finished);
        }
        let mut follow = Follow {
            db: state.db.clone(),
            watch,
            queue: VecDeque::new(),
            last_id: last_event_id.0,
            done: false,
            until: Instant::now() + state.live.stream_lifetime,
            shutdown: state.live.shutdown.clone(),
            _permit: permit,
        };
        follow.take(changes);
        let stream = futures::stream::unfold(follow, Follow::next).boxed();
        Ok(EventsResponse::Stream(
            EventStream::new(stream)
                .keep_alive(state.live.keep_alive)
                .to_event(|event| {
                    let id = event.id.to_string();
                    Event::message(event.to_json_string())
                        .event_type("status")
                        .id(id)
                }),
        ))
    }
}

/// One open stream: what is left to send, and where in the order's history it is.
struct Follow {
    db: DatabaseConnection,
    watch: OrderWatch,
    queue: VecDeque<StatusEvent>,
    /// The last change queued: the next read asks for those after it.
    last_id: Option<i64>,
    /// A final status is queued: end after it.
    done: bool,
    until: Instant,
    shutdown: CancellationToken,
    /// Held for the stream's life (`SSE_MAX_STREAMS`).
    _permit: OwnedSemaphorePermit,
}

impl Follow {
    fn take(&mut self, changes: Vec<entities::order_status_history::Model>) {
        for change in changes {
            self.last_id = Some(change.id);
            let event = StatusEvent::of(change);
            let is_final = event.is_final;
            self.queue.push_back(event);
            if is_final {
                self.done = true;
                break;
            }
        }
    }

    async fn next(mut self) -> Option<(StatusEvent, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((event, self));
            }
            if self.done {
                return None;
            }
            tokio::select! {
                _ = self.watch.changed() => {}
                () = tokio::time::sleep(RECHECK) => {}
                () = tokio::time::sleep_until(self.until) => return None,
                () = self.shutdown.cancelled() => return None,
            }
            match store::find_status_changes(&self.db, self.watch.order_id(), self.last_id).await {
                Ok(changes) => self.take(changes),
                Err(error) => {
                    // The client resumes with `Last-Event-ID` when it reconnects.
                    tracing::warn!(%error, order_id = %self.watch.order_id(), "ending an event stream: the order could not be read");
                    return None;
                }
            }
        }
    }
}

/// RFC 7240 `wait=N` in a `Prefer` header: N seconds, capped at [`MAX_PREFER_WAIT_SECS`]. `None`
/// when there is none, when N is 0, or when it is not a number: a server ignores a preference
/// it does not understand (RFC 7240 §2).
pub fn requested_wait(prefer: &str) -> Option<u64> {
    prefer.split(',').find_map(|preference| {
        // `token [= value] *(; parameter)`: the parameters say nothing to `wait`.
        let (token, value) = preference.split(';').next()?.split_once('=')?;
        if !token.trim().eq_ignore_ascii_case("wait") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // All digits: too many of them is a very long wait, capped like any other.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        (secs > 0).then(|| secs.min(MAX_PREFER_WAIT_SECS))
    })
}

/// Waits for the order watched by `watch` to leave `pending` (a push says so), or `deadline`;
/// then reads it. The read at the deadline also finds an outcome whose push was lost.
pub async fn wait_for_outcome(
    state: &AppState,
    watch: &mut OrderWatch,
    deadline: Instant,
) -> Result<Order, ApiError> {
    loop {
        let woken = tokio::time::timeout_at(deadline, watch.changed()).await;
        let order = load(state, watch.order_id()).await?;
        if order.status != OrderStatus::Pending.as_str() || woken.is_err() {
            return Ok(order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_wait_is_read_as_rfc_7240_says() {
        let cases = [
            ("wait=5", Some(5)),
            ("WAIT = 3", Some(3)),
            ("respond-async, wait=2", Some(2)),
            ("wait=\"4\"; foo=bar", Some(4)),
            ("return=minimal, wait=10", Some(10)),
            ("wait=11", Some(MAX_PREFER_WAIT_SECS)),
            ("wait=99999999999999999999999", Some(MAX_PREFER_WAIT_SECS)),
            ("wait=0", None),
            ("wait=-1", None),
            ("wait=1.5", None),
            ("wait=", None),
            ("wait", None),
            ("respond-async", None),
            ("", None),
            ("waiting=5", None),
        ];
        for (header, expected) in cases {
            assert_eq!(requested_wait(header), expected, "Prefer: {header}");
        }
    }
}
