//! SPEC §5 rule 1: a redelivered event changes nothing; the inbox knows the envelope id.

use larder_contract::events::{OrderConfirmed, StockLow};
use larder_contract::subjects;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[actix::test]
async fn a_redelivered_order_changes_nothing() {
    // Arrange: an order that crosses onion's threshold, handled once.
    let app = spawn_app().await;
    let order = app.burger_order(30);
    app.publish_and_settle(&order).await;
    let levels = app.levels().await;
    let movements = app.movement_count().await;
    assert_eq!(app.events::<OrderConfirmed>().await.len(), 1);
    assert_eq!(app.events::<StockLow>().await.len(), 1);

    // Act: the same envelope under a new Nats-Msg-Id, so the broker stores and delivers it again.
    app.publish_with_message_id(&order, &format!("replay-{}", Uuid::new_v4()))
        .await;
    app.wait_until_settled().await;

    // Assert
    assert_eq!(
        app.messages_on(subjects::ORDERS_CREATED).await.len(),
        2,
        "the broker delivered the order twice"
    );
    assert_eq!(app.levels().await, levels, "same stock");
    assert_eq!(app.movement_count().await, movements, "no new movement");
    assert_eq!(
        app.events::<OrderConfirmed>().await.len(),
        1,
        "no second orders.confirmed"
    );
    assert_eq!(
        app.events::<StockLow>().await.len(),
        1,
        "no second stock.low"
    );
    app.assert_movements_sum_to_stock().await;
    app.stop().await;
}
