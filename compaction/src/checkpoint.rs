//! Checkpoint: writes a Parquet checkpoint of the Delta log at the table's current version, so that
//! readers and writers load one file instead of replaying every commit, then deletes commit files
//! older than the table's log retention (`delta.logRetentionDuration`, 30 days by default).
//! A table already checkpointed at its current version is left alone.

use std::future::IntoFuture;

use deltalake::DeltaTable;
use futures::future::BoxFuture;
use object_store::ObjectStoreExt;
use serde::Serialize;

use crate::error::{Error, Result};

/// What a checkpoint run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckpointMetrics {
    /// Whether it only looked.
    pub dry_run: bool,
    /// The version checkpointed (or, in a dry run, that would be); `None`: already done.
    pub version: Option<u64>,
    /// Expired commit files deleted.
    pub log_files_deleted: usize,
}

/// The checkpoint job on one table.
#[derive(Debug)]
pub struct Checkpoint {
    table: DeltaTable,
    name: String,
    dry_run: bool,
}

impl Checkpoint {
    /// Checkpoints `table` (named `name` in messages).
    pub fn new(table: DeltaTable, name: impl Into<String>) -> Self {
        Checkpoint { table, name: name.into(), dry_run: false }
    }

    /// Looks only: says which version would be checkpointed.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    async fn last_checkpoint(&self) -> Result<Option<u64>> {
        let path = object_store::path::Path::from("_delta_log/_last_checkpoint");
        match self.table.object_store().get(&path).await {
            Ok(found) => {
                let bytes = found.bytes().await?;
                Ok(serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("version").and_then(|v| v.as_u64())))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn execute(self) -> Result<(DeltaTable, CheckpointMetrics)> {
        let current = self.table.version().unwrap_or(0);
        let mut metrics = CheckpointMetrics { dry_run: self.dry_run, ..CheckpointMetrics::default() };
        if self.last_checkpoint().await?.is_some_and(|v| v >= current) {
            return Ok((self.table, metrics));
        }
        metrics.version = Some(current);
        if self.dry_run {
            return Ok((self.table, metrics));
        }
        write(&self.table, &self.name).await?;
        metrics.log_files_deleted =
            deltalake::checkpoints::cleanup_metadata(&self.table, None).await.map_err(Error::delta(&self.name))?;
        tracing::info!(table = %self.name, version = current, log_files_deleted = metrics.log_files_deleted, "checkpointed");
        Ok((self.table, metrics))
    }
}

/// Writes a checkpoint of `table` (named `name` in messages) at the version it has loaded.
pub(crate) async fn write(table: &DeltaTable, name: &str) -> Result<()> {
    deltalake::checkpoints::create_checkpoint(table, None).await.map_err(Error::delta(name))
}

impl IntoFuture for Checkpoint {
    type Output = Result<(DeltaTable, CheckpointMetrics)>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}
