//! Cancel: a confirmed order's reservation goes back exactly once; a cancellation that overtakes
//! its order makes that order reserve and emit nothing (SPEC §5 rules 1, 2, 4).

use larder_bus::outbox::Outbox;
use larder_contract::Envelope;
use larder_contract::events::{
    OrderCancelled, OrderConfirmed, OrderCreated, OrderRejected, StockLow,
};
use migration::Service;
use migration::testing::TestDatabase;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};
use stock::store::{self, Released, Reserved};
use uuid::Uuid;

use crate::helpers::{
    assert_movements_sum_to_stock, burger_stock, cancellation, eventually, movements_of_order,
    seed_burger_stock, spawn_app, unpublished_events,
};

fn full_stock() -> Vec<(String, i64)> {
    burger_stock(20_000, 5_000, 1_000)
}

#[actix::test]
async fn cancelling_a_confirmed_order_restores_its_stock_exactly_once() {
    // Arrange: three burgers reserved.
    let app = spawn_app().await;
    let order = app.burger_order(3);
    app.publish_and_settle(&order).await;
    assert_eq!(app.events::<OrderConfirmed>().await.len(), 1);
    assert_eq!(app.ingredient(app.catalogue.onion.id).await.stock, 940);

    // Act: the cancellation delivered twice, and a second cancellation of the same order.
    let cancel = cancellation(&order, true);
    app.publish(&cancel).await;
    app.publish_with_message_id(&cancel, &format!("again-{}", Uuid::new_v4()))
        .await;
    app.publish(&cancellation(&order, true)).await;
    app.wait_until_settled().await;

    // Assert
    assert_eq!(app.levels().await, full_stock(), "stock restored exactly");
    let movements: Vec<(String, i64, i64)> = app
        .movements_of_order(order.data.order_id)
        .await
        .into_iter()
        .map(|m| (m.reason.as_str().to_owned(), m.ingredient_id, m.delta))
        .collect();
    let c = &app.catalogue;
    assert_eq!(
        movements,
        vec![
            ("reserve".to_owned(), c.beef.id, -450),
            ("reserve".to_owned(), c.cheese.id, -90),
            ("reserve".to_owned(), c.onion.id, -60),
            ("release".to_owned(), c.beef.id, 450),
            ("release".to_owned(), c.cheese.id, 90),
            ("release".to_owned(), c.onion.id, 60),
        ],
        "one release per reserved ingredient, once"
    );
    app.assert_movements_sum_to_stock().await;
    app.stop().await;
}

#[actix::test]
async fn a_cancellation_that_overtakes_its_order_leaves_the_stock_untouched() {
    // Arrange: the cancellation is handled before the order is seen.
    let app = spawn_app().await;
    let order = app.burger_order(3);
    app.publish(&cancellation(&order, false)).await;
    app.wait_until_settled().await;

    // Act: the order arrives late, and another one after it.
    app.publish(&order).await;
    let next = app.burger_order(1);
    app.publish_and_settle(&next).await;

    // Assert: the late order reserved nothing and emitted nothing; the next one went through.
    assert!(app.movements_of_order(order.data.order_id).await.is_empty());
    let confirmed = app.events::<OrderConfirmed>().await;
    assert_eq!(
        confirmed
            .iter()
            .map(|e| e.data.order_id)
            .collect::<Vec<_>>(),
        vec![next.data.order_id]
    );
    assert!(
        app.events::<OrderRejected>().await.is_empty(),
        "not even orders.rejected"
    );
    assert_eq!(app.levels().await, burger_stock(19_850, 4_970, 980));
    app.assert_movements_sum_to_stock().await;
    app.stop().await;
}

#[actix::test]
async fn releasing_stock_does_not_rearm_the_low_stock_alert() {
    // Arrange: 30 burgers take onion from 100 % to 40 %: one alert.
    let app = spawn_app().await;
    let first = app.burger_order(30);
    app.publish_and_settle(&first).await;
    assert_eq!(app.events::<StockLow>().await.len(), 1);

    // Act: the order is cancelled (onion back to 100 %), then 30 burgers again.
    app.publish(&cancellation(&first, true)).await;
    app.wait_until_settled().await;
    assert_eq!(app.levels().await, full_stock());
    let second = app.burger_order(30);
    app.publish_and_settle(&second).await;

    // Assert: only a restock re-arms (SPEC §3), so no second alert.
    assert_eq!(app.events::<OrderConfirmed>().await.len(), 2);
    assert_eq!(app.events::<StockLow>().await.len(), 1, "no second alert");
    assert!(
        app.ingredient(app.catalogue.onion.id)
            .await
            .low_stock_alerted
    );
    app.stop().await;
}

