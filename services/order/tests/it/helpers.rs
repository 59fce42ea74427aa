//! `spawn_app()` and helpers that read like the API.

use std::sync::LazyLock;
use std::time::Duration;

use larder_api_client::Client;
pub use larder_bus::testing::eventually;
use larder_bus::testing::{TestNats, WAIT_AT_MOST};
use larder_contract::Envelope;
use larder_contract::events::{
    DeliveryDelivered, DeliveryDispatched, OrderConfirmed, OrderRejected, Shortage,
};
use migration::Service;
use migration::sea_orm::DatabaseConnection;
use migration::testing::TestDatabase;
use order::config::OrderSettings;
use order::{Application, Config};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const MERCHANT_EMAIL: &str = "merchant@larder.local";
pub const MERCHANT_PASSWORD: &str = "merchant-password";

/// One Prometheus recorder per test binary (a process has one): every app serves `/metrics`.
static METRICS: LazyLock<metrics_exporter_prometheus::PrometheusHandle> = LazyLock::new(|| {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary")
});

pub struct TestApp {
    /// The order API of this app.
    pub api: Client,
    /// Dropped with the app: drops the database and its roles.
    _test_db: TestDatabase,
    /// A pool as the order role, on its schema.
    pub order_db: DatabaseConnection,
    pub nats: TestNats,
    shutdown: CancellationToken,
    server: Option<std::thread::JoinHandle<()>>,
}

/// Builds and runs the order service on a free port, on a thread and actix system of its own
/// (as in production: actors need the system, and sqlx needs its runtime alive while the app
/// shuts down). Dropping the `TestApp` shuts it down gracefully.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with some settings changed.
pub async fn spawn_app_with(change: impl FnOnce(&mut OrderSettings)) -> TestApp {
    spawn_app_on(TestDatabase::new().await, TestNats::new().await, change).await
}

/// [`spawn_app_with`] on the given database and NATS namespace (on servers of the test's own,
/// say, that it stops and starts).
pub async fn spawn_app_on(
    db: TestDatabase,
    nats: TestNats,
    change: impl FnOnce(&mut OrderSettings),
) -> TestApp {
    larder_bus::testing::init_tracing("info");
    let order_db = db.connect(Service::Order).await;
    let mut config = test_config(&db, &nats);
    change(&mut config.settings);
    let (port, shutdown, server) = start(config).await;
    TestApp {
        api: Client::new(&format!("http://127.0.0.1:{port}")),
        _test_db: db,
        order_db,
        nats,
        shutdown,
        server: Some(server),
    }
}

/// Runs an order service with `config` on a thread and actix system of its own; answers its
/// port, its shutdown signal and its thread.
async fn start(config: Config) -> (u16, CancellationToken, std::thread::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let (port_tx, port_rx) = tokio::sync::oneshot::channel();
    let stop = shutdown.clone();
    let server = std::thread::spawn(move || {
        let system = actix::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime")
        });
        system.block_on(async move {
            let app = Application::build(config)
                .await
                .expect("the order service builds")
                .with_metrics(METRICS.clone());
            let _ = port_tx.send(app.port());
            app.run_until_stopped(stop)
                .await
                .expect("the order service runs and stops cleanly");
        });
    });
    let port = port_rx.await.expect("the order service started");
    (port, shutdown, server)
}

/// Another instance of the order service on `app`'s database and namespace (as a second
/// `larder order` on another port would be), with some settings changed. Stopped on drop.
pub struct OtherInstance {
    /// This instance's API, through `app`'s connection pool.
    pub api: Client,
    shutdown: CancellationToken,
    server: Option<std::thread::JoinHandle<()>>,
}

pub async fn spawn_other_instance(
    app: &TestApp,
    change: impl FnOnce(&mut OrderSettings),
) -> OtherInstance {
    let mut config = config_for(app);
    change(&mut config.settings);
    let (port, shutdown, server) = start(config).await;
    OtherInstance {
        api: Client::with_http(app.api.http().clone(), &format!("http://127.0.0.1:{port}")),
        shutdown,
        server: Some(server),
    }
}

