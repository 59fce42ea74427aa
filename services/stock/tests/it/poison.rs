//! SPEC §5 rule 7: poison on `orders.created` is dead-lettered with its reason, at once, and the
//! orders after it are processed.

use larder_bus::dlq::{CONSUMER_HEADER, DELIVERIES_HEADER, REASON_HEADER};
use larder_bus::topology::STOCK_ORDERS_CREATED;
use larder_contract::events::OrderConfirmed;
use larder_contract::subjects;

use crate::helpers::{burger_stock, spawn_app};

#[actix::test]
async fn poison_messages_are_dead_lettered_and_the_orders_after_them_are_processed() {
    // Arrange
    let app = spawn_app().await;
    let garbage = b"\x00\x01 not an envelope".to_vec();
    let mut from_the_future = serde_json::to_value(app.burger_order(1)).unwrap();
    from_the_future["version"] = 99.into();
    let from_the_future = serde_json::to_vec(&from_the_future).unwrap();
    let no_burgers = app.burger_order(0);
    let good = app.burger_order(1);

    // Act
    app.publish_raw(subjects::ORDERS_CREATED, garbage.clone(), "garbage-1")
        .await;
    app.publish_raw(
        subjects::ORDERS_CREATED,
        from_the_future.clone(),
        "version-99",
    )
    .await;
    app.publish(&no_burgers).await;
    app.publish_and_settle(&good).await;

    // Assert: three dead letters, in order, body unchanged, with the reason.
    let dead = app
        .messages_on(&subjects::dead_letter(STOCK_ORDERS_CREATED.durable))
        .await;
    let expected = [
        (garbage, "poison: not a JSON event envelope"),
        (
            from_the_future,
            "poison: unknown version 99 of order.created",
        ),
        (serde_json::to_vec(&no_burgers).unwrap(), "invalid order"),
    ];
    assert_eq!(dead.len(), expected.len(), "dead letters: {dead:?}");
    for (message, (payload, reason)) in dead.iter().zip(expected) {
        let header = |name: &str| {
            message
                .headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_else(|| panic!("{name} header on {message:?}"))
        };
        assert_eq!(message.payload.as_ref(), payload.as_slice());
        assert!(
            header(REASON_HEADER).starts_with(reason),
            "{:?} should start with {reason:?}",
            header(REASON_HEADER)
        );
        assert_eq!(header(CONSUMER_HEADER), STOCK_ORDERS_CREATED.durable);
        assert_eq!(header(DELIVERIES_HEADER), "1", "terminated at once");
    }

    // Assert: the good order went through.
    let confirmed = app.events::<OrderConfirmed>().await;
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0].data.order_id, good.data.order_id);
    assert_eq!(app.levels().await, burger_stock(19_850, 4_970, 980));
    assert!(
        app.movements_of_order(no_burgers.data.order_id)
            .await
            .is_empty()
    );
    app.stop().await;
}
