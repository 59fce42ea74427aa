//! The stack under test: `larder` child processes and a maildev inbox; the API is `stack.api`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use larder_api_client::Client;
pub use larder_bus::testing::eventually;
use larder_bus::testing::{TestNats, WAIT_AT_MOST};
use larder_test_support::MailInbox;
use migration::Service;
use migration::testing::{Auth, PostgresServer, TestDatabase};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

pub const MERCHANT_EMAIL: &str = "merchant@larder.local";
pub const MERCHANT_PASSWORD: &str = "merchant-password";

/// A loopback port nobody listens on (yet), for a process the test starts.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL server of the test's own (trust authentication), for a test that stops and
/// starts it.
pub fn own_postgres() -> PostgresServer {
    PostgresServer::start(Auth::Trust).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries under /usr/lib/postgresql: ./stack.sh test installs them"
        )
    })
}

/// What a script the test ran wrote, its stdout then its stderr; printed too, so the test's
/// output shows it when the test fails (or with --nocapture).
pub fn print_report(output: &std::process::Output) -> String {
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    report
}

/// `larder all` (plus any extra instances) on a database, namespace and inbox of its own.
pub struct Stack {
    /// The order API of this stack.
    pub api: Client,
    pub db: TestDatabase,
    pub nats: TestNats,
    pub mail: MailInbox,
    http_port: u16,
    processes: Vec<Child>,
    /// Processes started so far, respawns included: names each one's log.
    spawned: usize,
    env: Vec<(String, String)>,
}

impl Stack {
    /// The merchant's ingredient called `name`.
    pub async fn ingredient(&self, merchant: &str, name: &str) -> larder_api_client::Ingredient {
        let ingredients = self.api.ingredients(merchant).await.unwrap();
        let found = ingredients.into_iter().find(|i| i.name == name);
        found.unwrap_or_else(|| panic!("no ingredient {name}"))
    }

    /// The usual cast of a test: (the bootstrap merchant's token, its seeded burger's product
    /// id, a new customer's token).
    pub async fn shop(&self) -> (String, i64, String) {
        let merchant = self.merchant().await;
        let burger = self.seed(&merchant).await;
        let customer = self.api.new_customer().await.unwrap();
        (merchant, burger, customer)
    }
    /// Waits (up to [`WAIT_AT_MOST`]) until the order is in `status`; panics with the last
    /// answer otherwise.
    pub async fn wait_for_status(&self, token: &str, id: Uuid, status: &str) {
        self.api
            .wait_for_status(token, id, status, WAIT_AT_MOST)
            .await
            .unwrap_or_else(|error| panic!("order {id} never became {status}: {error}"));
    }

    /// Places an order of `quantity` burgers (`product_id`) as `customer` and waits until it is
    /// in `status`; answers its id.
    pub async fn place_and_wait_for(
        &self,
        customer: &str,
        product_id: i64,
        quantity: i64,
        status: &str,
    ) -> Uuid {
        let id = self
            .api
            .place(customer, product_id, quantity)
            .await
            .unwrap();
        self.wait_for_status(customer, id, status).await;
        id
    }

    /// Waits until the order is in one of `statuses` (where the services' timers decide which,
    /// or which comes first); answers the one it is in.
    pub async fn wait_for_one_of(&self, token: &str, id: Uuid, statuses: &[&str]) -> String {
        eventually(&format!("order {id} is one of {statuses:?}"), || async {
            let status = self.api.order(token, id).await.unwrap().status;
            statuses.contains(&status.as_str()).then_some(status)
        })
        .await
    }

    /// Signs up a merchant (`POST /auth/merchants`, 201) of a fresh login and returns its token.
    pub async fn sign_up_merchant(&self, name: &str, alert_email: &str, currency: &str) -> String {
        let login = format!("owner-{}@merchant.example", Uuid::new_v4().simple());
        let body = json!({
            "name": name, "alert_email": alert_email, "currency": currency,
            "email": login, "password": "merchant-password",
        });
        let signed_up = self
            .api
            .post_anonymous("/auth/merchants", &body)
            .await
            .unwrap();
        assert_eq!(signed_up.status(), StatusCode::CREATED, "sign-up of {name}");
        self.api.sign_in(&login, "merchant-password").await.unwrap()
    }

