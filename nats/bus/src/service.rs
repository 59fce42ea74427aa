//! Serving [`Command`]s as a NATS micro service, and calling them.
//!
//! [`CommandService`] wraps async-nats's service API: one service per owning service (`stock`,
//! `delivery`), one named endpoint per command, so `nats micro ls|info|stats` and `$SRV.PING`
//! see them. Every instance joins the endpoint's queue group: a command goes to one of them.
//! [`call`] sends a command and waits, bounded, for its reply.

use std::future::Future;
use std::time::Duration;

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE, ServiceExt};
use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Namespace;
use larder_contract::commands::{Command, Refusal};

/// The service could not be started or an endpoint added.
#[derive(Debug, thiserror::Error)]
#[error("could not {what} on NATS: {source}")]
pub struct ServiceError {
    what: String,
    #[source]
    source: async_nats::Error,
}

/// One NATS micro service and the endpoints it serves until [`CommandService::stop`].
pub struct CommandService {
    client: async_nats::Client,
    service: async_nats::service::Service,
    namespace: Namespace,
    stopping: CancellationToken,
    endpoints: JoinSet<()>,
}

impl CommandService {
    /// Starts the service `name` (namespaced like a durable: `t1a2b-stock` in a test namespace),
    /// announcing `version` and the namespace in its metadata.
    pub async fn start(
        client: &async_nats::Client,
        namespace: &Namespace,
        name: &str,
        description: &str,
        version: &str,
    ) -> Result<Self, ServiceError> {
        let service = client
            .service_builder()
            .description(description)
            .metadata([("namespace".to_owned(), namespace.to_string())].into())
            .start(namespace.durable(name), version)
            .await
            .map_err(|source| ServiceError {
                what: format!("start the {name} service"),
                source,
            })?;
        Ok(Self {
            client: client.clone(),
            service,
            namespace: namespace.clone(),
            stopping: CancellationToken::new(),
            endpoints: JoinSet::new(),
        })
    }

    /// Serves `C` with `handler`: each request is decoded (a malformed one is refused with 400),
    /// handled on a task of its own, and answered with the reply or the refusal.
    pub async fn serve<C, H, Fut>(&mut self, handler: H) -> Result<(), ServiceError>
    where
        C: Command,
        H: Fn(C) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Reply, Refusal>> + Send + 'static,
    {
        let mut endpoint = self
            .service
            .endpoint_builder()
            .name(C::ENDPOINT)
            .add(self.namespace.subject(C::SUBJECT))
            .await
            .map_err(|source| ServiceError {
                what: format!("add the {} endpoint", C::ENDPOINT),
                source,
            })?;
        let stopping = self.stopping.clone();
        self.endpoints.spawn(async move {
            let mut in_flight = JoinSet::new();
            loop {
                let request = tokio::select! {
                    () = stopping.cancelled() => break,
                    request = endpoint.next() => match request {
                        Some(request) => request,
                        None => break,
                    },
                };
                let handler = handler.clone();
                in_flight.spawn(async move {
                    let answer = match serde_json::from_slice::<C>(&request.message.payload) {
                        Ok(command) => handler(command).await,
                        Err(error) => Err(Refusal::bad_request(format!(
                            "not a {} command: {error}",
                            C::ENDPOINT
                        ))),
                    };
                    let response = match answer.and_then(|reply| {
                        serde_json::to_vec(&reply).map_err(|error| {
                            tracing::error!(endpoint = C::ENDPOINT, %error, "reply not encodable");
                            Refusal::internal()
                        })
                    }) {
                        Ok(body) => Ok(body.into()),
                        Err(refusal) => Err(async_nats::service::error::Error {
                            status: refusal.detail,
                            code: usize::from(refusal.code),
                        }),
                    };
                    if let Err(error) = request.respond(response).await {
                        tracing::warn!(endpoint = C::ENDPOINT, %error, "could not send a reply");
                    }
                });
                // Reap finished handlers as we go, so the set stays small.
                while in_flight.try_join_next().is_some() {}
            }
            // Stop taking requests, answer the ones in hand.
            while in_flight.join_next().await.is_some() {}
        });
        // Once the server has the subscription, a request from any connection finds it.
        self.client.flush().await.map_err(|source| ServiceError {
            what: format!("subscribe the {} endpoint", C::ENDPOINT),
            source: source.into(),
        })?;
        Ok(())
    }

    /// Stops taking requests, waits for the ones in hand to be answered, and leaves the
    /// service (discovery stops answering for this instance).
    pub async fn stop(mut self) {
        self.stopping.cancel();
        while self.endpoints.join_next().await.is_some() {}
        if let Err(error) = self.service.stop().await {
            tracing::warn!(%error, "could not stop the NATS service cleanly");
        }
    }
}

/// Why a [`call`] got no reply it could use.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nobody serves the command, or no instance answered in time: try again later.
    #[error("the {service} service did not answer within {timeout:?}")]
    Unavailable {
        service: &'static str,
        timeout: Duration,
    },
    /// The service answered with a refusal.
    #[error("the {service} service refused: {refusal}")]
    Refused {
        service: &'static str,
        refusal: Refusal,
    },
    /// The reply was not what the command promises: the two sides disagree on the contract.
    #[error("the {service} service's reply could not be read: {detail}")]
    BadReply {
        service: &'static str,
        detail: String,
    },
}

/// How long [`call`] waits before asking again when no instance is subscribed.
const NO_RESPONDERS_PAUSE: Duration = Duration::from_millis(100);

/// Sends `command` to its service and waits up to `timeout` for the reply.
pub async fn call<C: Command>(
    client: &async_nats::Client,
    namespace: &Namespace,
    command: &C,
    timeout: Duration,
) -> Result<C::Reply, CallError> {
    let service = C::SERVICE;
    let payload = serde_json::to_vec(command).map_err(|e| CallError::BadReply {
        service,
        detail: format!("the command could not be encoded: {e}"),
    })?;
    // No responders means no instance is subscribed right now: one may be starting (or its
    // subscription not yet seen by this server), so look again until the time is up.
    let deadline = tokio::time::Instant::now() + timeout;
    let reply = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let request = async_nats::Request::new()
            .payload(payload.clone().into())
            .timeout(Some(left.max(Duration::from_millis(1))));
        match client
            .send_request(namespace.subject(C::SUBJECT), request)
            .await
        {
            Ok(reply) => break reply,
            Err(error)
                if error.kind() == async_nats::client::RequestErrorKind::NoResponders
                    && left > NO_RESPONDERS_PAUSE =>
            {
                tokio::time::sleep(NO_RESPONDERS_PAUSE).await;
            }
            Err(error) => {
                // Timed out, nobody there, or the connection is down: all mean "not now".
                tracing::warn!(service, endpoint = C::ENDPOINT, %error, "service call failed");
                return Err(CallError::Unavailable { service, timeout });
            }
        }
    };
    if let Some(headers) = &reply.headers
        && let Some(code) = headers.get(NATS_SERVICE_ERROR_CODE)
    {
        let detail = headers
            .get(NATS_SERVICE_ERROR)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let code = code.as_str().parse().unwrap_or(500);
        return Err(CallError::Refused {
            service,
            refusal: Refusal { code, detail },
        });
    }
    serde_json::from_slice(&reply.payload).map_err(|e| CallError::BadReply {
        service,
        detail: e.to_string(),
    })
}
