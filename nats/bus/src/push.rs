//! Publishing live pushes ([`larder_contract::push`]): best effort, after the commit they
//! report.

use std::time::Duration;

use serde::Serialize;

use crate::Namespace;

/// How long a publish may wait for the NATS client before it is given up.
const PUBLISH_WAIT: Duration = Duration::from_secs(1);

/// Publishes pushes, best effort. Cheap to clone.
#[derive(Clone)]
pub struct Pusher {
    client: async_nats::Client,
    namespace: Namespace,
}

impl Pusher {
    pub fn new(client: async_nats::Client, namespace: &Namespace) -> Self {
        Self {
            client,
            namespace: namespace.clone(),
        }
    }

    /// Publishes `message` on `subject` (one of `larder_contract::push`), after the commit it
    /// reports. A lost push delays a listener until its next re-read and loses nothing, so a
    /// failure is only logged.
    pub async fn publish(&self, subject: &'static str, message: &impl Serialize) {
        let payload = match serde_json::to_vec(message) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%error, subject, "could not encode a push");
                return;
            }
        };
        // While NATS is away the client buffers, and a full buffer would hold the caller (a
        // consumer about to ack) for a wake-up nobody depends on: give up after a moment.
        match tokio::time::timeout(
            PUBLISH_WAIT,
            self.client
                .publish(self.namespace.subject(subject), payload.into()),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, subject, "could not publish a push"),
            Err(_) => tracing::warn!(
                subject,
                "gave up publishing a push: the NATS client is busy"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use larder_contract::push::{ALERTS_CHANGED, ORDER_STATUS, STOCK_CHANGED};

    #[test]
    fn the_push_subjects_are_captured_by_no_stream() {
        for subject in [ORDER_STATUS, STOCK_CHANGED, ALERTS_CHANGED] {
            for stream in crate::topology::STREAMS {
                let prefix = stream.subjects.trim_end_matches('>');
                assert!(
                    !subject.starts_with(prefix),
                    "{} would store the pushes on {subject}",
                    stream.name
                );
            }
        }
    }
}
