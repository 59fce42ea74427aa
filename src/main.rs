use clap::Parser;
use larder::cli::Cli;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    larder::telemetry::init(cli.log_format);
    larder::run::execute(cli.command)
}
