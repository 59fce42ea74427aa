//! SPEC §5 rules 2 and 3 under load: never oversold, all or nothing, one alert per crossing,
//! with one stock service instance or two.

use std::collections::HashMap;

use larder_contract::events::{
    IngredientAmount, OrderConfirmed, OrderRejected, Shortage, StockLow,
};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::helpers::{
    MERCHANT_EMAIL, MERCHANT_ID, TestApp, burger_stock, eventually, spawn_app, spawn_instances,
    spawn_stopped_app,
};

#[actix::test]
async fn two_hundred_orders_against_stock_for_fifty_confirm_exactly_fifty() {
    let app = spawn_app().await;
    two_hundred_burgers_against_stock_for_fifty(&app).await;
    app.stop().await;
}

#[actix::test]
async fn two_instances_at_once_never_oversell() {
    // Small batches, so the two instances' transactions interleave on the same rows many times.
    let app = spawn_instances(2, 4).await;
    two_hundred_burgers_against_stock_for_fifty(&app).await;
    app.stop().await;
}

async fn two_hundred_burgers_against_stock_for_fifty(app: &TestApp) {
    // Arrange
    let orders: Vec<_> = (0..200).map(|_| app.burger_order(1)).collect();
    let correlation: HashMap<Uuid, Option<String>> = orders
        .iter()
        .map(|o| (o.data.order_id, o.correlation_id.clone()))
        .collect();
    let catalogue = &app.catalogue;

    // Act
    app.publish_all(&orders).await;
    app.wait_until_settled().await;

    // Assert: exactly 50 confirmed, 150 rejected, one outcome per order.
    let confirmed = app.events::<OrderConfirmed>().await;
    let rejected = app.events::<OrderRejected>().await;
    assert_eq!(confirmed.len(), 50, "confirmed orders");
    assert_eq!(rejected.len(), 150, "rejected orders");
    let mut decided: Vec<Uuid> = confirmed
        .iter()
        .map(|e| e.data.order_id)
        .chain(rejected.iter().map(|e| e.data.order_id))
        .collect();
    decided.sort();
    decided.dedup();
    assert_eq!(decided.len(), 200, "every order decided exactly once");

    for event in &confirmed {
        assert_eq!(event.data.merchant_id, MERCHANT_ID);
        assert_eq!(event.data.reserved, catalogue.burger_recipe());
        assert_eq!(
            event.correlation_id, correlation[&event.data.order_id],
            "events carry the order's correlation id"
        );
    }
    for event in &rejected {
        assert_eq!(
            event.data.shortages,
            vec![Shortage {
                ingredient_id: catalogue.onion.id,
                ingredient: "Onion".into(),
                required: 20,
                available: 0,
            }],
            "only onion runs out"
        );
        assert_eq!(event.correlation_id, correlation[&event.data.order_id]);
    }

    // Assert: the stock is exactly what 50 burgers leave, and the audit trail agrees.
    assert_eq!(app.levels().await, burger_stock(12_500, 3_500, 0));
    app.assert_movements_sum_to_stock().await;
    for event in &confirmed {
        let reserved: Vec<IngredientAmount> = app
            .movements_of_order(event.data.order_id)
            .await
            .iter()
            .map(|m| {
                assert_eq!(m.reason.as_str(), "reserve");
                IngredientAmount {
                    ingredient_id: m.ingredient_id,
                    amount: -m.delta,
                }
            })
            .collect();
        assert_eq!(reserved, catalogue.burger_recipe());
    }
    for event in &rejected {
        assert!(
            app.movements_of_order(event.data.order_id).await.is_empty(),
            "a rejected order reserves nothing"
        );
    }

    // Assert: one stock.low, for onion (beef ends at 62.5 %, cheese at 70 %).
    let low = app.events::<StockLow>().await;
    assert_eq!(low.len(), 1, "exactly one low-stock alert: {low:?}");
    let alert = &low[0].data;
    assert_eq!(
        (
            alert.ingredient_id,
            alert.ingredient.as_str(),
            alert.unit.as_str()
        ),
        (catalogue.onion.id, "Onion", "g")
    );
    assert_eq!(
        (alert.level, alert.reference_level, alert.percent),
        (480, 1_000, 48)
    );
    assert_eq!(
        (alert.merchant_id, alert.merchant_email.as_str()),
        (MERCHANT_ID, MERCHANT_EMAIL)
    );
    let crossing_order = alert.order_id.expect("the alert names its order");
    assert!(
        confirmed.iter().any(|e| e.data.order_id == crossing_order),
        "the order that crossed was confirmed"
    );
    assert_eq!(low[0].correlation_id, correlation[&crossing_order]);
    assert!(app.ingredient(catalogue.onion.id).await.low_stock_alerted);
    assert!(!app.ingredient(catalogue.beef.id).await.low_stock_alerted);
    assert!(!app.ingredient(catalogue.cheese.id).await.low_stock_alerted);
}

