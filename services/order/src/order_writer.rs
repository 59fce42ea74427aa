//! Group commit for `POST /order`.
//!
//! Every new order is one statement (see [`store::insert_orders_with_events`]), but one statement
//! and one commit per request leaves PostgreSQL parsing, planning and committing the same small
//! insert thousands of times a second. Handlers hand their order to the [`OrderWriter`] actor
//! instead. It queues what its mailbox brings and, whenever one of its [`WRITERS`] statements is
//! free, writes everything queued (up to [`MAX_BATCH`]) as one statement and one commit, then
//! answers every handler. Under light load a batch is a single order and nothing waits; under
//! heavy load batches grow by themselves while the previous statements run. No timer, no added
//! latency.
//!
//! A batch that fails as a whole (a constraint one order broke) is retried one order at a time, so
//! one bad order answers with its own error and the others are still written.

use std::collections::VecDeque;

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::oneshot;

use larder_bus::batch;
use larder_bus::outbox::PreparedEvent;

use crate::domain::OrderStatus;
use crate::push::{Committed, StatusPublisher};
use crate::store::{self, Inserted, NewOrder};

/// The most orders one statement writes: large enough to amortise a round trip and a commit,
/// small enough that one batch's JSON parameter stays well under a megabyte.
pub const MAX_BATCH: usize = 256;
/// Statements in flight at once: one writing while the next batch gathers, per core.
pub const WRITERS: usize = 2;

/// Inserts one order, its lines, its first history entry and its `orders.created` outbox row
/// (SPEC §5 rule 1), together with whatever other orders are queued.
#[derive(Message)]
#[rtype(result = "Result<Inserted, DbErr>")]
pub struct Insert {
    pub order: NewOrder,
    pub event: PreparedEvent,
}

/// Sends one order to `writer` and waits for its answer. The queue is bounded by the API's
/// in-flight request limit: every queued order is a request waiting here.
pub async fn insert(
    writer: &Addr<OrderWriter>,
    order: NewOrder,
    event: PreparedEvent,
) -> Result<Inserted, DbErr> {
    writer
        .send(Insert { order, event })
        .await
        .map_err(|_| stopped())?
}

fn stopped() -> DbErr {
    DbErr::Custom("the order writer has stopped".into())
}

struct Job {
    order: NewOrder,
    event: PreparedEvent,
    answer: oneshot::Sender<Result<Inserted, DbErr>>,
}

/// Writes orders in batches: its state is the queue and the number of statements running. It
/// stops once every address is dropped and its last statement has answered.
pub struct OrderWriter {
    db: DatabaseConnection,
    pushes: StatusPublisher,
    queued: VecDeque<Job>,
    writing: usize,
    write_scheduled: bool,
}

impl OrderWriter {
    /// What it commits is announced with `pushes` (new orders are `pending`), for the
    /// merchants' live feeds. Start it inside the actix system.
    pub fn new(db: DatabaseConnection, pushes: StatusPublisher) -> Self {
        Self {
            db,
            pushes,
            queued: VecDeque::new(),
            writing: 0,
            write_scheduled: false,
        }
    }

    /// Starts a statement per free writer, each with as much of the queue as a batch holds.
    fn write_queued(&mut self, ctx: &mut Context<Self>) {
        while self.writing < WRITERS && !self.queued.is_empty() {
            let batch: Vec<Job> = self
                .queued
                .drain(..self.queued.len().min(MAX_BATCH))
                .collect();
            self.writing += 1;
            // The statement runs on the runtime's workers, not on the actor's thread, which
            // only keeps the count.
            let written = tokio::spawn(write_batch(self.db.clone(), self.pushes.clone(), batch));
            ctx.spawn(written.into_actor(self).map(|joined, writer, ctx| {
                if let Err(error) = joined {
                    // Its jobs' answers were dropped with it: those handlers see an error.
                    tracing::error!(%error, "an order batch's task failed");
                }
                writer.writing -= 1;
                writer.write_queued(ctx);
            }));
        }
    }
}

impl Actor for OrderWriter {
    type Context = Context<Self>;
}

impl Handler<Insert> for OrderWriter {
    type Result = ResponseFuture<Result<Inserted, DbErr>>;

    fn handle(&mut self, insert: Insert, ctx: &mut Context<Self>) -> Self::Result {
        let (answer, answered) = oneshot::channel();
        self.queued.push_back(Job {
            order: insert.order,
            event: insert.event,
            answer,
        });
        // Deciding after the mailbox is drained (a notification is handled after the messages
        // already waiting) lets a burst that arrived together share one statement.
        if !self.write_scheduled {
            self.write_scheduled = true;
            ctx.notify(WriteQueued);
        }
        Box::pin(async move { answered.await.map_err(|_| stopped())? })
    }
}

/// Sent to itself: the mailbox is drained, write what is queued.
#[derive(Message)]
#[rtype(result = "()")]
struct WriteQueued;

impl Handler<WriteQueued> for OrderWriter {
    type Result = ();

    fn handle(&mut self, _: WriteQueued, ctx: &mut Context<Self>) {
        self.write_scheduled = false;
        self.write_queued(ctx);
    }
}

/// Writes the batch, answers every job, and announces the orders it created.
async fn write_batch(db: DatabaseConnection, pushes: StatusPublisher, batch: Vec<Job>) {
    let rows: Vec<(&NewOrder, &PreparedEvent)> =
        batch.iter().map(|job| (&job.order, &job.event)).collect();
    let results =
        batch::all_else_each(&rows, |rows| store::insert_orders_with_events(&db, rows)).await;
    let mut created = Vec::with_capacity(batch.len());
    for (job, result) in batch.into_iter().zip(results) {
        answer(job, result, &mut created);
    }
    pushes.publish(&created).await;
}

fn answer(job: Job, result: Result<Inserted, DbErr>, created: &mut Vec<Committed>) {
    if let Ok(Inserted::CreatedAt(_)) = result {
        created.push(Committed {
            order_id: job.order.id,
            merchant_id: job.order.priced.merchant_id,
            status: OrderStatus::Pending,
        });
    }
    // A handler that gave up (client gone) no longer listens; its order is written.
    let _ = job.answer.send(result);
}
