//! The bus's Prometheus gauges (the `metrics` facade; the process installs the exporter): what a
//! consumer has waiting and redelivered, and what an outbox has not published yet and how old its
//! oldest row is. Both are sampled on an interval, since neither changes on an event this process
//! sees (the server holds the consumer's state, other instances write the outbox).

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio_util::sync::CancellationToken;

/// How often the gauges are sampled: a scrape every 15 s sees figures at most this old.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Samples the consumer's info until `shutdown`: `larder_consumer_pending` (not yet delivered),
/// `larder_consumer_ack_pending` (delivered, not yet acked) and `larder_consumer_redelivered`,
/// labelled with the durable's name.
pub async fn sample_consumer(
    mut consumer: PullConsumer,
    durable: String,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        match consumer.info().await {
            Ok(info) => {
                let labels = [("consumer", durable.clone())];
                metrics::gauge!("larder_consumer_pending", &labels).set(info.num_pending as f64);
                metrics::gauge!("larder_consumer_ack_pending", &labels)
                    .set(info.num_ack_pending as f64);
                metrics::gauge!("larder_consumer_redelivered", &labels)
                    .set(info.num_redelivered as f64);
            }
            Err(error) => tracing::debug!(%durable, %error, "consumer info for metrics failed"),
        }
    }
}

/// One sample of the outbox `db`'s `search_path` resolves to: `larder_outbox_waiting` (rows not
/// published yet) and `larder_outbox_oldest_age_seconds`, labelled with the service.
pub async fn sample_outbox(db: &DatabaseConnection, service: &str) {
    let sampled = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS waiting, \
             COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest \
             FROM outbox WHERE published_at IS NULL",
        ))
        .await;
    match sampled {
        Ok(Some(row)) => {
            let waiting: i64 = row.try_get("", "waiting").unwrap_or_default();
            let oldest: f64 = row.try_get("", "oldest").unwrap_or_default();
            let labels = [("service", service.to_owned())];
            metrics::gauge!("larder_outbox_waiting", &labels).set(waiting as f64);
            metrics::gauge!("larder_outbox_oldest_age_seconds", &labels).set(oldest);
        }
        Ok(None) => {}
        Err(error) => tracing::debug!(service, %error, "outbox sample for metrics failed"),
    }
}
