use std::collections::HashSet;

use actix::Actor;
use larder_bus::OutboxConfig;
use larder_bus::outbox::Outbox;
use larder_bus::relay::{self, FlushAndStop, OutboxRelay};
use larder_bus::testing::{TestNats, eventually};
use larder_contract::Envelope;
use larder_contract::events::OrderCancelled;
use larder_contract::trace::TraceParent;
use migration::Service;
use migration::testing::TestDatabase;
use sea_orm::{ConnectionTrait, TransactionTrait};
use uuid::Uuid;

pub fn cancelled(merchant_id: i64) -> Envelope<OrderCancelled> {
    Envelope::new(
        OrderCancelled {
            order_id: Uuid::new_v4(),
            merchant_id,
            release_stock: true,
        },
        Some(format!("req-{merchant_id}")),
    )
}

/// Rows left in the outbox: a published row is deleted in the transaction that saw its ack.
async fn unpublished(db: &impl ConnectionTrait) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) FROM outbox",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Every message of the namespace's ORDERS stream: (Nats-Msg-Id, envelope).
async fn orders_stream(t: &TestNats) -> Vec<(String, Envelope<OrderCancelled>)> {
    let mut stream = t
        .jetstream
        .get_stream(t.namespace().stream("ORDERS"))
        .await
        .unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut messages = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if state.messages == 0 {
            break;
        }
        let message = stream.get_raw_message(sequence).await.unwrap();
        let msg_id = message
            .headers
            .get("Nats-Msg-Id")
            .expect("every message has a Nats-Msg-Id")
            .to_string();
        let envelope: Envelope<OrderCancelled> = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(
            message.subject.as_str(),
            t.namespace().subject("orders.cancelled")
        );
        messages.push((msg_id, envelope));
    }
    messages
}

#[tokio::test]
async fn every_outbox_row_arrives_once_with_its_id_as_nats_msg_id() {
    let (test_db, nats) = (TestDatabase::new().await, TestNats::new().await);
    let db = test_db.connect(Service::Order).await;
    let outbox = Outbox::new(nats.namespace().clone());
    let events: Vec<_> = (0..300).map(cancelled).collect();
    let txn = db.begin().await.unwrap();
    outbox.enqueue_all(&txn, &events[..200]).await.unwrap();
    for event in &events[200..] {
        outbox.enqueue(&txn, event).await.unwrap();
    }
    txn.commit().await.unwrap();

    // Batches smaller than the backlog: several rounds.
    let published = relay::drain(&db, &nats.jetstream, 64).await.unwrap();

    assert_eq!(published, 300);
    assert_eq!(unpublished(&db).await, 0);
    let stored = orders_stream(&nats).await;
    assert_eq!(stored.len(), 300, "each row once in the stream");
    let expected: HashSet<Uuid> = events.iter().map(|e| e.id).collect();
    let ids: HashSet<Uuid> = stored.iter().map(|(id, _)| id.parse().unwrap()).collect();
    assert_eq!(ids, expected);
    for (msg_id, envelope) in &stored {
        assert_eq!(
            msg_id,
            &envelope.id.to_string(),
            "Nats-Msg-Id is the row id"
        );
    }
    let in_stream: Vec<Uuid> = stored.iter().map(|(_, envelope)| envelope.id).collect();
    let in_outbox: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    assert_eq!(
        in_stream, in_outbox,
        "published in the order they were enqueued"
    );
    // Nothing left: another round claims nothing.
    assert_eq!(relay::drain(&db, &nats.jetstream, 64).await.unwrap(), 0);
}

#[tokio::test]
async fn a_published_event_carries_its_type_correlation_and_trace_in_headers_and_decodes_as_written()
 {
    let (test_db, nats) = (TestDatabase::new().await, TestNats::new().await);
    let db = test_db.connect(Service::Order).await;
    let mut event = cancelled(7);
    event.correlation_id = Some("req-\"quoted\" \u{e9}".into());
    event.trace = Some(TraceParent::new_root());
    Outbox::new(nats.namespace().clone())
        .enqueue(&db, &event)
        .await
        .unwrap();

    relay::publish_pending(&db, &nats.jetstream, 10)
        .await
        .unwrap();

    let stream = nats
        .jetstream
        .get_stream(nats.namespace().stream("ORDERS"))
        .await
        .unwrap();
    let message = stream.get_raw_message(1).await.unwrap();
    let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header("Event-Type").as_deref(), Some("order.cancelled"));
    assert_eq!(header("Correlation-Id"), event.correlation_id);
    assert_eq!(
        header("traceparent"),
        event.trace.as_ref().map(ToString::to_string)
    );
    let decoded: Envelope<OrderCancelled> = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(
        Envelope {
            trace: event.trace,
            ..decoded
        },
        event
    );
}

#[tokio::test]
async fn a_forced_republish_of_the_same_row_is_reported_as_a_duplicate_by_the_server() {
    let (test_db, nats) = (TestDatabase::new().await, TestNats::new().await);
    let db = test_db.connect(Service::Order).await;
    let outbox = Outbox::new(nats.namespace().clone());
    let event = cancelled(1);
    outbox.enqueue(&db, &event).await.unwrap();
    db.execute_unprepared("CREATE TABLE kept AS SELECT * FROM outbox")
        .await
        .unwrap();
    let first = relay::publish_pending(&db, &nats.jetstream, 10)
        .await
        .unwrap();
    assert_eq!((first.published, first.duplicates), (1, 0));
    assert_eq!(unpublished(&db).await, 0, "a published row is deleted");

    // As if the relay had died between the server's ack and its commit: the row is still there.
    db.execute_unprepared("INSERT INTO outbox SELECT * FROM kept")
        .await
        .unwrap();
    let second = relay::publish_pending(&db, &nats.jetstream, 10)
        .await
        .unwrap();

    assert_eq!((second.published, second.duplicates), (1, 1));
    assert_eq!(orders_stream(&nats).await.len(), 1);
    assert_eq!(unpublished(&db).await, 0);
}

