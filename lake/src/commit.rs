//! The lake's one commit policy: ingest's appends, finalize, the rollups, optimize and replace all
//! commit through [`commit`].
//!
//! A commit is made on top of the snapshot its writer read. When another commit lands first (a
//! race), the commits that landed in between are read and held against what this one depends on
//! ([`Depends`]):
//!
//! - the `txn` app ids it advances (an append of Kafka offsets): another writer advanced one first;
//! - the files it removes (a rewrite or a replace): another commit removed one first, whether it
//!   changed data or not (Delta's own check ignores removals marked `dataChange = false`, so two
//!   rewrites of one file would both land and its rows would count twice);
//! - its lineage (a rollup): another rollup commit landed, so the source version this one was
//!   computed from is no longer the one the table covers (a bucket without a target file yet
//!   removes no file, and would otherwise be written twice);
//! - its region (a replace of event days): another commit added data files in those days.
//!
//! Any of those is a [`Error::Conflict`]: nothing is committed, and the writer plans again on the
//! new table. Otherwise the commit is put on top of them and tried again, after a pause that
//! grows and is jittered so racing writers spread out. [`Depends::everything`] makes any commit in
//! between a conflict (an append whose rows were deduplicated against the snapshot). A storage
//! error is not a race: it is returned at once, and the commit may be retried as a whole.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Transaction};
use deltalake::protocol::DeltaOperation;
use deltalake::table::config::TablePropertiesExt;
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableError};

use crate::error::{Error, Result};
use crate::ledger::{self, Commit, RollupKind};

/// How many times a commit is put on top of commits that landed first.
pub const MAX_REBASES: usize = 50;

/// What one commit writes to the log.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Adds and removes.
    pub actions: Vec<Action>,
    /// The Delta operation it records.
    pub operation: DeltaOperation,
    /// The commit info (tidelake's ledger entries).
    pub info: serde_json::Map<String, serde_json::Value>,
    /// Application transactions (Kafka offsets, a replace's shadow version).
    pub txns: Vec<Transaction>,
}

/// What a commit depends on: a commit in between that touched any of it is a conflict.
#[derive(Debug, Clone, Default)]
pub struct Depends {
    /// Any commit in between conflicts.
    pub everything: bool,
    /// `txn` app ids it advances.
    pub app_ids: BTreeSet<String>,
    /// Files it removes, relative to the table root.
    pub removes: HashSet<String>,
    /// The lineage it was computed from.
    pub lineage: Option<RollupKind>,
    /// Partition values whose new data files change what it computed.
    pub region: Option<Region>,
}

/// The values `from..=to` of one partition column (as text: `YYYY-MM-DD` dates order as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The partition column.
    pub column: String,
    /// First value.
    pub from: String,
    /// Last value.
    pub to: String,
}

impl Depends {
    /// Depends on the whole snapshot it read.
    pub fn everything() -> Self {
        Depends { everything: true, ..Depends::default() }
    }

    /// The files `actions` remove, and the app ids `txns` advance.
    pub fn of(actions: &[Action], txns: &[Transaction]) -> Self {
        Depends {
            removes: actions
                .iter()
                .filter_map(|a| match a {
                    // Compared decoded, as the ledger reads the log's URL-encoded paths.
                    Action::Remove(r) => {
                        Some(object_store::path::Path::from_url_path(&r.path).map_or(r.path.clone(), |p| p.to_string()))
                    }
                    _ => None,
                })
                .collect(),
            app_ids: txns.iter().map(|t| t.app_id.clone()).collect(),
            ..Depends::default()
        }
    }

