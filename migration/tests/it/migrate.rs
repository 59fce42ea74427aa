use migration::database::{self, DatabaseConfig};
use migration::testing::TestDatabase;
use migration::{ConnectionTrait, Migrator, MigratorTrait};
use uuid::Uuid;

use crate::helpers::{TABLES, applied_migrations, table_names};

fn migration_names() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

#[tokio::test]
async fn migrations_create_every_table_on_an_empty_database() {
    // Arrange
    let test_db = TestDatabase::new_unmigrated().await;
    assert!(
        table_names(&test_db.db).await.is_empty(),
        "a fresh database has no tables"
    );

    // Act
    database::migrate(&test_db.db)
        .await
        .expect("Failed to migrate");

    // Assert
    let mut expected: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    expected.push("seaql_migrations".to_owned());
    expected.sort();
    assert_eq!(table_names(&test_db.db).await, expected);
    let applied: Vec<String> = applied_migrations(&test_db.db)
        .await
        .into_iter()
        .map(|(version, _)| version)
        .collect();
    assert_eq!(applied, migration_names());
}

#[tokio::test]
async fn concurrent_migrations_apply_each_migration_once() {
    // Arrange: two pools on one empty database, like two instances starting at once.
    let test_db = TestDatabase::new_unmigrated().await;
    let first = database::connect(&test_db.config)
        .await
        .expect("first pool");
    let second = database::connect(&test_db.config)
        .await
        .expect("second pool");

    // Act
    let (a, b) = tokio::join!(database::migrate(&first), database::migrate(&second));

    // Assert
    a.expect("The first migrate failed");
    b.expect("The second migrate failed");
    let expected: Vec<(String, i64)> = migration_names().into_iter().map(|n| (n, 1)).collect();
    assert_eq!(applied_migrations(&test_db.db).await, expected);
    first.close().await.expect("close");
    second.close().await.expect("close");
}

#[tokio::test]
async fn concurrent_startups_create_and_migrate_the_database_once() {
    // Arrange: a database that does not exist yet, dropped by `_cleanup` however the test ends.
    let server = TestDatabase::new_unmigrated().await;
    let config: DatabaseConfig = server
        .config
        .with_database(&format!("larder_t_{}", Uuid::new_v4().simple()));
    let _cleanup = TestDatabase {
        config: config.clone(),
        db: server.db.clone(),
    };

    // Act
    let (a, b) = tokio::join!(
        database::connect_and_migrate(&config),
        database::connect_and_migrate(&config)
    );

    // Assert
    let a = a.expect("The first startup failed");
    let b = b.expect("The second startup failed");
    let expected: Vec<(String, i64)> = migration_names().into_iter().map(|n| (n, 1)).collect();
    assert_eq!(applied_migrations(&a).await, expected);
    a.close().await.expect("close");
    b.close().await.expect("close");
}

#[tokio::test]
async fn migrating_an_up_to_date_database_changes_nothing() {
    let test_db = TestDatabase::new().await;

    database::migrate(&test_db.db)
        .await
        .expect("Failed to migrate again");

    let expected: Vec<(String, i64)> = migration_names().into_iter().map(|n| (n, 1)).collect();
    assert_eq!(applied_migrations(&test_db.db).await, expected);
}

#[tokio::test]
async fn down_removes_everything_and_up_restores_it() {
    // Arrange
    let test_db = TestDatabase::new().await;

    // Act: every migration's down, newest first.
    Migrator::down(&test_db.db, None)
        .await
        .expect("Failed to roll back");

    // Assert
    assert_eq!(table_names(&test_db.db).await, vec!["seaql_migrations"]);
    assert!(applied_migrations(&test_db.db).await.is_empty());
    let functions = test_db
        .db
        .query_all_raw(migration::sea_orm::Statement::from_string(
            migration::sea_orm::DbBackend::Postgres,
            "SELECT proname FROM pg_proc WHERE proname = 'outbox_notify'",
        ))
        .await
        .expect("Failed to list functions");
    assert!(functions.is_empty(), "outbox_notify() survived its down");

    // Act: and up again.
    database::migrate(&test_db.db)
        .await
        .expect("Failed to migrate again");

    // Assert
    let mut expected: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    expected.push("seaql_migrations".to_owned());
    expected.sort();
    assert_eq!(table_names(&test_db.db).await, expected);
}

#[tokio::test]
async fn each_down_undoes_exactly_its_up() {
    // Roll back one migration at a time: each must leave the tables of the ones before it.
    let test_db = TestDatabase::new().await;
    let total = migration_names().len();

    for remaining in (0..total).rev() {
        Migrator::down(&test_db.db, Some(1))
            .await
            .unwrap_or_else(|e| panic!("Failed to roll back to {remaining} migrations: {e}"));
        assert_eq!(
            applied_migrations(&test_db.db).await.len(),
            remaining,
            "after rolling back to {remaining} migrations"
        );
    }
    assert_eq!(table_names(&test_db.db).await, vec!["seaql_migrations"]);
}
