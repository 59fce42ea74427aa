//! The outbox relay: publishes committed outbox rows to JetStream with `Nats-Msg-Id` = row id,
//! deleting them in the same transaction once the server has acknowledged them (SPEC §5 rule 1).
//!
//! Each service has its own `outbox` in its own schema; the pool's `search_path` picks it, so a
//! relay only ever publishes its own service's events.
//!
//! [`publish_pending`] is one round, a plain function tests can drive. [`OutboxRelay`] is the
//! actor that runs rounds: woken by `LISTEN` on its service's channel (the schema's insert
//! trigger notifies `larder_outbox_<schema>`, `migration::Service::outbox_channel`), with a
//! fallback poll in case a wake-up is lost, and flushed on shutdown. A round starts a linger
//! after its wake-up ([`OutboxConfig::linger_ms`]): at a moderate rate a round then takes several
//! transactions' rows rather than one.
//!
//! The table holds only what is in flight. Every [`VACUUM_EVERY`] the relay vacuums it
//! ([`vacuum_outbox`]), so the claim never walks the dead index entries of rows published long
//! ago (this project's PostgreSQL may run without autovacuum).
//!
//! Started by [`start`], the relay also keeps its service's inbox bounded: at start and every
//! [`PRUNE_INBOX_EVERY`] it deletes the rows older than [`crate::inbox::retention`] allows
//! ([`prune_inbox`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage};
use futures::future::join_all;
use migration::Service;
use migration::database::DatabaseConfig;
use sea_orm::{DatabaseConnection, DbBackend, DbErr, FromQueryResult, Statement, TransactionTrait};

use crate::{NatsError, OutboxConfig};

/// The longest a round waits for the server to acknowledge its rows before it gives them back.
pub const PUBLISH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// How often the relay vacuums its outbox.
pub const VACUUM_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a relay started with an inbox retention prunes the inbox.
pub const PRUNE_INBOX_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayRound {
    /// Rows claimed from the outbox.
    pub claimed: usize,
    /// Rows the server acknowledged (deleted from the outbox when the round commits).
    pub published: usize,
    /// Of those, how many the server had already stored (a re-publish inside the duplicate window).
    pub duplicates: usize,
}

/// The claim of a round: up to `$1` rows, oldest first, deleted and returned, the JSON as text:
/// published as it is, never parsed.
///
/// Never an `id > last_seen` cursor: a row committed late with an earlier key would be skipped.
/// The locking subquery is an `ARRAY(…)`, which PostgreSQL runs once, before the delete. Written
/// as `id IN (SELECT … LIMIT $1 FOR UPDATE SKIP LOCKED)` it may become the inner side of a
/// nested-loop semi join when the planner believes the outbox nearly empty (its statistics are
/// those of the last vacuum, and a busy relay's outbox is often empty then). It is then run again
/// for every row of the outbox, each run locking the next `$1` rows not yet deleted: the round claimed the whole table
/// at a cost quadratic in its size, more than it could publish before [`PUBLISH_DEADLINE`], and
/// rolled back to try the same again. Under load that stalled a relay for good.
const CLAIM: &str = "DELETE FROM outbox WHERE id = ANY(ARRAY( \
     SELECT id FROM outbox WHERE published_at IS NULL ORDER BY created_at \
     LIMIT $1 FOR UPDATE SKIP LOCKED)) \
 RETURNING id, subject, payload::text AS payload, headers::text AS headers, created_at";

/// An outbox row as the relay claims it.
#[derive(Debug, FromQueryResult)]
struct ClaimedRow {
    id: uuid::Uuid,
    subject: String,
    /// The envelope's JSON.
    payload: String,
    /// A flat JSON object: header name -> string value.
    headers: String,
    created_at: chrono::DateTime<chrono::FixedOffset>,
}