impl Drop for OtherInstance {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// The configuration of `app`, for building a second service on its database and namespace.
pub fn config_for(app: &TestApp) -> Config {
    test_config(&app._test_db, &app.nats)
}

/// The order service of a test on `db` and `nats`: a free port, and an outbox relay that polls
/// often enough for a test's waits.
fn test_config(db: &TestDatabase, nats: &TestNats) -> Config {
    let settings = OrderSettings {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        ..OrderSettings::default()
    };
    nats.service_config(db.config(Service::Order), settings)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Close our idle keep-alive connections so the graceful shutdown has nothing to wait for.
        self.api = Client::new(self.api.base_url());
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

impl TestApp {
    /// Waits (up to [`WAIT_AT_MOST`]) until the order is in `status`; panics with the last
    /// answer otherwise.
    pub async fn wait_for_status(&self, token: &str, id: Uuid, status: &str) {
        self.api
            .wait_for_status(token, id, status, WAIT_AT_MOST)
            .await
            .unwrap_or_else(|error| panic!("order {id} never became {status}: {error}"));
    }
    /// This test's database (admin connection, name, roles).
    pub fn test_db(&self) -> &TestDatabase {
        &self._test_db
    }

    /// The usual start of a test: the seeded burger's product id (see [`TestApp::seed`]) and a
    /// new customer's token.
    pub async fn burger_and_customer(&self) -> (i64, String) {
        let burger = self.seed().await;
        let customer = self.api.new_customer().await.unwrap();
        (burger, customer)
    }

    /// A new customer's order of one burger, accepted (202) and so pending (no stock runs
    /// here): the customer's token and the order's id.
    pub async fn placed_order(&self) -> (String, Uuid) {
        let (burger, customer) = self.burger_and_customer().await;
        let id = self.api.place_one(&customer, burger).await.unwrap();
        (customer, id)
    }

    /// A token of the bootstrap merchant.
    pub async fn merchant_token(&self) -> String {
        self.api
            .sign_in(MERCHANT_EMAIL, MERCHANT_PASSWORD)
            .await
            .unwrap()
    }

    /// Puts the burger in the bootstrap merchant's catalogue and returns its product id. Only
    /// this service's side: the ingredients belong to the stock service, which these tests do
    /// not run (`POST /order/seed` asks it; the e2e suite covers that), so the recipe names
    /// ingredient ids 1, 2 and 3.
    pub async fn seed(&self) -> i64 {
        use order::domain::burger_catalogue;
        let merchant = order::store::find_user_by_email(&self.order_db, MERCHANT_EMAIL)
            .await
            .unwrap()
            .expect("the bootstrap merchant exists");
        let recipe: Vec<larder_contract::events::IngredientAmount> = burger_catalogue::RECIPE
            .iter()
            .zip(1..)
            .map(
                |((_, amount), ingredient_id)| larder_contract::events::IngredientAmount {
                    ingredient_id,
                    amount: *amount,
                },
            )
            .collect();
        let product = order::store::upsert_product_with_recipe(
            &self.order_db,
            merchant
                .merchant_id
                .expect("a merchant user has a merchant"),
            burger_catalogue::PRODUCT,
            burger_catalogue::PRODUCT_PRICE_CENTS,
            &recipe,
        )
        .await
        .unwrap();
        product.id
    }

    /// The count a `SELECT count(*) ...` of the order schema answers.
    pub async fn count(&self, sql: &str) -> i64 {
        let row = sea_orm::ConnectionTrait::query_one_raw(
            &self.order_db,
            sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql),
        )
        .await
        .unwrap()
        .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }
}

/// One burger line.
pub fn burgers(product_id: i64, quantity: i64) -> Value {
    json!({ "products": [{ "product_id": product_id, "quantity": quantity }] })
}

/// Asserts that `response` has `status` and returns its JSON body (shown when the status is
/// another).
pub async fn assert_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Asserts a problem+json response and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, context: &str) -> Value {
    assert_eq!(response.status(), status, "{context}");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{context}: content type {content_type}"
    );
    assert!(
        response.headers().contains_key("x-request-id"),
        "{context}: no request id header"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16(), "{context}: {body}");
    assert!(
        body["type"].is_string() && body["title"].is_string(),
        "{context}: {body}"
    );
    assert!(
        body["request_id"].is_string(),
        "{context}: no request id in {body}"
    );
    body
}