    /// Waits until the order service at `base_url` (this stack's, or another instance's) answers
    /// `GET /ready` with 200.
    pub async fn wait_until_ready(&self, base_url: &str) {
        let ready = format!("{base_url}/ready");
        eventually(&format!("{base_url} is ready"), || async {
            self.api
                .http()
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
    }

    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with extra environment for every process, e.g. slower delivery.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        Self::start_processes(env, &[&["all"]]).await
    }

    /// Every service as a process of its own, as in production: `larder order`, `stock`,
    /// `delivery` and `notification` (processes 0 to 3, in that order).
    pub async fn start_separately() -> Self {
        Self::start_processes(
            &[],
            &[&["order"], &["stock"], &["delivery"], &["notification"]],
        )
        .await
    }

    /// [`Stack::start_separately`] on the given NATS and database (both on servers of the
    /// test's own, say, that it stops and starts).
    pub async fn start_separately_on_servers(nats: TestNats, db: TestDatabase) -> Self {
        Self::start_processes_on(
            nats,
            db,
            &[],
            &[&["order"], &["stock"], &["delivery"], &["notification"]],
        )
        .await
    }

    /// `larder all` on the given NATS (a cluster's namespace, say), with extra environment.
    pub async fn start_on(nats: TestNats, env: &[(&str, &str)]) -> Self {
        Self::start_processes_on(nats, TestDatabase::new().await, env, &[&["all"]]).await
    }

    /// One process per command line (`&["stock", "--metrics-addr", ..]`), processes 0, 1, ...
    pub async fn start_commands(commands: &[&[&str]]) -> Self {
        Self::start_processes(&[], commands).await
    }

    /// [`Stack::start_commands`] with extra environment for every process.
    pub async fn start_commands_with(env: &[(&str, &str)], commands: &[&[&str]]) -> Self {
        Self::start_processes(env, commands).await
    }

    async fn start_processes(env: &[(&str, &str)], commands: &[&[&str]]) -> Self {
        Self::start_processes_on(
            TestNats::new().await,
            TestDatabase::new().await,
            env,
            commands,
        )
        .await
    }

    async fn start_processes_on(
        nats: TestNats,
        db: TestDatabase,
        env: &[(&str, &str)],
        commands: &[&[&str]],
    ) -> Self {
        let mut stack = Self::without_processes_on(nats, db, env).await;
        for command in commands {
            stack.spawn(command);
        }
        stack.wait_until_ready(stack.api.base_url()).await;
        stack
    }

    /// A stack on the given NATS and database with its inbox but no process yet: the test
    /// [`spawn`](Stack::spawn)s each one when it likes (before its servers are up, say).
    pub async fn without_processes_on(
        nats: TestNats,
        db: TestDatabase,
        env: &[(&str, &str)],
    ) -> Self {
        let mail = MailInbox::start().await;
        let http_port = free_port();
        Self {
            api: Client::new(&format!("http://127.0.0.1:{http_port}")),
            db,
            nats,
            mail,
            http_port,
            processes: Vec::new(),
            spawned: 0,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Whether process `index` is still running (it has not exited, whatever its status).
    pub fn is_running(&mut self, index: usize) -> bool {
        self.processes[index]
            .try_wait()
            .expect("the process can be waited for")
            .is_none()
    }

    /// Kills process `index` (in start order) at once, as `kill -9` would.
    pub fn kill(&mut self, index: usize) {
        let child = &mut self.processes[index];
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts process `index` again (after [`Stack::kill`]) with `args`, in its place.
    pub fn respawn(&mut self, index: usize, args: &[&str]) {
        let new = self.spawn(args);
        let child = self.processes.pop().expect("just spawned");
        debug_assert_eq!(new, self.processes.len());
        self.processes[index] = child;
    }

    /// Starts another `larder` process on this stack (`&["stock"]` for a second stock instance);
    /// returns its index.
    pub fn spawn(&mut self, args: &[&str]) -> usize {
        let log_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let log =
            std::fs::File::create(log_dir.join(format!("{}-{}.log", self.db.name(), self.spawned)))
                .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // The admin URL, which no service uses, and each service's own role.
            .env("DATABASE_URL", &self.db.admin.url)
            .envs(Service::ALL.map(|service| (service.url_env(), self.db.services.url(service))))
            .env("DATABASE_MAX_CONNECTIONS", "6")
            .env("NATS_URL", &self.nats.config.url)
            .env("NATS_REPLICAS", self.nats.config.replicas.to_string())
            .env("NATS_NAMESPACE", self.nats.namespace().as_str())
            .env("HTTP_ADDR", format!("127.0.0.1:{}", self.http_port))
            .env("SMTP_HOST", "127.0.0.1")
            .env("SMTP_PORT", self.mail.smtp_port().to_string())
            .env("OUTBOX_POLL_INTERVAL_MS", "200")
            .env("DELIVERY_DISPATCH_DELAY_MS", "300")
            .env("DELIVERY_DELIVER_DELAY_MS", "300")
            .env("LOG_FORMAT", "json")
            // Side by side, stock, delivery and notification would all want their default
            // metrics ports: any free one (a test that reads them passes --metrics-addr).
            .env("METRICS_ADDR", "127.0.0.1:0")
            // Every test client is 127.0.0.1: the per-address login limit would see one client.
            .env("AUTH_RATE_PER_IP_PER_MIN", "1000000")
            .env("AUTH_RATE_PER_ACCOUNT_PER_MIN", "1000000")
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the larder binary runs");
        self.processes.push(child);
        self.spawned += 1;
        self.processes.len() - 1
    }

    /// A token of the bootstrap merchant.
    pub async fn merchant(&self) -> String {
        self.api
            .sign_in(MERCHANT_EMAIL, MERCHANT_PASSWORD)
            .await
            .unwrap()
    }

    /// Seeds and returns the burger's product id. Retries while the stock service is not
    /// answering yet (503), as a client honouring `Retry-After` would: with every service in a
    /// process of its own, the API may be up before stock.
    pub async fn seed(&self, merchant: &str) -> i64 {
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.api.seed(merchant).await {
                Ok(catalogue) => return catalogue.products[0].id,
                Err(e)
                    if e.status() == Some(StatusCode::SERVICE_UNAVAILABLE)
                        && std::time::Instant::now() < give_up =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("seeding failed: {e}"),
            }
        }
    }

    /// Every event on the ORDERS and DELIVERY streams whose data names this order.
    pub async fn events_of_order(&self, order_id: Uuid) -> Vec<Value> {
        self.events_by_order()
            .await
            .remove(&order_id.to_string())
            .unwrap_or_default()
    }

    /// Every event on the ORDERS and DELIVERY streams, by the order its data names (one read
    /// of each stream).
    pub async fn events_by_order(&self) -> std::collections::HashMap<String, Vec<Value>> {
        let mut found: std::collections::HashMap<String, Vec<Value>> = Default::default();
        for name in ["ORDERS", "DELIVERY"] {
            let mut stream = self
                .nats
                .jetstream
                .get_stream(self.nats.namespace().stream(name))
                .await
                .unwrap();
            let state = stream.info().await.unwrap().state.clone();
            for seq in state.first_sequence..=state.last_sequence {
                if let Ok(message) = stream.get_raw_message(seq).await {
                    let event: Value = serde_json::from_slice(&message.payload).unwrap();
                    if let Some(order_id) = event["data"]["order_id"].as_str() {
                        found.entry(order_id.to_owned()).or_default().push(event);
                    }
                }
            }
        }
        found
    }

    /// Messages on the DLQ stream.
    pub async fn dead_letter_count(&self) -> u64 {
        let mut stream = self
            .nats
            .jetstream
            .get_stream(self.nats.namespace().stream("DLQ"))
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }

    /// Waits until the durable consumer of ORDERS has nothing pending or unacknowledged.
    pub async fn wait_until_consumed(&self, durable: &str) {
        self.wait_until_consumed_on("ORDERS", durable).await;
    }

    /// Waits until the durable consumer of `stream` has nothing pending or unacknowledged.
    pub async fn wait_until_consumed_on(&self, stream: &str, durable: &str) {
        let ns = self.nats.namespace();
        let stream = ns.stream(stream);
        let durable = ns.durable(durable);
        eventually(&format!("{durable} has consumed everything"), || async {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer = self
                .nats
                .jetstream
                .get_consumer_from_stream(&durable, &stream)
                .await
                .unwrap();
            let info = consumer.info().await.unwrap();
            info.num_pending == 0 && info.num_ack_pending == 0
        })
        .await;
    }

    /// SPEC §2: for every ingredient, the movements add up to the level, and no level is negative.
    pub async fn assert_stock_consistent(&self) {
        let found = stock::audit::find_inconsistencies(&self.db.db).await;
        let found: Vec<String> = found.unwrap().iter().map(ToString::to_string).collect();
        assert!(found.is_empty(), "{}", found.join("; "));
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Stack {
    /// [`Stack::spawn`] with extra environment for this process only (set after the stack's,
    /// so it wins), e.g. a second API instance on its own `HTTP_ADDR`.
    pub fn spawn_with_env(&mut self, args: &[&str], env: &[(&str, &str)]) -> usize {
        let shared = self.env.len();
        self.env
            .extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let index = self.spawn(args);
        self.env.truncate(shared);
        index
    }
}