    /// Why `commit`, which landed first, conflicts with this one (`None`: it does not).
    pub fn conflict(&self, commit: &Commit) -> Option<String> {
        if self.everything {
            return Some("the rows were planned against the version before it".into());
        }
        if let Some((app_id, _)) = commit.txns.iter().find(|(app_id, _)| self.app_ids.contains(app_id)) {
            return Some(format!("it advanced `{app_id}` first"));
        }
        if let Some(file) = commit.removes.iter().find(|r| self.removes.contains(&r.path)) {
            return Some(format!("it removed {} first", file.path));
        }
        if let (Some(kind), Some(info)) = (self.lineage, &commit.rollup) {
            if info.kind == kind {
                let covered = info.source_version.map_or("its source".into(), |v| format!("source version {v}"));
                return Some(format!("another {kind:?} commit covered {covered} first"));
            }
        }
        if let Some(region) = &self.region {
            let inside = |values: &std::collections::BTreeMap<String, Option<String>>| {
                values.get(&region.column).cloned().flatten().is_some_and(|v| *v >= *region.from && *v <= *region.to)
            };
            if let Some(file) = commit.adds.iter().find(|a| a.data_change && inside(&a.partition_values)) {
                return Some(format!("it added {} within {}..={}", file.path, region.from, region.to));
            }
        }
        None
    }
}

/// Commits `prepared` to `table` (the snapshot its writer read) as the policy above says; the
/// table is left at the version committed. `name` names the table in errors.
pub async fn commit(table: &mut DeltaTable, name: &str, prepared: Prepared, depends: &Depends) -> Result<u64> {
    let mut rebases = 0;
    loop {
        let snapshot = table.snapshot().map_err(Error::delta(name))?.clone();
        let read_version = snapshot.version();
        let properties = CommitProperties::default()
            .with_application_transactions(prepared.txns.clone())
            .with_metadata(prepared.info.clone())
            .with_max_retries(0)
            .with_cleanup_expired_logs(Some(cleans_up_log(&snapshot)));
        let attempt = CommitBuilder::from(properties)
            .with_actions(prepared.actions.clone())
            .build(Some(&snapshot), table.log_store(), prepared.operation.clone())
            .await;
        let error = match attempt {
            Ok(finalized) => {
                let version = finalized.version();
                table.state = Some(finalized.snapshot());
                return Ok(version);
            }
            Err(e) => e,
        };
        if !is_race(&error) {
            return Err(Error::Delta { table: name.to_string(), source: Box::new(error) });
        }
        if rebases == MAX_REBASES {
            return Err(Error::CommitFailed {
                table: name.to_string(),
                attempts: rebases + 1,
                source: Box::new(error),
            });
        }
        rebases += 1;
        table.update_incremental(None).await.map_err(Error::delta(name))?;
        let latest = table.version().unwrap_or(read_version);
        for version in read_version + 1..=latest {
            let Some(landed) = ledger::read_commit(name, table, version).await? else {
                return Err(Error::Conflict {
                    table: name.to_string(),
                    version,
                    reason: "its commit file is gone (the log was cleaned up meanwhile)".into(),
                });
            };
            if let Some(reason) = depends.conflict(&landed) {
                return Err(Error::Conflict { table: name.to_string(), version, reason });
            }
        }
        tracing::debug!(table = %name, rebases, latest, "commits landed first; committing on top of them");
        backoff(rebases).await;
    }
}

/// Whether the commit made on top of `snapshot` deletes the log's expired files. Delta cleans up the
/// log when a checkpoint is written, which the writer does with every `delta.checkpointInterval`-th
/// commit, and cleans up nothing that the last checkpoint does not cover; deltalake would look
/// with every commit, listing the whole log each time: a log of 40,000 commit files (a month of a
/// commit a minute) is 40 pages of an S3 listing per commit and table. So only the commits that
/// checkpoint clean up, where the table allows it.
fn cleans_up_log(snapshot: &DeltaTableState) -> bool {
    let config = snapshot.table_config();
    checkpoints(snapshot.version() + 1, config.checkpoint_interval().get()) && config.enable_expired_log_cleanup()
}

/// Whether deltalake's writer writes a checkpoint with the commit of `version`.
fn checkpoints(version: u64, interval: u64) -> bool {
    (version + 1) % interval == 0
}

