use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, AckKind};
use bytes::Bytes;
use futures::StreamExt;
use larder_bus::Namespace;
use larder_bus::dlq::{self, AdvisoryWatcher, DeadLetter, DeadLetterError, DeadLetterRecord};
use larder_bus::testing::{TestNats, eventually_within};
use larder_bus::topology::ORDERS;
use larder_contract::subjects;
use tokio_util::sync::CancellationToken;

/// Publishes like the outbox relay: with a message id, and acked by the stream.
async fn publish_original(
    js: &jetstream::Context,
    subject: &str,
    body: &'static str,
    headers: HeaderMap,
) -> u64 {
    let message = PublishMessage::build()
        .payload(Bytes::from_static(body.as_bytes()))
        .headers(headers)
        .message_id(uuid::Uuid::now_v7().to_string());
    js.send_publish(subject.to_owned(), message)
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

fn dead_letter(subject: &str, stream_sequence: u64, body: &'static str) -> DeadLetter {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "the-original-id");
    headers.insert("Larder-Correlation-Id", "req-42");
    DeadLetter {
        consumer: "stock-orders-created".into(),
        subject: subject.to_owned(),
        stream_sequence,
        deliveries: 10,
        reason: "gave up after 10 deliveries: database\nunavailable".into(),
        headers: Some(headers),
        payload: Bytes::from_static(body.as_bytes()),
    }
}

#[tokio::test]
async fn a_dead_letter_is_listed_then_replayed_onto_its_original_subject_with_a_new_message_id() {
    let t = TestNats::new().await;
    let ns = t.namespace();
    let subject = ns.subject(subjects::ORDERS_CREATED);
    let body = r#"{"id":"0191d7a0-0000-7000-8000-000000000001","type":"order.created","data":{"order_id":"0191d7a0-0000-7000-8000-0000000000aa","merchant_id":7}}"#;
    let mut headers = HeaderMap::new();
    headers.insert("Larder-Correlation-Id", "req-42");
    let original = publish_original(&t.jetstream, &subject, body, headers).await;

    // The runner gives up on it; a second publish of the same dead letter is dropped.
    dlq::publish(&t.jetstream, ns, dead_letter(&subject, original, body))
        .await
        .unwrap();
    dlq::publish(&t.jetstream, ns, dead_letter(&subject, original, body))
        .await
        .unwrap();

    let listed = dlq::list(&t.jetstream, ns, 10).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let record = &listed[0];
    assert_eq!(
        record,
        &DeadLetterRecord {
            sequence: record.sequence,
            consumer: "stock-orders-created".into(),
            subject: subject.clone(),
            stream_sequence: Some(original),
            deliveries: Some(10),
            reason: "gave up after 10 deliveries: database unavailable".into(),
            stored_at: record.stored_at,
            payload_bytes: body.len(),
            payload_preview: body.into(),
            merchant_id: Some(7),
            order_id: Some("0191d7a0-0000-7000-8000-0000000000aa".parse().unwrap()),
        }
    );
    assert_eq!(
        dlq::get(&t.jetstream, ns, record.sequence).await.unwrap(),
        Some(record.clone()),
        "one dead letter is read by its sequence"
    );
    assert_eq!(
        dlq::get(&t.jetstream, ns, record.sequence + 100)
            .await
            .unwrap(),
        None
    );
    let age = chrono::Utc::now() - record.stored_at;
    assert!(
        age < chrono::Duration::minutes(1),
        "stored {age} ago: {record:?}"
    );

    let replayed = dlq::replay(&t.jetstream, ns, record.sequence)
        .await
        .unwrap();

    assert_eq!(replayed.subject, subject);
    assert_eq!(replayed.stream, ns.stream(ORDERS.name));
    assert!(
        replayed
            .message_id
            .starts_with(&format!("replay-{}-", record.sequence)),
        "{replayed:?}"
    );
    assert!(replayed.stream_sequence > original);
    let orders = t
        .jetstream
        .get_stream(ns.stream(ORDERS.name))
        .await
        .unwrap();
    let again = orders
        .get_raw_message(replayed.stream_sequence)
        .await
        .unwrap();
    assert_eq!(again.subject.as_str(), subject);
    assert_eq!(again.payload, body.as_bytes());
    let header = |name: &str| again.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header("Nats-Msg-Id"), Some(replayed.message_id.clone()));
    assert_eq!(header("Larder-Correlation-Id"), Some("req-42".into()));
    for (name, _) in again.headers.iter() {
        assert!(
            !name.to_string().starts_with("Larder-Dlq-"),
            "replayed with {name}"
        );
    }

    // Each replay is a new message: the stream stores it again.
    let second = dlq::replay(&t.jetstream, ns, record.sequence)
        .await
        .unwrap();
    assert_ne!(second.message_id, replayed.message_id);
    assert!(second.stream_sequence > replayed.stream_sequence);
}

