//! The `larder` binary's library: command line, telemetry, and running services together.
//!
//! - [`cli`]: `larder all | order | stock | notification | delivery | migrate | openapi`.
//! - [`telemetry`]: tracing subscriber, pretty or JSON.
//! - [`bench`]: `larder bench`, load and a consistency check against a running stack.
//! - [`run`]: the actix system on a multi-threaded tokio runtime, shutdown on Ctrl-C / SIGTERM.

pub mod bench;
pub mod cli;
pub mod run;
pub mod telemetry;
