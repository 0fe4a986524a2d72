//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info` for the server, `warn`
//! for one-shot commands, whose stdout is reserved for their JSON), as text or as JSON lines.
//!
//! Text has colours only when stderr is a terminal (and `NO_COLOR` is unset), so files and log
//! collectors never see escape codes. An invalid `RUST_LOG` is not silently ignored: the default
//! filter is used and one warning says so.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(serving: bool, format: LogFormat) {
    let default = if serving { "info" } else { "warn" };
    let (filter, invalid) = filter(std::env::var("RUST_LOG").ok().as_deref(), default);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(colours()).try_init(),
    };
    if installed.is_ok() {
        if let Some(error) = invalid {
            tracing::warn!("RUST_LOG is invalid ({error}); using the default filter {default:?}");
        }
    }
}

/// The filter `RUST_LOG` asks for, or the default and why `RUST_LOG` was refused.
fn filter(rust_log: Option<&str>, default: &str) -> (EnvFilter, Option<String>) {
    match rust_log.map(str::trim).filter(|value| !value.is_empty()) {
        None => (EnvFilter::new(default), None),
        Some(value) => match EnvFilter::builder().parse(value) {
            Ok(filter) => (filter, None),
            Err(error) => (EnvFilter::new(default), Some(error.to_string())),
        },
    }
}

fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn a_valid_filter_is_used() {
        let (filter, invalid) = filter(Some("mcp_manager=debug,warn"), "info");
        assert!(invalid.is_none());
        assert_eq!(filter.to_string(), "mcp_manager=debug,warn");
    }

    #[test]
    fn an_invalid_filter_is_reported_and_the_default_used() {
        let (filter, invalid) = filter(Some("mcp_manager=loud"), "info");
        assert!(invalid.is_some());
        assert_eq!(filter.to_string(), "info");
    }

    #[test]
    fn an_unset_or_empty_filter_is_the_default() {
        assert_eq!(filter(None, "warn").0.to_string(), "warn");
        assert!(filter(Some("  "), "warn").1.is_none());
    }
}
