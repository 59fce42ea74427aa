//! The stock service's configuration.

use migration::database::DatabaseConfig;
use nats::{NatsConfig, OutboxConfig};

/// Settings only the stock service has.
#[derive(Clone, Debug, clap::Args)]
pub struct StockSettings {
    /// Orders reserved per database transaction: every order touches the same hot ingredient
    /// rows, so one transaction per order would serialise on their locks.
    #[arg(
        long = "stock-batch-size",
        env = "STOCK_BATCH_SIZE",
        default_value_t = 64
    )]
    pub batch_size: usize,
}

impl Default for StockSettings {
    fn default() -> Self {
        Self { batch_size: 64 }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub outbox: OutboxConfig,
    pub settings: StockSettings,
}
