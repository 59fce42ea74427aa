//! Provisioning and each service's migrator on a fresh database.

use migration::Service;
use migration::database::{self, DatabaseConfig};
use migration::provision;
use migration::sea_orm::ConnectionTrait;
use migration::testing::TestDatabase;
use uuid::Uuid;

use crate::helpers::{
    applied_migrations, assert_schema_complete, each_once, exec, scalar, table_names, tables_of,
};

#[tokio::test]
async fn provisioning_creates_every_schema_owned_by_its_role_on_an_empty_database() {
    // Arrange
    let test_db = TestDatabase::new_unmigrated().await;
    assert!(table_names(&test_db.db, "public").await.is_empty());

    // Act
    let provisioned = test_db.provision().await.expect("Failed to provision");

    // Assert
    assert_eq!(provisioned.adopted, None, "nothing to upgrade");
    assert!(
        table_names(&test_db.db, "public").await.is_empty(),
        "nothing lands in public"
    );
    for service in Service::ALL {
        assert_schema_complete(&test_db, service).await;
        let schema_owner: String = scalar(
            &test_db.db,
            &format!(
                "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = '{}'",
                service.schema()
            ),
        )
        .await;
        assert_eq!(schema_owner, test_db.role(service));
    }
}

#[tokio::test]
async fn orders_carry_the_shipment_facts() {
    let test_db = TestDatabase::new().await;

    let columns: Vec<String> = test_db
        .db
        .query_all_raw(migration::sea_orm::Statement::from_string(
            migration::sea_orm::DbBackend::Postgres,
            "SELECT column_name::text || ' ' || data_type::text || ' ' || is_nullable::text AS c \
             FROM information_schema.columns WHERE table_schema = 'order' AND table_name = 'orders' \
             AND column_name IN ('shipment_id', 'dispatched_at', 'delivered_at') ORDER BY 1",
        ))
        .await
        .expect("columns")
        .iter()
        .map(|row| row.try_get("", "c").expect("c"))
        .collect();

    assert_eq!(
        columns,
        [
            "delivered_at timestamp with time zone YES",
            "dispatched_at timestamp with time zone YES",
            "shipment_id uuid YES",
        ]
    );
}

#[tokio::test]
async fn concurrent_provisionings_apply_each_migration_once() {
    // Arrange: two admin pools on one empty database, like two `larder migrate` at once.
    let test_db = TestDatabase::new_unmigrated().await;
    let roles = provision::service_roles(&test_db.admin, &test_db.services).expect("roles");
    let first = database::connect(&test_db.admin).await.expect("first pool");
    let second = database::connect(&test_db.admin)
        .await
        .expect("second pool");

    // Act
    let (a, b) = tokio::join!(
        provision::provision_on(&first, &roles),
        provision::provision_on(&second, &roles)
    );

    // Assert
    a.expect("The first provisioning failed");
    b.expect("The second provisioning failed");
    for service in Service::ALL {
        assert_eq!(
            applied_migrations(&test_db.db, service).await,
            each_once(service)
        );
    }
    first.close().await.expect("close");
    second.close().await.expect("close");
}

#[tokio::test]
async fn migrate_creates_the_database_when_it_is_missing() {
    // Arrange: a database that does not exist yet, dropped by `_cleanup` however the test ends.
    let server = TestDatabase::new_unmigrated().await;
    let name = format!("larder_t_{}", Uuid::new_v4().simple());
    let admin: DatabaseConfig = server.admin.with_database(&name);
    let mut services = server.services.clone();
    for url in [
        &mut services.order_url,
        &mut services.stock_url,
        &mut services.delivery_url,
        &mut services.notification_url,
    ] {
        *url = url.replace(server.name(), &name);
    }
    let _cleanup = TestDatabase {
        admin: admin.clone(),
        db: server.db.clone(),
        services: services.clone(),
    };

    // Act
    provision::provision(&admin, &services)
        .await
        .expect("Failed to provision a missing database");

    // Assert: and each service starts on it.
    for service in Service::ALL {
        let db = database::connect_and_migrate(&services.config(service))
            .await
            .unwrap_or_else(|e| panic!("{service} failed to start: {e}"));
        assert_eq!(applied_migrations(&db, service).await, each_once(service));
        db.close().await.expect("close");
    }
}

