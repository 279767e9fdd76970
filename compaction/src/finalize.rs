//! Finalize: merges the partial rows of closed minutes into one row per key and minute.
//!
//! Ingest appends partial minute rows per batch. A minute is closed once its end is older than the
//! rollup's allowed lateness. The plan takes every file that may hold partial rows and whose minutes
//! are all closed (from its statistics), reads which minutes those files hold, and adds the files of
//! merged rows that already hold one of those minutes (a late event reopens a finalized minute). The
//! run merges all their rows of those minutes into final rows (`partial = false`), carries the other
//! rows of the merged files as they are, and commits the new files and the removal of the old ones
//! in one commit. A file that still holds an open minute waits for the next run. Sums, counts,
//! extremes and sketches are the same before and after: readers that sum rows see no change.

use std::collections::{BTreeSet, HashSet};
use std::future::IntoFuture;
use std::time::Instant;

use arrow::compute::concat_batches;
use deltalake::DeltaTable;
use futures::future::BoxFuture;
use serde::Serialize;
use tidelake_lake::aggregate;
use tidelake_lake::ledger::{RollupInfo, RollupKind};
use tidelake_lake::rollup::{Grain, RollupSpec};

use crate::buckets::{self, BucketFile};
use crate::error::{Error, Result};

/// What a finalize run would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FinalizePlan {
    /// Files of partial rows whose minutes are all closed.
    pub partial_files: Vec<String>,
    /// Files of merged rows that hold one of their minutes.
    pub final_files: Vec<String>,
    /// Files of partial rows that still hold an open minute.
    pub waiting_files: usize,
    /// Distinct minutes to finalize.
    pub minutes: usize,
}

/// What a finalize run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FinalizeMetrics {
    /// Whether it only planned.
    pub dry_run: bool,
    /// Files of partial rows merged.
    pub partial_files: usize,
    /// Files of merged rows rewritten with them.
    pub final_files: usize,
    /// Files of partial rows left for a later run (an open minute).
    pub waiting_files: usize,
    /// Minutes finalized (buckets recomputed).
    pub minutes: usize,
    /// Rows read.
    pub rows_before: u64,
    /// Rows written.
    pub rows_after: u64,
    /// The table version committed, if any.
    pub version: Option<u64>,
    /// Wall time.
    pub seconds: f64,
}

/// The finalize job on a rollup's minute table: `Finalize::new(table, rollup).await`.
#[derive(Debug)]
pub struct Finalize {
    table: DeltaTable,
    rollup: RollupSpec,
    now_us: i64,
    dry_run: bool,
}

struct Planned {
    plan: FinalizePlan,
    partial: Vec<BucketFile>,
    finals: Vec<BucketFile>,
    minutes: BTreeSet<i64>,
}

impl Finalize {
    /// Finalizes the minute table `table` of `rollup`, closing minutes by the system clock.
    pub fn new(table: DeltaTable, rollup: &RollupSpec) -> Self {
        Finalize { table, rollup: rollup.clone(), now_us: chrono::Utc::now().timestamp_micros(), dry_run: false }
    }

    /// Closes minutes as of `now_us` (microseconds since the epoch) instead of the system clock.
    pub fn with_now(mut self, now_us: i64) -> Self {
        self.now_us = now_us;
        self
    }