/// Whether a failed commit lost a race (another commit took its version) rather than failed.
pub fn is_race(e: &DeltaTableError) -> bool {
    match e {
        DeltaTableError::VersionAlreadyExists(_) => true,
        DeltaTableError::Transaction { source } => matches!(
            source,
            TransactionError::VersionAlreadyExists(_)
                | TransactionError::MaxCommitAttempts(_)
                | TransactionError::CommitConflict(_)
        ),
        _ => false,
    }
}

/// Waits before try `attempt` (1, 2, ...): a random pause below 10 ms x 2^attempt, at most 1 s.
pub async fn backoff(attempt: usize) {
    tokio::time::sleep(pause(attempt)).await;
}

fn pause(attempt: usize) -> Duration {
    let ceiling = (10u64 << attempt.min(7)).min(1_000);
    Duration::from_millis(rand::random_range(ceiling / 4..=ceiling))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::ledger::{FileAction, RollupInfo};

    fn landed() -> Commit {
        Commit {
            version: 5,
            timestamp_ms: 0,
            operation: "WRITE".into(),
            info: None,
            rollup: None,
            replace: None,
            adds: vec![],
            removes: vec![],
            txns: vec![],
        }
    }

    fn info(kind: RollupKind, source_version: Option<u64>) -> RollupInfo {
        RollupInfo {
            kind,
            source: "t_minute".into(),
            source_versions: vec![],
            source_version,
            source_rows: 0,
            rows: 0,
            buckets: None,
            caught_up: false,
            offsets: BTreeMap::new(),
        }
    }

    fn file(path: &str, day: &str, data_change: bool) -> FileAction {
        FileAction {
            path: path.into(),
            rows: Some(1),
            data_change,
            partition_values: BTreeMap::from([("event_date".to_string(), Some(day.to_string()))]),
        }
    }

    #[test]
    fn a_commit_in_between_conflicts_only_where_it_touches_what_this_one_depends_on() {
        let remove = deltalake::kernel::Remove {
            path: "event_date=2026-11-23/a%20b.parquet".into(),
            data_change: false,
            deletion_timestamp: None,
            extended_file_metadata: None,
            partition_values: None,
            size: None,
            deletion_vector: None,
            tags: None,
            base_row_id: None,
            default_row_commit_version: None,
        };
        let mut depends = Depends::of(&[Action::Remove(remove)], &[Transaction::new("tidelake-ingest:t:0", 4)]);
        depends.lineage = Some(RollupKind::Rollup);
        depends.region =
            Some(Region { column: "event_date".into(), from: "2026-11-20".into(), to: "2026-11-23".into() });

        // Appends elsewhere, another partition's offsets, a finalize: rebased over.
        let mut other = landed();
        other.adds.push(file("event_date=2026-11-24/x.parquet", "2026-11-24", true));
        other.txns.push(("tidelake-ingest:t:1".into(), 9));
        other.rollup = Some(info(RollupKind::Finalize, None));
        other.adds.push(file("event_date=2026-11-21/y.parquet", "2026-11-21", false));
        assert_eq!(depends.conflict(&other), None);

        let mut removed = landed();
        removed.removes.push(file("event_date=2026-11-23/a b.parquet", "2026-11-23", false));
        assert!(depends.conflict(&removed).unwrap().contains("removed"));
        let mut advanced = landed();
        advanced.txns.push(("tidelake-ingest:t:0".into(), 3));
        assert!(depends.conflict(&advanced).unwrap().contains("tidelake-ingest:t:0"));
        let mut rolled = landed();
        rolled.rollup = Some(info(RollupKind::Rollup, Some(7)));
        assert!(depends.conflict(&rolled).unwrap().contains("source version 7"));
        let mut added = landed();
        added.adds.push(file("event_date=2026-11-20/z.parquet", "2026-11-20", true));
        assert!(depends.conflict(&added).unwrap().contains("within"));
        assert!(Depends::everything().conflict(&landed()).is_some());
    }

    /// The local store, counting the listings of the whole log (deltalake's expired-log cleanup);
    /// the listings from a version on, which read new commits, it does not count.
    #[derive(Debug)]
    struct CountingLogListings {
        inner: object_store::local::LocalFileSystem,
        listings: std::sync::atomic::AtomicUsize,
    }

    impl std::fmt::Display for CountingLogListings {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "counting {}", self.inner)
        }
    }

    #[async_trait::async_trait]
    impl object_store::ObjectStore for CountingLogListings {
        async fn put_opts(
            &self,
            location: &object_store::path::Path,
            payload: object_store::PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &object_store::path::Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &object_store::path::Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            if prefix.is_some_and(|p| p.as_ref().ends_with("/_delta_log")) {
                self.listings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            self.inner.list(prefix)
        }
        fn list_with_offset(
            &self,
            prefix: Option<&object_store::path::Path>,
            offset: &object_store::path::Path,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            self.inner.list_with_offset(prefix, offset)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &object_store::path::Path,
            to: &object_store::path::Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
        async fn rename_opts(
            &self,
            from: &object_store::path::Path,
            to: &object_store::path::Path,
            options: object_store::RenameOptions,
        ) -> object_store::Result<()> {
            self.inner.rename_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn the_log_is_listed_whole_only_by_the_commits_that_checkpoint_it() {
        use deltalake::kernel::{DataType, PrimitiveType, StructField};
        use deltalake::protocol::SaveMode;

        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let store = Arc::new(CountingLogListings {
            inner: object_store::local::LocalFileSystem::new(),
            listings: Default::default(),
        });
        let log_store = deltalake::DeltaTableBuilder::from_url(url.clone())
            .unwrap()
            .with_storage_backend(store.clone(), url)
            .build()
            .unwrap()
            .log_store();
        // Expired at once: every commit file a checkpoint covers may go.
        let mut table = deltalake::operations::create::CreateBuilder::new()
            .with_log_store(log_store)
            .with_columns([StructField::new("id", DataType::Primitive(PrimitiveType::Long), true)])
            .with_configuration([
                ("delta.checkpointInterval".to_string(), Some("5".to_string())),
                ("delta.logRetentionDuration".to_string(), Some("interval 0 seconds".to_string())),
            ])
            .await
            .unwrap();
        let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
        let listed_before = store.listings.load(std::sync::atomic::Ordering::SeqCst);
        for version in 1..=12u64 {
            let prepared = Prepared {
                actions: vec![],
                operation: operation.clone(),
                info: serde_json::Map::new(),
                txns: vec![Transaction::new("app", version as i64)],
            };
            assert_eq!(commit(&mut table, "t", prepared, &Depends::default()).await.unwrap(), version);
        }
        // Versions 4 and 9 checkpointed and cleaned up; the other ten commits listed nothing whole.
        assert_eq!(store.listings.load(std::sync::atomic::Ordering::SeqCst) - listed_before, 2);
        let mut commits: Vec<String> = std::fs::read_dir(dir.path().join("_delta_log"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".json") && !f.starts_with('_'))
            .collect();
        commits.sort();
        let first = commits.first().unwrap();
        assert_eq!(first, "00000000000000000009.json", "the log was cleaned up to its last checkpoint: {commits:?}");
        assert!((0..=12).all(|v| checkpoints(v, 5) == [4, 9].contains(&v)));
    }

    #[test]
    fn pauses_grow_and_stay_bounded() {
        for attempt in 1..100 {
            let ceiling = (10u64 << attempt.min(7)).min(1_000);
            let p = pause(attempt).as_millis() as u64;
            assert!(p >= ceiling / 4 && p <= ceiling, "{attempt}: {p}");
        }
        assert!(pause(100) <= Duration::from_secs(1));
    }
}
