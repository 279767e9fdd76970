//! Logs of every tidelake binary: JSON lines (for CloudWatch and log shippers) or, on a terminal,
//! compact text.

/// Installs the log subscriber: JSON lines unless `pretty`. The level comes from `RUST_LOG`: by
/// default `info` for tidelake and `warn` for the Delta crates.
pub fn init(pretty: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,buoyant_kernel=warn,deltalake_core=warn,deltalake_core::writer::stats=error")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if pretty { builder.compact().try_init() } else { builder.json().flatten_event(true).try_init() };
}
