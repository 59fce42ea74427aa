//! Errors of the JetStream plumbing, typed so callers can decide what to do.

use async_nats::jetstream;

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("could not connect to NATS")]
    Connect(#[source] async_nats::ConnectError),
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    #[error("could not create or update stream {stream}")]
    Stream {
        stream: String,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    #[error("could not create or update consumer {durable} on {stream}")]
    Consumer {
        stream: String,
        durable: String,
        #[source]
        source: jetstream::stream::ConsumerError,
    },
    #[error("could not find consumer {durable} on {stream}")]
    GetConsumer {
        stream: String,
        durable: String,
        #[source]
        source: jetstream::stream::ConsumerError,
    },
    #[error("could not start pulling from {durable}")]
    Pull {
        durable: String,
        #[source]
        source: jetstream::consumer::StreamError,
    },
    #[error("could not publish to {subject}")]
    Publish {
        subject: String,
        #[source]
        source: jetstream::context::PublishError,
    },
    #[error("{rows} outbox rows were not acknowledged within {deadline:?}")]
    PublishTimedOut {
        rows: usize,
        deadline: std::time::Duration,
    },
    #[error("could not read stream {stream}")]
    ReadStream {
        stream: String,
        #[source]
        source: async_nats::Error,
    },
    #[error("event could not be encoded")]
    Encode(#[from] serde_json::Error),
}
