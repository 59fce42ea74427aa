//! The delivery service's configuration.

use larder_bus::{NatsConfig, OutboxConfig};
use migration::database::DatabaseConfig;

/// Settings only the delivery service has: how long the simulated courier takes.
#[derive(Clone, Debug, clap::Args)]
pub struct DeliverySettings {
    /// From confirmed to dispatched.
    #[arg(
        long = "delivery-dispatch-delay-ms",
        env = "DELIVERY_DISPATCH_DELAY_MS",
        default_value_t = 2000
    )]
    pub dispatch_delay_ms: u64,
    /// From dispatched to delivered.
    #[arg(
        long = "delivery-deliver-delay-ms",
        env = "DELIVERY_DELIVER_DELAY_MS",
        default_value_t = 5000
    )]
    pub deliver_delay_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        larder_bus::config::declared_defaults()
    }
}

impl DeliverySettings {}

#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub outbox: OutboxConfig,
    pub settings: DeliverySettings,
}
