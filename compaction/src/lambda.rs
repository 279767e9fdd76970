//! The `compact` function under AWS Lambda: an EventBridge schedule invokes it, it runs the
//! compaction jobs over every table of its pipeline and returns what they did.
//!
//! The schedule's input may narrow one invocation: `{"table": "ad_events", "jobs": ["optimize"],
//! "dry_run": true}` (each key optional); a plain scheduled event runs everything configured.

use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::Value;
use tidelake_lake::PipelineConfig;

use crate::{compact_table, CompactOptions, Job};

/// What the function holds between invocations: the pipeline and the default job settings.
#[derive(Debug, Clone)]
pub struct CompactFunction {
    /// The pipeline whose tables are compacted.
    pub config: PipelineConfig,
    /// Jobs and settings of an invocation that does not narrow them.
    pub options: CompactOptions,
}

/// The optional narrowing an invocation's input may carry.
#[derive(Debug, Default, Deserialize)]
struct Narrowing {
    table: Option<String>,
    jobs: Option<Vec<Job>>,
    dry_run: Option<bool>,
}

/// Handles one invocation: runs the jobs and returns their metrics per Delta table.
pub async fn handle(event: LambdaEvent<Value>, function: &CompactFunction) -> Result<Value, lambda_runtime::Error> {
    let narrowing: Narrowing = serde_json::from_value(event.payload.clone()).unwrap_or_default();
    let mut options = function.options.clone();
    if let Some(jobs) = narrowing.jobs {
        options.jobs = jobs;
    }
    if let Some(dry_run) = narrowing.dry_run {
        options.dry_run = dry_run;
    }
    let specs: Vec<_> =
        function.config.tables.iter().filter(|t| narrowing.table.as_ref().is_none_or(|name| &t.name == name)).collect();
    if specs.is_empty() {
        return Err(format!("no table `{}` in the pipeline config", narrowing.table.unwrap_or_default()).into());
    }
    let mut tables = Vec::new();
    for spec in specs {
        tables.extend(compact_table(spec, &function.config.storage_options, &options).await?);
    }
    Ok(serde_json::json!({ "dry_run": options.dry_run, "tables": tables }))
}
