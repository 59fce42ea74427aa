//! Group commit: many orders in one statement, idempotency inside a batch, and a bad order that
//! does not sink the others.

use serde_json::{json, value::to_raw_value};
use uuid::Uuid;

use actix::Actor as _;
use larder_bus::outbox::PreparedEvent;
use order::domain::{PricedLine, PricedOrder};
use order::order_writer::{self, OrderWriter};
use order::push::StatusPublisher;
use order::store::{self, Inserted, NewOrder};

use crate::helpers::*;

/// An order of `quantity` units of `product_id` for `customer_id`, with its event.
fn new_order(customer_id: Uuid, product_id: i64, key: Option<&str>) -> (NewOrder, PreparedEvent) {
    let id = Uuid::now_v7();
    let order = NewOrder {
        id,
        customer_id,
        currency: "EUR".into(),
        priced: PricedOrder {
            merchant_id: 1,
            lines: vec![PricedLine {
                product_id,
                product_name: "Burger".into(),
                quantity: 1,
                unit_price_cents: 899,
                line_total_cents: 899,
            }],
            total_cents: 899,
        },
        idempotency_key: key.map(str::to_owned),
        fingerprint: format!("fingerprint-{product_id}"),
        correlation_id: Some("group-commit-test".into()),
    };
    let event = PreparedEvent {
        id: Uuid::now_v7(),
        subject: "test.orders.created".into(),
        payload: to_raw_value(&json!({ "order_id": id })).unwrap(),
        headers: to_raw_value(&json!({})).unwrap(),
    };
    (order, event)
}

async fn customer(app: &TestApp) -> Uuid {
    let email = format!("c{}@example.com", Uuid::new_v4().simple());
    app.api.register(&email, "password-123").await.unwrap();
    store::find_user_by_email(&app.order_db, &email)
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn one_statement_writes_a_batch_and_a_key_used_twice_in_it_makes_one_order() {
    let app = spawn_app().await;
    let burger = app.seed().await;
    let customer = customer(&app).await;
    let first = new_order(customer, burger, Some("twice"));
    let second = new_order(customer, burger, Some("twice"));
    let unkeyed = new_order(customer, burger, None);

    let answers = store::insert_orders_with_events(
        &app.order_db,
        &[
            (&first.0, &first.1),
            (&second.0, &second.1),
            (&unkeyed.0, &unkeyed.1),
        ],
    )
    .await
    .unwrap();

    assert!(matches!(answers[0], Inserted::CreatedAt(_)), "{answers:?}");
    assert_eq!(
        answers[1],
        Inserted::AlreadyExists {
            order_id: first.0.id,
            fingerprint: Some(first.0.fingerprint.clone()),
        }
    );
    assert!(matches!(answers[2], Inserted::CreatedAt(_)), "{answers:?}");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 2);
    assert_eq!(app.count("SELECT count(*) FROM order_lines").await, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM order_status_history").await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE subject = 'test.orders.created'")
            .await,
        2,
        "the second order's event is not written"
    );
}

// The writer is an actor: it needs an actix system.
#[actix::test]
async fn a_batch_with_a_bad_order_fails_whole_and_the_writer_still_writes_the_good_ones() {
    let app = spawn_app().await;
    let burger = app.seed().await;
    let customer = customer(&app).await;
    let unknown_product = burger + 1_000;

    // One statement: all or nothing.
    let good = new_order(customer, burger, None);
    let bad = new_order(customer, unknown_product, None);
    store::insert_orders_with_events(&app.order_db, &[(&good.0, &good.1), (&bad.0, &bad.1)])
        .await
        .expect_err("the bad order's line breaks a foreign key");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);

    // The writer: whether they share a batch or not, each order gets its own answer.
    let pushes = StatusPublisher::new(app.nats.client.clone(), app.nats.namespace());
    let writer = OrderWriter::new(app.order_db.clone(), pushes).start();
    let orders: Vec<_> = (0..30)
        .map(|i| {
            new_order(
                customer,
                if i == 7 { unknown_product } else { burger },
                None,
            )
        })
        .collect();
    let answers = futures::future::join_all(orders.into_iter().map(|(order, event)| {
        let writer = writer.clone();
        async move { order_writer::insert(&writer, order, event).await }
    }))
    .await;

    for (i, answer) in answers.iter().enumerate() {
        if i == 7 {
            assert!(answer.is_err(), "order {i}: {answer:?}");
        } else {
            assert!(
                matches!(answer, Ok(Inserted::CreatedAt(_))),
                "order {i}: {answer:?}"
            );
        }
    }
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 29);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE subject = 'test.orders.created'")
            .await,
        29
    );
}

#[actix::test]
async fn orders_arriving_together_share_statements() {
    let app = spawn_app().await;
    let burger = app.seed().await;
    let customer = customer(&app).await;
    let pushes = StatusPublisher::new(app.nats.client.clone(), app.nats.namespace());
    let writer = OrderWriter::new(app.order_db.clone(), pushes).start();

    let answers = futures::future::join_all((0..40).map(|_| {
        let (order, event) = new_order(customer, burger, None);
        order_writer::insert(&writer, order, event)
    }))
    .await;

    assert!(
        answers
            .iter()
            .all(|answer| matches!(answer, Ok(Inserted::CreatedAt(_)))),
        "{answers:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 40);
    // Rows a transaction inserted carry its id (xmin): fewer ids than orders, fewer commits.
    let transactions = app
        .count("SELECT count(DISTINCT xmin::text) FROM orders")
        .await;
    assert!(
        transactions < 40,
        "40 orders sent together took {transactions} transactions"
    );
}
