//! The constraints the services rely on really bite, and report the names they match on (seen
//! by an admin whose `search_path` spans every service's schema).

use migration::sea_orm::DatabaseConnection;
use migration::testing::TestDatabase;
use uuid::Uuid;

use crate::helpers::{admin_on_every_schema, exec, insert_returning_id, violated_constraint};

/// A merchant, a customer, a product, an order, an ingredient: ids for the cases to use.
struct Seed {
    merchant_id: i64,
    customer_id: Uuid,
    product_id: i64,
    order_id: Uuid,
    ingredient_id: i64,
}

async fn seed(db: &DatabaseConnection) -> Seed {
    let merchant_id = insert_returning_id(
        db,
        "INSERT INTO merchants (name, email) VALUES ('Bistro', 'chef@bistro.test') RETURNING id",
    )
    .await;
    let customer_id = Uuid::new_v4();
    exec(
        db,
        &format!(
            "INSERT INTO users (id, email, password_hash, role) \
             VALUES ('{customer_id}', 'Ann@Example.test', '$argon2id$x', 'customer')"
        ),
    )
    .await
    .expect("Failed to insert the customer");
    let product_id = insert_returning_id(
        db,
        &format!(
            "INSERT INTO products (merchant_id, name, price_cents) \
             VALUES ({merchant_id}, 'Burger', 1250) RETURNING id"
        ),
    )
    .await;
    let order_id = Uuid::new_v4();
    exec(
        db,
        &format!(
            "INSERT INTO orders (id, customer_id, merchant_id, status, total_cents, currency) \
             VALUES ('{order_id}', '{customer_id}', {merchant_id}, 'pending', 1250, 'EUR')"
        ),
    )
    .await
    .expect("Failed to insert the order");
    let ingredient_id = insert_returning_id(
        db,
        &format!(
            "INSERT INTO ingredients (merchant_id, name, unit, stock, reference_level, merchant_email) \
             VALUES ({merchant_id}, 'Beef', 'g', 1000, 1000, 'chef@bistro.test') RETURNING id"
        ),
    )
    .await;
    Seed {
        merchant_id,
        customer_id,
        product_id,
        order_id,
        ingredient_id,
    }
}

struct Case {
    name: &'static str,
    /// Must succeed first.
    setup: String,
    /// Must then fail on `constraint`.
    violation: String,
    constraint: &'static str,
}

