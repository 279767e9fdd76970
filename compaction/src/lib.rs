//! # tidelake-compaction
//!
//! The jobs that keep a lake fast while ingest keeps writing to it. Each is a builder over one Delta
//! table, with `with_*` settings and a dry run, awaited for `(table, metrics)`:
//!
//! ```text
//! many small files --Optimize--> a few files near the target size (dataChange = false: same rows)
//! removed files    --Vacuum--> deleted once older than the retention
//! long Delta log   --Checkpoint--> one Parquet checkpoint + expired commit files deleted
//! ```
//!
//! [`compact_table`] runs the chosen jobs over a configured table and its dead-letter and archive
//! tables, in that order. Re-running any job on a table it has just handled commits nothing.
//!
//! ## Layout
//!
//! - [`optimize`]: the bin-packing plan per partition and its rewrite in one commit.
//! - [`checkpoint`]: the log checkpoint and the cleanup of expired commit files.
//! - [`vacuum`]: deleting files no version within the retention needs.
//! - [`lambda`]: the `compact` function's handler for scheduled Lambda invocations.
//! - [`error`]: the crate's [`Error`].
//!
//! The `compact` binary (`src/bin/compact.rs`) runs the handler under the Lambda runtime, or once.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod error;
pub mod lambda;
pub mod optimize;
pub mod vacuum;

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tidelake_lake::TableSpec;

pub use checkpoint::{Checkpoint, CheckpointMetrics};
pub use error::{Error, Result};
pub use optimize::{Optimize, OptimizeMetrics};
pub use vacuum::{Vacuum, VacuumMetrics};

/// A compaction job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// Bin-pack small files.
    Optimize,
    /// Checkpoint the Delta log.
    Checkpoint,
    /// Delete files past the retention.
    Vacuum,
}

/// Settings of a compaction run.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// The jobs to run, in this order.
    pub jobs: Vec<Job>,
    /// Optimize's target file size.
    pub target_size: u64,
    /// Vacuum's retention.
    pub retention: Duration,
    /// Plan and list only.
    pub dry_run: bool,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            jobs: vec![Job::Optimize, Job::Vacuum, Job::Checkpoint],
            target_size: optimize::DEFAULT_TARGET_SIZE,
            retention: vacuum::DEFAULT_RETENTION,
            dry_run: false,
        }
    }
}

/// What a compaction run did to one Delta table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableCompaction {
    /// The Delta table (`ad_events`, `ad_events_dead_letters`, `ad_events_archive`).
    pub table: String,
    /// Optimize, if it ran.
    pub optimize: Option<OptimizeMetrics>,
    /// Checkpoint, if it ran.
    pub checkpoint: Option<CheckpointMetrics>,
    /// Vacuum, if it ran.
    pub vacuum: Option<VacuumMetrics>,
}

/// Runs `options.jobs` over the data, dead-letter and archive tables of `spec`. Tables that do not
/// exist yet (nothing ingested) are skipped.
pub async fn compact_table(
    spec: &TableSpec,
    storage_options: &HashMap<String, String>,
    options: &CompactOptions,
) -> Result<Vec<TableCompaction>> {
    let mut out = Vec::new();
    for (name, location) in spec.delta_tables() {
        let Some(mut table) = tidelake_lake::delta::open_existing(&name, location, storage_options, None).await? else {
            continue;
        };
        let mut report = TableCompaction { table: name.clone(), ..TableCompaction::default() };
        for job in &options.jobs {
            match job {
                Job::Optimize => {
                    let (t, m) = Optimize::new(table, &name)
                        .with_target_size(options.target_size)
                        .with_dry_run(options.dry_run)
                        .await?;
                    table = t;
                    report.optimize = Some(m);
                }
                Job::Checkpoint => {
                    let (t, m) = Checkpoint::new(table, &name).with_dry_run(options.dry_run).await?;
                    table = t;
                    report.checkpoint = Some(m);
                }
                Job::Vacuum => {
                    let (t, m) = Vacuum::new(table, &name)
                        .with_retention(options.retention)
                        .with_dry_run(options.dry_run)
                        .await?;
                    table = t;
                    report.vacuum = Some(m);
                }
            }
        }
        out.push(report);
    }
    Ok(out)
}
