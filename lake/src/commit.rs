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
            .with_max_retries(0);
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
