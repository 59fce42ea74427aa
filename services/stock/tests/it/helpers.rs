//! `spawn_app()`: a fresh database and JetStream namespace, the burger catalogue seeded, and the
//! stock service running on them; plus helpers that read like what the tests check.

use async_nats::jetstream::message::StreamMessage;

pub use larder_bus::testing::eventually;
use larder_bus::testing::{Instances, TestNats, WAIT_AT_MOST};
use larder_bus::topology::{self, ConsumerSpec};
use larder_contract::events::{IngredientAmount, OrderCancelled, OrderCreated, OrderedLine};
use larder_contract::{Envelope, Event};
use migration::Service;
use migration::testing::TestDatabase;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use stock::config::StockSettings;
use stock::store::{self, IngredientSeed};
use stock::{Application, Config};
use uuid::Uuid;

use entities::{ingredients, outbox, stock_movements};

pub const MERCHANT_ID: i64 = 7;
pub const MERCHANT_EMAIL: &str = "chef@larder.test";

/// SPEC §3's burger catalogue: Beef 20 kg, Cheese 5 kg, Onion 1 kg.
pub fn burger_seeds() -> Vec<IngredientSeed> {
    [("Beef", 20_000), ("Cheese", 5_000), ("Onion", 1_000)]
        .into_iter()
        .map(|(name, level)| IngredientSeed {
            name: name.into(),
            unit: "g".into(),
            level,
        })
        .collect()
}

/// The seeded ingredients.
#[derive(Clone, Debug)]
pub struct Catalogue {
    pub beef: ingredients::Model,
    pub cheese: ingredients::Model,
    pub onion: ingredients::Model,
}

impl Catalogue {
    /// A burger: 150 g beef, 30 g cheese, 20 g onion. Stock for exactly 50 (onion).
    pub fn burger_recipe(&self) -> Vec<IngredientAmount> {
        [(&self.beef, 150), (&self.cheese, 30), (&self.onion, 20)]
            .into_iter()
            .map(|(ingredient, amount)| IngredientAmount {
                ingredient_id: ingredient.id,
                amount,
            })
            .collect()
    }

    /// An `orders.created` for `quantity` burgers, with a correlation id of its own.
    pub fn burger_order(&self, quantity: i64) -> Envelope<OrderCreated> {
        Envelope::new(
            OrderCreated {
                order_id: Uuid::now_v7(),
                merchant_id: MERCHANT_ID,
                customer_id: Uuid::new_v4(),
                lines: vec![OrderedLine {
                    product_id: 1,
                    quantity,
                    recipe: self.burger_recipe(),
                }],
            },
            Some(format!("req-{}", Uuid::new_v4().simple())),
        )
    }
}

/// The `orders.cancelled` the order service would publish for `order`.
pub fn cancellation(
    order: &Envelope<OrderCreated>,
    release_stock: bool,
) -> Envelope<OrderCancelled> {
    Envelope::new(
        OrderCancelled {
            order_id: order.data.order_id,
            merchant_id: order.data.merchant_id,
            release_stock,
        },
        order.correlation_id.clone(),
    )
}

/// Seeds the burger catalogue for [`MERCHANT_ID`], in a transaction, as the order service does.
pub async fn seed_burger_stock(db: &DatabaseConnection) -> Catalogue {
    let txn = db.begin().await.expect("a transaction begins");
    let rows = store::seed_ingredients(&txn, MERCHANT_ID, MERCHANT_EMAIL, &burger_seeds())
        .await
        .expect("the catalogue seeds");
    txn.commit().await.expect("the seed commits");
    let [beef, cheese, onion]: [ingredients::Model; 3] =
        rows.try_into().expect("three ingredients, in input order");
    Catalogue {
        beef,
        cheese,
        onion,
    }
}

pub struct TestApp {
    pub test_db: TestDatabase,
    /// A pool as the stock role, on its schema.
    pub db: DatabaseConnection,
    pub nats: TestNats,
    pub catalogue: Catalogue,
    instances: Instances<anyhow::Error>,
    batch_size: usize,
}

/// A fresh database and namespace, the catalogue seeded, no instance running yet.
pub async fn spawn_stopped_app() -> TestApp {
    spawn_instances(0, StockSettings::default().batch_size).await
}

/// One stock service instance on a fresh database and namespace, the catalogue seeded.
pub async fn spawn_app() -> TestApp {
    spawn_instances(1, StockSettings::default().batch_size).await
}