#[tokio::test]
async fn a_row_committed_later_is_not_published_before_its_commit_and_not_skipped_after() {
    let (test_db, nats) = (TestDatabase::new().await, TestNats::new().await);
    let db = test_db.connect(Service::Order).await;
    let outbox = Outbox::new(nats.namespace().clone());
    let early = cancelled(1);
    let late = cancelled(2);

    let open = db.begin().await.unwrap();
    outbox.enqueue(&open, &early).await.unwrap(); // inserted first, committed last
    outbox.enqueue(&db, &late).await.unwrap();
    assert_eq!(relay::drain(&db, &nats.jetstream, 10).await.unwrap(), 1);
    open.commit().await.unwrap();
    assert_eq!(relay::drain(&db, &nats.jetstream, 10).await.unwrap(), 1);

    let ids: Vec<Uuid> = orders_stream(&nats)
        .await
        .iter()
        .map(|(_, e)| e.id)
        .collect();
    assert_eq!(ids, vec![late.id, early.id]);
}

#[tokio::test]
async fn a_round_claims_one_batch_whatever_plan_the_planner_picks() {
    let (test_db, nats) = (TestDatabase::new().await, TestNats::new().await);
    // The plans the planner picks when it believes the outbox nearly empty: nested loops, no
    // hashing, sorting or materialising. Set on the database, so the pool below has them.
    test_db
        .db
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{}\" SET enable_hashjoin = off; \
             ALTER DATABASE \"{0}\" SET enable_hashagg = off; \
             ALTER DATABASE \"{0}\" SET enable_mergejoin = off; \
             ALTER DATABASE \"{0}\" SET enable_material = off; \
             ALTER DATABASE \"{0}\" SET enable_sort = off",
            test_db.name()
        ))
        .await
        .unwrap();
    let db = test_db.connect(Service::Order).await;
    let outbox = Outbox::new(nats.namespace().clone());
    let events: Vec<_> = (0..50).map(cancelled).collect();
    outbox.enqueue_all(&db, &events).await.unwrap();

    let round = relay::publish_pending(&db, &nats.jetstream, 10)
        .await
        .unwrap();

    assert_eq!((round.claimed, round.published), (10, 10));
    assert_eq!(unpublished(&db).await, 40);
    let published: Vec<Uuid> = orders_stream(&nats)
        .await
        .iter()
        .map(|(_, e)| e.id)
        .collect();
    let oldest: Vec<Uuid> = events[..10].iter().map(|e| e.id).collect();
    assert_eq!(published, oldest, "the ten oldest rows, in order");
}

#[actix::test]
async fn the_relay_actor_is_woken_by_an_insert_and_flushes_on_shutdown() {
    let (test_db, nats) = (TestDatabase::new().await, TestNats::new().await);
    let db = test_db.connect(Service::Order).await;
    let outbox = Outbox::new(nats.namespace().clone());
    let relay = start_listening_relay(&test_db, &db, &nats, OutboxConfig::default()).await;

    outbox.enqueue(&db, &cancelled(1)).await.unwrap();

    eventually("the outbox is published", || async {
        unpublished(&db).await == 0
    })
    .await;
    assert_eq!(orders_stream(&nats).await.len(), 1);

    outbox.enqueue(&db, &cancelled(2)).await.unwrap();
    relay.send(FlushAndStop).await.unwrap().unwrap();
    assert_eq!(unpublished(&db).await, 0, "flushed before stopping");
    assert_eq!(orders_stream(&nats).await.len(), 2);
}

/// Starts a relay actor on `db` with `config`, whose fallback poll is pushed far beyond the test
/// (only LISTEN/NOTIFY can wake it in time), and returns once it listens: an insert before that
/// could miss its wake-up, by design.
async fn start_listening_relay(
    test_db: &TestDatabase,
    db: &sea_orm::DatabaseConnection,
    nats: &TestNats,
    config: OutboxConfig,
) -> actix::Addr<OutboxRelay> {
    let config = OutboxConfig {
        poll_interval_ms: 3_600_000,
        ..config
    };
    let relay = OutboxRelay::new(
        db.clone(),
        nats.jetstream.clone(),
        config,
        Service::Order.outbox_channel(),
    )
    .start();
    eventually("the relay listens", || async {
        let row = test_db
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap() > 0
    })
    .await;
    relay
}

#[actix::test]
async fn a_woken_relay_lingers_before_its_round_but_its_shutdown_flush_does_not() {
    let (test_db, nats) = (TestDatabase::new().await, TestNats::new().await);
    let db = test_db.connect(Service::Order).await;
    let outbox = Outbox::new(nats.namespace().clone());
    let config = OutboxConfig {
        linger_ms: 60_000,
        ..OutboxConfig::default()
    };
    let relay = start_listening_relay(&test_db, &db, &nats, config).await;

    outbox.enqueue(&db, &cancelled(1)).await.unwrap();
    outbox.enqueue(&db, &cancelled(2)).await.unwrap();
    // Woken, the relay waits out its linger: nothing is published yet.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(unpublished(&db).await, 2, "the round waits for its linger");

    // The shutdown flush goes ahead of the lingering round.
    tokio::time::timeout(std::time::Duration::from_secs(20), relay.send(FlushAndStop))
        .await
        .expect("the flush does not wait for the linger")
        .unwrap()
        .unwrap();
    assert_eq!(unpublished(&db).await, 0, "flushed before stopping");
    assert_eq!(orders_stream(&nats).await.len(), 2);
}
