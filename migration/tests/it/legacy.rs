//! The upgrade from the single-schema layout (tests/fixtures/legacy_schema.sql: what the seven
//! legacy migrations left) keeps every row, in the schema of the service that owns it.

use migration::Service;
use migration::database;
use migration::legacy::LEGACY_MIGRATIONS;
use migration::testing::TestDatabase;
use uuid::Uuid;

use crate::helpers::{assert_schema_complete, exec, scalar, table_names};

const LEGACY_SCHEMA: &str = include_str!("../fixtures/legacy_schema.sql");

/// Ids of the rows [`populate`] wrote.
struct Legacy {
    dispatched_order: Uuid,
    delivered_order: Uuid,
    pending_order: Uuid,
    dispatched_shipment: Uuid,
    delivered_shipment: Uuid,
    /// Unpublished outbox rows by the service that must get them.
    outbox: Vec<(Service, Uuid)>,
}

async fn legacy_database() -> (TestDatabase, Legacy) {
    let test_db = TestDatabase::new_unmigrated().await;
    exec(&test_db.db, LEGACY_SCHEMA)
        .await
        .expect("the legacy fixture loads");
    let legacy = populate(&test_db).await;
    (test_db, legacy)
}

async fn populate(test_db: &TestDatabase) -> Legacy {
    let (customer, dispatched_order, delivered_order, pending_order) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let (dispatched_shipment, delivered_shipment) = (Uuid::new_v4(), Uuid::new_v4());
    let mut sql = format!(
        "INSERT INTO merchants (name, email) VALUES ('Bistro', 'chef@bistro.test'), ('Cafe', 'cafe@cafe.test');
         INSERT INTO users (id, email, password_hash, role) VALUES ('{customer}', 'ann@example.test', '$argon2id$x', 'customer');
         INSERT INTO users (id, email, password_hash, role, merchant_id) VALUES ('{}', 'staff@bistro.test', '$argon2id$y', 'merchant', 1);
         INSERT INTO products (merchant_id, name, price_cents) VALUES (1, 'Burger', 1250);
         INSERT INTO ingredients (merchant_id, name, unit, stock, reference_level, merchant_email)
             VALUES (1, 'Beef', 'g', 19700, 20000, 'chef@bistro.test'), (1, 'Cheese', 'g', 5000, 5000, 'chef@bistro.test');
         INSERT INTO recipe_lines (product_id, ingredient_id, amount) VALUES (1, 1, 150), (1, 2, 30);
         INSERT INTO stock_movements (order_id, ingredient_id, delta, reason) VALUES
             (NULL, 1, 20000, 'seed'), (NULL, 2, 5000, 'seed'), ('{dispatched_order}', 1, -150, 'reserve'), ('{delivered_order}', 1, -150, 'reserve');
         INSERT INTO shipments (id, order_id, status, dispatched_at, delivered_at, correlation_id) VALUES
             ('{dispatched_shipment}', '{dispatched_order}', 'dispatched', '2026-11-30 10:00:00+00', NULL, 'req-1'),
             ('{delivered_shipment}', '{delivered_order}', 'delivered', '2026-11-30 11:00:00+00', '2026-11-30 11:05:00+00', 'req-2');
         INSERT INTO notifications (event_id, ingredient_id, ingredient_name, recipient, status)
             VALUES ('{}', 1, 'Beef', 'chef@bistro.test', 'sent');
         INSERT INTO outbox (id, subject, payload, published_at) VALUES ('{}', 'orders.created', '{{}}', now());
         INSERT INTO inbox (consumer, event_id) VALUES
             ('stock-orders-created', '{}'), ('stock-orders-created', '{}'), ('t1a2b-order-orders-confirmed', '{}'),
             ('delivery-orders-confirmed', '{}'), ('notification-stock-low', '{}'), ('mystery-consumer', '{}');
        ",
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    for (order, status) in [
        (dispatched_order, "dispatched"),
        (delivered_order, "delivered"),
        (pending_order, "pending"),
    ] {
        sql.push_str(&format!(
            "INSERT INTO orders (id, customer_id, merchant_id, status, total_cents, currency)
                 VALUES ('{order}', '{customer}', 1, '{status}', 1250, 'EUR');
             INSERT INTO order_lines (order_id, product_id, product_name, quantity, unit_price_cents, line_total_cents)
                 VALUES ('{order}', 1, 'Burger', 1, 1250, 1250);
             INSERT INTO order_status_history (order_id, status) VALUES ('{order}', 'pending');"
        ));
    }
    let mut outbox = Vec::new();
    for (service, subject) in [
        (Service::Order, "orders.created"),
        (Service::Order, "t1a2b.orders.cancelled"),
        (Service::Stock, "orders.confirmed"),
        (Service::Stock, "t1a2b.stock.low"),
        (Service::Delivery, "delivery.dispatched"),
        (Service::Delivery, "t9.delivery.delivered"),
    ] {
        let id = Uuid::new_v4();
        sql.push_str(&format!(
            "INSERT INTO outbox (id, subject, payload, headers) VALUES ('{id}', '{subject}', '{{\"n\": 1}}', '{{\"Event-Type\": \"x\"}}');"
        ));
        outbox.push((service, id));
    }
    exec(&test_db.db, &sql)
        .await
        .expect("the legacy rows insert");
    Legacy {
        dispatched_order,
        delivered_order,
        pending_order,
        dispatched_shipment,
        delivered_shipment,
        outbox,
    }
}

async fn count(test_db: &TestDatabase, table: &str) -> i64 {
    scalar(&test_db.db, &format!("SELECT count(*) FROM {table}")).await
}

#[tokio::test]
async fn a_populated_single_schema_database_upgrades_with_its_data() {
    // Arrange
    let (test_db, legacy) = legacy_database().await;
    let mut before = Vec::new();
    for service in Service::ALL {
        for table in migration::legacy::tables_of(service) {
            before.push((
                service,
                *table,
                count(&test_db, &format!("public.{table}")).await,
            ));
        }
    }

    // Act
    let provisioned = test_db.provision().await.expect("Failed to upgrade");

    // Assert: what it reports.
    let adopted = provisioned.adopted.expect("the legacy layout was adopted");
    assert_eq!(adopted.tables_moved, 11);
    assert_eq!(
        adopted.outbox_rows.values().sum::<u64>(),
        6,
        "{adopted:?}: only the unpublished rows"
    );
    assert_eq!(adopted.inbox_rows.get(&Service::Stock), Some(&2));
    assert_eq!(adopted.inbox_rows.get(&Service::Order), Some(&1));
    assert_eq!(adopted.unknown_consumers, ["mystery-consumer"]);
    assert_eq!(adopted.orders_backfilled, 2);

    // Public is empty: no table, no trigger function.
    assert!(table_names(&test_db.db, "public").await.is_empty());
    let functions: i64 = scalar(
        &test_db.db,
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace",
    )
    .await;
    assert_eq!(functions, 0);

    for service in Service::ALL {
        // Tables, history (the baseline recorded, the later migrations applied), owners.
        assert_schema_complete(&test_db, service).await;
    }
    // Every row where it was.
    for (service, table, rows) in before {
        assert_eq!(
            count(&test_db, &format!("{}.{table}", service.quoted_schema())).await,
            rows,
            "{service}.{table}"
        );
    }
    // The outbox rows in flight, each with its producer.
    for (service, id) in &legacy.outbox {
        let found: i64 = scalar(
            &test_db.db,
            &format!(
                "SELECT count(*) FROM {}.outbox WHERE id = '{id}' AND published_at IS NULL \
                 AND payload = '{{\"n\": 1}}' AND headers = '{{\"Event-Type\": \"x\"}}'",
                service.quoted_schema()
            ),
        )
        .await;
        assert_eq!(found, 1, "{service} outbox row {id}");
    }
    assert_eq!(count(&test_db, "notification.outbox").await, 0);
    assert_eq!(count(&test_db, "notification.inbox").await, 1);
    assert_eq!(count(&test_db, "delivery.inbox").await, 1);

    // Orders keep the shipment facts delivery reported.
    let order = test_db.connect(Service::Order).await;
    let facts = |id: Uuid| {
        format!(
            "SELECT concat_ws(' ', shipment_id::text, to_char(dispatched_at AT TIME ZONE 'UTC', 'HH24:MI'), \
             to_char(delivered_at AT TIME ZONE 'UTC', 'HH24:MI')) FROM orders WHERE id = '{id}'"
        )
    };
    let dispatched: String = scalar(&order, &facts(legacy.dispatched_order)).await;
    assert_eq!(dispatched, format!("{} 10:00", legacy.dispatched_shipment));
    let delivered: String = scalar(&order, &facts(legacy.delivered_order)).await;
    assert_eq!(
        delivered,
        format!("{} 11:00 11:05", legacy.delivered_shipment)
    );
    let pending: String = scalar(&order, &facts(legacy.pending_order)).await;
    assert_eq!(pending, "");

    // The identity sequences moved with their tables and go on counting.
    let merchant: i64 = scalar(
        &order,
        "INSERT INTO merchants (name, email) VALUES ('Diner', 'd@diner.test') RETURNING id",
    )
    .await;
    assert_eq!(merchant, 3);

    // Each service starts on it, and a second `larder migrate` finds nothing to do.
    for service in Service::ALL {
        database::connect_and_migrate(&test_db.config(service))
            .await
            .unwrap_or_else(|e| panic!("{service} failed to start: {e}"))
            .close()
            .await
            .expect("close");
    }
    let again = test_db
        .provision()
        .await
        .expect("Failed to provision again");
    assert_eq!(again.adopted, None);
}

#[tokio::test]
async fn an_upgrade_that_cannot_place_a_row_changes_nothing() {
    // Arrange: an unpublished event no service publishes.
    let (test_db, _legacy) = legacy_database().await;
    exec(
        &test_db.db,
        &format!(
            "INSERT INTO outbox (id, subject, payload) VALUES ('{}', 'billing.invoiced', '{{}}')",
            Uuid::new_v4()
        ),
    )
    .await
    .expect("insert");

    // Act
    let err = test_db.provision().await.expect_err("the row has no owner");

    // Assert: the whole upgrade rolled back.
    assert!(err.to_string().contains("billing.invoiced"), "{err}");
    let mut legacy_tables: Vec<String> = Service::ALL
        .into_iter()
        .flat_map(|s| {
            migration::legacy::tables_of(s)
                .iter()
                .map(|t| t.to_string())
        })
        .chain(["inbox", "outbox", "seaql_migrations"].map(String::from))
        .collect();
    legacy_tables.sort();
    assert_eq!(table_names(&test_db.db, "public").await, legacy_tables);
    let versions: i64 = count(&test_db, "public.seaql_migrations").await;
    assert_eq!(versions, LEGACY_MIGRATIONS.len() as i64);
    let schemas: i64 = scalar(
        &test_db.db,
        "SELECT count(*) FROM pg_namespace WHERE nspname IN ('order', 'stock', 'delivery', 'notification')",
    )
    .await;
    assert_eq!(schemas, 0);
}
