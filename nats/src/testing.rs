//! Test support: a JetStream namespace of its own per test, deleted when the test ends.

use std::time::Duration;

use async_nats::jetstream;

use crate::{Namespace, NatsConfig, topology};

/// Streams and consumers under a random namespace on the NATS server at `NATS_URL` (default
/// loopback), created by [`topology::ensure`] and deleted on drop.
pub struct TestNats {
    pub config: NatsConfig,
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
}

impl TestNats {
    pub async fn new() -> Self {
        let config = NatsConfig {
            url: std::env::var("NATS_URL").unwrap_or_else(|_| NatsConfig::local().url),
            namespace: Namespace::random(),
            // Short-lived test streams: nothing should outlive a crashed test for long.
            max_age_secs: 3600,
            ..NatsConfig::local()
        };
        let client = crate::connect(&config, "larder-test", Duration::from_secs(10))
            .await
            .expect("NATS is reachable at NATS_URL (run the tests through ./stack.sh test)");
        let jetstream = jetstream::new(client.clone());
        if let Err(error) = topology::ensure(&jetstream, &config).await {
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
