//! The consumer runner: pulls from a durable consumer, decodes, hands batches to a handler
//! ([`HandleEvents`]), and settles each message by what the handler answers (SPEC §5 rules 1
//! and 7).
//!
//! - The handler answers after its transaction commits, so an ack always follows a commit.
//! - A handler is a plain type; an actor that owns state can be one through its
//!   [`Recipient`] (the adapter below).
//! - [`Outcome::Retry`] Naks with the consumer's retry delay (a plain Nak would redeliver at
//!   once); on the last delivery the message is dead-lettered instead.
//! - While the handler works on a batch, the runner sends progress acks, so a short ack wait
//!   brings back only the messages of an instance that died.
//! - A message that does not decode, or that the actor [rejects](Outcome::Reject), is poison: it
//!   is dead-lettered and terminated at once, and the rest of the batch carries on.
//! - A batch may linger ([`crate::config::ConsumeConfig`]): once its first message arrives, the
//!   runner waits that long for more, up to the batch size, so that a moderate rate does not pay a
//!   transaction per message.
//! - On shutdown the runner stops pulling and finishes the batch in hand; messages still
//!   lingering are not in hand: the server redelivers them after the ack wait.

use std::time::Duration;

use actix::prelude::*;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::topology::ConsumerSpec;
use crate::{Namespace, NatsError, dlq};
use larder_contract::envelope::Decode;

/// One decoded message, as the handling actor sees it.
#[derive(Clone, Debug)]
pub struct Delivery<E> {
    pub event: E,
    pub subject: String,
    pub stream_sequence: u64,
    /// 1 on the first delivery.
    pub delivered: i64,
    pub max_deliver: i64,
    /// The message's headers (a dead letter's reason travels in them).
    pub headers: async_nats::HeaderMap,
}

impl<E> Delivery<E> {
    /// No retry follows this delivery: a `Retry` now dead-letters the message.
    pub fn is_last_attempt(&self) -> bool {
        self.delivered >= self.max_deliver
    }
}

/// How the handler settled one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed (or a duplicate already committed): ack.
    Done,
    /// A transient failure (database, SMTP): redeliver after the consumer's backoff delay.
    Retry { reason: String },
    /// Not processable yet (an event that overtook the one it follows): redeliver after `delay`.
    RetryAfter { delay: Duration, reason: String },
    /// Can never succeed: dead-letter and terminate.
    Reject { reason: String },
}

/// What a [`ConsumerRunner`] hands its batches to. It answers one [`Outcome`] per delivery, in
/// order, once its effects are committed; the runner keeps the batch's messages (progress acks)
/// however long that takes.
pub trait HandleEvents<E>: Send + Sync + 'static {
    fn handle(&self, batch: Vec<Delivery<E>>) -> impl Future<Output = Vec<Outcome>> + Send;
}

/// A batch of deliveries for an actor that handles events ([`HandleEvents`] through its
/// [`Recipient`]); it answers one [`Outcome`] per delivery, in order.
#[derive(Message)]
#[rtype(result = "Vec<Outcome>")]
pub struct HandleBatch<E: Decode>(pub Vec<Delivery<E>>);

/// An actor that handles events: a mailbox that is gone answers `Retry` for the whole batch.
impl<E: Decode> HandleEvents<E> for Recipient<HandleBatch<E>> {
    async fn handle(&self, batch: Vec<Delivery<E>>) -> Vec<Outcome> {
        let count = batch.len();
        match self.send(HandleBatch(batch)).await {
            Ok(outcomes) => outcomes,
            Err(error) => vec![
                Outcome::Retry {
                    reason: format!("handler unavailable: {error}"),
                };
                count
            ],
        }
    }
}

/// Pulls one durable consumer for one handler.
pub struct ConsumerRunner<E: Decode, H> {
    js: jetstream::Context,
    namespace: Namespace,
    spec: ConsumerSpec,
    handler: H,
    batch_size: usize,
    linger: Duration,
    events: std::marker::PhantomData<fn() -> E>,
}

