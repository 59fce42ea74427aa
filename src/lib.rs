//! The `larder` binary's library: command line, telemetry, and running services together.
//!
//! - [`cli`]: `larder all | order | stock | notification | delivery | migrate | openapi`.
//! - [`telemetry`]: tracing subscriber, pretty or JSON.
//! - [`run`]: the actix system on a multi-threaded tokio runtime, shutdown on Ctrl-C / SIGTERM.

pub mod cli;
pub mod run;
pub mod telemetry;
