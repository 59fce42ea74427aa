//! The command line. Every option also reads an environment variable (see `.env.example`).

use clap::{Args, Parser, Subcommand};
use larder_bus::config::ServiceConfig;
use larder_bus::{ConsumeConfig, NatsConfig, OutboxConfig};
use migration::Service;
use migration::database::{DatabaseConfig, ServiceDatabases};

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "larder",
    version,
    about = "Event-driven orders and ingredient stock"
)]
pub struct Cli {
    /// Log format: pretty for a terminal, json in production.
    #[arg(long, env, value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process.
    All(AllArgs),
    /// Run the public HTTP API (orders, auth, ingredients) and its consumers.
    Order(OrderArgs),
    /// Run stock processing: reservations, releases, low-stock alerts.
    Stock(StockArgs),
    /// Run the low-stock email sender.
    Notification(NotificationArgs),
    /// Run shipments: dispatch and delivery timers.
    Delivery(DeliveryArgs),
    /// As the admin (DATABASE_URL): create the database, each service's role and schema, upgrade
    /// the single-schema layout, and apply every service's migrations as its own role.
    Migrate(MigrateArgs),
    /// Print the OpenAPI spec the order service serves (regenerate openapi.json with it).
    Openapi,
    /// Offer orders to a running stack and report throughput, latency and consistency.
    Bench(crate::bench::BenchArgs),
    /// Dead letters: list them, replay one onto its original subject.
    Dlq(DlqArgs),
}

impl Command {
    /// What this process calls itself in exported traces.
    pub fn service_name(&self) -> &'static str {
        match self {
            Self::All(_) => "larder",
            Self::Order(_) => "larder-order",
            Self::Stock(_) => "larder-stock",
            Self::Notification(_) => "larder-notification",
            Self::Delivery(_) => "larder-delivery",
            Self::Migrate(_) => "larder-migrate",
            Self::Openapi => "larder-openapi",
            Self::Bench(_) => "larder-bench",
            Self::Dlq(_) => "larder-dlq",
        }
    }
}

/// Configuration every service shares.
#[derive(Clone, Debug, Args)]
pub struct Shared {
    /// One URL per service, each with its own role (`larder all` uses all four).
    #[command(flatten)]
    pub database: ServiceDatabases,
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub outbox: OutboxConfig,
    #[command(flatten)]
    pub consume: ConsumeConfig,
    /// Where to serve Prometheus `GET /metrics` on a listener of its own. Unset: a process with
    /// the order service serves it on its HTTP port; `larder stock`, `notification` and
    /// `delivery` alone on 127.0.0.1:9102, :9103 and :9104. Port 0 picks a free one (logged).
    #[arg(long, env)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub shared: Shared,
    #[command(flatten)]
    pub order: order::config::OrderSettings,
    #[command(flatten)]
    pub stock: stock::config::StockSettings,
    #[command(flatten)]
    pub notification: notification::config::NotificationSettings,
    #[command(flatten)]
    pub delivery: delivery::config::DeliverySettings,
}

#[derive(Debug, Args)]
pub struct OrderArgs {
    #[command(flatten)]
    pub shared: Shared,
    #[command(flatten)]
    pub settings: order::config::OrderSettings,
}

#[derive(Debug, Args)]
pub struct StockArgs {
    #[command(flatten)]
    pub shared: Shared,
    #[command(flatten)]
    pub settings: stock::config::StockSettings,
}

#[derive(Debug, Args)]
pub struct NotificationArgs {
    #[command(flatten)]
    pub shared: Shared,
    #[command(flatten)]
    pub settings: notification::config::NotificationSettings,
}

#[derive(Debug, Args)]
pub struct DeliveryArgs {
    #[command(flatten)]
    pub shared: Shared,
    #[command(flatten)]
    pub settings: delivery::config::DeliverySettings,
}

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The newest dead letters, newest last: sequence, consumer, subject, deliveries, reason.
    List {
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish a dead letter again on its original subject (a new Nats-Msg-Id; consumers'
    /// inboxes still recognise an event they already handled).
    Replay {
        /// The dead letter's sequence in the DLQ stream (from `larder dlq list`).
        sequence: u64,
    },
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The admin URL (`DATABASE_URL`): creates the database, roles and schemas.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The services' URLs: the roles to create, with their passwords.
    #[command(flatten)]
    pub services: ServiceDatabases,
}

impl Shared {
    /// `service`'s configuration: its own database URL, the shared NATS, relay and consumer settings,
    /// and the settings only it has.
    pub fn config<S>(&self, service: Service, settings: S) -> ServiceConfig<S> {
        ServiceConfig {
            database: self.database.config(service),
            nats: self.nats.clone(),
            outbox: self.outbox.clone(),
            consume: self.consume.clone(),
            settings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        // Catches duplicate option names across the flattened service settings of `larder all`.
        Cli::command().debug_assert();
    }
}