#[actix::test]
async fn an_order_with_a_short_ingredient_reserves_none_of_the_others() {
    let app = spawn_app().await;
    let order = app.burger_order(51);

    app.publish_and_settle(&order).await;

    let rejected = app.events::<OrderRejected>().await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].data.shortages,
        vec![Shortage {
            ingredient_id: app.catalogue.onion.id,
            ingredient: "Onion".into(),
            required: 1_020,
            available: 1_000,
        }]
    );
    assert_eq!(app.levels().await, burger_stock(20_000, 5_000, 1_000));
    assert!(app.events::<OrderConfirmed>().await.is_empty());
    assert!(app.events::<StockLow>().await.is_empty());
    app.stop().await;
}

#[actix::test]
async fn one_failing_order_does_not_sink_its_batch_and_is_retried() {
    // Arrange: three orders waiting in the stream; the database refuses the middle one's
    // movements (a test-only trigger), which fails the batch transaction.
    let mut app = spawn_stopped_app().await;
    let (first, failing, last) = (
        app.burger_order(1),
        app.burger_order(1),
        app.burger_order(1),
    );
    app.db()
        .execute_unprepared(&format!(
            "CREATE FUNCTION refuse_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.order_id = '{}' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                 RETURN NEW; \
             END $$; \
             CREATE TRIGGER refuse_order BEFORE INSERT ON stock_movements \
                 FOR EACH ROW EXECUTE FUNCTION refuse_order();",
            failing.data.order_id
        ))
        .await
        .unwrap();
    app.publish_all(&[first.clone(), failing.clone(), last.clone()])
        .await;

    // Act: start the service: it pulls the three as one batch.
    app.start_instance().await;

    // Assert: the two others are confirmed; the failing one is not, and nothing of it is kept.
    let running = &app;
    eventually("the other two orders are confirmed", || async {
        running.events::<OrderConfirmed>().await.len() == 2
    })
    .await;
    let confirmed: Vec<Uuid> = app
        .events::<OrderConfirmed>()
        .await
        .iter()
        .map(|e| e.data.order_id)
        .collect();
    assert_eq!(confirmed, vec![first.data.order_id, last.data.order_id]);
    assert!(
        app.movements_of_order(failing.data.order_id)
            .await
            .is_empty()
    );
    app.assert_movements_sum_to_stock().await;

    // Act: the database accepts it again; the redelivery (after the consumer's backoff) goes through.
    app.db()
        .execute_unprepared("DROP TRIGGER refuse_order ON stock_movements")
        .await
        .unwrap();
    app.wait_until_settled().await;

    // Assert
    let confirmed = app.events::<OrderConfirmed>().await;
    assert_eq!(confirmed.len(), 3);
    assert_eq!(confirmed[2].data.order_id, failing.data.order_id);
    assert_eq!(app.ingredient(app.catalogue.onion.id).await.stock, 940);
    app.assert_movements_sum_to_stock().await;
    app.stop().await;
}
