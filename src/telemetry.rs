//! The tracing subscriber: pretty for people, JSON for log shippers (SPEC §6); and the
//! process's Prometheus recorder with, for a process without the order service's HTTP port, a
//! `/metrics` listener of its own.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// The filter when `RUST_LOG` is unset: `info`, except the lines every start repeats — the
/// migrator's "no pending migrations" and PostgreSQL's "relation seaql_migrations already exists,
/// skipping" notices (one set per service) — which show only when something is wrong.
pub const DEFAULT_FILTER: &str = "info,sea_orm_migration=warn,sqlx::postgres::notice=warn";

/// The OTLP exporter's own variables: either one turns export on (SPEC §6: off by default).
const OTLP_ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Exports spans while alive; dropping it flushes what is buffered and stops the exporter.
pub struct TraceExport(opentelemetry_sdk::trace::SdkTracerProvider);

impl Drop for TraceExport {
    fn drop(&mut self) {
        if let Err(error) = self.0.shutdown() {
            eprintln!("flushing traces failed: {error}");
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` filters (default [`DEFAULT_FILTER`]). Pretty
/// output has colour only on a terminal, and never with `NO_COLOR` set. When an OTLP endpoint is
/// configured (`OTEL_EXPORTER_OTLP_ENDPOINT`, HTTP/protobuf, e.g. `http://127.0.0.1:4318`),
/// spans are exported too, as `service` (`OTEL_SERVICE_NAME` wins); keep the returned guard
/// for the process's life.
pub fn init(format: LogFormat, service: &'static str) -> Option<TraceExport> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (export, otel) = match otlp_tracer(service) {
        Ok(Some((provider, tracer))) => (
            Some(TraceExport(provider)),
            Some(tracing_opentelemetry::layer().with_tracer(tracer)),
        ),
        Ok(None) => (None, None),
        Err(error) => {
            eprintln!("traces will not be exported: {error:#}");
            (None, None)
        }
    };
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    match format {
        LogFormat::Pretty => registry
            .with(fmt::layer().compact().with_ansi(colour(
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            )))
            .init(),
        // Spans (request id, correlation id, order id, trace id) go into every line as fields.
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init(),
    }
    export
}

/// The OTLP/HTTP exporter and a tracer on it, when an endpoint is configured. The batch
/// processor exports from a thread of its own (`OTEL_BSP_SCHEDULE_DELAY` and friends apply).
fn otlp_tracer(
    service: &'static str,
) -> anyhow::Result<
    Option<(
        opentelemetry_sdk::trace::SdkTracerProvider,
        opentelemetry_sdk::trace::Tracer,
    )>,
> {
    use opentelemetry::trace::TracerProvider as _;
    if !OTLP_ENDPOINT_VARS
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
    {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .context("Failed to build the OTLP exporter")?;
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name)
                .build(),
        )
        .build();
    let tracer = provider.tracer(service);
    Ok(Some((provider, tracer)))
}

/// Latency buckets, in seconds: from a cache hit to a request that waited on a timeout.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Orders per reservation transaction: one alone up to the largest batch.
const BATCH_SIZE_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// How often histogram windows and idle series are maintained (the recorder does not do it).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the process's one Prometheus recorder, with the histograms' buckets (without them
/// they would render as summaries, which cannot be aggregated across instances), and keeps it
/// maintained until `shutdown`.
pub fn install_metrics(shutdown: CancellationToken) -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full("larder_stock_reservation_batch_size".into()),
            &BATCH_SIZE_BUCKETS,
        )?
        .install_recorder()
        .context("Failed to install the metrics recorder")?;
    let maintained = handle.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => maintained.run_upkeep(),
            }
        }
    });
    Ok(handle)
}

/// Binds `address` and returns the server to run: `GET /metrics` (and `GET /health`) until
/// `shutdown`.
pub async fn serve_metrics(
    address: SocketAddr,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<impl Future<Output = anyhow::Result<()>>> {
    use poem::listener::{Acceptor, Listener};
    use poem::{EndpointExt, IntoResponse, Route, get, handler, web::Data};

    #[handler]
    fn metrics(handle: Data<&PrometheusHandle>) -> poem::Response {
        handle
            .render()
            .with_content_type("text/plain; version=0.0.4; charset=utf-8")
            .into_response()
    }
    #[handler]
    fn health() -> &'static str {
        "ok"
    }

    let acceptor = poem::listener::TcpListener::bind(address)
        .into_acceptor()
        .await?;
    if let Some(bound) = acceptor.local_addr().first() {
        tracing::info!(address = %bound, "serving /metrics");
    }
    let app = Route::new()
        .at("/metrics", get(metrics))
        .at("/health", get(health))
        .data(handle);
    Ok(async move {
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                shutdown.cancelled_owned(),
                Some(Duration::from_secs(1)),
            )
            .await?;
        Ok(())
    })
}

/// Colour codes only for a person at a terminal (<https://no-color.org>).
fn colour(stdout_is_terminal: bool, no_color: bool) -> bool {
    stdout_is_terminal && !no_color
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, false));
        assert!(!colour(false, false), "piped output gets no colour codes");
        assert!(!colour(true, true), "NO_COLOR wins");
    }

    #[test]
    fn the_default_filter_parses_and_quiets_the_migrator() {
        let filter = EnvFilter::new(DEFAULT_FILTER).to_string();
        assert!(filter.contains("sea_orm_migration=warn"), "{filter}");
    }
}