/// Takes up to `batch_size` rows out of the outbox in one statement (`DELETE … FOR UPDATE SKIP
/// LOCKED … RETURNING`, so several relays never take the same row), publishes them all with their
/// acks in flight, and commits. If any publish failed, the transaction is rolled back instead:
/// every row is back and goes again with the same `Nats-Msg-Id`, so the server drops the copies
/// of those it had stored. A relay that dies before its commit leaves every row in place too.
/// Deleting at publish (rather than marking the row published and deleting it later) writes no
/// second version of the row and no index entry for it.
pub async fn publish_pending(
    db: &DatabaseConnection,
    js: &jetstream::Context,
    batch_size: u64,
) -> Result<RelayRound, NatsError> {
    let txn = db.begin().await?;
    let mut rows = ClaimedRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        CLAIM,
        [(batch_size as i64).into()],
    ))
    .all(&txn)
    .await?;
    if rows.is_empty() {
        txn.commit().await?;
        return Ok(RelayRound::default());
    }
    // RETURNING has no order: publish in insertion order.
    rows.sort_by_key(|row| row.created_at);

    let publishing = async {
        let mut pending_acks = Vec::with_capacity(rows.len());
        for row in &mut rows {
            let payload = std::mem::take(&mut row.payload).into_bytes();
            let message = message(payload, &row.headers, &row.id.to_string());
            pending_acks.push(js.send_publish(row.subject.clone(), message).await);
        }
        Ok::<_, NatsError>(
            join_all(pending_acks.into_iter().map(|sent| async move {
                match sent {
                    Ok(ack) => ack.await,
                    Err(error) => Err(error),
                }
            }))
            .await,
        )
    };
    // Each publish and ack has its own timeout, yet a round was once seen waiting for minutes
    // at shutdown, its rows locked: bound the whole round, so the rows go back and are retried.
    let acks = match tokio::time::timeout(PUBLISH_DEADLINE, publishing).await {
        Ok(acks) => acks?,
        Err(_elapsed) => {
            txn.rollback().await?;
            return Err(NatsError::PublishTimedOut {
                rows: rows.len(),
                deadline: PUBLISH_DEADLINE,
            });
        }
    };

    let mut round = RelayRound {
        claimed: rows.len(),
        ..Default::default()
    };
    let mut first_error = None;
    for (row, ack) in rows.iter().zip(acks) {
        match ack {
            Ok(ack) => {
                round.duplicates += usize::from(ack.duplicate);
                round.published += 1;
            }
            Err(source) => {
                tracing::warn!(outbox_id = %row.id, subject = %row.subject, error = %source, "publish failed; will retry");
                first_error.get_or_insert(NatsError::Publish {
                    subject: row.subject.clone(),
                    source,
                });
            }
        }
    }
    match first_error {
        Some(error) => {
            // Every row goes again; the server drops the copies of the ones it had stored.
            txn.rollback().await?;
            Err(error)
        }
        None => {
            txn.commit().await?;
            Ok(round)
        }
    }
}

/// Runs rounds until a round claims less than a full batch. Returns the rows published.
pub async fn drain(
    db: &DatabaseConnection,
    js: &jetstream::Context,
    batch_size: u64,
) -> Result<usize, NatsError> {
    let mut total = 0;
    loop {
        let round = publish_pending(db, js, batch_size).await?;
        total += round.published;
        if (round.claimed as u64) < batch_size {
            return Ok(total);
        }
    }
}

/// Vacuums the outbox (skipped when another relay's vacuum holds it), so the index entries of the
/// rows published since the last vacuum go.
pub async fn vacuum_outbox(db: &DatabaseConnection) -> Result<(), NatsError> {
    use sea_orm::ConnectionTrait;
    // Outside a transaction (VACUUM cannot run in one); the relay's role owns the table.
    db.execute_unprepared("VACUUM (SKIP_LOCKED) outbox").await?;
    Ok(())
}

/// Deletes the inbox rows processed more than `retention` ago and vacuums the table when any
/// went; failures are logged, and the next round tries again.
pub async fn prune_inbox(db: DatabaseConnection, retention: Duration) {
    use sea_orm::ConnectionTrait;
    match crate::inbox::prune(&db, retention).await {
        Ok(0) => {}
        Ok(pruned) => {
            tracing::info!(pruned, "inbox pruned");
            if let Err(error) = db.execute_unprepared("VACUUM (SKIP_LOCKED) inbox").await {
                tracing::warn!(%error, "inbox vacuum failed");
            }
        }
        Err(error) => tracing::warn!(%error, "inbox pruning failed; will retry"),
    }
}

/// What the relay publishes for an outbox row: its encoded payload, its headers (the row's flat
/// JSON object), `Nats-Msg-Id` = its id.
pub(crate) fn message(payload: Vec<u8>, headers: &str, message_id: &str) -> PublishMessage {
    PublishMessage::build()
        .payload(payload.into())
        .headers(header_map(headers))
        .message_id(message_id)
}

/// The row's headers; a value that is not a string (no writer of this project makes one) is left
/// out rather than failing the round.
fn header_map(headers: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(headers).unwrap_or_default();
    for (name, value) in &object {
        if let Some(value) = value.as_str() {
            map.insert(name.as_str(), value);
        }
    }
    map
}