#[tokio::test]
async fn the_list_holds_the_newest_dead_letters_newest_last() {
    let t = TestNats::new().await;
    let ns = t.namespace();
    let subject = ns.subject(subjects::ORDERS_CREATED);
    for stream_sequence in 1..=3 {
        dlq::publish(
            &t.jetstream,
            ns,
            dead_letter(&subject, stream_sequence, "{}"),
        )
        .await
        .unwrap();
    }

    let listed = dlq::list(&t.jetstream, ns, 2).await.unwrap();

    let originals: Vec<_> = listed.iter().map(|r| r.stream_sequence).collect();
    assert_eq!(originals, [Some(2), Some(3)]);
    assert!(listed[0].sequence < listed[1].sequence);
    assert!(dlq::list(&t.jetstream, ns, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_empty_or_missing_sequence_is_told_apart_from_a_broken_server() {
    let t = TestNats::new().await;
    let ns = t.namespace();

    assert!(dlq::list(&t.jetstream, ns, 10).await.unwrap().is_empty());
    let error = dlq::replay(&t.jetstream, ns, 42).await.unwrap_err();

    assert!(matches!(error, DeadLetterError::NotFound(42)), "{error:?}");
}

#[tokio::test]
async fn a_dead_letter_from_another_namespace_is_not_replayed_into_it() {
    let t = TestNats::new().await;
    let ns = t.namespace();
    let foreign = Namespace::random().subject(subjects::ORDERS_CREATED);
    dlq::publish(&t.jetstream, ns, dead_letter(&foreign, 1, "{}"))
        .await
        .unwrap();
    let sequence = dlq::list(&t.jetstream, ns, 1).await.unwrap()[0].sequence;

    let error = dlq::replay(&t.jetstream, ns, sequence).await.unwrap_err();

    assert!(
        matches!(error, DeadLetterError::ForeignSubject { .. }),
        "{error:?}"
    );
}

/// A durable in the test namespace with a short ack wait, on `orders.cancelled`.
async fn crashing_consumer(t: &TestNats, name: &str, max_deliver: i64) -> PullConsumer {
    let ns = t.namespace();
    let durable = ns.durable(name);
    t.jetstream
        .get_stream(ns.stream(ORDERS.name))
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some(durable.clone()),
            name: Some(durable),
            filter_subject: ns.subject(subjects::ORDERS_CANCELLED),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(1),
            max_deliver,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn watch(t: &TestNats) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let watcher = AdvisoryWatcher::subscribe(&t.jetstream, t.namespace())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let watching = tokio::spawn(watcher.run(shutdown.clone()));
    (shutdown, watching)
}

#[tokio::test]
async fn messages_whose_deliveries_all_time_out_are_dead_lettered_from_the_advisory() {
    let t = TestNats::new().await;
    let ns = t.namespace();
    let (shutdown, watching) = watch(&t).await;
    let consumer = crashing_consumer(&t, "crashing-orders-cancelled", 2).await;
    let subject = ns.subject(subjects::ORDERS_CANCELLED);
    let mut headers = HeaderMap::new();
    headers.insert("Larder-Correlation-Id", "req-7");
    let original = publish_original(&t.jetstream, &subject, r#"{"lost":true}"#, headers).await;

    // An instance that pulls but never acks (it crashes with every message in hand). The server
    // notices max deliveries when it is next asked for messages, so keep pulling.
    let record = eventually_within(
        "the advisory's dead letter",
        Duration::from_secs(30),
        || async {
            let mut batch = consumer
                .batch()
                .max_messages(1)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .unwrap();
            while let Some(message) = batch.next().await {
                drop(message); // never acked
            }
            dlq::list(&t.jetstream, ns, 10).await.unwrap().pop()
        },
    )
    .await;

    assert_eq!(record.consumer, "crashing-orders-cancelled");
    assert_eq!(record.subject, subject);
    assert_eq!(record.stream_sequence, Some(original));
    assert_eq!(record.deliveries, Some(2));
    assert_eq!(record.reason, dlq::MAX_DELIVERIES_REASON);
    assert_eq!(record.payload_preview, r#"{"lost":true}"#);
    // Replayable: the original headers came along.
    let replayed = dlq::replay(&t.jetstream, ns, record.sequence)
        .await
        .unwrap();
    assert_eq!(replayed.subject, subject);

    shutdown.cancel();
    watching.await.unwrap();
}

#[tokio::test]
async fn a_terminated_message_is_dead_lettered_once_even_when_the_runner_already_did() {
    let t = TestNats::new().await;
    let ns = t.namespace();
    let (shutdown, watching) = watch(&t).await;
    let consumer = crashing_consumer(&t, "terminating-orders-cancelled", 5).await;
    let subject = ns.subject(subjects::ORDERS_CANCELLED);
    let first = publish_original(&t.jetstream, &subject, "first", HeaderMap::new()).await;
    let second = publish_original(&t.jetstream, &subject, "second", HeaderMap::new()).await;

    // The first as the runner handles poison: dead letter (consumer named without namespace),
    // then Term. The second is terminated by code that does not dead-letter.
    let mut messages = consumer
        .batch()
        .max_messages(2)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let message = messages.next().await.unwrap().unwrap();
    dlq::publish(
        &t.jetstream,
        ns,
        DeadLetter {
            consumer: "terminating-orders-cancelled".into(),
            subject: subject.clone(),
            stream_sequence: first,
            deliveries: 1,
            reason: "poison: not a JSON event envelope".into(),
            headers: message.headers.clone(),
            payload: message.payload.clone(),
        },
    )
    .await
    .unwrap();
    message.ack_with(AckKind::Term).await.unwrap();
    let message = messages.next().await.unwrap().unwrap();
    message.ack_with(AckKind::Term).await.unwrap();

    // The watcher handles advisories in order: once the second is in, the first was handled.
    let listed = eventually_within(
        "the second dead letter",
        Duration::from_secs(20),
        || async {
            let listed = dlq::list(&t.jetstream, ns, 10).await.unwrap();
            listed
                .iter()
                .any(|r| r.stream_sequence == Some(second))
                .then_some(listed)
        },
    )
    .await;

    let summary: Vec<_> = listed
        .iter()
        .map(|r| (r.stream_sequence, r.reason.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (Some(first), "poison: not a JSON event envelope"),
            (Some(second), dlq::TERMINATED_REASON),
        ]
    );

    shutdown.cancel();
    watching.await.unwrap();
}
