//! The `ingest` function: under the AWS Lambda runtime it handles Kafka events; anywhere else it runs
//! the local Kafka poller. Same handler either way.

use clap::Parser;
use tidelake_functions::{init_logging, lambda, Ingestor};
use tidelake_lake::PipelineConfig;

/// Consume Kafka micro-batches into Delta tables, exactly once.
///
/// Under AWS Lambda (AWS_LAMBDA_RUNTIME_API is set) the function reads its config from
/// TIDELAKE_CONFIG and handles the events of a Kafka event source mapping. Elsewhere it polls Kafka
/// itself.
///
/// Example:
///   ingest --config tidelake.toml
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Pipeline config: a file path or an s3://bucket/key object (TIDELAKE_CONFIG_TOML, when set,
    /// holds the config itself and wins).
    #[arg(long, env = "TIDELAKE_CONFIG", default_value = "tidelake.toml")]
    config: String,
    /// Stop once the topics are consumed up to where they ended at start (local poller only).
    #[arg(long, env = "TIDELAKE_STOP_AT_END")]
    stop_at_end: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    init_logging(!in_lambda && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let config = PipelineConfig::for_function(&args.config).await?;
    if in_lambda {
        let ingestor = tokio::sync::Mutex::new(Ingestor::open(config).await?);
        let (ingestor, location) = (&ingestor, args.config.as_str());
        lambda_runtime::run(lambda_runtime::service_fn(move |event| lambda::handle(event, ingestor, location))).await?;
        Ok(())
    } else {
        poll(config, args.stop_at_end).await
    }
}

/// Outside Lambda: consume the config's topics with the local poller until Ctrl-C.
#[cfg(feature = "kafka-client")]
async fn poll(config: PipelineConfig, stop_at_end: bool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use tidelake_functions::{poller, PollerOptions};
    let options = PollerOptions::new(config.batch, stop_at_end);
    let mut ingestor = Ingestor::open(config).await?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = poller::run(&mut ingestor, options, shutdown, |_| {}).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// A Lambda build has no poller: outside Lambda it says where the poller is.
#[cfg(not(feature = "kafka-client"))]
async fn poll(_: PipelineConfig, _: bool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err(tidelake_functions::Error::NotBuilt {
        feature: "kafka-client",
        what: "polling Kafka outside AWS Lambda",
        instead: "run `tidelake ingest`, or this function under a Lambda runtime",
    }
    .into())
}
