//! The stock service's configuration.

/// Settings only the stock service has.
#[derive(Clone, Debug, clap::Args)]
pub struct StockSettings {
    /// Orders reserved per database transaction: every order touches the same hot ingredient
    /// rows, so one transaction per order would serialise on their locks. Under saturation 64 made
    /// stock the stage that falls behind (end-to-end p99 of seconds); 256 keeps up at the same CPU
    /// per order (docs/PERFORMANCE.md, round 7).
    #[arg(
        id = "stock_batch_size",
        long = "stock-batch-size",
        env = "STOCK_BATCH_SIZE",
        default_value_t = 256
    )]
    pub batch_size: usize,
}

impl Default for StockSettings {
    fn default() -> Self {
        larder_bus::config::declared_defaults()
    }
}

/// Everything the stock service needs; tests build it in code.
pub type Config = larder_bus::config::ServiceConfig<StockSettings>;

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: StockSettings,
    }

    /// The command line alone, every argument's variable taken off: a `STOCK_BATCH_SIZE` of
    /// whoever runs the tests changes nothing.
    fn parse_without_env(args: &[&str]) -> Cli {
        let matches = Cli::command()
            .mut_args(|arg| arg.env(None))
            .get_matches_from(args);
        Cli::from_arg_matches(&matches).unwrap()
    }

    #[test]
    fn the_flag_sets_the_batch_size_and_its_default_matches_default() {
        Cli::command().debug_assert();
        let cli = parse_without_env(&["stock", "--stock-batch-size", "8"]);
        assert_eq!(cli.settings.batch_size, 8);
        let cli = parse_without_env(&["stock"]);
        assert_eq!(cli.settings.batch_size, StockSettings::default().batch_size);
    }
}
