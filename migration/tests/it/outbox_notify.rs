use std::time::Duration;

use migration::sea_orm::sqlx::postgres::PgListener;
use migration::testing::TestDatabase;
use uuid::Uuid;

use crate::helpers::exec;

#[tokio::test]
async fn inserting_into_the_outbox_notifies_the_relay() {
    // Arrange
    let test_db = TestDatabase::new().await;
    let mut listener = PgListener::connect_with(test_db.db.get_postgres_connection_pool())
        .await
        .expect("Failed to connect a listener");
    listener
        .listen("larder_outbox")
        .await
        .expect("Failed to LISTEN");

    // Act
    exec(
        &test_db.db,
        &format!(
            "INSERT INTO outbox (id, subject, payload) VALUES ('{}', 'orders.created', '{{}}')",
            Uuid::new_v4()
        ),
    )
    .await
    .expect("Failed to insert into the outbox");

    // Assert
    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("No NOTIFY within 10 s")
        .expect("The listener failed");
    assert_eq!(notification.channel(), "larder_outbox");
    assert_eq!(notification.payload(), "");
}
