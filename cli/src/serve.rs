//! `tidelake serve`: the lake, the Kafka tail and live tables behind the Trino client protocol.

use std::net::SocketAddr;
use std::sync::Arc;

use tidelake_lake::PipelineConfig;
use tidelake_presto::server::{self, Credentials, Options};
use tidelake_presto::statement::Limits;
use tidelake_presto::Connector;

use crate::BoxError;

/// Flags of `tidelake serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pipeline config: a file path or an s3://bucket/key object.
    #[arg(long, env = "TIDELAKE_CONFIG", default_value = "tidelake.toml")]
    config: String,
    /// Address to listen on; any address but a loopback one needs --users or --tokens.
    #[arg(long, env = "TIDELAKE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Users allowed in, one `name:<argon2 hash>` per line (make the hash with --hash-password).
    #[arg(long, env = "TIDELAKE_USERS")]
    users: Option<std::path::PathBuf>,
    /// Bearer tokens allowed in, one `name:token` per line: the user each token stands for.
    #[arg(long, env = "TIDELAKE_TOKENS")]
    tokens: Option<std::path::PathBuf>,
    /// Serve https with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, env = "TIDELAKE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "TIDELAKE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Memory for the result cache in MiB: whole answers of statements over unchanged lake tables
    /// and per-day partial results of aggregates over closed days (0 turns it off). Its hits and
    /// misses are in `GET /v1/metrics`.
    #[arg(long, env = "TIDELAKE_CACHE_MB", default_value_t = 256)]
    cache_mb: usize,
    /// Drop a query (and its rows) that no client has polled for this long, as Trino does.
    #[arg(long, env = "TIDELAKE_ABANDON_AFTER", default_value = "5m", value_parser = humantime::parse_duration)]
    abandon_after: std::time::Duration,
    /// Memory in MiB that the sorts, joins, aggregates and windows of all running queries may hold
    /// together; a query that needs more fails with EXCEEDED_LOCAL_MEMORY_LIMIT, the others go on.
    #[arg(long, env = "TIDELAKE_MEMORY_MB", default_value_t = 1024)]
    memory_mb: usize,
    /// Queries running at once; one more is refused with QUERY_QUEUE_FULL.
    #[arg(long, env = "TIDELAKE_MAX_QUERIES", default_value_t = 32)]
    max_queries: usize,
    /// Kafka records a `kafka.*` or `live.*` query reads at most; a longer tail (ingest that far
    /// behind) is refused, saying by how much.
    #[arg(long, env = "TIDELAKE_MAX_TAIL_RECORDS", default_value_t = tidelake_presto::catalog::MAX_TAIL_RECORDS)]
    max_tail_records: u64,
    /// Answer `kafka.*` and `live.*` queries whose Kafka tail lost records to the topic's retention
    /// (deleted before ingest read them) without those records, instead of refusing them.
    #[arg(long, env = "TIDELAKE_ALLOW_LOST_TAIL")]
    allow_lost_tail: bool,
    /// Longest statement taken, in bytes (a longer request body is refused unread).
    #[arg(long, env = "TIDELAKE_MAX_STATEMENT_BYTES", default_value_t = Limits::default().max_statement_bytes)]
    max_statement_bytes: usize,
    /// Read a password from stdin, print its users-file form and exit.
    #[arg(long)]
    hash_password: bool,
}

/// Serves `config` on `listener` with `tidelake serve`'s defaults (loopback only, no sign-in)
/// until `shutdown` resolves.
pub(crate) async fn serve_defaults(
    config: PipelineConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BoxError> {
    let connector = Connector::new(config)?.with_result_cache(256 << 20).with_memory_limit(1024 << 20)?;
    server::run_with(listener, Arc::new(connector), Options::default(), shutdown).await?;
    Ok(())
}

/// Serves until Ctrl-C.
pub async fn run(args: Args) -> Result<(), BoxError> {
    if args.hash_password {
        let mut password = String::new();
        std::io::stdin().read_line(&mut password)?;
        println!("{}", server::hash_password(password.trim_end_matches(['\r', '\n'])));
        return Ok(());
    }
    let read = |path: &std::path::Path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    let mut credentials = Credentials::default();
    if let Some(path) = &args.users {
        credentials.users = Credentials::read_users(&read(path)?, &path.display().to_string())?;
    }
    if let Some(path) = &args.tokens {
        credentials.tokens = Credentials::read_tokens(&read(path)?, &path.display().to_string())?;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls::config(cert, key)?),
        _ => None,
    };
    server::check_exposure(args.listen, &credentials, tls.is_some())?;
    let config = PipelineConfig::for_function(&args.config).await?;
    let limits = Limits { max_statement_bytes: args.max_statement_bytes, ..Limits::default() };
    let connector = Connector::new(config)?
        .with_result_cache(args.cache_mb << 20)
        .with_memory_limit(args.memory_mb << 20)?
        .with_max_tail_records(args.max_tail_records)
        .with_allow_lost_tail(args.allow_lost_tail)
        .with_limits(limits);
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.map_err(|e| format!("listening on {}: {e}", args.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("tidelake serve: Trino client protocol on {scheme}://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let options = Options {
        credentials,
        abandon_after: args.abandon_after,
        max_queries: args.max_queries,
        tls,
        ..Options::default()
    };
    server::run_with(listener, Arc::new(connector), options, shutdown).await?;
    Ok(())
}