// The race itself, at the store: two transactions on one order, one waiting for the other.

async fn reserve_in_transaction(
    db: DatabaseConnection,
    order: Envelope<OrderCreated>,
) -> Result<Vec<Reserved>, DbErr> {
    let txn = db.begin().await?;
    let reserved = store::reserve_orders(&txn, &Outbox::default(), &[order]).await?;
    txn.commit().await?;
    Ok(reserved)
}

async fn release_in_transaction(
    db: DatabaseConnection,
    cancel: Envelope<OrderCancelled>,
) -> Result<Vec<Released>, DbErr> {
    let txn = db.begin().await?;
    let released = store::release_orders(&txn, &[cancel]).await?;
    txn.commit().await?;
    Ok(released)
}

/// Someone in this database waits for an advisory lock.
async fn waiting_for_an_order_lock(db: &DatabaseConnection) -> bool {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS waiting FROM pg_locks \
             WHERE locktype = 'advisory' AND NOT granted \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        ))
        .await
        .expect("pg_locks can be read")
        .expect("a count");
    row.try_get::<i64>("", "waiting").unwrap() > 0
}

#[actix::test]
async fn a_reservation_waiting_on_a_cancellation_reserves_and_emits_nothing() {
    // Arrange: the cancellation holds the order's lock, uncommitted.
    let test_db = TestDatabase::new().await;
    let db = test_db.connect(Service::Stock).await;
    let catalogue = seed_burger_stock(&db).await;
    let order = catalogue.burger_order(2);
    let cancelling = db.begin().await.unwrap();
    let released = store::release_orders(&cancelling, &[cancellation(&order, false)])
        .await
        .unwrap();
    assert_eq!(released, vec![Released::NothingReserved]);

    // Act: the reservation starts, waits, and goes on once the cancellation commits.
    let reservation = actix::spawn(reserve_in_transaction(db.clone(), order.clone()));
    eventually("the reservation waits for the order's lock", || {
        waiting_for_an_order_lock(&db)
    })
    .await;
    cancelling.commit().await.unwrap();
    let reserved = reservation.await.unwrap().unwrap();

    // Assert
    assert_eq!(reserved, vec![Reserved::Cancelled]);
    assert!(
        movements_of_order(&db, order.data.order_id)
            .await
            .is_empty()
    );
    assert_eq!(unpublished_events(&db).await, 0, "nothing emitted");
    assert_movements_sum_to_stock(&db).await;
}

#[actix::test]
async fn a_cancellation_waiting_on_a_reservation_releases_what_it_reserved() {
    // Arrange: the reservation holds the order's lock and the ingredient rows, uncommitted.
    let test_db = TestDatabase::new().await;
    let db = test_db.connect(Service::Stock).await;
    let catalogue = seed_burger_stock(&db).await;
    let order = catalogue.burger_order(2);
    let reserving = db.begin().await.unwrap();
    let reserved =
        store::reserve_orders(&reserving, &Outbox::default(), std::slice::from_ref(&order))
            .await
            .unwrap();
    assert_eq!(reserved, vec![Reserved::Confirmed]);

    // Act
    let release = actix::spawn(release_in_transaction(
        db.clone(),
        cancellation(&order, false),
    ));
    eventually("the cancellation waits for the order's lock", || {
        waiting_for_an_order_lock(&db)
    })
    .await;
    reserving.commit().await.unwrap();
    let released = release.await.unwrap().unwrap();

    // Assert: reserved, then released: back to full stock.
    assert_eq!(released, vec![Released::Released]);
    let reasons: Vec<String> = movements_of_order(&db, order.data.order_id)
        .await
        .into_iter()
        .map(|m| m.reason.as_str().to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            "reserve", "reserve", "reserve", "release", "release", "release"
        ]
    );
    let levels: Vec<i64> = store::list_ingredients(&db, catalogue.beef.merchant_id)
        .await
        .unwrap()
        .iter()
        .map(|i| i.stock)
        .collect();
    assert_eq!(levels, [20_000, 5_000, 1_000]);
    assert_movements_sum_to_stock(&db).await;
}
