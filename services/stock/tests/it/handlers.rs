//! The reservation handler called directly, as the consumer runner calls it: a plain value, no
//! actor system, no runner, against real PostgreSQL and NATS.

use larder_bus::consume::{Delivery, HandleEvents, Outcome};
use larder_bus::outbox::Outbox;
use larder_bus::push::Pusher;
use larder_bus::testing::TestNats;
use larder_contract::Envelope;
use larder_contract::events::OrderCreated;
use sea_orm::EntityTrait;
use stock::handlers::ReserveOrders;

use entities::ingredients;

use crate::helpers::{assert_movements_sum_to_stock, seed_burger_stock};

fn delivery(event: Envelope<OrderCreated>, delivered: i64) -> Delivery<Envelope<OrderCreated>> {
    Delivery {
        event,
        subject: "orders.created".into(),
        stream_sequence: 1,
        delivered,
        max_deliver: 5,
        headers: async_nats::HeaderMap::new(),
    }
}

#[tokio::test]
async fn the_reservation_handler_answers_after_its_commit_and_a_redelivery_changes_nothing() {
    let test_db = migration::testing::TestDatabase::new().await;
    let db = test_db.connect(migration::Service::Stock).await;
    let nats = TestNats::new().await;
    let catalogue = seed_burger_stock(&db).await;
    let handler = ReserveOrders::new(
        db.clone(),
        Outbox::new(nats.namespace().clone()),
        Pusher::new(nats.client.clone(), nats.namespace()),
    );
    let order = catalogue.burger_order(2);
    let poison = Envelope::new(
        OrderCreated {
            lines: Vec::new(),
            ..catalogue.burger_order(1).data
        },
        None,
    );

    let outcomes = handler
        .handle(vec![delivery(order.clone(), 1), delivery(poison, 1)])
        .await;
    assert_eq!(outcomes[0], Outcome::Done);
    assert!(
        matches!(&outcomes[1], Outcome::Reject { reason } if reason.contains("invalid order")),
        "an order without lines is rejected for good: {outcomes:?}"
    );
    let beef = || async {
        ingredients::Entity::find_by_id(catalogue.beef.id)
            .one(&db)
            .await
            .unwrap()
            .unwrap()
            .stock
    };
    assert_eq!(beef().await, 20_000 - 2 * 150);

    // The same envelope again (a redelivery): acked, nothing reserved twice.
    assert_eq!(
        handler.handle(vec![delivery(order, 2)]).await,
        [Outcome::Done]
    );
    assert_eq!(beef().await, 20_000 - 2 * 150);
    assert_movements_sum_to_stock(&db).await;
}
