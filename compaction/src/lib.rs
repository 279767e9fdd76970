//! # tidelake-compaction
//!
//! The jobs that keep a lake fast while ingest keeps writing to it. Each is a builder over one Delta
//! table, with `with_*` settings and a dry run, awaited for `(table, metrics)`:
//!
//! ```text
//! partial minute rows --Finalize--> one row per key and closed minute
//! minute table --Rollup--> hour table --Rollup--> day table (only the buckets that changed)
//! many small files --Optimize--> a few files near the target size (dataChange = false: same rows)
//! removed files    --Vacuum--> deleted once older than the retention
//! long Delta log   --Checkpoint--> one Parquet checkpoint + expired commit files deleted
//! ```
//!
//! [`compact_table`] runs the chosen jobs over a configured table: finalize and the rollups first
//! (when the table declares a rollup), then the file jobs over the data, dead-letter, archive and
//! rollup tables. Re-running any job on a table it has just handled commits nothing. A job that
//! rewrites files commits by the lake's one commit policy ([`tidelake_lake::commit`]): on top of
//! ingest commits that land meanwhile, never when another job removed one of its files first or,
//! for a rollup, when another rollup commit landed; [`compact_table`] then plans the job again.
//!
//! ## Layout
//!
//! - [`finalize`]: merging the partial rows of closed minutes.
//! - [`rollup`]: minute -> hour -> day, recomputing only the buckets the source changed since the
//!   version the last rollup commit recorded.
//! - `buckets`: rollup table files by bucket range, and their replacement in one commit.
//! - [`optimize`]: the bin-packing plan per partition and its rewrite in one commit.
//! - [`checkpoint`]: the log checkpoint and the cleanup of expired commit files.
//! - [`vacuum`]: deleting files no version within the retention needs.
//! - [`lambda`]: the `compact` function's handler for scheduled Lambda invocations.
//! - [`error`]: the crate's [`Error`].
//!
//! The `compact` binary (`src/bin/compact.rs`) runs the handler under the Lambda runtime, or once.

#![warn(missing_docs)]

mod buckets;
pub mod checkpoint;
pub mod error;
pub mod finalize;
pub mod lambda;
pub mod optimize;
pub mod rollup;
pub mod vacuum;

use std::collections::HashMap;
use std::time::Duration;

use deltalake::DeltaTable;
use serde::Serialize;
use tidelake_lake::rollup::{Grain, RollupSpec};
use tidelake_lake::TableSpec;

pub use checkpoint::{Checkpoint, CheckpointMetrics};
pub use error::{Error, Result};
pub use finalize::{Finalize, FinalizeMetrics};
pub use optimize::{Optimize, OptimizeMetrics};
pub use rollup::{Rollup, RollupMetrics};
pub use vacuum::{Vacuum, VacuumMetrics};

/// A compaction job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// Merge the partial rows of closed minutes.
    Finalize,
    /// Roll minutes up to hours and hours up to days.
    Rollup,
    /// Bin-pack small files.
    Optimize,
    /// Checkpoint the Delta log.
    Checkpoint,
    /// Delete files past the retention.
    Vacuum,
}

impl Job {
    /// The jobs of a run that names none, in the order they run.
    pub const DEFAULT: [Job; 5] = [Job::Finalize, Job::Rollup, Job::Optimize, Job::Vacuum, Job::Checkpoint];
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
            jobs: Job::DEFAULT.to_vec(),
            target_size: optimize::DEFAULT_TARGET_SIZE,
            retention: vacuum::DEFAULT_RETENTION,
            dry_run: false,
        }
    }
}

/// What a compaction run did to one Delta table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableCompaction {
    /// The Delta table (`ad_events`, `ad_events_dead_letters`, `ad_events_archive`,
    /// `ad_events_minute`, ...).
    pub table: String,
    /// Finalize, if it ran.
    pub finalize: Option<FinalizeMetrics>,
    /// Rollup, if it ran.
    pub rollup: Option<RollupMetrics>,
    /// Optimize, if it ran.
    pub optimize: Option<OptimizeMetrics>,
    /// Checkpoint, if it ran.
    pub checkpoint: Option<CheckpointMetrics>,
    /// Vacuum, if it ran.
    pub vacuum: Option<VacuumMetrics>,
}

