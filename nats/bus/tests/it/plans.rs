use larder_bus::batch::{plan_as_cached, plan_for_arguments};
use larder_bus::testing::sequential_scans;
use migration::Service;
use migration::testing::TestDatabase;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait};
use uuid::Uuid;

/// The shape of the services' batch updates: a batch joined to a table by id, the ids also given
/// as an array (the planner cannot see how many rows the JSON holds; it can count the array).
const UPDATE_BATCH: &str = "UPDATE probe p SET note = b.note \
     FROM jsonb_to_recordset($1::jsonb) AS b(id uuid, note text) \
     WHERE p.id = b.id AND p.id = ANY($2)";

async fn update_batch(txn: &DatabaseTransaction, ids: &[Uuid]) {
    let batch: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({ "id": id, "note": "updated" }))
        .collect();
    let done = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            UPDATE_BATCH,
            [serde_json::Value::Array(batch).into(), ids.to_vec().into()],
        ))
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), ids.len() as u64);
}

#[tokio::test]
async fn a_batch_update_planned_for_its_arguments_looks_rows_up_by_index_after_the_table_grew() {
    let test_db = TestDatabase::new().await;
    let db = test_db.connect(Service::Order).await;
    // One transaction: one connection, so the statement's cached plan is the one reused.
    let txn = db.begin().await.unwrap();
    // As wide as `orders`: on a small table of wide rows the generic plan is a sequential scan.
    txn.execute_unprepared(
        "CREATE TABLE probe (id uuid PRIMARY KEY, customer_id uuid, merchant_id bigint, \
             status text, total_cents bigint, currency text, idempotency_key text, \
             request_hash text, correlation_id text, rejection jsonb, created_at timestamptz, \
             updated_at timestamptz, note text)",
    )
    .await
    .unwrap();
    let batch: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
    for id in &batch {
        txn.execute_unprepared(&format!(
            "INSERT INTO probe (id, note) VALUES ('{id}', 'new')"
        ))
        .await
        .unwrap();
    }
    // While the table is small, PostgreSQL settles on a generic plan for the statement.
    for _ in 0..8 {
        update_batch(&txn, &batch).await;
    }
    txn.execute_unprepared(
        "INSERT INTO probe (id, note) SELECT gen_random_uuid(), 'new' FROM generate_series(1, 100000)",
    )
    .await
    .unwrap();

    // The trap: the cached plan still scans the whole table for a batch of 50.
    let before = sequential_scans(&txn, "probe").await;
    update_batch(&txn, &batch).await;
    assert_eq!(
        sequential_scans(&txn, "probe").await,
        before + 1,
        "the cached plan was expected to scan the table (if PostgreSQL no longer caches such a \
         plan, plan_for_arguments may no longer be needed)"
    );

    // Planned for its arguments, the same statement finds the rows by their primary key.
    plan_for_arguments(&txn).await.unwrap();
    let before = sequential_scans(&txn, "probe").await;
    update_batch(&txn, &batch).await;
    assert_eq!(
        sequential_scans(&txn, "probe").await,
        before,
        "no sequential scan"
    );

    // And back to the cached plan for the rest of the transaction.
    plan_as_cached(&txn).await.unwrap();
    let before = sequential_scans(&txn, "probe").await;
    update_batch(&txn, &batch).await;
    assert_eq!(
        sequential_scans(&txn, "probe").await,
        before + 1,
        "the cached plan again"
    );
    txn.rollback().await.unwrap();
}
