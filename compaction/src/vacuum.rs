//! Vacuum: deletes data files that no version within the retention period needs: files removed by
//! optimize (or any other commit) longer ago than the retention, and orphans older than it: files
//! no commit ever added, left by a writer that crashed before committing or whose commit lost a
//! race (Delta's full vacuum mode, which lists the table's storage). A dry run lists them.
//!
//! The retention must be longer than any writer takes from writing a file to committing it (an
//! ingest batch, a compaction job, a replace's copy), or vacuum deletes a file a commit is about to
//! add: the default, a week, is safe; below [`SAFE_RETENTION`] a run says so in its log.

use std::collections::HashSet;
use std::future::IntoFuture;
use std::time::Duration;

use deltalake::operations::vacuum::VacuumMode;
use deltalake::DeltaTable;
use futures::future::BoxFuture;
use futures::TryStreamExt;
use serde::Serialize;

use crate::error::{Error, Result};

/// Delta's default: files removed a week ago stay readable for time travel until then.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The shortest retention that leaves a running writer's uncommitted files alone: an hour, far
/// above what a batch or a compaction job takes between writing and committing.
pub const SAFE_RETENTION: Duration = Duration::from_secs(3600);

/// What a vacuum run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VacuumMetrics {
    /// Whether it only listed.
    pub dry_run: bool,
    /// Files deleted (in a dry run: that would be).
    pub files: Vec<String>,
}

/// The vacuum job on one table.
#[derive(Debug)]
pub struct Vacuum {
    table: DeltaTable,
    name: String,
    retention: Duration,
    dry_run: bool,
}

impl Vacuum {
    /// Vacuums `table` (named `name` in messages) with the default retention.
    pub fn new(table: DeltaTable, name: impl Into<String>) -> Self {
        Vacuum { table, name: name.into(), retention: DEFAULT_RETENTION, dry_run: false }
    }

    /// Sets how long removed files are kept.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Lists only: nothing is deleted.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    async fn execute(self) -> Result<(DeltaTable, VacuumMetrics)> {
        let retention = chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        if self.retention < SAFE_RETENTION && !self.dry_run {
            tracing::warn!(
                table = %self.name,
                retention = %humantime::format_duration(self.retention),
                "vacuum with a retention under an hour deletes files a running writer has not committed yet; \
                 use it only while nothing writes to the table"
            );
        }
        let vacuum = |table: DeltaTable, dry_run: bool| {
            table
                .vacuum()
                .with_mode(VacuumMode::Full)
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .with_dry_run(dry_run)
        };
        // The candidates include removed files already deleted by an earlier run; only files still
        // in storage count, and with none the run commits nothing (a vacuum writes two commits).
        let (table, candidates) = vacuum(self.table, true).await.map_err(Error::delta(&self.name))?;
        let listed: HashSet<String> =
            table.object_store().list(None).map_ok(|meta| meta.location.to_string()).try_collect().await?;
        let files: Vec<String> = candidates.files_deleted.into_iter().filter(|f| listed.contains(f)).collect();
        if self.dry_run || files.is_empty() {
            return Ok((table, VacuumMetrics { dry_run: self.dry_run, files }));
        }
        let (table, done) = vacuum(table, false).await.map_err(Error::delta(&self.name))?;
        let deleted: Vec<String> = done.files_deleted.into_iter().filter(|f| listed.contains(f)).collect();
        tracing::info!(table = %self.name, files = deleted.len(), "vacuumed");
        Ok((table, VacuumMetrics { dry_run: false, files: deleted }))
    }
}

impl IntoFuture for Vacuum {
    type Output = Result<(DeltaTable, VacuumMetrics)>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}
