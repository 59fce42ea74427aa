use larder_bus::testing::TestNats;
use larder_bus::topology::{self, CONSUMERS, STREAMS};

/// Stream and consumer configs as the server reports them, in a comparable form.
async fn server_configs(t: &TestNats) -> Vec<serde_json::Value> {
    let ns = t.namespace();
    let mut configs = Vec::new();
    for spec in STREAMS {
        let mut stream = t.jetstream.get_stream(ns.stream(spec.name)).await.unwrap();
        let info = stream.info().await.unwrap();
        configs.push(serde_json::to_value(&info.config).unwrap());
    }
    for spec in CONSUMERS {
        let stream = t
            .jetstream
            .get_stream(ns.stream(spec.stream.name))
            .await
            .unwrap();
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_consumer(&ns.durable(spec.durable))
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        configs.push(serde_json::to_value(&info.config).unwrap());
    }
    configs
}

#[tokio::test]
async fn ensure_twice_leaves_identical_stream_and_consumer_configs() {
    let t = TestNats::new().await; // ensure #1
    let first = server_configs(&t).await;

    topology::ensure(&t.jetstream, &t.config, &CONSUMERS)
        .await
        .unwrap();
    let second = server_configs(&t).await;

    assert_eq!(first.len(), STREAMS.len() + CONSUMERS.len());
    assert_eq!(first, second);
}

#[tokio::test]
async fn streams_are_file_backed_with_limits_max_age_and_duplicate_window() {
    let t = TestNats::new().await;
    let mut stream = t
        .jetstream
        .get_stream(t.namespace().stream("ORDERS"))
        .await
        .unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(
        config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert_eq!(
        config.retention,
        async_nats::jetstream::stream::RetentionPolicy::Limits
    );
    assert_eq!(config.max_age, t.config.max_age());
    assert_eq!(config.duplicate_window, t.config.duplicate_window());
    assert_eq!(config.subjects, vec![t.namespace().subject("orders.>")]);
}

#[tokio::test]
async fn ensure_brings_a_drifted_consumer_back_in_line() {
    let t = TestNats::new().await;
    let spec = topology::STOCK_ORDERS_CREATED;
    let stream = t
        .jetstream
        .get_stream(t.namespace().stream(spec.stream.name))
        .await
        .unwrap();
    let mut drifted = topology::consumer_config(&spec, t.namespace());
    drifted.max_deliver = 99;
    drifted.backoff.clear();
    stream.create_consumer(drifted).await.unwrap();

    topology::ensure(&t.jetstream, &t.config, &CONSUMERS)
        .await
        .unwrap();

    let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .get_consumer(&t.namespace().durable(spec.durable))
        .await
        .unwrap();
    assert_eq!(
        consumer.info().await.unwrap().config.max_deliver,
        spec.max_deliver
    );
}