/// Connections the relay can use at once: its LISTEN connection (held for good), a round, and a
/// vacuum or metrics sample beside it. Every service gives its relay a pool of this size of its
/// own: sharing a service's pool with busy consumers, a relay waited whole acquire timeouts
/// behind their batches while nothing was published, and everything downstream waited with it.
pub const POOL_SIZE: u32 = 3;

/// Starts `service`'s relay on a pool of its own: [`POOL_SIZE`] connections of `database`,
/// keeping its inbox rows as long as streams of `stream_max_age` need them
/// ([`crate::inbox::retention`]). Call it inside the actix system.
pub async fn start(
    database: &DatabaseConfig,
    service: Service,
    js: jetstream::Context,
    config: OutboxConfig,
    stream_max_age: Duration,
) -> Result<Addr<OutboxRelay>, DbErr> {
    let db = migration::database::connect(&database.with_max_connections(POOL_SIZE)).await?;
    Ok(OutboxRelay::new(db, js, config, service.outbox_channel())
        .pruning_inbox(crate::inbox::retention(stream_max_age))
        .start())
}

/// The relay actor. Start it in every service that writes to the outbox.
pub struct OutboxRelay {
    db: DatabaseConnection,
    js: jetstream::Context,
    config: OutboxConfig,
    /// The channel this service's outbox trigger notifies.
    channel: String,
    /// Set while a drain is queued, so a burst of notifications queues one drain, not thousands.
    drain_queued: Arc<AtomicBool>,
    /// Set while a vacuum runs, so a slow one is not stacked on.
    vacuum_running: Arc<AtomicBool>,
    /// Set when a round deleted rows: an idle relay has nothing to vacuum.
    published_since_vacuum: Arc<AtomicBool>,
    /// How long inbox rows are kept; `None`: the inbox is left alone.
    inbox_retention: Option<Duration>,
    /// The LISTEN loop. A tokio task rather than an actor future: the runtime drops it inside its
    /// own context at shutdown, which sqlx's listener needs.
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl OutboxRelay {
    /// A relay of the outbox `db`'s `search_path` resolves to, woken by `NOTIFY` on `channel`
    /// (`migration::Service::outbox_channel()`).
    pub fn new(
        db: DatabaseConnection,
        js: jetstream::Context,
        config: OutboxConfig,
        channel: impl Into<String>,
    ) -> Self {
        Self {
            db,
            js,
            config,
            channel: channel.into(),
            drain_queued: Arc::new(AtomicBool::new(false)),
            vacuum_running: Arc::new(AtomicBool::new(false)),
            published_since_vacuum: Arc::new(AtomicBool::new(false)),
            inbox_retention: None,
            listener: None,
        }
    }

    /// Also prunes the inbox of `db`'s schema: at start, then every [`PRUNE_INBOX_EVERY`], the
    /// rows processed more than `retention` ago go.
    pub fn pruning_inbox(mut self, retention: Duration) -> Self {
        self.inbox_retention = Some(retention);
        self
    }

    fn queue_drain(&self, ctx: &mut Context<Self>) {
        if !self.drain_queued.swap(true, Ordering::AcqRel) {
            self.drain_after_linger(ctx);
        }
    }

    /// Drains once the linger has passed ([`OutboxConfig::linger_ms`]), so that a round takes
    /// what commits meanwhile. A timer, not a wait inside the drain: the actor stays free, and a
    /// [`FlushAndStop`] goes ahead of it. Wake-ups meanwhile find the drain queued.
    fn drain_after_linger(&self, ctx: &mut Context<Self>) {
        let linger = self.config.linger();
        if linger.is_zero() {
            ctx.notify(Drain);
        } else {
            ctx.notify_later(Drain, linger);
        }
    }
}

impl Actor for OutboxRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Rows left by a previous run go out first, with no linger.
        self.drain_queued.store(true, Ordering::Release);
        ctx.notify(Drain);
        ctx.run_interval(self.config.poll_interval(), |relay, ctx| {
            relay.queue_drain(ctx)
        });
        ctx.run_interval(VACUUM_EVERY, |relay, _| {
            if !relay.vacuum_running.load(Ordering::Acquire)
                && relay.published_since_vacuum.swap(false, Ordering::AcqRel)
            {
                relay.vacuum_running.store(true, Ordering::Release);
                let (db, running) = (relay.db.clone(), relay.vacuum_running.clone());
                // A task of its own: a drain never waits for a vacuum, nor a vacuum for a drain.
                tokio::spawn(async move {
                    if let Err(error) = vacuum_outbox(&db).await {
                        tracing::warn!(%error, "outbox vacuum failed; will retry");
                    }
                    running.store(false, Ordering::Release);
                });
            }
        });
        if let Some(retention) = self.inbox_retention {
            let prune = move |relay: &mut Self, _: &mut Context<Self>| {
                // A task of its own, like the vacuum: it scans the whole inbox.
                tokio::spawn(prune_inbox(relay.db.clone(), retention));
            };
            prune(self, ctx);
            ctx.run_interval(PRUNE_INBOX_EVERY, prune);
        }
        let service = self
            .channel
            .strip_prefix("larder_outbox_")
            .unwrap_or(&self.channel)
            .to_owned();
        ctx.run_interval(crate::metrics::SAMPLE_INTERVAL, move |relay, ctx| {
            let db = relay.db.clone();
            let service = service.clone();
            ctx.spawn(
                async move { crate::metrics::sample_outbox(&db, &service).await }.into_actor(relay),
            );
        });
        self.listener = Some(tokio::spawn(listen_for_inserts(
            self.db.clone(),
            self.channel.clone(),
            ctx.address(),
            self.drain_queued.clone(),
        )));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
    }
}

