//! Rollup: the hour table from the minute table, the day table from the hour table, incrementally.
//!
//! Every rollup commit records, in its commit info (`tidelake_rollup`), the version of the source
//! table it read. The next run reads the source's log after that version, and the buckets touched by
//! the files those commits added or removed (their bucket column, read from the files) are the only
//! ones recomputed: a late event re-computes its hour and its day, nothing else. Commits that do not
//! change the measures (finalize, optimize) touch nothing. A touched bucket is recomputed from every
//! source row of it in the source's current snapshot, and the target files holding it are replaced,
//! their other rows carried as they are, in one commit. A first run, or a run whose source log no
//! longer reaches back to the last covered version, recomputes every bucket. Nothing changed: no
//! commit.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;
use std::time::Instant;

use arrow::compute::concat_batches;
use deltalake::DeltaTable;
use futures::future::BoxFuture;
use serde::Serialize;
use tidelake_lake::aggregate;
use tidelake_lake::ledger::{self, RollupInfo, RollupKind};
use tidelake_lake::rollup::{Grain, RollupSpec};

use crate::buckets::{self, BucketFile};
use crate::error::{Error, Result};

/// Which buckets of the target a run recomputes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollupPlan {
    /// The source version the run reads.
    pub source_version: u64,
    /// The source version the target covered before (`None`: never rolled up).
    pub covered_version: Option<u64>,
    /// The source commits since then that touched buckets.
    pub source_commits: Vec<u64>,
    /// Whether every bucket of the source is recomputed (a first run).
    pub full: bool,
    /// Bucket starts (microseconds since the epoch) to recompute.
    pub buckets: BTreeSet<i64>,
}

/// What a rollup run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollupMetrics {
    /// Whether it only planned.
    pub dry_run: bool,
    /// The grain rolled up to.
    pub grain: Option<Grain>,
    /// Time buckets recomputed.
    pub buckets: usize,
    /// Source rows read for them.
    pub source_rows: u64,
    /// Target rows written (recomputed and carried).
    pub rows: u64,
    /// Target files replaced.
    pub files_removed: usize,
    /// Target files written.
    pub files_added: usize,
    /// The source version covered after the run.
    pub source_version: Option<u64>,
    /// The table version committed, if any.
    pub version: Option<u64>,
    /// Wall time.
    pub seconds: f64,
}

/// The rollup job into one grain: `Rollup::new(source, target, rollup, Grain::Hour).await`.
#[derive(Debug)]
pub struct Rollup {
    source: DeltaTable,
    target: DeltaTable,
    rollup: RollupSpec,
    grain: Grain,
    from: Grain,
    dry_run: bool,
}

impl Rollup {
    /// Rolls `source` (the table of `grain`'s source grain) up into `target` (the table of `grain`).
    ///
    /// # Panics
    /// When `grain` is [`Grain::Minute`], which comes from events, not from another grain.
    pub fn new(source: DeltaTable, target: DeltaTable, rollup: &RollupSpec, grain: Grain) -> Self {
        let from = grain.source().expect("minutes are aggregated by ingest, not rolled up");
        Rollup { source, target, rollup: rollup.clone(), grain, from, dry_run: false }
    }

    /// Plans only: nothing is written.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// The source version the target covers: from its latest rollup commit.
    async fn covered_version(&self) -> Result<Option<u64>> {
        let name = self.rollup.table_name(self.grain);
        let mut version = self.target.version().unwrap_or(0);
        loop {
            if let Some(commit) = ledger::read_commit(&name, &self.target, version).await? {
                if let Some(info) = commit.rollup.filter(|i| i.kind == RollupKind::Rollup) {
                    return Ok(info.source_version);
                }
            } else {
                // The log no longer holds older commits: start over from the source.
                return Ok(None);
            }
            if version == 0 {
                return Ok(None);
            }
            version -= 1;
        }
    }

    /// The buckets this run recomputes.
    pub async fn plan(&self) -> Result<RollupPlan> {
        let source_name = self.rollup.table_name(self.from);
        let source_version = self.source.version().unwrap_or(0);
        let covered_version = self.covered_version().await?;
        let mut plan = RollupPlan { source_version, covered_version, ..RollupPlan::default() };
        let column = self.from.name();
        let mut whole_days = BTreeSet::new();
        let mut paths = Vec::new();
        match covered_version {
            Some(covered) if covered >= source_version => return Ok(plan),
            Some(covered) => {
                for version in covered + 1..=source_version {
                    let Some(commit) = ledger::read_commit(&source_name, &self.source, version).await? else {
                        return self.everything(plan).await;
                    };
                    if commit.rollup.as_ref().is_some_and(|i| i.kind == RollupKind::Finalize) {
                        continue;
                    }
                    let changed: Vec<String> = commit
                        .adds
                        .into_iter()
                        .chain(commit.removes)
                        .filter(|f| f.data_change)
                        .map(|f| f.path)
                        .collect();
                    if !changed.is_empty() {
                        plan.source_commits.push(version);
                        paths.extend(changed);
                    }
                }
            }
            None => return self.everything(plan).await,
        }
        for path in paths {
            match buckets::read_buckets(&self.source, &source_name, &path, column).await? {
                Some(starts) => plan.buckets.extend(starts.into_iter().map(|s| self.grain.truncate(s))),
                // Vacuumed since: every bucket of its day.
                None => whole_days.extend(buckets::day_of_path(&path)),
            }
        }
        if !whole_days.is_empty() {
            for file in buckets::files(&self.source, &source_name, column)? {
                if whole_days.contains(&file.day) {
                    let starts = buckets::read_buckets(&self.source, &source_name, &file.path, column).await?;
                    plan.buckets.extend(starts.unwrap_or_default().into_iter().map(|s| self.grain.truncate(s)));
                }
            }
        }
        Ok(plan)
    }