    /// Plans only: nothing is written.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    fn name(&self) -> String {
        self.rollup.table_name(Grain::Minute)
    }

    async fn plan_files(&self) -> Result<Planned> {
        let name = self.name();
        let lateness = i64::try_from(self.rollup.allowed_lateness.as_micros()).unwrap_or(i64::MAX);
        let closed_before = self.now_us.saturating_sub(lateness);
        let minute = Grain::Minute.micros();
        let files = buckets::files(&self.table, &name, Grain::Minute.name())?;
        let (mut partial, mut settled, mut waiting) = (Vec::new(), Vec::new(), 0);
        for file in files {
            match (file.may_be_partial, file.buckets) {
                (true, Some((_, last))) if last + minute <= closed_before => partial.push(file),
                (true, _) => waiting += 1,
                (false, _) => settled.push(file),
            }
        }
        let mut minutes = BTreeSet::new();
        for file in &partial {
            let found = buckets::read_buckets(&self.table, &name, &file.path, Grain::Minute.name()).await?;
            let found = found.ok_or_else(|| Error::File {
                table: name.clone(),
                path: file.path.clone(),
                reason: "is in the table but not in storage".into(),
            })?;
            minutes.extend(found);
        }
        let days: HashSet<i32> = minutes.iter().map(|m| buckets::day_of(*m)).collect();
        let finals: Vec<BucketFile> = settled
            .into_iter()
            .filter(|f| {
                days.contains(&f.day) && f.buckets.is_none_or(|(min, max)| minutes.range(min..=max).next().is_some())
            })
            .collect();
        let plan = FinalizePlan {
            partial_files: partial.iter().map(|f| f.path.clone()).collect(),
            final_files: finals.iter().map(|f| f.path.clone()).collect(),
            waiting_files: waiting,
            minutes: minutes.len(),
        };
        Ok(Planned { plan, partial, finals, minutes })
    }

    /// The files this run would merge.
    pub async fn plan(&self) -> Result<FinalizePlan> {
        Ok(self.plan_files().await?.plan)
    }

    async fn execute(mut self) -> Result<(DeltaTable, FinalizeMetrics)> {
        let started = Instant::now();
        let name = self.name();
        let Planned { plan, partial, finals, minutes } = self.plan_files().await?;
        let mut metrics = FinalizeMetrics {
            dry_run: self.dry_run,
            partial_files: partial.len(),
            final_files: finals.len(),
            waiting_files: plan.waiting_files,
            minutes: minutes.len(),
            rows_before: partial.iter().chain(&finals).map(|f| f.rows).sum(),
            ..FinalizeMetrics::default()
        };
        if self.dry_run || partial.is_empty() {
            metrics.seconds = started.elapsed().as_secs_f64();
            return Ok((self.table, metrics));
        }
        let schema = self.rollup.schema(Grain::Minute);
        let (mut merging, mut carried) = (Vec::new(), Vec::new());
        for file in &partial {
            merging.push(buckets::read(&self.table, &name, &file.path, file.day, &schema).await?);
        }
        for file in &finals {
            let rows = buckets::read(&self.table, &name, &file.path, file.day, &schema).await?;
            let column = Grain::Minute.name();
            merging.push(buckets::select(&rows, column, |m| m, |m| minutes.contains(&m))?);
            carried.push(buckets::select(&rows, column, |m| m, |m| !minutes.contains(&m))?);
        }
        let merging = concat_batches(&schema, &merging).map_err(Error::arrow("joining partial rows"))?;
        let merged = aggregate::merge(&self.rollup, Grain::Minute, &merging, Grain::Minute)?;
        carried.push(merged);
        let rows = concat_batches(&schema, &carried).map_err(Error::arrow("joining finalized rows"))?;
        metrics.rows_after = rows.num_rows() as u64;
        let info = RollupInfo {
            kind: RollupKind::Finalize,
            source: name.clone(),
            source_versions: self.table.version().into_iter().collect(),
            source_version: self.table.version(),
            source_rows: metrics.rows_before,
            rows: metrics.rows_after,
            buckets: Some(minutes.len() as u64),
            caught_up: false,
            offsets: Default::default(),
        };
        let removed: Vec<&BucketFile> = partial.iter().chain(&finals).collect();
        let done = buckets::replace(&mut self.table, &name, &removed, Some(rows), &info, "finalize").await?;
        metrics.version = Some(done.version);
        metrics.seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            table = %name,
            minutes = metrics.minutes,
            partial_files = metrics.partial_files,
            rows_before = metrics.rows_before,
            rows_after = metrics.rows_after,
            "finalized closed minutes"
        );
        Ok((self.table, metrics))
    }
}

impl IntoFuture for Finalize {
    type Output = Result<(DeltaTable, FinalizeMetrics)>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}