#[tokio::test]
async fn concurrent_startups_of_a_service_migrate_its_schema_once() {
    // Arrange: provisioned, then the order service's history rolled back as a new release's
    // migrations would be pending.
    let test_db = TestDatabase::new().await;
    let order = test_db.connect(Service::Order).await;
    Service::Order
        .migrate_down(&order, Some(1))
        .await
        .expect("roll back the newest order migration");
    let config = test_db.config(Service::Order);

    // Act
    let (a, b) = tokio::join!(
        database::connect_and_migrate(&config),
        database::connect_and_migrate(&config)
    );

    // Assert
    let a = a.expect("The first startup failed");
    let b = b.expect("The second startup failed");
    assert_eq!(
        applied_migrations(&a, Service::Order).await,
        each_once(Service::Order)
    );
    a.close().await.expect("close");
    b.close().await.expect("close");
}

#[tokio::test]
async fn a_service_without_its_role_or_schema_says_to_run_larder_migrate() {
    // No role yet.
    let test_db = TestDatabase::new_unmigrated().await;
    let err = database::connect_and_migrate(&test_db.config(Service::Stock))
        .await
        .expect_err("the stock role does not exist yet");
    let message = err.to_string();
    assert!(message.contains("run `larder migrate`"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");

    // A role, but its schema gone.
    test_db.provision().await.expect("provision");
    exec(&test_db.db, "DROP SCHEMA stock CASCADE")
        .await
        .expect("drop the schema");
    let err = database::connect_and_migrate(&test_db.config(Service::Stock))
        .await
        .expect_err("the stock schema is gone");
    let message = err.to_string();
    assert!(
        message.contains("schema \"stock\" is missing") && message.contains("run `larder migrate`"),
        "{message}"
    );
}

#[tokio::test]
async fn provisioning_an_up_to_date_database_changes_nothing() {
    let test_db = TestDatabase::new().await;

    test_db
        .provision()
        .await
        .expect("Failed to provision again");

    for service in Service::ALL {
        assert_eq!(
            applied_migrations(&test_db.db, service).await,
            each_once(service)
        );
    }
}

#[tokio::test]
async fn down_removes_everything_and_up_restores_it() {
    let test_db = TestDatabase::new().await;
    for service in Service::ALL {
        // Arrange
        let db = test_db.connect(service).await;

        // Act: every migration's down, newest first.
        service
            .migrate_down(&db, None)
            .await
            .unwrap_or_else(|e| panic!("{service}: failed to roll back: {e}"));

        // Assert
        assert_eq!(
            table_names(&db, service.schema()).await,
            ["seaql_migrations"],
            "{service}"
        );
        assert!(applied_migrations(&db, service).await.is_empty());
        let functions: i64 = scalar(
            &db,
            &format!(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname = '{}'",
                service.schema()
            ),
        )
        .await;
        assert_eq!(functions, 0, "{service}: outbox_notify() survived its down");

        // Act: and up again, as the service's startup does.
        database::migrate(&db, service)
            .await
            .unwrap_or_else(|e| panic!("{service}: failed to migrate again: {e}"));

        // Assert
        assert_eq!(table_names(&db, service.schema()).await, tables_of(service));
    }
}

#[tokio::test]
async fn each_down_undoes_exactly_its_up() {
    // Roll back one migration at a time: each must leave the tables of the ones before it.
    let test_db = TestDatabase::new().await;
    for service in Service::ALL {
        let db = test_db.connect(service).await;
        let total = service.migration_names().len();
        for remaining in (0..total).rev() {
            service
                .migrate_down(&db, Some(1))
                .await
                .unwrap_or_else(|e| panic!("{service}: rolling back to {remaining}: {e}"));
            assert_eq!(
                applied_migrations(&db, service).await.len(),
                remaining,
                "{service}: after rolling back to {remaining} migrations"
            );
        }
        assert_eq!(
            table_names(&db, service.schema()).await,
            ["seaql_migrations"]
        );
    }
}