/// Publishes `event` on the test's namespace as its producer would (with a fresh message id).
pub async fn publish<E: larder_contract::Event>(
    app: &TestApp,
    event: &larder_contract::Envelope<E>,
) {
    let message = async_nats::jetstream::message::PublishMessage::build()
        .payload(serde_json::to_vec(event).unwrap().into())
        .message_id(uuid::Uuid::new_v4().to_string());
    app.nats
        .jetstream
        .send_publish(app.nats.namespace().subject(E::SUBJECT), message)
        .await
        .unwrap()
        .await
        .unwrap();
}

/// One Server-Sent Event as a client sees it.
#[derive(Debug)]
pub struct SseEvent {
    pub event: String,
    pub id: String,
    pub data: Value,
}

/// Reads a `text/event-stream` response event by event (keep-alive comments skipped).
pub struct SseReader {
    response: Response,
    buffer: String,
}

impl SseReader {
    pub fn new(response: Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK, "an event stream");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content type {content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event; `None` when the server ended the stream. Fails after 10 s.
    pub async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(Duration::from_secs(10), self.next_unbounded())
            .await
            .expect("an event or the end of the stream within 10 s")
    }

    async fn next_unbounded(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if !data.is_empty() {
                    return Some(SseEvent {
                        event,
                        id,
                        data: serde_json::from_str(&data).expect("JSON data"),
                    });
                }
            }
            match self.response.chunk().await.expect("the stream reads") {
                Some(chunk) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                None => return None,
            }
        }
    }
}

/// A stand-in for another service (`larder_contract::commands::services::STOCK`, say) on this
/// app's NATS, `description` saying how it answers; it serves nothing until the test says what.
pub async fn stand_in(
    app: &TestApp,
    service: &str,
    description: &str,
) -> larder_bus::service::CommandService {
    larder_bus::service::CommandService::start(
        &app.nats.client,
        app.nats.namespace(),
        service,
        description,
        "0.0.0",
    )
    .await
    .unwrap_or_else(|e| panic!("the stand-in {service} service starts: {e}"))
}

/// A stand-in for the delivery service's `cancel-shipment` endpoint on this app's NATS: it
/// agrees to every cancel, as delivery does for an order whose shipment has not left (or that
/// has none yet). Without it (or after `stop()`), a cancel finds no delivery to ask: 503.
pub async fn delivery_agreeing_to_cancels(app: &TestApp) -> larder_bus::service::CommandService {
    use larder_contract::commands::{CancelShipment, ShipmentState, services::DELIVERY};
    let mut service = stand_in(app, DELIVERY, "a test's delivery: agrees to every cancel").await;
    service
        .serve(|command: CancelShipment| async move {
            Ok(ShipmentState {
                id: uuid::Uuid::new_v4(),
                order_id: command.order_id,
                status: "cancelled".into(),
                dispatched_at: None,
                delivered_at: None,
            })
        })
        .await
        .expect("the stand-in serves cancel-shipment");
    service
}

/// The events stock and delivery would publish for an order of the seeded merchant (1).
pub fn confirmed(order_id: Uuid) -> Envelope<OrderConfirmed> {
    Envelope::new(
        OrderConfirmed {
            order_id,
            merchant_id: 1,
            reserved: vec![],
        },
        None,
    )
}

/// A rejection for a shortage of onion (20 g needed, 5 g left).
pub fn rejected(order_id: Uuid) -> Envelope<OrderRejected> {
    rejected_for(
        order_id,
        vec![Shortage {
            ingredient_id: 3,
            ingredient: "Onion".into(),
            required: 20,
            available: 5,
        }],
    )
}

pub fn rejected_for(order_id: Uuid, shortages: Vec<Shortage>) -> Envelope<OrderRejected> {
    Envelope::new(
        OrderRejected {
            order_id,
            merchant_id: 1,
            shortages,
        },
        None,
    )
}

pub fn dispatched(order_id: Uuid, shipment_id: Uuid) -> Envelope<DeliveryDispatched> {
    Envelope::new(
        DeliveryDispatched {
            order_id,
            shipment_id,
            at: chrono::Utc::now(),
        },
        None,
    )
}

pub fn delivered(order_id: Uuid, shipment_id: Uuid) -> Envelope<DeliveryDelivered> {
    Envelope::new(
        DeliveryDelivered {
            order_id,
            shipment_id,
            at: chrono::Utc::now(),
        },
        None,
    )
}
