//! The `ingest` function: under the AWS Lambda runtime it handles Kafka events; anywhere else it runs
//! the local Kafka poller. Same handler either way.

use std::io::IsTerminal;

use clap::Parser;
use tidelake_functions::{init_logging, lambda, poller, Ingestor, PollerOptions};
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
    init_logging(!in_lambda && std::io::stderr().is_terminal());
    let config = PipelineConfig::for_function(&args.config).await?;
    let batch = config.batch;
    let mut ingestor = Ingestor::open(config).await?;
    if in_lambda {
        let ingestor = tokio::sync::Mutex::new(ingestor);
        let ingestor = &ingestor;
        lambda_runtime::run(lambda_runtime::service_fn(move |event| lambda::handle(event, ingestor))).await?;
    } else {
        let options = PollerOptions { batch, stop_at_end: args.stop_at_end };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let report = poller::run(&mut ingestor, options, shutdown, |_| {}).await?;
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
