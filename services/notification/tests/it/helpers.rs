//! `spawn_app(smtp_port)`: a fresh database and JetStream namespace with the notification service
//! running on them against an SMTP port; `MailDev`: an SMTP inbox of the test's own; and helpers
//! that read like what the tests check.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::message::PublishMessage;
use larder_bus::OutboxConfig;
use larder_bus::dlq::{self, DeadLetterRecord};
use larder_bus::outbox::{CORRELATION_ID_HEADER, EVENT_TYPE_HEADER};
use larder_bus::testing::TestNats;
pub use larder_bus::testing::eventually;
use larder_contract::events::StockLow;
use larder_contract::{Envelope, Event};
use migration::Service;
use migration::sea_orm::DatabaseConnection;
use migration::testing::TestDatabase;
use notification::config::NotificationSettings;
use notification::{Application, Config};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use entities::notifications;

pub const MERCHANT_EMAIL: &str = "chef@larder.test";

/// A loopback port nobody listens on (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

// --- The SMTP inbox ----------------------------------------------------------------------

/// One email as maildev's REST API (`GET /email`) shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct Email {
    pub subject: String,
    pub to: Vec<Address>,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub html: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Address {
    pub address: String,
}

/// A maildev process of this test's own on free ports (never 1025: whatever inbox holds that is
/// left alone), killed and its mail directory removed on drop, so tests run in parallel and can
/// take SMTP away and bring it back.
pub struct MailDev {
    pub smtp_port: u16,
    pub web_port: u16,
    child: Child,
    // Dropped after `child` is killed (fields drop after `Drop::drop`).
    _mail_dir: MailDir,
}

/// A temporary mail directory, removed on drop: also when maildev fails to start.
struct MailDir(PathBuf);

impl Drop for MailDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The maildev to run: `$MAILDEV` (set by `./stack.sh test`), else `maildev` on PATH, else npm's
/// global bin directory (outside PATH for some users).
fn maildev_program() -> PathBuf {
    if let Some(bin) = std::env::var_os("MAILDEV").filter(|v| !v.is_empty()) {
        return bin.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("maildev"))
        .find(|bin| bin.is_file());
    if let Some(bin) = on_path {
        return bin;
    }
    let npm_prefix = Command::new("npm")
        .args(["prefix", "-g"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    npm_prefix
        .map(|prefix| prefix.join("bin/maildev"))
        .filter(|bin| bin.is_file())
        .unwrap_or_else(|| "maildev".into())
}

impl MailDev {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts maildev with SMTP on `smtp_port` and waits until its REST API answers.
    pub async fn start_on(smtp_port: u16) -> Self {
        let web_port = free_port();
        let mail_dir =
            MailDir(std::env::temp_dir().join(format!("larder-maildev-{}", Uuid::new_v4())));
        std::fs::create_dir_all(&mail_dir.0).expect("a mail directory can be created");
        let program = maildev_program();
        let child = Command::new(&program)
            .args(["--smtp", &smtp_port.to_string()])
            .args(["--web", &web_port.to_string()])
            .args(["--ip", "127.0.0.1"])
            .arg("--mail-directory")
            .arg(&mail_dir.0)
            .arg("--silent")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): the notification tests start their own maildev; \
                     run them with `./stack.sh test`, which installs it, or \
                     `npm install -g maildev@2.2.1`, or set MAILDEV to its path",
                    program.display()
                )
            });
        let mut maildev = Self {
            smtp_port,
            web_port,
            child,
            _mail_dir: mail_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = maildev.child.try_wait().expect("maildev can be polled") {
                panic!("maildev exited at start ({status}); is SMTP port {smtp_port} taken?");
            }
            // Ready when both the API and SMTP answer.
            let smtp = tokio::net::TcpStream::connect(("127.0.0.1", smtp_port)).await;
            if smtp.is_ok() && http_get(web_port, "/email").await.is_ok() {
                return maildev;
            }
            assert!(Instant::now() < deadline, "maildev did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every email received so far.
    pub async fn emails(&self) -> Vec<Email> {
        let body = http_get(self.web_port, "/email")
            .await
            .expect("maildev's REST API answers");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET /email: {e}: {body}"))
    }
}

impl Drop for MailDev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.1 GET on loopback (maildev answers with a Content-Length): the body of a 200.
async fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP response: {response}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {head}"));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_owned())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

// --- The service -------------------------------------------------------------------------

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
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The notification service on a fresh database and namespace, sending to `settings`' SMTP
/// server.
pub async fn spawn_app(settings: NotificationSettings) -> TestApp {
    larder_bus::testing::init_tracing("info,notification=debug,nats=debug");
    let test_db = TestDatabase::new().await;
    let db = test_db.connect(Service::Notification).await;
    let nats = TestNats::new().await;
    let config = Config {
        database: test_db.config(Service::Notification),
        nats: nats.config.clone(),
        outbox: OutboxConfig {
            poll_interval_ms: 100,
            ..OutboxConfig::default()
        },
        settings,
    };
    let app = Application::build(config)
        .await
        .expect("the notification service starts");
    let shutdown = CancellationToken::new();
    let running = actix::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        _test_db: test_db,
        db,
        nats,
        shutdown,
        running,
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
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.running)
            .await
            .expect("the notification service stops within 30 s")
            .expect("the notification service does not panic")
            .expect("the notification service stops cleanly");
    }

    /// Publishes like the stock service's relay: `Nats-Msg-Id` = envelope id.
    pub async fn publish(&self, event: &Envelope<StockLow>) {
        self.publish_with_message_id(event, &event.id.to_string())
            .await;
    }

    /// The same envelope under another `Nats-Msg-Id`: the broker stores and delivers it again.
    pub async fn publish_with_message_id(&self, event: &Envelope<StockLow>, message_id: &str) {
        let mut message = PublishMessage::build()
            .payload(
                serde_json::to_vec(event)
                    .expect("an envelope serialises")
                    .into(),
            )
            .message_id(message_id)
            .header(EVENT_TYPE_HEADER, StockLow::TYPE);
        if let Some(correlation_id) = &event.correlation_id {
            message = message.header(CORRELATION_ID_HEADER, correlation_id.as_str());
        }
        let ack = self
            .nats
            .jetstream
            .send_publish(self.nats.namespace().subject(StockLow::SUBJECT), message)
            .await
            .expect("publish is sent")
            .await
            .expect("publish is acknowledged");
        assert!(!ack.duplicate, "{message_id} was stored");
    }

    /// The notification row of an event.
    pub async fn notification(&self, event: &Envelope<StockLow>) -> Option<notifications::Model> {
        notification::store::find_by_event(&self.db, event.id)
            .await
            .expect("notifications can be read")
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
