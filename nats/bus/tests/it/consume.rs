use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder_bus::consume::{ConsumerRunner, Delivery, HandleEvents, Outcome};
use larder_bus::testing::{TestNats, eventually};
use larder_bus::topology::STOCK_ORDERS_CANCELLED;
use larder_contract::Envelope;
use larder_contract::events::OrderCancelled;
use tokio_util::sync::CancellationToken;

use crate::outbox_relay::cancelled;

/// Answers `Done` and remembers the size of every batch it was handed.
#[derive(Clone, Default)]
struct BatchSizes(Arc<Mutex<Vec<usize>>>);

impl BatchSizes {
    fn seen(&self) -> Vec<usize> {
        self.0.lock().unwrap().clone()
    }
}

impl HandleEvents<Envelope<OrderCancelled>> for BatchSizes {
    async fn handle(&self, batch: Vec<Delivery<Envelope<OrderCancelled>>>) -> Vec<Outcome> {
        self.0.lock().unwrap().push(batch.len());
        vec![Outcome::Done; batch.len()]
    }
}

/// Runs a consumer of `orders.cancelled` with `linger` until the returned token is cancelled.
fn run(t: &TestNats, handler: BatchSizes, linger: Duration) -> CancellationToken {
    let runner = ConsumerRunner::new(
        t.jetstream.clone(),
        t.namespace().clone(),
        STOCK_ORDERS_CANCELLED,
        handler,
        64,
        linger,
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(runner.run(shutdown.clone()));
    shutdown
}

#[tokio::test]
async fn a_lingering_batch_takes_what_arrives_within_the_linger_and_no_more() {
    let t = TestNats::new().await;
    let batches = BatchSizes::default();
    let stop = run(&t, batches.clone(), Duration::from_millis(400));
    // Publish only once the runner is pulling: events already waiting would come as one batch
    // with no linger at all.
    let stream = t.stream_of(STOCK_ORDERS_CANCELLED.filter_subject).await;
    let durable = t.namespace().durable(STOCK_ORDERS_CANCELLED.durable);
    eventually("the runner is pulling", || async {
        stream.consumer_info(&durable).await.unwrap().num_waiting > 0
    })
    .await;

    // Three events 50 ms apart: one batch. Then, well after the linger, a fourth: its own batch,
    // handled without waiting for the batch to fill.
    for _ in 0..3 {
        t.publish(&cancelled(1)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually("the first batch is handled", || async {
        batches.seen().iter().sum::<usize>() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    t.publish(&cancelled(1)).await;
    t.wait_until_consumed(STOCK_ORDERS_CANCELLED, Duration::from_secs(10))
        .await;
    stop.cancel();

    assert_eq!(batches.seen(), vec![3, 1]);
}
