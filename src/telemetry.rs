//! The tracing subscriber: pretty for people, JSON for log shippers (SPEC §6).

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// The filter when `RUST_LOG` is unset: `info`, except the lines every start repeats — the
/// migrator's "no pending migrations" and PostgreSQL's "relation seaql_migrations already exists,
/// skipping" notices (one set per service) — which show only when something is wrong.
pub const DEFAULT_FILTER: &str = "info,sea_orm_migration=warn,sqlx::postgres::notice=warn";

/// Installs the global subscriber. `RUST_LOG` filters (default [`DEFAULT_FILTER`]). Pretty
/// output has colour only on a terminal, and never with `NO_COLOR` set.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Pretty => registry
            .with(fmt::layer().compact().with_ansi(colour(
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            )))
            .init(),
        // Spans (request id, correlation id, order id) go into every line as fields.
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init(),
    }
}

/// Colour codes only for a person at a terminal (<https://no-color.org>).
fn colour(stdout_is_terminal: bool, no_color: bool) -> bool {
    stdout_is_terminal && !no_color
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, false));
        assert!(!colour(false, false), "piped output gets no colour codes");
        assert!(!colour(true, true), "NO_COLOR wins");
    }

    #[test]
    fn the_default_filter_parses_and_quiets_the_migrator() {
        let filter = EnvFilter::new(DEFAULT_FILTER).to_string();
        assert!(filter.contains("sea_orm_migration=warn"), "{filter}");
    }
}
