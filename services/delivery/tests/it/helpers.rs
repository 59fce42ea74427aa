//! `spawn_app(settings)`: a fresh database and JetStream namespace with the delivery service
//! running on them; plus helpers that read like what the tests check.

use async_nats::jetstream::message::StreamMessage;

use delivery::config::DeliverySettings;
use delivery::{Application, Config};
use entities::{outbox, shipments};
use larder_bus::outbox::Outbox;
pub use larder_bus::testing::eventually;
use larder_bus::testing::{Instances, TestNats, WAIT_AT_MOST};
use larder_bus::topology::{self, ConsumerSpec};
use larder_contract::events::{DeliveryEvent, OrderCancelled, OrderConfirmed};
use larder_contract::subjects;
use larder_contract::{Decode, Envelope, Event};
use migration::Service;
use migration::testing::TestDatabase;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

pub const MERCHANT_ID: i64 = 7;

/// A courier that dispatches `dispatch_delay_ms` after the confirmation and delivers
/// `deliver_delay_ms` after the dispatch.
pub fn courier(dispatch_delay_ms: u64, deliver_delay_ms: u64) -> DeliverySettings {
    DeliverySettings {
        dispatch_delay_ms,
        deliver_delay_ms,
        ..DeliverySettings::default()
    }
}

/// Short courier delays: dispatched 200 ms after the confirmation, delivered 400 ms later.
pub fn quick_courier() -> DeliverySettings {
    courier(200, 400)
}

/// A courier that never comes while a test runs: only forced steps happen.
pub fn idle_courier() -> DeliverySettings {
    courier(3_600_000, 3_600_000)
}

/// The `orders.confirmed` the stock service would publish for a new order.
pub fn confirmation() -> Envelope<OrderConfirmed> {
    Envelope::new(
        OrderConfirmed {
            order_id: Uuid::now_v7(),
            merchant_id: MERCHANT_ID,
            reserved: Vec::new(),
        },
        Some(format!("req-{}", Uuid::new_v4().simple())),
    )
}

/// The `orders.cancelled` the order service would publish for the confirmed order.
pub fn cancellation(confirmed: &Envelope<OrderConfirmed>) -> Envelope<OrderCancelled> {
    Envelope::new(
        OrderCancelled {
            order_id: confirmed.data.order_id,
            merchant_id: confirmed.data.merchant_id,
            release_stock: true,
        },
        confirmed.correlation_id.clone(),
    )
}

pub struct TestApp {
    pub test_db: TestDatabase,
    /// A pool as the delivery role, on its schema.
    pub db: DatabaseConnection,
    pub nats: TestNats,
    pub settings: DeliverySettings,
    instances: Instances<anyhow::Error>,
}

/// One delivery service instance on a fresh database and namespace.
pub async fn spawn_app(settings: DeliverySettings) -> TestApp {
    spawn_instances(1, settings).await
}

/// `count` delivery service instances sharing one fresh database and namespace.
pub async fn spawn_instances(count: usize, settings: DeliverySettings) -> TestApp {
    larder_bus::testing::init_tracing("info,delivery=debug");
    let test_db = TestDatabase::new().await;
    let db = test_db.connect(Service::Delivery).await;
    let mut app = TestApp {
        test_db,
        db,
        nats: TestNats::new().await,
        settings,
        instances: Instances::new("delivery"),
    };
    for _ in 0..count {
        app.start_instance().await;
    }
    app
}

impl TestApp {
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Production's config, pointed at this test's database and namespace.
    pub fn config(&self) -> Config {
        self.nats.service_config(
            self.test_db.config(Service::Delivery),
            self.settings.clone(),
        )
    }

