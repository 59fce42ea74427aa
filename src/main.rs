use clap::Parser;
use larder::cli::Cli;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _traces = larder::telemetry::init(cli.log_format, cli.command.service_name());
    larder::run::execute(cli.command)
}