    /// A plan that recomputes every bucket the source holds.
    async fn everything(&self, mut plan: RollupPlan) -> Result<RollupPlan> {
        let source_name = self.rollup.table_name(self.from);
        let column = self.from.name();
        for file in buckets::files(&self.source, &source_name, column)? {
            let starts = buckets::read_buckets(&self.source, &source_name, &file.path, column).await?;
            plan.buckets.extend(starts.unwrap_or_default().into_iter().map(|s| self.grain.truncate(s)));
        }
        plan.full = true;
        Ok(plan)
    }

    async fn execute(mut self) -> Result<(DeltaTable, RollupMetrics)> {
        let started = Instant::now();
        let plan = self.plan().await?;
        let mut metrics = RollupMetrics {
            dry_run: self.dry_run,
            grain: Some(self.grain),
            buckets: plan.buckets.len(),
            source_version: plan.covered_version,
            ..RollupMetrics::default()
        };
        if self.dry_run || plan.buckets.is_empty() {
            metrics.seconds = started.elapsed().as_secs_f64();
            return Ok((self.target, metrics));
        }
        let (source_name, target_name) = (self.rollup.table_name(self.from), self.rollup.table_name(self.grain));
        let (source_schema, target_schema) = (self.rollup.schema(self.from), self.rollup.schema(self.grain));
        let grain = self.grain;
        let touched = &plan.buckets;
        let size = grain.micros();
        let by_day = buckets::by(touched.iter().map(|b| (buckets::day_of(*b), *b)));

        // The source rows of the touched buckets, from the files that may hold them.
        let mut inputs = Vec::new();
        for file in buckets::files(&self.source, &source_name, self.from.name())? {
            let Some(day) = by_day.get(&file.day) else { continue };
            if !day.iter().any(|b| file.overlaps(*b, b + size)) {
                continue;
            }
            let rows = buckets::read(&self.source, &source_name, &file.path, file.day, &source_schema).await?;
            metrics.source_rows += rows.num_rows() as u64;
            inputs.push(buckets::select(&rows, self.from.name(), |s| grain.truncate(s), |b| touched.contains(&b))?);
        }
        let inputs = concat_batches(&source_schema, &inputs).map_err(Error::arrow("joining source rows"))?;
        let mut outputs = vec![aggregate::merge(&self.rollup, self.from, &inputs, grain)?];

        // The target files holding a touched bucket are replaced; their other rows carried.
        let existing = buckets::files(&self.target, &target_name, grain.name())?;
        let replaced: Vec<&BucketFile> = existing
            .iter()
            .filter(|f| by_day.get(&f.day).is_some_and(|day| day.iter().any(|b| f.overlaps(*b, b + 1))))
            .collect();
        for file in &replaced {
            let rows = buckets::read(&self.target, &target_name, &file.path, file.day, &target_schema).await?;
            outputs.push(buckets::select(&rows, grain.name(), |b| b, |b| !touched.contains(&b))?);
        }
        let rows = concat_batches(&target_schema, &outputs).map_err(Error::arrow("joining rollup rows"))?;
        metrics.rows = rows.num_rows() as u64;
        metrics.files_removed = replaced.len();
        let info = RollupInfo {
            kind: RollupKind::Rollup,
            source: source_name,
            source_versions: plan.source_commits.clone(),
            source_version: Some(plan.source_version),
            source_rows: metrics.source_rows,
            rows: metrics.rows,
            buckets: Some(touched.len() as u64),
            caught_up: false,
            offsets: BTreeMap::new(),
        };
        let done = buckets::replace(&mut self.target, &target_name, &replaced, Some(rows), &info, "rollup").await?;
        metrics.files_added = done.files_added;
        metrics.version = Some(done.version);
        metrics.source_version = Some(plan.source_version);
        metrics.seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            table = %target_name,
            buckets = metrics.buckets,
            source_rows = metrics.source_rows,
            source_version = plan.source_version,
            "rolled up"
        );
        Ok((self.target, metrics))
    }
}

impl IntoFuture for Rollup {
    type Output = Result<(DeltaTable, RollupMetrics)>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}
