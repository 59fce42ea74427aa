use std::time::Duration;

use actix::Actor;
use larder_bus::OutboxConfig;
use larder_bus::inbox::{self, Recorded};
use larder_bus::relay::{self, OutboxRelay};
use larder_bus::testing::{TestNats, eventually};
use migration::Service;
use migration::testing::TestDatabase;
use sea_orm::{ConnectionTrait, TransactionTrait};
use uuid::Uuid;

async fn count(db: &impl ConnectionTrait, sql: &str) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql,
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn a_second_record_of_the_same_event_is_a_duplicate_and_its_transaction_writes_nothing() {
    let t = TestDatabase::new().await;
    let db = t.connect(Service::Order).await;
    let event_id = Uuid::now_v7();

    // First delivery: new, and the caller's effect commits with it.
    let txn = db.begin().await.unwrap();
    assert_eq!(
        inbox::record(&txn, "stock-orders-created", event_id)
            .await
            .unwrap(),
        Recorded::New
    );
    txn.execute_unprepared("INSERT INTO merchants (name, email) VALUES ('first', 'a@x')")
        .await
        .unwrap();
    txn.commit().await.unwrap();

    // Redelivery: the caller sees a duplicate and drops its transaction.
    let txn = db.begin().await.unwrap();
    assert_eq!(
        inbox::record(&txn, "stock-orders-created", event_id)
            .await
            .unwrap(),
        Recorded::Duplicate
    );
    txn.rollback().await.unwrap();

    assert_eq!(count(&db, "SELECT count(*) FROM merchants").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM inbox").await, 1);

    // The same event is new to another consumer.
    assert_eq!(
        inbox::record(&db, "delivery-orders-confirmed", event_id)
            .await
            .unwrap(),
        Recorded::New
    );
}

#[tokio::test]
async fn recording_a_batch_returns_only_the_new_ids() {
    let t = TestDatabase::new().await;
    let db = t.connect(Service::Order).await;
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    inbox::record(&db, "c", a).await.unwrap();

    let new = inbox::record_all(&db, "c", &[a, b, c, b]).await.unwrap();

    assert_eq!(new, [b, c].into_iter().collect());
    assert_eq!(count(&db, "SELECT count(*) FROM inbox").await, 3);
}

/// The event ids left in the inbox, sorted.
async fn inbox_ids(db: &impl ConnectionTrait) -> Vec<Uuid> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT event_id FROM inbox ORDER BY event_id",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.try_get::<Uuid>("", "event_id").unwrap())
        .collect()
}

/// Records `event_id` as handled `days_ago` days ago.
async fn record_days_ago(db: &impl ConnectionTrait, event_id: Uuid, days_ago: u32) {
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "INSERT INTO inbox (consumer, event_id, processed_at) \
         VALUES ('stock-orders-created', $1, now() - make_interval(days => $2))",
        [event_id.into(), (days_ago as i32).into()],
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn pruning_deletes_the_rows_older_than_the_retention_and_only_those() {
    let t = TestDatabase::new().await;
    let db = t.connect(Service::Stock).await;
    let (old, recent, today) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    record_days_ago(&db, old, 15).await;
    record_days_ago(&db, recent, 13).await;
    inbox::record(&db, "stock-orders-created", today)
        .await
        .unwrap();

    let fourteen_days = inbox::retention(Duration::from_secs(7 * 24 * 3600));
    assert_eq!(fourteen_days, Duration::from_secs(14 * 24 * 3600));
    assert_eq!(inbox::prune(&db, fourteen_days).await.unwrap(), 1);

    assert_eq!(inbox_ids(&db).await, [recent, today]);
    assert_eq!(
        inbox::record(&db, "stock-orders-created", recent)
            .await
            .unwrap(),
        Recorded::Duplicate,
        "a kept row still guards its event"
    );
}

#[actix::test]
async fn a_relay_started_with_a_retention_prunes_the_inbox_at_once() {
    let t = TestDatabase::new().await;
    let db = t.connect(Service::Stock).await;
    let nats = TestNats::new().await;
    let (old, recent) = (Uuid::now_v7(), Uuid::now_v7());
    record_days_ago(&db, old, 2).await;
    record_days_ago(&db, recent, 0).await;

    let relay = OutboxRelay::new(
        db.clone(),
        nats.jetstream.clone(),
        OutboxConfig::default(),
        Service::Stock.outbox_channel(),
    )
    .pruning_inbox(Duration::from_secs(24 * 3600))
    .start();

    eventually("the day-old row is pruned", || async {
        inbox_ids(&db).await == [recent]
    })
    .await;
    relay::flush_and_stop(&relay).await.unwrap();
}
