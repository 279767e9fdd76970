//! The `ingest` function's entry point: under the AWS Lambda runtime it handles Kafka events;
//! anywhere else it runs the local Kafka poller. Same handler either way. A library function, so
//! that the binary Lambda runs and the one the benchmarks time are the same code.

use std::time::Instant;

use clap::Parser;

use crate::{init_logging, lambda, Ingestor};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Consume Kafka micro-batches into Delta tables, exactly once.
///
/// Under AWS Lambda (AWS_LAMBDA_RUNTIME_API is set) the function reads its config from
/// TIDELAKE_CONFIG and handles the events of a Kafka event source mapping. Elsewhere it polls Kafka
/// itself.
///
/// Example:
///   ingest --config tidelake.toml
#[derive(Parser, Debug)]
#[command(name = "ingest", version)]
struct Args {
    /// Pipeline config: a file path or an s3://bucket/key object (TIDELAKE_CONFIG_TOML, when set,
    /// holds the config itself and wins).
    #[arg(long, env = "TIDELAKE_CONFIG", default_value = "tidelake.toml")]
    config: String,
    /// Stop once the topics are consumed up to where they ended at start (local poller only).
    #[arg(long, env = "TIDELAKE_STOP_AT_END")]
    stop_at_end: bool,
}

/// Runs the `ingest` function with the process's arguments and environment.
#[tokio::main]
pub async fn ingest() -> Result<(), BoxError> {
    let started = Instant::now();
    let args = Args::parse();
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    init_logging(!in_lambda && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if !in_lambda {
        poller_built()?;
    }
    if in_lambda {
        let ingestor = tokio::sync::Mutex::new(Ingestor::open_at(&args.config, started).await?);
        let (ingestor, location) = (&ingestor, args.config.as_str());
        lambda_runtime::run(lambda_runtime::service_fn(move |event| lambda::handle(event, ingestor, location))).await?;
        Ok(())
    } else {
        poll(&args, started).await
    }
}

/// Outside Lambda: consume the config's topics with the local poller until Ctrl-C.
#[cfg(feature = "kafka-client")]
async fn poll(args: &Args, started: Instant) -> Result<(), BoxError> {
    use crate::{poller, PollerOptions};
    let (mut ingestor, connection) = poller::start(&args.config, args.stop_at_end, started).await?;
    let batch = ingestor.config().batch;
    let options =
        PollerOptions { config_location: Some(args.config.clone()), ..PollerOptions::new(batch, args.stop_at_end) };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = poller::run_connected(&mut ingestor, connection, options, shutdown, |_| {}).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// A Lambda build has no poller: outside Lambda it says where the poller is, before anything opens.
fn poller_built() -> Result<(), BoxError> {
    if cfg!(feature = "kafka-client") {
        return Ok(());
    }
    Err(crate::Error::NotBuilt {
        feature: "kafka-client",
        what: "polling Kafka outside AWS Lambda",
        instead: "run `tidelake ingest`, or this function under a Lambda runtime",
    }
    .into())
}

#[cfg(not(feature = "kafka-client"))]
async fn poll(_: &Args, _: Instant) -> Result<(), BoxError> {
    poller_built()
}
