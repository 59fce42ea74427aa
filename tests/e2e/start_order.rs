//! Services start in any order (SPEC §5 rule 8): each a process of its own, started one at a
//! time with pauses between, some before the NATS server and PostgreSQL they need are up. They
//! wait for their servers instead of exiting, and the stack then works as if started together.

use std::time::Duration;

use larder_bus::testing::{NatsCluster, TestNats};
use migration::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Stack, own_postgres};

/// Between two steps of the start: long enough for a started service to try its servers and
/// fail a few times.
const PAUSE: Duration = Duration::from_secs(1);

#[tokio::test]
async fn services_started_one_by_one_some_before_their_servers_deliver_an_order_and_get_ready() {
    let postgres = own_postgres();
    let mut nats_server = NatsCluster::start(1).await;
    // The database and streams exist, as after `larder migrate` and an earlier run; then both
    // servers go away before any service starts.
    let nats = TestNats::on(&nats_server.url(), 1).await;
    let db = TestDatabase::new_on(&postgres.admin_url()).await;
    let mut stack = Stack::without_processes_on(nats, db, &[]).await;
    postgres.stop_immediately();
    nats_server.kill(0);

    // Services connect to PostgreSQL first, then NATS: PostgreSQL comes back first, so that
    // order and delivery wait for both and notification for NATS alone.
    let order = stack.spawn(&["order"]);
    tokio::time::sleep(PAUSE).await;
    let delivery = stack.spawn(&["delivery"]);
    tokio::time::sleep(PAUSE).await;
    postgres.start_again();
    tokio::time::sleep(PAUSE).await;
    let notification = stack.spawn(&["notification"]);
    tokio::time::sleep(PAUSE).await;
    let early = stack.api.get_anonymous("/ready").await;
    assert!(
        !early.is_ok_and(|r| r.status() == StatusCode::OK),
        "the order service is ready without NATS"
    );
    nats_server.restart(0);
    tokio::time::sleep(PAUSE).await;
    let stock = stack.spawn(&["stock"]);

    stack.wait_until_ready(stack.api.base_url()).await;
    let readiness: Value = stack
        .api
        .get_anonymous("/ready")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        readiness,
        json!({ "status": "ok", "database": "ok", "nats": "ok" })
    );

    let (merchant, burger, customer) = stack.shop().await;
    stack
        .place_and_wait_for(&customer, burger, 1, "delivered")
        .await;
    assert_eq!(
        stack.api.levels(&merchant).await.unwrap()[0].1,
        20_000 - 150
    );

    // Notification is on no order's path: that it waited rather than gave up shows here.
    for (index, name) in [
        (order, "order"),
        (delivery, "delivery"),
        (notification, "notification"),
        (stock, "stock"),
    ] {
        assert!(stack.is_running(index), "{name} exited");
    }
}
