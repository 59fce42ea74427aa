//! A three-node JetStream cluster on loopback, every stream with three replicas (SPEC §4): a node
//! killed in the middle of the load loses nothing that was acknowledged, and every order
//! completes on the two that are left.

use larder_bus::testing::{NatsCluster, TestNats};

use crate::helpers::Stack;

#[tokio::test]
async fn a_node_killed_mid_load_loses_nothing_and_every_order_completes() {
    let mut cluster = NatsCluster::start(3).await;
    let nats = TestNats::on(&cluster.url(), 3).await;
    let stack = Stack::start_on(nats, &[]).await;
    let (merchant, burger, customer) = stack.shop().await;
    let beef_before = stack.api.levels(&merchant).await.unwrap()[0].1;

    let mut orders = Vec::new();
    for i in 0..30 {
        if i == 10 {
            cluster.kill(1);
        }
        orders.push(stack.api.place_one(&customer, burger).await.unwrap());
    }

    for id in &orders {
        stack.wait_for_status(&customer, *id, "delivered").await;
    }
    for id in &orders {
        let events = stack.events_of_order(*id).await;
        for kind in [
            "order.created",
            "order.confirmed",
            "delivery.dispatched",
            "delivery.delivered",
        ] {
            let count = events.iter().filter(|e| e["type"] == kind).count();
            assert_eq!(count, 1, "order {id}: {count} {kind} events in the streams");
        }
    }
    assert_eq!(
        stack.api.levels(&merchant).await.unwrap()[0].1,
        beef_before - 150 * orders.len() as i64,
        "every order reserved its beef exactly once"
    );
    stack.assert_stock_consistent().await;
}
