//! Group commit for `POST /order`.
//!
//! Every new order is one statement (see [`store::insert_orders_with_events`]), but one statement
//! and one commit per request leaves PostgreSQL parsing, planning and committing the same small
//! insert thousands of times a second. Handlers hand their order to an [`OrderWriter`] instead;
//! each writer task takes everything that queued up while its previous statement ran, writes it as
//! one statement (one commit), and answers every handler. Under light load a batch is a single
//! order and nothing waits; under heavy load batches grow by themselves. No timer, no added
//! latency.
//!
//! A batch that fails as a whole (a constraint one order broke) is retried one order at a time, so
//! one bad order answers with its own error and the others are still written.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{Mutex, mpsc, oneshot};

use larder_bus::batch;
use larder_bus::outbox::PreparedEvent;

use crate::domain::OrderStatus;
use crate::push::{Committed, StatusPublisher};
use crate::store::{self, Inserted, NewOrder};

/// The most orders one statement writes: large enough to amortise a round trip and a commit,
/// small enough that one batch's JSON parameter stays well under a megabyte.
const MAX_BATCH: usize = 256;
/// Statements in flight at once: one writing while the next batch gathers, per core.
const WRITERS: usize = 2;
/// Orders waiting for a writer; beyond this, handlers wait to enqueue (the API's in-flight limit
/// is hit long before).
const QUEUE: usize = 4 * MAX_BATCH;

struct Job {
    order: NewOrder,
    event: PreparedEvent,
    answer: oneshot::Sender<Result<Inserted, DbErr>>,
}

/// Writes orders in batches. Cheap to clone; the writer tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct OrderWriter {
    jobs: mpsc::Sender<Job>,
}

impl OrderWriter {
    /// Starts the writer tasks on the current tokio runtime. What they commit is announced with
    /// `pushes` (new orders are `pending`), for the merchants' live feeds.
    pub fn start(db: DatabaseConnection, pushes: StatusPublisher) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(db.clone(), pushes.clone(), queue.clone()));
        }
        Self { jobs }
    }

    /// Inserts the order, its lines, its first history entry and its `orders.created` outbox row
    /// (SPEC §5 rule 1), together with whatever other orders are waiting.
    pub async fn insert(&self, order: NewOrder, event: PreparedEvent) -> Result<Inserted, DbErr> {
        let (answer, answered) = oneshot::channel();
        let stopped = || DbErr::Custom("the order writer has stopped".into());
        self.jobs
            .send(Job {
                order,
                event,
                answer,
            })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn write_batches(
    db: DatabaseConnection,
    pushes: StatusPublisher,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // Holding the lock only while taking a batch lets the other writer take the next one
        // while this one's statement runs.
        let received = queue.lock().await.recv_many(&mut batch, MAX_BATCH).await;
        if received == 0 {
            return; // every sender is gone
        }
        let created = write_batch(&db, std::mem::take(&mut batch)).await;
        pushes.publish(&created).await;
    }
}

/// Writes the batch, answers every job, and returns the orders it created.
async fn write_batch(db: &DatabaseConnection, batch: Vec<Job>) -> Vec<Committed> {
    let rows: Vec<(&NewOrder, &PreparedEvent)> =
        batch.iter().map(|job| (&job.order, &job.event)).collect();
    let results =
        batch::all_else_each(&rows, |rows| store::insert_orders_with_events(db, rows)).await;
    let mut created = Vec::with_capacity(batch.len());
    for (job, result) in batch.into_iter().zip(results) {
        answer(job, result, &mut created);
    }
    created
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
