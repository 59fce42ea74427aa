//! `spawn_app(settings)`: a fresh database and JetStream namespace with the notification service
//! running on them against an SMTP port (an inbox of the test's own is
//! `larder_test_support::MailInbox`); and helpers that read like what the tests check.

use async_nats::jetstream::consumer::PullConsumer;
use larder_bus::dlq::{self, DeadLetterRecord};
pub use larder_bus::testing::eventually;
use larder_bus::testing::{Instances, TestNats};
use larder_contract::Envelope;
use larder_contract::events::StockLow;
use migration::Service;
use migration::sea_orm::DatabaseConnection;
use migration::testing::TestDatabase;
use notification::Application;
use notification::config::NotificationSettings;
use uuid::Uuid;

use entities::notifications::{self, NotificationStatus};

pub const MERCHANT_EMAIL: &str = "chef@larder.test";

/// Settings for tests: short retries (1 s), a quick SMTP timeout, a breaker that opens after
/// two failures for 300 ms.
pub fn test_settings(smtp_port: u16) -> NotificationSettings {
    NotificationSettings {
        smtp_port,
        smtp_timeout_secs: 2,
        max_attempts: 4,
        retry_base_secs: 1,
        retry_max_secs: 1,
        breaker_failures: 2,
        breaker_cool_down_ms: 300,
        ..NotificationSettings::default()
    }
}

pub struct TestApp {
    /// Dropped with the app: drops the database and its roles.
    _test_db: TestDatabase,
    /// A pool as the notification role, on its schema.
    pub db: DatabaseConnection,
    pub nats: TestNats,
    instance: Instances<anyhow::Error>,
}

/// The notification service on a fresh database and namespace, sending to `settings`' SMTP
/// server.
pub async fn spawn_app(settings: NotificationSettings) -> TestApp {
    larder_bus::testing::init_tracing("info,notification=debug,larder_bus=debug");
    let test_db = TestDatabase::new().await;
    let db = test_db.connect(Service::Notification).await;
    let nats = TestNats::new().await;
    let config = nats.service_config(test_db.config(Service::Notification), settings);
    let app = Application::build(config)
        .await
        .expect("the notification service starts");
    let mut instance = Instances::new("notification");
    instance.spawn(|shutdown| app.run_until_stopped(shutdown));
    TestApp {
        _test_db: test_db,
        db,
        nats,
        instance,
    }
}

/// A `stock.low` for Beef at 49 % (9850 g of 20000 g), to [`MERCHANT_EMAIL`].
pub fn beef_is_low() -> Envelope<StockLow> {
    Envelope::new(
        StockLow {
            ingredient_id: 1,
            ingredient: "Beef".into(),
            unit: "g".into(),
            level: 9_850,
            reference_level: 20_000,
            percent: 49,
            merchant_id: 7,
            merchant_email: MERCHANT_EMAIL.into(),
            order_id: Some(Uuid::now_v7()),
        },
        Some(format!("req-{}", Uuid::new_v4().simple())),
    )
}

impl TestApp {
    /// Shuts the service down gracefully and checks it stopped cleanly.
    pub async fn stop(mut self) {
        self.instance.stop_all().await;
    }

    /// Publishes like the stock service's relay: `Nats-Msg-Id` = envelope id.
    pub async fn publish(&self, event: &Envelope<StockLow>) {
        self.nats.publish(event).await;
    }

    /// The same envelope under another `Nats-Msg-Id`: the broker stores and delivers it again.
    pub async fn publish_with_message_id(&self, event: &Envelope<StockLow>, message_id: &str) {
        self.nats.publish_with_message_id(event, message_id).await;
    }

    /// The notification row of an event.
    pub async fn notification(&self, event: &Envelope<StockLow>) -> Option<notifications::Model> {
        notification::store::find_by_event(&self.db, event.id)
            .await
            .expect("notifications can be read")
    }

    /// Waits until `event`'s email is sent, and returns its row.
    pub async fn wait_until_sent(&self, event: &Envelope<StockLow>) -> notifications::Model {
        self.notification_when(event, "the notification to be sent", |row| {
            row.status == NotificationStatus::Sent
        })
        .await
    }

    /// Waits until the row of `event` satisfies `check`, and returns it.
    pub async fn notification_when(
        &self,
        event: &Envelope<StockLow>,
        what: &str,
        check: impl Fn(&notifications::Model) -> bool,
    ) -> notifications::Model {
        eventually(what, || async {
            self.notification(event).await.filter(|row| check(row))
        })
        .await
    }

    /// Waits until the `stock.low` consumer has nothing pending and nothing unacked.
    pub async fn wait_until_consumer_is_drained(&self) {
        let ns = self.nats.namespace();
        let spec = larder_bus::topology::NOTIFICATION_STOCK_LOW;
        let stream = self
            .nats
            .jetstream
            .get_stream(ns.stream(spec.stream.name))
            .await
            .expect("the STOCK stream exists");
        let consumer: PullConsumer = stream
            .get_consumer(&ns.durable(spec.durable))
            .await
            .expect("the stock.low consumer exists");
        eventually("the stock.low consumer to be drained", || async {
            let info = consumer.get_info().await.expect("consumer info");
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        })
        .await;
    }

    /// The namespace's dead letters.
    pub async fn dead_letters(&self) -> Vec<DeadLetterRecord> {
        dlq::list(&self.nats.jetstream, self.nats.namespace(), 100)
            .await
            .expect("the DLQ stream can be read")
    }
}
