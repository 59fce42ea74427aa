use std::time::Duration;

use migration::Service;
use migration::sea_orm::sqlx::postgres::PgListener;
use migration::testing::TestDatabase;
use uuid::Uuid;

use crate::helpers::exec;

#[tokio::test]
async fn inserting_into_a_service_outbox_notifies_that_service_relay_only() {
    // Arrange: a listener on every service's channel.
    let test_db = TestDatabase::new().await;
    let mut listener = PgListener::connect_with(test_db.db.get_postgres_connection_pool())
        .await
        .expect("Failed to connect a listener");
    let channels: Vec<&str> = Service::ALL.iter().map(|s| s.outbox_channel()).collect();
    listener
        .listen_all(channels)
        .await
        .expect("Failed to LISTEN");
    let stock = test_db.connect(Service::Stock).await;

    // Act
    exec(
        &stock,
        &format!(
            "INSERT INTO outbox (id, subject, payload) VALUES ('{}', 'orders.confirmed', '{{}}')",
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
    assert_eq!(notification.channel(), "larder_outbox_stock");
    assert_eq!(notification.payload(), "");
    let another = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(another.is_err(), "a second notification: {another:?}");
}