/// Waits on `LISTEN <channel>` and queues a drain per wake-up; reconnects on failure (the
/// fallback poll covers the gap).
async fn listen_for_inserts(
    db: DatabaseConnection,
    channel: String,
    relay: Addr<OutboxRelay>,
    drain_queued: Arc<AtomicBool>,
) {
    use sea_orm::sqlx::postgres::PgListener;
    let pool = db.get_postgres_connection_pool().clone();
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "outbox LISTEN connection failed; polling meanwhile");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(&channel).await {
            tracing::warn!(%error, channel, "LISTEN failed");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(_) => {
                    if !drain_queued.swap(true, Ordering::AcqRel) {
                        relay.do_send(Woken);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "outbox LISTEN interrupted");
                    break;
                }
            }
        }
    }
}

/// An insert was notified (and the drain flag set): drain after the linger.
#[derive(Message)]
#[rtype(result = "()")]
struct Woken;

impl Handler<Woken> for OutboxRelay {
    type Result = ();

    fn handle(&mut self, _: Woken, ctx: &mut Self::Context) {
        self.drain_after_linger(ctx);
    }
}

/// Publish everything pending now.
#[derive(Message)]
#[rtype(result = "()")]
struct Drain;

impl Handler<Drain> for OutboxRelay {
    // Atomic: one drain at a time per relay, the next waits for it.
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        self.drain_queued.store(false, Ordering::Release);
        let (db, js, batch) = (self.db.clone(), self.js.clone(), self.config.batch_size);
        let published_since_vacuum = self.published_since_vacuum.clone();
        AtomicResponse::new(Box::pin(
            async move {
                match drain(&db, &js, batch).await {
                    Ok(0) => {}
                    Ok(published) => {
                        published_since_vacuum.store(true, Ordering::Release);
                        tracing::debug!(published, "outbox drained")
                    }
                    Err(error) => {
                        // With its cause: "database error" alone says nothing of which.
                        let cause = std::error::Error::source(&error).map(ToString::to_string);
                        tracing::warn!(%error, ?cause, "outbox relay round failed; will retry")
                    }
                }
            }
            .into_actor(self),
        ))
    }
}

/// Graceful shutdown (SPEC §5 rule 8): publish what is pending, then stop. Replies with the rows
/// published by this last drain.
#[derive(Message)]
#[rtype(result = "Result<usize, NatsError>")]
pub struct FlushAndStop;

/// Why the last flush did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("the outbox relay had already stopped")]
    Stopped,
    #[error("the outbox could not be flushed")]
    Failed(#[source] NatsError),
}

/// Publishes what is left in the outbox and stops the relay: the last step of a service's
/// shutdown (see [`crate::lifecycle`]).
pub async fn flush_and_stop(relay: &Addr<OutboxRelay>) -> Result<usize, FlushError> {
    relay
        .send(FlushAndStop)
        .await
        .map_err(|_| FlushError::Stopped)?
        .map_err(FlushError::Failed)
}

impl Handler<FlushAndStop> for OutboxRelay {
    type Result = AtomicResponse<Self, Result<usize, NatsError>>;

    fn handle(&mut self, _: FlushAndStop, _: &mut Self::Context) -> Self::Result {
        let (db, js, batch) = (self.db.clone(), self.js.clone(), self.config.batch_size);
        AtomicResponse::new(Box::pin(
            async move { drain(&db, &js, batch).await }
                .into_actor(self)
                .map(|result, _, ctx| {
                    ctx.stop();
                    result
                }),
        ))
    }
}
