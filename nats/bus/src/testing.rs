//! Test support: a JetStream namespace of its own per test, deleted when the test ends.
//!
//! A test that kills and restarts NATS runs a [`NatsCluster`] of its own (one node is a lone
//! server) and takes its namespace there with [`TestNats::on`].

use std::future::Future;
use std::sync::Once;
use std::time::Duration;

use async_nats::jetstream::{
    self,
    message::{PublishMessage, StreamMessage},
    stream::LastRawMessageErrorKind,
};
use futures::future::join_all;
use larder_contract::{Envelope, Event};
use migration::database::DatabaseConfig;
use tokio_util::sync::CancellationToken;

use crate::config::ServiceConfig;
use crate::outbox::Outbox;
use crate::relay;
use crate::{ConsumeConfig, Namespace, NatsConfig, OutboxConfig, topology};

mod server;

pub use server::NatsCluster;

/// Streams and consumers under a random namespace on the NATS server at `NATS_URL` (default
/// loopback), created by [`topology::ensure`] and deleted on drop.
pub struct TestNats {
    pub config: NatsConfig,
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
}

impl TestNats {
    pub async fn new() -> Self {
        let url = std::env::var("NATS_URL").unwrap_or_else(|_| NatsConfig::local().url);
        Self::on(&url, 1).await
    }

    /// A namespace on the server(s) at `url` (comma-separated for a cluster), its streams with
    /// `replicas` copies.
    pub async fn on(url: &str, replicas: usize) -> Self {
        let config = NatsConfig {
            url: url.to_owned(),
            namespace: Namespace::random(),
            replicas,
            // Short-lived test streams: nothing should outlive a crashed test for long.
            max_age_secs: 3600,
            ..NatsConfig::local()
        };
        let client = crate::connect(&config, "larder-test", Duration::from_secs(10))
            .await
            .expect("NATS is reachable at NATS_URL (run the tests through ./stack.sh test)");
        let jetstream = jetstream::new(client.clone());
        // nats-server 2.9 removes its account's stream directory when the account's last stream
        // is deleted; a stream created at that moment fails ("error creating store for stream",
        // the server logging that it could not mkdir the directory). Tests create and delete
        // streams in parallel, so on a server with no other streams that happens now and then:
        // try again a few times before calling the server broken.
        let mut attempts = 0;
        while let Err(error) = topology::ensure(&jetstream, &config, &topology::CONSUMERS).await {
            topology::delete_all(&jetstream, &config.namespace).await;
            attempts += 1;
            if attempts == 3 {
                panic!("streams and consumers can be created: {error:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self {
            config,
            client,
            jetstream,
        }
    }

    pub fn namespace(&self) -> &Namespace {
        &self.config.namespace
    }

    /// Production's configuration of a service, pointed at `database` and this namespace, with
    /// a relay that polls often enough for a test's waits.
    pub fn service_config<S>(&self, database: DatabaseConfig, settings: S) -> ServiceConfig<S> {
        ServiceConfig {
            database,
            nats: self.config.clone(),
            outbox: OutboxConfig {
                poll_interval_ms: 100,
                ..OutboxConfig::default()
            },
            consume: ConsumeConfig::default(),
            settings,
        }
    }

    /// Waits until the consumer has settled every message of its subject (acked or
    /// dead-lettered): nothing pending, nothing awaiting an ack.
    pub async fn wait_until_consumed(&self, spec: topology::ConsumerSpec, within: Duration) {
        let stream = &self.stream_of(spec.filter_subject).await;
        let durable = &self.namespace().durable(spec.durable);
        eventually_within(
            &format!("{durable} has settled every message"),
            within,
            move || async move {
                let info = stream
                    .consumer_info(durable)
                    .await
                    .expect("the consumer exists");
                info.num_pending == 0 && info.num_ack_pending == 0
            },
        )
        .await;
    }

    /// The stream (of this namespace) that captures `subject` (without namespace).
    pub async fn stream_of(&self, subject: &str) -> jetstream::stream::Stream {
        let spec = topology::STREAMS
            .iter()
            .find(|s| subject.starts_with(s.subjects.trim_end_matches('>')))
            .unwrap_or_else(|| panic!("a stream captures {subject}"));
        self.jetstream
            .get_stream(self.namespace().stream(spec.name))
            .await
            .expect("the stream exists")
    }

    /// Publishes `event` as its producer's relay does: `Nats-Msg-Id` = envelope id, with the
    /// event type and correlation headers. Panics if the broker took it for a duplicate.
    pub async fn publish<E: Event>(&self, event: &Envelope<E>) {
        self.publish_with_message_id(event, &event.id.to_string())
            .await;
    }

    /// The same envelope under another `Nats-Msg-Id`: the broker stores and delivers it again.
    pub async fn publish_with_message_id<E: Event>(&self, event: &Envelope<E>, message_id: &str) {
        let (subject, message) = self.relayed(event, message_id);
        let ack = self
            .jetstream
            .send_publish(subject, message)
            .await
            .expect("publish is sent")
            .await
            .expect("publish is acknowledged");
        assert!(!ack.duplicate, "{message_id} was stored");
    }

    /// Many events with their acks in flight together.
    pub async fn publish_all<E: Event>(&self, events: &[Envelope<E>]) {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let (subject, message) = self.relayed(event, &event.id.to_string());
            acks.push(
                self.jetstream
                    .send_publish(subject, message)
                    .await
                    .expect("publish is sent"),
            );
        }
        for ack in join_all(acks.into_iter().map(IntoFuture::into_future)).await {
            assert!(!ack.expect("publish is acknowledged").duplicate);
        }
    }

    /// The subject and message the relay would publish for `event`'s outbox row: subject and
    /// headers as [`Outbox::prepare`] makes them, the message as the relay builds it; the payload
    /// the envelope as its producer encoded it.
    fn relayed<E: Event>(&self, event: &Envelope<E>, message_id: &str) -> (String, PublishMessage) {
        let row = Outbox::new(self.namespace().clone())
            .prepare(event)
            .expect("events encode");
        let payload = serde_json::to_vec(event).expect("events encode");
        (
            row.subject,
            relay::message(payload, row.headers.get(), message_id),
        )
    }

    /// Arbitrary bytes on `subject` (without namespace), with no headers: what a broken or
    /// foreign producer might send.
    pub async fn publish_raw(&self, subject: &str, payload: Vec<u8>, message_id: &str) {
        self.jetstream
            .send_publish(
                self.namespace().subject(subject),
                PublishMessage::build()
                    .payload(payload.into())
                    .message_id(message_id),
            )
            .await
            .expect("publish is sent")
            .await
            .expect("publish is acknowledged");
    }

    /// Every message stored on `subject` (without namespace), in stream order.
    pub async fn messages_on(&self, subject: &str) -> Vec<StreamMessage> {
        let stream = self.stream_of(subject).await;
        let subject = self.namespace().subject(subject);
        let mut messages = Vec::new();
        let mut sequence = 1;
        loop {
            match stream
                .raw_message_builder()
                .sequence(sequence)
                .next_by_subject(subject.clone())
                .send()
                .await
            {
                Ok(message) => {
                    sequence = message.sequence + 1;
                    messages.push(message);
                }
                Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => {
                    return messages;
                }
                Err(error) => panic!("could not read {subject}: {error}"),
            }
        }
    }
}

/// Service instances a test runs, each with a shutdown signal of its own.
pub struct Instances<E> {
    /// The service's name, for the failure messages.
    service: &'static str,
    running: Vec<(CancellationToken, tokio::task::JoinHandle<Result<(), E>>)>,
}

/// How long a graceful shutdown may take before the test fails: it drains in-flight work and
/// flushes the relay, which takes a moment, not this long.
pub const STOP_AT_MOST: Duration = Duration::from_secs(30);

impl<E: std::fmt::Debug + 'static> Instances<E> {
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            running: Vec::new(),
        }
    }

    /// Runs `run_until_stopped(shutdown)` on the actix system the test runs in.
    pub fn spawn<F>(&mut self, run_until_stopped: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = Result<(), E>> + 'static,
    {
        let shutdown = CancellationToken::new();
        let running = actix::spawn(run_until_stopped(shutdown.clone()));
        self.running.push((shutdown, running));
    }

    /// Signals every instance at once, then checks each stops cleanly within [`STOP_AT_MOST`].
    pub async fn stop_all(&mut self) {
        for (shutdown, _) in &self.running {
            shutdown.cancel();
        }
        let service = self.service;
        for (_, running) in self.running.drain(..) {
            tokio::time::timeout(STOP_AT_MOST, running)
                .await
                .unwrap_or_else(|_| panic!("the {service} service stops within {STOP_AT_MOST:?}"))
                .unwrap_or_else(|e| panic!("the {service} service does not panic: {e}"))
                .unwrap_or_else(|e| panic!("the {service} service stops cleanly: {e:?}"));
        }
    }
}

