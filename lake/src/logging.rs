//! Logs of every tidelake binary: JSON lines (for CloudWatch and log shippers) or, on a terminal,
//! compact text.

/// What the logs show unless `RUST_LOG` says otherwise: `info` for tidelake, `warn` for the Delta
/// crates.
const DEFAULT_DIRECTIVES: &str = "info,buoyant_kernel=warn,deltalake_core=warn";

/// The Delta writer warns on every file it writes with a binary column (every archive file) that it
/// keeps no statistics for it: shown only at `error` unless `RUST_LOG` names this target itself.
const QUIET_STATS: &str = "deltalake_core::writer::stats=error";

/// The filter directives for `rust_log` (the `RUST_LOG` value, if set).
fn directives(rust_log: Option<&str>) -> String {
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => format!("{DEFAULT_DIRECTIVES},{QUIET_STATS}"),
        Some(given) if given.contains("deltalake_core::writer::stats") => given.to_string(),
        Some(given) => format!("{given},{QUIET_STATS}"),
    }
}

/// Milliseconds since `at`, as the logs' `*_ms` fields give them.
pub fn ms_since(at: std::time::Instant) -> f64 {
    at.elapsed().as_secs_f64() * 1e3
}

/// Installs the log subscriber: JSON lines unless `pretty`. The level comes from `RUST_LOG`: by
/// default `info` for tidelake and `warn` for the Delta crates.
pub fn init(pretty: bool) {
    use tracing_subscriber::EnvFilter;
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter =
        EnvFilter::try_new(directives(rust_log.as_deref())).unwrap_or_else(|_| EnvFilter::new(directives(None)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if pretty { builder.compact().try_init() } else { builder.json().flatten_event(true).try_init() };
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn the_writer_statistics_warning_stays_quiet_unless_rust_log_asks_for_it() {
        assert_eq!(
            directives(None),
            "info,buoyant_kernel=warn,deltalake_core=warn,deltalake_core::writer::stats=error"
        );
        assert_eq!(directives(Some("  ")), directives(None));
        assert_eq!(directives(Some("warn")), "warn,deltalake_core::writer::stats=error");
        assert_eq!(
            directives(Some("debug,deltalake_core::writer::stats=warn")),
            "debug,deltalake_core::writer::stats=warn"
        );
    }
}
