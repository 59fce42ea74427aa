//! Grants, not convention: a service's role can use its own schema and nothing else.

use migration::Service;
use migration::database::sql_state;
use migration::testing::TestDatabase;

use crate::helpers::{exec, insert_returning_id};

/// SQLSTATE insufficient_privilege.
const PERMISSION_DENIED: &str = "42501";

#[tokio::test]
async fn the_order_role_cannot_write_stock_ingredients_nor_create_in_public() {
    // Arrange: an ingredient written by the stock role.
    let test_db = TestDatabase::new().await;
    let stock = test_db.connect(Service::Stock).await;
    let ingredient = insert_returning_id(
        &stock,
        "INSERT INTO ingredients (merchant_id, name, unit, stock, reference_level, merchant_email) \
         VALUES (1, 'Beef', 'g', 1000, 1000, 'chef@bistro.test') RETURNING id",
    )
    .await;
    let order = test_db.connect(Service::Order).await;

    let attempts = [
        (
            "INSERT into stock.ingredients",
            "INSERT INTO stock.ingredients (merchant_id, name, unit, stock, reference_level, merchant_email) \
             VALUES (1, 'Cheese', 'g', 10, 10, 'chef@bistro.test')"
                .to_owned(),
        ),
        (
            "UPDATE stock.ingredients",
            format!("UPDATE stock.ingredients SET stock = 0 WHERE id = {ingredient}"),
        ),
        (
            "SELECT from stock.ingredients",
            "SELECT * FROM stock.ingredients".to_owned(),
        ),
        (
            "INSERT into delivery.outbox",
            "INSERT INTO delivery.outbox (id, subject, payload) \
             VALUES (gen_random_uuid(), 'delivery.dispatched', '{}')"
                .to_owned(),
        ),
        (
            "CREATE TABLE in public",
            "CREATE TABLE public.sneaky (id INT)".to_owned(),
        ),
        ("CREATE SCHEMA", "CREATE SCHEMA sneaky".to_owned()),
    ];

    for (name, sql) in attempts {
        // Act
        let result = exec(&order, &sql).await;

        // Assert
        let err = result.expect_err(name);
        assert_eq!(
            sql_state(&err).as_deref(),
            Some(PERMISSION_DENIED),
            "{name}: {err}"
        );
        assert!(
            err.to_string().contains("permission denied"),
            "{name}: {err}"
        );
    }

    // The stock role's data is untouched, and the order role can write its own schema.
    let level: i64 = crate::helpers::scalar(
        &stock,
        &format!("SELECT stock FROM ingredients WHERE id = {ingredient}"),
    )
    .await;
    assert_eq!(level, 1000);
    exec(
        &order,
        "INSERT INTO merchants (name, email) VALUES ('Bistro', 'chef@bistro.test')",
    )
    .await
    .expect("the order role writes its own schema");
}

#[tokio::test]
async fn no_service_role_can_read_another_schema() {
    let test_db = TestDatabase::new().await;
    for service in Service::ALL {
        let db = test_db.connect(service).await;
        for other in Service::ALL.into_iter().filter(|o| *o != service) {
            let err = exec(
                &db,
                &format!("SELECT * FROM {}.outbox", other.quoted_schema()),
            )
            .await
            .expect_err("another service's outbox");
            assert_eq!(
                sql_state(&err).as_deref(),
                Some(PERMISSION_DENIED),
                "{service} reading {other}: {err}"
            );
        }
    }
}
