//! Runs what the command line asked for. Services run inside one actix system on a
//! multi-threaded tokio runtime (actors need the system; sqlx and async-nats need tokio), each
//! until the shared shutdown token is cancelled by Ctrl-C or SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use migration::Service;

use crate::cli::Command;

pub fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Openapi => {
            println!("{}", order::api::spec_json());
            Ok(())
        }
        Command::Dlq(args) => {
            let runtime = tokio::runtime::Runtime::new().context("Failed to start tokio")?;
            runtime.block_on(dead_letters(args))
        }
        Command::Bench(args) => {
            let runtime = tokio::runtime::Runtime::new().context("Failed to start tokio")?;
            runtime.block_on(crate::bench::run(args))
        }
        Command::Migrate(args) => {
            let runtime = tokio::runtime::Runtime::new().context("Failed to start tokio")?;
            runtime.block_on(async {
                let provisioned = migration::provision::provision(&args.database, &args.services)
                    .await
                    .context("Failed to migrate the database")?;
                tracing::info!(
                    database = args.database.database_name(),
                    upgraded = provisioned.adopted.is_some(),
                    "roles, schemas and migrations in place"
                );
                Ok(())
            })
        }
        Command::All(args) => run_services(Services {
            metrics_addr: args.shared.metrics_addr,
            order: Some(args.shared.config(Service::Order, args.order)),
            stock: Some(args.shared.config(Service::Stock, args.stock)),
            notification: Some(args.shared.config(Service::Notification, args.notification)),
            delivery: Some(args.shared.config(Service::Delivery, args.delivery)),
        }),
        Command::Order(args) => run_services(Services {
            order: Some(args.shared.config(Service::Order, args.settings)),
            metrics_addr: args.shared.metrics_addr.or(None),
            ..Services::default()
        }),
        Command::Stock(args) => run_services(Services {
            stock: Some(args.shared.config(Service::Stock, args.settings)),
            metrics_addr: args.shared.metrics_addr.or(Some(STOCK_METRICS_ADDR)),
            ..Services::default()
        }),
        Command::Notification(args) => run_services(Services {
            notification: Some(args.shared.config(Service::Notification, args.settings)),
            metrics_addr: args.shared.metrics_addr.or(Some(NOTIFICATION_METRICS_ADDR)),
            ..Services::default()
        }),
        Command::Delivery(args) => run_services(Services {
            delivery: Some(args.shared.config(Service::Delivery, args.settings)),
            metrics_addr: args.shared.metrics_addr.or(Some(DELIVERY_METRICS_ADDR)),
            ..Services::default()
        }),
    }
}

async fn dead_letters(args: crate::cli::DlqArgs) -> anyhow::Result<()> {
    use crate::cli::DlqCommand;
    let client = larder_bus::connect(&args.nats, "larder-dlq", std::time::Duration::from_secs(10))
        .await
        .context("Failed to connect to NATS")?;
    let js = async_nats::jetstream::new(client);
    let ns = &args.nats.namespace;
    match args.command {
        DlqCommand::List { limit, json } => {
            let letters = larder_bus::dlq::list(&js, ns, limit)
                .await
                .context("Failed to read the DLQ stream")?;
            if json {
                for letter in &letters {
                    println!("{}", serde_json::to_string(letter)?);
                }
            } else {
                println!(
                    "{:>6}  {:<28} {:<26} {:>4}  {:<25} reason",
                    "seq", "consumer", "subject", "dlv", "stored at"
                );
                for l in &letters {
                    println!(
                        "{:>6}  {:<28} {:<26} {:>4}  {:<25} {}",
                        l.sequence,
                        l.consumer,
                        l.subject,
                        l.deliveries
                            .map_or_else(|| "?".to_owned(), |d| d.to_string()),
                        l.stored_at.to_string(),
                        l.reason
                    );
                }
                println!("{} dead letter(s)", letters.len());
            }
        }
        DlqCommand::Replay { sequence } => {
            let to = larder_bus::dlq::replay(&js, ns, sequence)
                .await
                .context("Failed to replay")?;
            println!(
                "replayed dead letter {sequence} to {} ({} sequence {}, Nats-Msg-Id {})",
                to.subject, to.stream, to.stream_sequence, to.message_id
            );
        }
    }
    Ok(())
}

/// Where `larder stock`, `notification` and `delivery` serve `/metrics` by default: they have no
/// HTTP port of their own, and side by side on one machine they need one each.
const STOCK_METRICS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9102);
const NOTIFICATION_METRICS_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9103);
const DELIVERY_METRICS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9104);