impl<E: Decode, H: HandleEvents<E>> ConsumerRunner<E, H> {
    pub fn new(
        js: jetstream::Context,
        namespace: Namespace,
        spec: ConsumerSpec,
        handler: H,
        batch_size: usize,
        linger: Duration,
    ) -> Self {
        Self {
            js,
            namespace,
            spec,
            handler,
            batch_size: batch_size.max(1),
            linger,
            events: std::marker::PhantomData,
        }
    }

    /// Runs until `shutdown` is cancelled. The consumer must exist ([`crate::topology::ensure`]).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), NatsError> {
        let durable = self.namespace.durable(self.spec.durable);
        let stream = self.namespace.stream(self.spec.stream.name);
        // nats-server 2.9 may answer "not found" for a moment after creating a consumer on a
        // long stream: look again for a few seconds before giving up.
        let mut attempts = 0;
        let consumer: PullConsumer = loop {
            match self.js.get_consumer_from_stream(&durable, &stream).await {
                Ok(consumer) => break consumer,
                Err(_) if attempts < 25 && !shutdown.is_cancelled() => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(source) => {
                    return Err(NatsError::GetConsumer {
                        stream: stream.clone(),
                        durable: durable.clone(),
                        source,
                    });
                }
            }
        };
        // Pull no more than one batch ahead: ack timers start at delivery, so a deep prefetch
        // would see redeliveries of messages still waiting in the buffer.
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.batch_size)
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|source| NatsError::Pull {
                durable: durable.clone(),
                source,
            })?;
        tokio::spawn(crate::metrics::sample_consumer(
            consumer.clone(),
            self.spec.durable.to_owned(),
            shutdown.clone(),
        ));
        // Up to a batch: what arrives within the linger of its first message, or without one,
        // whatever has arrived.
        let mut batches: futures::stream::BoxStream<'_, Vec<_>> = if self.linger.is_zero() {
            Box::pin(messages.ready_chunks(self.batch_size))
        } else {
            Box::pin(tokio_stream::StreamExt::chunks_timeout(
                messages,
                self.batch_size,
                self.linger,
            ))
        };
        tracing::info!(%durable, "consuming");
        loop {
            let batch = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                next = batches.next() => match next {
                    Some(batch) => batch,
                    None => break,
                },
            };
            self.handle(batch).await;
        }
        tracing::info!(%durable, "stopped consuming");
        Ok(())
    }

    async fn handle(
        &self,
        batch: Vec<Result<jetstream::Message, jetstream::consumer::pull::MessagesError>>,
    ) {
        let mut messages = Vec::with_capacity(batch.len());
        let mut deliveries = Vec::with_capacity(batch.len());
        for item in batch {
            let message = match item {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(consumer = self.spec.durable, %error, "pull error");
                    continue;
                }
            };
            let (stream_sequence, delivered) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered),
                Err(error) => {
                    tracing::warn!(consumer = self.spec.durable, %error, "message without JetStream metadata");
                    continue;
                }
            };
            match E::decode(&message.payload) {
                Ok(mut event) => {
                    event.set_trace(
                        message
                            .headers
                            .as_ref()
                            .and_then(crate::trace::from_headers),
                    );
                    deliveries.push(Delivery {
                        event,
                        subject: message.subject.to_string(),
                        stream_sequence,
                        delivered,
                        max_deliver: self.spec.max_deliver,
                        headers: message.headers.clone().unwrap_or_default(),
                    });
                    messages.push(message);
                }
                Err(error) => {
                    self.dead_letter(
                        &message,
                        stream_sequence,
                        delivered,
                        format!("poison: {error}"),
                    )
                    .await;
                }
            }
        }
        if deliveries.is_empty() {
            return;
        }

        let count = messages.len();
        // While the handler works, progress acks keep the batch ours: the consumer's ack wait is
        // short, so that a dead instance's messages come back quickly, not so a slow handler
        // loses them.
        let reply = self.handler.handle(deliveries);
        tokio::pin!(reply);
        let mut progress = tokio::time::interval_at(
            tokio::time::Instant::now() + self.spec.ack_wait / 3,
            self.spec.ack_wait / 3,
        );
        let answered = loop {
            tokio::select! {
                answered = &mut reply => break answered,
                _ = progress.tick() => {
                    for message in &messages {
                        if let Err(error) = message.ack_with(AckKind::Progress).await {
                            tracing::debug!(consumer = self.spec.durable, %error, "progress ack failed");
                        }
                    }
                }
            }
        };
        let outcomes = match answered {
            outcomes if outcomes.len() == count => outcomes,
            outcomes => {
                tracing::error!(
                    consumer = self.spec.durable,
                    expected = count,
                    got = outcomes.len(),
                    "handler answered the wrong number of outcomes"
                );
                vec![
                    Outcome::Retry {
                        reason: "handler answered the wrong number of outcomes".into()
                    };
                    count
                ]
            }
        };

        for (message, outcome) in messages.iter().zip(outcomes) {
            let (stream_sequence, delivered) = message
                .info()
                .map(|i| (i.stream_sequence, i.delivered))
                .unwrap_or_default();
            let settled = match outcome {
                Outcome::Done => message.ack().await,
                Outcome::Retry { reason } | Outcome::RetryAfter { reason, .. }
                    if delivered >= self.spec.max_deliver =>
                {
                    let reason = format!("gave up after {delivered} deliveries: {reason}");
                    self.dead_letter(message, stream_sequence, delivered, reason)
                        .await;
                    Ok(())
                }
                Outcome::Retry { reason } => {
                    let delay = self.spec.retry_delay(delivered);
                    tracing::warn!(consumer = self.spec.durable, stream_sequence, delivered, %reason, retry_in = ?delay, "retrying");
                    message.ack_with(AckKind::Nak(Some(delay))).await
                }
                Outcome::RetryAfter { delay, reason } => {
                    tracing::debug!(consumer = self.spec.durable, stream_sequence, delivered, %reason, retry_in = ?delay, "deferred");
                    message.ack_with(AckKind::Nak(Some(delay))).await
                }
                Outcome::Reject { reason } => {
                    self.dead_letter(message, stream_sequence, delivered, reason)
                        .await;
                    Ok(())
                }
            };
            if let Err(error) = settled {
                // The server redelivers after the ack wait; the handler's inbox makes that harmless.
                tracing::warn!(consumer = self.spec.durable, stream_sequence, %error, "could not settle message");
            }
        }
    }

    /// Dead-letters and terminates. If the dead letter cannot be stored, the message is Nak'ed
    /// instead, so nothing is lost.
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        stream_sequence: u64,
        delivered: i64,
        reason: String,
    ) {
        tracing::error!(consumer = self.spec.durable, stream_sequence, delivered, %reason, "dead-lettering message");
        metrics::counter!("larder_dead_letters_total", "consumer" => self.spec.durable.to_owned())
            .increment(1);
        let dead = dlq::DeadLetter {
            consumer: self.spec.durable.to_owned(),
            subject: message.subject.to_string(),
            stream_sequence,
            deliveries: delivered,
            reason,
            headers: message.headers.clone(),
            payload: message.payload.clone(),
        };
        let settled = match dlq::publish(&self.js, &self.namespace, dead).await {
            Ok(()) => message.ack_with(AckKind::Term).await,
            Err(error) => {
                tracing::error!(consumer = self.spec.durable, %error, "could not store dead letter; will retry");
                message
                    .ack_with(AckKind::Nak(Some(self.spec.retry_delay(delivered))))
                    .await
            }
        };
        if let Err(error) = settled {
            tracing::warn!(consumer = self.spec.durable, stream_sequence, %error, "could not settle message");
        }
    }
}
