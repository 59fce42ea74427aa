use clap::Parser;
use larder::cli::Cli;

/// Under load glibc's malloc took about a third of the services' CPU (`perf`: `_int_malloc`,
/// `malloc_consolidate`, `unlink_chunk`, `_int_free`): every event and request allocates short-lived
/// buffers on one tokio worker and often frees them on another. mimalloc's per-thread heaps make
/// that cheap (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _traces = larder::telemetry::init(cli.log_format, cli.command.service_name());
    larder::run::execute(cli.command)
}