    /// The outbox the service writes to, for calling the store as the order API does.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.nats.namespace().clone())
    }

    pub async fn start_instance(&mut self) {
        let app = Application::build(self.config())
            .await
            .expect("the delivery service starts");
        self.instances
            .spawn(|shutdown| app.run_until_stopped(shutdown));
    }

    /// Shuts every running instance down gracefully and checks they stopped cleanly.
    pub async fn stop_instances(&mut self) {
        self.instances.stop_all().await;
    }

    pub async fn stop(mut self) {
        self.stop_instances().await;
    }

    // --- JetStream -----------------------------------------------------------------------

    /// Publishes like the producer's relay: `Nats-Msg-Id` = envelope id.
    pub async fn publish<E: Event>(&self, event: &Envelope<E>) {
        self.nats.publish(event).await;
    }

    /// The same envelope under another `Nats-Msg-Id`: the broker stores it again.
    pub async fn publish_with_message_id<E: Event>(&self, event: &Envelope<E>, message_id: &str) {
        self.nats.publish_with_message_id(event, message_id).await;
    }

    /// Every message stored on `subject` (without namespace), in stream order.
    pub async fn messages_on(&self, subject: &str) -> Vec<StreamMessage> {
        self.nats.messages_on(subject).await
    }

    /// Every delivery event in the DELIVERY stream, in stream order.
    pub async fn delivery_events(&self) -> Vec<DeliveryEvent> {
        let mut messages = self.messages_on(subjects::DELIVERY_DISPATCHED).await;
        messages.extend(self.messages_on(subjects::DELIVERY_DELIVERED).await);
        messages.sort_by_key(|m| m.sequence);
        messages
            .iter()
            .map(|m| DeliveryEvent::decode(&m.payload).expect("a valid delivery event"))
            .collect()
    }

    /// The delivery events of one order as `dispatched` / `delivered`, in stream order.
    pub async fn steps_of(&self, order_id: Uuid) -> Vec<&'static str> {
        self.delivery_events()
            .await
            .iter()
            .filter(|e| e.order_id() == order_id)
            .map(DeliveryEventExt::step)
            .collect()
    }

    /// Waits until the consumer has settled every message of its subject.
    pub async fn wait_until_consumed(&self, spec: ConsumerSpec) {
        self.nats.wait_until_consumed(spec, WAIT_AT_MOST).await
    }

    /// Waits until both consumers have settled everything and every event written is published.
    pub async fn wait_until_settled(&self) {
        self.wait_until_consumed(topology::DELIVERY_ORDERS_CONFIRMED)
            .await;
        self.wait_until_consumed(topology::DELIVERY_ORDERS_CANCELLED)
            .await;
        self.wait_until_published().await;
    }

    /// Waits until the relay has published every event in the outbox.
    pub async fn wait_until_published(&self) {
        let db = self.db();
        eventually("the outbox is published", move || async move {
            unpublished_events(db).await == 0
        })
        .await;
    }

    /// Waits until the order's delivery events `steps` are in the stream, and returns them all.
    pub async fn wait_for_steps(&self, order_id: Uuid, steps: &[&str]) -> Vec<&'static str> {
        eventually(
            &format!("order {order_id} has the delivery events {steps:?}"),
            || async { self.steps_of(order_id).await.len() >= steps.len() },
        )
        .await;
        self.steps_of(order_id).await
    }

    // --- PostgreSQL ----------------------------------------------------------------------

    pub async fn shipment(&self, order_id: Uuid) -> Option<shipments::Model> {
        shipments::Entity::find()
            .filter(shipments::Column::OrderId.eq(order_id))
            .one(self.db())
            .await
            .expect("shipments can be read")
    }

    pub async fn shipment_count(&self) -> u64 {
        shipments::Entity::find()
            .count(self.db())
            .await
            .expect("shipments can be counted")
    }

    /// Every shipment, oldest first.
    pub async fn shipments(&self) -> Vec<shipments::Model> {
        shipments::Entity::find()
            .order_by_asc(shipments::Column::CreatedAt)
            .all(self.db())
            .await
            .expect("shipments can be read")
    }

    /// Waits until the order's shipment exists with `status`, and returns it.
    pub async fn wait_for_shipment(&self, order_id: Uuid, status: &str) -> shipments::Model {
        eventually(
            &format!("the shipment of {order_id} is {status}"),
            || async {
                self.shipment(order_id)
                    .await
                    .is_some_and(|s| s.status.as_str() == status)
            },
        )
        .await;
        self.shipment(order_id).await.expect("the shipment exists")
    }

    /// Publishes a new order's confirmation and waits for its pending shipment.
    pub async fn confirm_new_order(&self) -> (Envelope<OrderConfirmed>, shipments::Model) {
        let confirmed = confirmation();
        self.publish(&confirmed).await;
        let pending = self
            .wait_for_shipment(confirmed.data.order_id, "pending")
            .await;
        (confirmed, pending)
    }
}

pub async fn unpublished_events(db: &DatabaseConnection) -> u64 {
    outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_null())
        .count(db)
        .await
        .expect("the outbox can be read")
}

/// What the tests read off a delivery event.
pub trait DeliveryEventExt {
    fn order_id(&self) -> Uuid;
    fn shipment_id(&self) -> Uuid;
    fn step(&self) -> &'static str;
}

impl DeliveryEventExt for DeliveryEvent {
    fn order_id(&self) -> Uuid {
        match self {
            Self::Dispatched(e) => e.data.order_id,
            Self::Delivered(e) => e.data.order_id,
            Self::Cancelled(e) => e.data.order_id,
        }
    }

    fn shipment_id(&self) -> Uuid {
        match self {
            Self::Dispatched(e) => e.data.shipment_id,
            Self::Delivered(e) => e.data.shipment_id,
            Self::Cancelled(e) => e.data.shipment_id,
        }
    }

    fn step(&self) -> &'static str {
        match self {
            Self::Dispatched(_) => "dispatched",
            Self::Delivered(_) => "delivered",
            Self::Cancelled(_) => "cancelled",
        }
    }
}