/// The services to run in this process.
#[derive(Default)]
struct Services {
    /// A listener of its own for `/metrics` (see [`crate::cli::Shared::metrics_addr`]).
    metrics_addr: Option<SocketAddr>,
    order: Option<order::Config>,
    stock: Option<stock::Config>,
    notification: Option<notification::Config>,
    delivery: Option<delivery::Config>,
}

impl Services {
    fn nats_config(&self) -> Option<larder_bus::NatsConfig> {
        (self.order.as_ref().map(|c| &c.nats))
            .or(self.stock.as_ref().map(|c| &c.nats))
            .or(self.notification.as_ref().map(|c| &c.nats))
            .or(self.delivery.as_ref().map(|c| &c.nats))
            .cloned()
    }
}

fn run_services(services: Services) -> anyhow::Result<()> {
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime can be built")
    });
    let result = system.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let metrics = crate::telemetry::install_metrics(shutdown.clone())?;

        // Build everything first (connections, migrations, streams, command endpoints), then
        // run it all, so the API never serves before the services it calls answer; the first
        // service to fail stops the others.
        let nats_config = services.nats_config();
        let order = build_if("order", services.order, order::Application::build)
            .await?
            .map(|app| app.with_metrics(metrics.clone()));
        let stock = build_if("stock", services.stock, stock::Application::build).await?;
        let notification = build_if(
            "notification",
            services.notification,
            notification::Application::build,
        )
        .await?;
        let delivery =
            build_if("delivery", services.delivery, delivery::Application::build).await?;
        let mut running = Vec::new();
        if let Some(address) = services.metrics_addr {
            let served = crate::telemetry::serve_metrics(address, metrics, shutdown.clone())
                .await
                .with_context(|| format!("Failed to serve /metrics on {address}"))?;
            running.push(spawn_service("metrics", &shutdown, |_| served));
        }
        if let Some(app) = stock {
            running.push(spawn_service("stock", &shutdown, |stop| {
                app.run_until_stopped(stop)
            }));
        }
        if let Some(app) = notification {
            running.push(spawn_service("notification", &shutdown, |stop| {
                app.run_until_stopped(stop)
            }));
        }
        if let Some(app) = delivery {
            running.push(spawn_service("delivery", &shutdown, |stop| {
                app.run_until_stopped(stop)
            }));
        }
        if let Some(app) = order {
            tracing::info!(port = app.port(), "order service listening");
            running.push(spawn_service("order", &shutdown, |stop| {
                app.run_until_stopped(stop)
            }));
        }
        // One advisory watcher per process: messages the server gave up on (max deliveries
        // after ack timeouts) become dead letters too (SPEC §5 rule 7).
        if let Some(config) = nats_config {
            let js = larder_bus::connect_jetstream(&config, "larder-advisories", &[])
                .await
                .context("Failed to connect the advisory watcher")?;
            let watcher =
                larder_bus::dlq::watch_advisories(js, config.namespace.clone(), shutdown.clone());
            running.push(spawn_service(
                "advisory watcher",
                &shutdown,
                |_| async move { Ok(watcher.await?) },
            ));
        }
        let mut first_error = None;
        for service in running {
            if let Err(error) = service.await.context("a service task panicked")? {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    });
    actix::System::current().stop();
    result
}

/// Runs `run_until_stopped(shutdown)` on the actix arbiter (actors need its local set); cancels
/// `shutdown` when it ends, so one service failing stops the process instead of leaving it half alive.
fn spawn_service<F>(
    name: &'static str,
    shutdown: &CancellationToken,
    run_until_stopped: impl FnOnce(CancellationToken) -> F,
) -> tokio::task::JoinHandle<anyhow::Result<()>>
where
    F: Future<Output = anyhow::Result<()>> + 'static,
{
    let service = run_until_stopped(shutdown.clone());
    let shutdown = shutdown.clone();
    actix::spawn(async move {
        let result = service.await;
        match &result {
            Ok(()) => tracing::info!(service = name, "stopped"),
            Err(error) => tracing::error!(service = name, error = ?error, "failed"),
        }
        shutdown.cancel();
        result.with_context(|| format!("the {name} service failed"))
    })
}

/// Builds the service called `name` when this process runs it (`config` is set).
async fn build_if<C, A, F>(
    name: &str,
    config: Option<C>,
    build: impl FnOnce(C) -> F,
) -> anyhow::Result<Option<A>>
where
    F: Future<Output = anyhow::Result<A>>,
{
    match config {
        Some(config) => build(config)
            .await
            .map(Some)
            .with_context(|| format!("Failed to start the {name} service")),
        None => Ok(None),
    }
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        () = terminate => {},
        () = shutdown.cancelled() => return,
    }
    tracing::info!("shutdown requested: finishing in-flight work");
    shutdown.cancel();
}
