use larder_bus::inbox::{self, Recorded};
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