/// Runs `options.jobs` over the tables of `spec`: finalize and the rollups first, then the file jobs
/// over the data, dead-letter, archive and rollup tables. Tables that do not exist yet (nothing
/// ingested) are skipped.
pub async fn compact_table(
    spec: &TableSpec,
    storage_options: &HashMap<String, String>,
    options: &CompactOptions,
) -> Result<Vec<TableCompaction>> {
    let mut out: Vec<TableCompaction> = Vec::new();
    if let Some(rollup) = &spec.rollup {
        out.extend(roll_up(rollup, storage_options, options).await?);
    }
    let mut tables: Vec<(String, &url::Url)> = spec.delta_tables().into_iter().collect();
    // The data table's rows are sorted by `optimize.sort_by`; a rollup table's by those of the
    // columns it has.
    let mut sort_by: HashMap<String, Vec<String>> = HashMap::from([(spec.name.clone(), spec.sort_by.clone())]);
    if let Some(rollup) = &spec.rollup {
        tables.extend(rollup.tables().map(|(_, name, at)| (name, at)));
        for (grain, name, _) in rollup.tables() {
            let schema = rollup.schema(grain);
            let kept = spec.sort_by.iter().filter(|c| schema.field_with_name(c).is_ok()).cloned().collect();
            sort_by.insert(name, kept);
        }
    }
    let order: Vec<String> = tables.iter().map(|(name, _)| name.clone()).collect();
    for (name, location) in tables {
        let Some(mut table) = tidelake_lake::delta::open_existing(&name, location, storage_options, None).await? else {
            continue;
        };
        let at = match out.iter().position(|r| r.table == name) {
            Some(at) => at,
            None => {
                out.push(TableCompaction { table: name.clone(), ..TableCompaction::default() });
                out.len() - 1
            }
        };
        let report = &mut out[at];
        for job in &options.jobs {
            match job {
                Job::Finalize | Job::Rollup => {}
                Job::Optimize => {
                    let (mut attempt, mut current) = (0, Some(table));
                    let (t, m) = loop {
                        let table = match current.take() {
                            Some(table) => table,
                            None => reopen(&name, location, storage_options).await?,
                        };
                        let run = Optimize::new(table, &name)
                            .with_sort_by(sort_by.get(&name).cloned().unwrap_or_default())
                            .with_target_size(options.target_size)
                            .with_dry_run(options.dry_run);
                        match run.await {
                            Ok(done) => break done,
                            Err(e) => replan(e, &mut attempt, &name, *job).await?,
                        }
                    };
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
    }
    out.sort_by_key(|r| order.iter().position(|name| *name == r.table));
    Ok(out)
}

/// How many times a job whose commit conflicted with one that landed meanwhile plans again.
pub const MAX_REPLANS: usize = 8;

/// Whether a job that failed with `e` plans again: when its commit conflicted with one that landed
/// while it ran (another compaction of the same table, a replace), up to [`MAX_REPLANS`] times,
/// after a pause; otherwise the error.
async fn replan(e: Error, attempt: &mut usize, name: &str, job: Job) -> Result<()> {
    if !e.is_conflict() || *attempt >= MAX_REPLANS {
        return Err(e);
    }
    *attempt += 1;
    tracing::info!(table = %name, ?job, attempt = *attempt, reason = %e, "a commit landed while the job ran; planning again");
    tidelake_lake::commit::backoff(*attempt).await;
    Ok(())
}

/// The table `name` at `location`, which a run has seen.
async fn reopen(name: &str, location: &url::Url, storage_options: &HashMap<String, String>) -> Result<DeltaTable> {
    tidelake_lake::delta::open_existing(name, location, storage_options, None).await?.ok_or_else(|| Error::Delta {
        table: name.to_string(),
        source: Box::new(deltalake::DeltaTableError::NotATable(format!("{location} is no longer a Delta table"))),
    })
}

/// Finalize, then each coarser grain from the one below it, as `options.jobs` asks.
async fn roll_up(
    rollup: &RollupSpec,
    storage_options: &HashMap<String, String>,
    options: &CompactOptions,
) -> Result<Vec<TableCompaction>> {
    let mut out = Vec::new();
    if options.jobs.contains(&Job::Finalize) {
        let name = rollup.table_name(Grain::Minute);
        let at = rollup.location(Grain::Minute).expect("validated: a rollup keeps minutes");
        if tidelake_lake::delta::open_existing(&name, at, storage_options, None).await?.is_some() {
            let mut attempt = 0;
            let (_, m) = loop {
                let table = reopen(&name, at, storage_options).await?;
                match Finalize::new(table, rollup).with_dry_run(options.dry_run).await {
                    Ok(done) => break done,
                    Err(e) => replan(e, &mut attempt, &name, Job::Finalize).await?,
                }
            };
            out.push(TableCompaction { table: name, finalize: Some(m), ..TableCompaction::default() });
        }
    }
    if options.jobs.contains(&Job::Rollup) {
        for grain in rollup.grains.iter().copied().filter(|g| *g != Grain::Minute) {
            let from = grain.source().expect("coarser grains have a source");
            let (source_name, target_name) = (rollup.table_name(from), rollup.table_name(grain));
            let source_at = rollup.location(from).expect("validated: a grain's source is kept");
            if tidelake_lake::delta::open_existing(&source_name, source_at, storage_options, None).await?.is_none() {
                continue;
            }
            let target_at = rollup.location(grain).expect("a kept grain has a location");
            // A dry run creates nothing: without a target table yet, there is nothing to compare.
            if options.dry_run
                && tidelake_lake::delta::open_existing(&target_name, target_at, storage_options, None).await?.is_none()
            {
                continue;
            }
            let mut attempt = 0;
            let (_, m) = loop {
                let source = reopen(&source_name, source_at, storage_options).await?;
                let target = tidelake_lake::delta::open_or_create(
                    &target_name,
                    target_at,
                    &rollup.schema(grain),
                    &RollupSpec::partition_columns(),
                    storage_options,
                )
                .await?;
                match Rollup::new(source, target, rollup, grain).with_dry_run(options.dry_run).await {
                    Ok(done) => break done,
                    Err(e) => replan(e, &mut attempt, &target_name, Job::Rollup).await?,
                }
            };
            out.push(TableCompaction { table: target_name, rollup: Some(m), ..TableCompaction::default() });
        }
    }
    Ok(out)
}