/// `count` stock service instances sharing one fresh database and namespace, reserving up to
/// `batch_size` orders per transaction.
pub async fn spawn_instances(count: usize, batch_size: usize) -> TestApp {
    larder_bus::testing::init_tracing("info,stock=debug");
    let test_db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let db = test_db.connect(Service::Stock).await;
    let catalogue = seed_burger_stock(&db).await;
    let mut app = TestApp {
        test_db,
        db,
        nats,
        catalogue,
        instances: Instances::new("stock"),
        batch_size,
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
        let settings = StockSettings {
            batch_size: self.batch_size,
        };
        self.nats
            .service_config(self.test_db.config(Service::Stock), settings)
    }

    pub async fn start_instance(&mut self) {
        let app = Application::build(self.config())
            .await
            .expect("the stock service starts");
        self.instances
            .spawn(|shutdown| app.run_until_stopped(shutdown));
    }

    /// Shuts every instance down gracefully and checks they stopped cleanly.
    pub async fn stop(mut self) {
        self.instances.stop_all().await;
    }

    pub fn burger_order(&self, quantity: i64) -> Envelope<OrderCreated> {
        self.catalogue.burger_order(quantity)
    }

    // --- JetStream -----------------------------------------------------------------------

    /// Publishes like the order service's relay: `Nats-Msg-Id` = envelope id.
    pub async fn publish<E: Event>(&self, event: &Envelope<E>) {
        self.nats.publish(event).await;
    }

    /// The same envelope under another `Nats-Msg-Id`: the broker stores it again.
    pub async fn publish_with_message_id<E: Event>(&self, event: &Envelope<E>, message_id: &str) {
        self.nats.publish_with_message_id(event, message_id).await;
    }

    /// Many events with their acks in flight together.
    pub async fn publish_all<E: Event>(&self, events: &[Envelope<E>]) {
        self.nats.publish_all(events).await;
    }

    /// Arbitrary bytes on `subject` (without namespace).
    pub async fn publish_raw(&self, subject: &str, payload: Vec<u8>, message_id: &str) {
        self.nats.publish_raw(subject, payload, message_id).await;
    }

    /// Every message stored on `subject` (without namespace), in stream order.
    pub async fn messages_on(&self, subject: &str) -> Vec<StreamMessage> {
        self.nats.messages_on(subject).await
    }

    /// Every event of type `E` in the namespace's streams, in stream order.
    pub async fn events<E: Event>(&self) -> Vec<Envelope<E>> {
        self.messages_on(E::SUBJECT)
            .await
            .iter()
            .map(|m| serde_json::from_slice(&m.payload).expect("a valid envelope"))
            .collect()
    }

    /// Waits until the consumer has settled every message of its subject.
    pub async fn wait_until_consumed(&self, spec: ConsumerSpec) {
        self.nats.wait_until_consumed(spec, WAIT_AT_MOST).await
    }

    /// Waits until both consumers have settled everything and the relay has published every
    /// event they wrote.
    pub async fn wait_until_settled(&self) {
        self.wait_until_consumed(topology::STOCK_ORDERS_CREATED)
            .await;
        self.wait_until_consumed(topology::STOCK_ORDERS_CANCELLED)
            .await;
        let db = self.db();
        eventually("the outbox is published", move || async move {
            unpublished_events(db).await == 0
        })
        .await;
    }

    // --- PostgreSQL ----------------------------------------------------------------------

    pub async fn ingredient(&self, id: i64) -> ingredients::Model {
        ingredients::Entity::find_by_id(id)
            .one(self.db())
            .await
            .expect("ingredients can be read")
            .expect("the ingredient exists")
    }

    /// (name, stock) of the merchant's ingredients, by id.
    /// `(name, stock)` of every ingredient, as [`burger_stock`] writes them.
    pub async fn levels(&self) -> Vec<(String, i64)> {
        store::list_ingredients(self.db(), MERCHANT_ID)
            .await
            .expect("ingredients can be listed")
            .into_iter()
            .map(|i| (i.name, i.stock))
            .collect()
    }

    /// Publishes `event` and waits until every consumer has settled it.
    pub async fn publish_and_settle<E: Event>(&self, event: &Envelope<E>) {
        self.publish(event).await;
        self.wait_until_settled().await;
    }

    pub async fn movements_of_order(&self, order_id: Uuid) -> Vec<stock_movements::Model> {
        movements_of_order(self.db(), order_id).await
    }

    pub async fn movement_count(&self) -> u64 {
        stock_movements::Entity::find()
            .count(self.db())
            .await
            .expect("movements can be counted")
    }

    /// SPEC §2: the movements are the audit trail; their sum is the stock, for every ingredient.
    pub async fn assert_movements_sum_to_stock(&self) {
        assert_movements_sum_to_stock(self.db()).await;
    }
}

pub async fn unpublished_events(db: &DatabaseConnection) -> u64 {
    outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_null())
        .count(db)
        .await
        .expect("the outbox can be read")
}

pub async fn movements_of_order(
    db: &DatabaseConnection,
    order_id: Uuid,
) -> Vec<stock_movements::Model> {
    stock_movements::Entity::find()
        .filter(stock_movements::Column::OrderId.eq(order_id))
        .order_by_asc(stock_movements::Column::Id)
        .all(db)
        .await
        .expect("movements can be read")
}

/// SPEC §2: the movements are the audit trail; their sum is the stock, and no stock is negative.
pub async fn assert_movements_sum_to_stock(db: &DatabaseConnection) {
    let ingredients = ingredients::Entity::find().count(db).await;
    assert!(
        ingredients.expect("ingredients can be counted") > 0,
        "there are ingredients"
    );
    let found = stock::audit::find_inconsistencies(db)
        .await
        .expect("the stock can be audited");
    let found: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(found.is_empty(), "{}", found.join("; "));
}

/// The burger catalogue's levels, in [`TestApp::levels`]' order.
pub fn burger_stock(beef: i64, cheese: i64, onion: i64) -> Vec<(String, i64)> {
    vec![
        ("Beef".to_owned(), beef),
        ("Cheese".to_owned(), cheese),
        ("Onion".to_owned(), onion),
    ]
}
