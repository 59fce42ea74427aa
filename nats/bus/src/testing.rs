//! Test support: a JetStream namespace of its own per test, deleted when the test ends.
//!
//! A test that kills and restarts NATS runs a [`NatsCluster`] of its own (one node is a lone
//! server) and takes its namespace there with [`TestNats::on`].

use std::future::Future;
use std::sync::Once;
use std::time::Duration;

use async_nats::jetstream::{self, message::StreamMessage, stream::LastRawMessageErrorKind};

use crate::{Namespace, NatsConfig, topology};

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
        if let Err(error) = topology::ensure(&jetstream, &config, &topology::CONSUMERS).await {
            topology::delete_all(&jetstream, &config.namespace).await;
            panic!("streams and consumers can be created: {error:?}");
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
