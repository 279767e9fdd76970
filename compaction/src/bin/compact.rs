//! The `compact` function: under the AWS Lambda runtime an EventBridge schedule invokes it; anywhere
//! else it runs the jobs once and prints the report. Same jobs either way.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Parser;
use tidelake_compaction::lambda::{self, CompactFunction};
use tidelake_compaction::{CompactOptions, Job};
use tidelake_lake::PipelineConfig;

/// Compact the tables of a pipeline: optimize, vacuum, checkpoint.
///
/// Under AWS Lambda (AWS_LAMBDA_RUNTIME_API is set) each invocation runs the jobs; the schedule's
/// input may narrow one run with {"table": ..., "jobs": [...], "dry_run": true}.
///
/// Example:
///   TIDELAKE_COMPACT_JOBS=optimize,checkpoint compact --config tidelake.toml
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Pipeline config: a file path or an s3://bucket/key object (TIDELAKE_CONFIG_TOML, when set,
    /// holds the config itself and wins).
    #[arg(long, env = "TIDELAKE_CONFIG", default_value = "tidelake.toml")]
    config: String,
    /// Jobs to run, in this order, separated by commas.
    #[arg(long = "job", env = "TIDELAKE_COMPACT_JOBS", value_enum, value_delimiter = ',', default_values_t = Job::DEFAULT)]
    jobs: Vec<Job>,
    /// Optimize packs small files into files up to this many bytes.
    #[arg(long, env = "TIDELAKE_TARGET_SIZE", default_value_t = tidelake_compaction::optimize::DEFAULT_TARGET_SIZE)]
    target_size: u64,
    /// Vacuum deletes files removed longer ago than this.
    #[arg(long, env = "TIDELAKE_RETENTION", default_value = "7days", value_parser = humantime::parse_duration)]
    retention: Duration,
    /// Show what each job would do; write and delete nothing.
    #[arg(long, env = "TIDELAKE_DRY_RUN")]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    tidelake_lake::logging::init(!in_lambda && std::io::stderr().is_terminal());
    let function = CompactFunction {
        config: PipelineConfig::for_function(&args.config).await?,
        options: CompactOptions {
            jobs: args.jobs,
            target_size: args.target_size,
            retention: args.retention,
            dry_run: args.dry_run,
        },
    };
    let function = &function;
    if in_lambda {
        lambda_runtime::run(lambda_runtime::service_fn(move |event| lambda::handle(event, function))).await?;
    } else {
        let event = lambda_runtime::LambdaEvent::new(serde_json::json!({}), lambda_runtime::Context::default());
        let report = lambda::handle(event, function).await?;
        println!("{report}");
    }
    Ok(())
}
