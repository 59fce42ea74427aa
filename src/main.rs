use clap::Parser;
use larder::cli::Cli;

/// Under load glibc's malloc took about a third of the services' CPU (`perf`: `_int_malloc`,
/// `_int_free`, `malloc_consolidate`, `unlink_chunk`); with mimalloc larder's CPU per completed
/// order fell by about a sixth (docs/PERFORMANCE.md, round 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _traces = larder::telemetry::init(cli.log_format, cli.command.service_name());
    larder::run::execute(cli.command)
}