#[tokio::test]
async fn constraints_reject_bad_rows_by_name() {
    // Arrange
    let test_db = TestDatabase::new().await;
    let db = admin_on_every_schema(&test_db).await;
    let s = seed(&db).await;
    let (m, c, p, o, i) = (
        s.merchant_id,
        s.customer_id,
        s.product_id,
        s.order_id,
        s.ingredient_id,
    );
    let shipped_order = Uuid::new_v4();
    let event = Uuid::new_v4();
    let cases = [
        Case {
            name: "negative stock at insert",
            setup: String::new(),
            violation: format!(
                "INSERT INTO ingredients (merchant_id, name, unit, stock, reference_level, merchant_email) \
                 VALUES ({m}, 'Salt', 'g', -1, 10, 'chef@bistro.test')"
            ),
            constraint: "ingredients_stock_non_negative",
        },
        Case {
            name: "stock driven below zero",
            setup: String::new(),
            violation: format!("UPDATE ingredients SET stock = stock - 1001 WHERE id = {i}"),
            constraint: "ingredients_stock_non_negative",
        },
        Case {
            name: "duplicate idempotency key of one customer",
            setup: format!(
                "INSERT INTO orders (id, customer_id, merchant_id, status, total_cents, currency, idempotency_key) \
                 VALUES ('{}', '{c}', {m}, 'pending', 0, 'EUR', 'key-1')",
                Uuid::new_v4()
            ),
            violation: format!(
                "INSERT INTO orders (id, customer_id, merchant_id, status, total_cents, currency, idempotency_key) \
                 VALUES ('{}', '{c}', {m}, 'pending', 0, 'EUR', 'key-1')",
                Uuid::new_v4()
            ),
            constraint: "orders_customer_idempotency_key",
        },
        Case {
            name: "second shipment for an order",
            setup: format!(
                "INSERT INTO shipments (id, order_id, status) VALUES ('{}', '{shipped_order}', 'pending')",
                Uuid::new_v4()
            ),
            violation: format!(
                "INSERT INTO shipments (id, order_id, status) VALUES ('{}', '{shipped_order}', 'pending')",
                Uuid::new_v4()
            ),
            constraint: "shipments_order_id_key",
        },
        Case {
            name: "event processed twice by one consumer",
            setup: format!(
                "INSERT INTO inbox (consumer, event_id) VALUES ('stock-orders-created', '{event}')"
            ),
            violation: format!(
                "INSERT INTO inbox (consumer, event_id) VALUES ('stock-orders-created', '{event}')"
            ),
            constraint: "inbox_pkey",
        },
        Case {
            name: "user email differing only in case",
            setup: String::new(),
            violation: format!(
                "INSERT INTO users (id, email, password_hash, role) \
                 VALUES ('{}', 'ann@EXAMPLE.test', '$argon2id$y', 'customer')",
                Uuid::new_v4()
            ),
            constraint: "users_email_key",
        },
        Case {
            name: "merchant user without a merchant",
            setup: String::new(),
            violation: format!(
                "INSERT INTO users (id, email, password_hash, role) \
                 VALUES ('{}', 'staff@bistro.test', '$argon2id$z', 'merchant')",
                Uuid::new_v4()
            ),
            constraint: "users_merchant_has_merchant_id",
        },
        Case {
            name: "unknown order status",
            setup: String::new(),
            violation: format!("UPDATE orders SET status = 'lost' WHERE id = '{o}'"),
            constraint: "orders_status_check",
        },
        Case {
            name: "order line quantity zero",
            setup: String::new(),
            violation: format!(
                "INSERT INTO order_lines (order_id, product_id, product_name, quantity, unit_price_cents, line_total_cents) \
                 VALUES ('{o}', {p}, 'Burger', 0, 1250, 0)"
            ),
            constraint: "order_lines_quantity_check",
        },
        Case {
            name: "an order reserving an ingredient twice",
            setup: format!(
                "INSERT INTO stock_movements (order_id, ingredient_id, delta, reason) VALUES ('{o}', {i}, -100, 'reserve')"
            ),
            violation: format!(
                "INSERT INTO stock_movements (order_id, ingredient_id, delta, reason) VALUES ('{o}', {i}, -100, 'reserve')"
            ),
            constraint: "stock_movements_order_ingredient_reason_key",
        },
        Case {
            name: "two notifications for one event",
            setup: format!(
                "INSERT INTO notifications (event_id, ingredient_id, ingredient_name, recipient, status) \
                 VALUES ('{event}', {i}, 'Beef', 'chef@bistro.test', 'pending')"
            ),
            violation: format!(
                "INSERT INTO notifications (event_id, ingredient_id, ingredient_name, recipient, status) \
                 VALUES ('{event}', {i}, 'Beef', 'chef@bistro.test', 'pending')"
            ),
            constraint: "notifications_event_id_key",
        },
        Case {
            name: "product name repeated by one merchant",
            setup: String::new(),
            violation: format!(
                "INSERT INTO products (merchant_id, name, price_cents) VALUES ({m}, 'Burger', 999)"
            ),
            constraint: "products_merchant_id_name_key",
        },
        Case {
            name: "negative price",
            setup: String::new(),
            violation: format!(
                "INSERT INTO products (merchant_id, name, price_cents) VALUES ({m}, 'Fries', -1)"
            ),
            constraint: "products_price_cents_check",
        },
    ];

    for case in cases {
        if !case.setup.is_empty() {
            exec(&db, &case.setup)
                .await
                .unwrap_or_else(|e| panic!("{}: the setup failed: {e}", case.name));
        }

        // Act
        let result = exec(&db, &case.violation).await;

        // Assert
        let err = result.expect_err(case.name);
        assert_eq!(
            violated_constraint(&err),
            Some(case.constraint),
            "{}: wrong error {err}",
            case.name
        );
    }
}

#[tokio::test]
async fn rows_the_constraints_must_allow_are_allowed() {
    // Arrange
    let test_db = TestDatabase::new().await;
    let db = admin_on_every_schema(&test_db).await;
    let s = seed(&db).await;
    let (m, c, i) = (s.merchant_id, s.customer_id, s.ingredient_id);
    let other_customer = Uuid::new_v4();
    let cases = [
        (
            "orders without an idempotency key never collide",
            format!(
                "INSERT INTO orders (id, customer_id, merchant_id, status, total_cents, currency) \
                 VALUES ('{}', '{c}', {m}, 'pending', 0, 'EUR'), ('{}', '{c}', {m}, 'pending', 0, 'EUR')",
                Uuid::new_v4(),
                Uuid::new_v4()
            ),
        ),
        (
            "one idempotency key used by two customers",
            format!(
                "INSERT INTO users (id, email, password_hash, role) \
                 VALUES ('{other_customer}', 'bob@example.test', '$argon2id$b', 'customer'); \
                 INSERT INTO orders (id, customer_id, merchant_id, status, total_cents, currency, idempotency_key) \
                 VALUES ('{}', '{c}', {m}, 'pending', 0, 'EUR', 'shared'), \
                        ('{}', '{other_customer}', {m}, 'pending', 0, 'EUR', 'shared')",
                Uuid::new_v4(),
                Uuid::new_v4()
            ),
        ),
        (
            "seeds and restocks have no order and may repeat",
            format!(
                "INSERT INTO stock_movements (ingredient_id, delta, reason) \
                 VALUES ({i}, 1000, 'seed'), ({i}, 500, 'restock'), ({i}, 500, 'restock')"
            ),
        ),
        (
            "stock may reach exactly zero",
            format!("UPDATE ingredients SET stock = 0 WHERE id = {i}"),
        ),
        (
            "a merchant user with its merchant",
            format!(
                "INSERT INTO users (id, email, password_hash, role, merchant_id) \
                 VALUES ('{}', 'staff@bistro.test', '$argon2id$s', 'merchant', {m})",
                Uuid::new_v4()
            ),
        ),
    ];

    for (name, sql) in cases {
        // Act + Assert
        exec(&db, &sql)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