/// Tracing for the test binary, set up by its first call: silent unless `TEST_LOG` is set, then
/// `RUST_LOG`'s filter, else `default_filter`, into the test's captured output.
pub fn init_tracing(default_filter: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into());
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .init();
        }
    });
}

/// How long [`eventually`] waits before it fails the test: a whole stack in a debug build on a
/// machine busy with other tests.
pub const WAIT_AT_MOST: Duration = Duration::from_secs(40);

/// What a probe of [`eventually`] returns: `true`, or `Some(found)`, once what it awaits holds.
pub trait Probed {
    type Found;
    fn found(self) -> Option<Self::Found>;
}

impl Probed for bool {
    type Found = ();
    fn found(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Probed for Option<T> {
    type Found = T;
    fn found(self) -> Option<T> {
        self
    }
}

/// Polls `probe` until it returns `true` or `Some(found)` (then returned); panics naming `what`
/// after [`WAIT_AT_MOST`].
pub async fn eventually<P, F, Fut>(what: &str, probe: F) -> P::Found
where
    P: Probed,
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
{
    eventually_within(what, WAIT_AT_MOST, probe).await
}

/// [`eventually`], failing after `within`.
pub async fn eventually_within<P, F, Fut>(what: &str, within: Duration, mut probe: F) -> P::Found
where
    P: Probed,
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await.found() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        // Drop cannot await: delete on a thread of its own with a small runtime.
        let url = self.config.url.clone();
        let namespace = self.config.namespace.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(client) = async_nats::connect(url).await {
                    topology::delete_all(&jetstream::new(client), &namespace).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Sequential scans of `table` in the caller's transaction so far (`pg_stat_xact_user_tables`):
/// whether the statements in between read the whole table.
pub async fn sequential_scans(txn: &impl sea_orm::ConnectionTrait, table: &str) -> i64 {
    txn.query_one_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = $1",
        [table.into()],
    ))
    .await
    .expect("the table's statistics can be read")
    .unwrap_or_else(|| panic!("statistics of {table}"))
    .try_get_by_index(0)
    .expect("seq_scan is a bigint")
}
