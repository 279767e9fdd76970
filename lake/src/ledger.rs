//! The ledger of an ingest table: what each commit says it covers (Kafka offsets and counts, in the
//! commit info) next to what it did to the table (the files it added and removed), read from the
//! Delta log alone.
//!
//! Ingest writes an [`IngestInfo`] into the commit info of every commit it makes (key `tidelake`), so
//! that [`audit`](crate::audit) can account for every offset and row without scanning data files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use deltalake::DeltaTable;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::batch::TopicPartition;
use crate::error::{Error, Result};

/// The commit info key ingest commits carry their [`IngestInfo`] under.
pub const INFO_KEY: &str = "tidelake";

/// Which of a configured table's three Delta tables a commit wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// The decoded, deduplicated rows.
    Data,
    /// Records that could not be decoded.
    DeadLetters,
    /// Every record as read.
    Archive,
}

/// What one ingest commit covers, per topic-partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCounts {
    /// First offset of the records the commit covers.
    pub first: i64,
    /// Last offset of the records the commit covers (also the commit's `txn` version).
    pub last: i64,
    /// Records between `first` and `last` that the commit covers (offsets of transaction markers
    /// and aborted records are not records).
    pub records: u64,
    /// Rows this commit wrote for these records.
    pub rows: u64,
    /// Records that did not decode (written to the dead letters).
    pub dead_letters: u64,
    /// Records dropped as copies of an event UUID.
    pub duplicates: u64,
    /// In the first commit of a partition the table had not held: the offset ingest started it at
    /// (the config's `start_from`), so offsets from there to `first` are checked as a hole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<i64>,
}

/// The commit info of an ingest commit (key [`INFO_KEY`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestInfo {
    /// The table the commit wrote.
    pub kind: TableKind,
    /// Rows the commit wrote.
    pub rows: u64,
    /// Records of the batch that did not decode.
    pub dead_letters: u64,
    /// Records dropped as copies of an event UUID.
    pub duplicates: u64,
    /// Of `duplicates`: copies of a record earlier in the same batch.
    pub duplicates_in_batch: u64,
    /// Of `duplicates`: copies of a row the table already held.
    pub duplicates_in_table: u64,
    /// Records kept without a check against the table: older than the dedup window.
    pub beyond_dedup_window: u64,
    /// Per topic-partition (`<topic>-<partition>`).
    pub offsets: BTreeMap<String, PartitionCounts>,
}

impl IngestInfo {
    /// The commit info map holding this info.
    pub fn to_commit_info(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert(INFO_KEY.into(), serde_json::to_value(self).expect("ingest info serializes"));
        map
    }

    /// The partitions with their counts.
    pub fn partitions(&self) -> impl Iterator<Item = (TopicPartition, &PartitionCounts)> {
        self.offsets.iter().filter_map(|(key, counts)| Some((parse_partition_key(key)?, counts)))
    }
}

/// The commit info key rollup commits carry their [`RollupInfo`] under.
pub const ROLLUP_INFO_KEY: &str = "tidelake_rollup";

/// What made a commit of a rollup table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollupKind {
    /// Ingest appended partial minute rows of the data rows it committed.
    Partial,
    /// Compaction merged the partial rows of closed minutes (the measures do not change).
    Finalize,
    /// Compaction recomputed buckets of a coarser grain from the finer grain's table.
    Rollup,
}

/// The commit info of a rollup commit (key [`ROLLUP_INFO_KEY`]): its lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupInfo {
    /// What made the commit.
    pub kind: RollupKind,
    /// The table the rows were computed from.
    pub source: String,
    /// The versions of `source` whose rows went into this commit.
    pub source_versions: Vec<u64>,
    /// The version of `source` read: a rollup covers every change of its source up to it, and the
    /// next run starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<u64>,
    /// Rows of `source` read.
    pub source_rows: u64,
    /// Time buckets recomputed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u64>,
    /// Rows this commit wrote.
    pub rows: u64,
    /// For partial minute rows: whether the commit caught up with data commits the minute table
    /// missed (after a crash between a data commit and its minute commit).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub caught_up: bool,
    /// For partial minute rows: the last offset per topic-partition (`<topic>-<partition>`) whose
    /// rows the table now holds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub offsets: BTreeMap<String, i64>,
}

impl RollupInfo {
    /// The commit info map holding this info.
    pub fn to_commit_info(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert(ROLLUP_INFO_KEY.into(), serde_json::to_value(self).expect("rollup info serializes"));
        map
    }
}

/// The commit info key a replace commit carries its [`ReplaceInfo`] under.
pub const REPLACE_INFO_KEY: &str = "tidelake_replace";

/// The commit info of a replace commit (key [`REPLACE_INFO_KEY`]): `tidelake reprocess --into
/// replace` swapped the rows of a range of event days for the rows a reprocess wrote into a shadow
/// table, in one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceInfo {
    /// First event day replaced (`YYYY-MM-DD`).
    pub from: String,
    /// Last event day replaced.
    pub to: String,
    /// The shadow table the new rows come from.
    pub shadow: String,
    /// The shadow's version read.
    pub shadow_version: u64,
    /// Rows of the files removed.
    pub rows_removed: u64,
    /// Rows of the files added (copies of the shadow's files of the range).
    pub rows_added: u64,
}

impl ReplaceInfo {
    /// The commit info map holding this info.
    pub fn to_commit_info(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert(REPLACE_INFO_KEY.into(), serde_json::to_value(self).expect("replace info serializes"));
        map
    }
}

/// The key of a topic-partition in [`IngestInfo::offsets`].
pub fn partition_key(tp: &TopicPartition) -> String {
    format!("{}-{}", tp.topic, tp.partition)
}

fn parse_partition_key(key: &str) -> Option<TopicPartition> {
    let (topic, partition) = key.rsplit_once('-')?;
    Some(TopicPartition::new(topic, partition.parse().ok()?))
}

/// A data file added or removed by a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAction {
    /// Path relative to the table root.
    pub path: String,
    /// Rows in the file, from its statistics (`None`: not recorded).
    pub rows: Option<u64>,
    /// Whether the action changes the table's data (`false`: a rewrite such as compaction).
    pub data_change: bool,
    /// Its partition values (column -> value; `None`: null).
    pub partition_values: BTreeMap<String, Option<String>>,
}

/// One commit of the Delta log.
#[derive(Debug, Clone)]
pub struct Commit {
    /// Table version.
    pub version: u64,
    /// Commit time, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The Delta operation (`WRITE`, `DELETE`, `OPTIMIZE`, ...).
    pub operation: String,
    /// What the commit covers, when ingest made it.
    pub info: Option<IngestInfo>,
    /// The commit's lineage, when it wrote a rollup table.
    pub rollup: Option<RollupInfo>,
    /// What the commit swapped, when a reprocess replaced a range.
    pub replace: Option<ReplaceInfo>,
    /// Files added.
    pub adds: Vec<FileAction>,
    /// Files removed.
    pub removes: Vec<FileAction>,
    /// Application transactions it records: app id and version (for ingest, the last offset).
    pub txns: Vec<(String, i64)>,
}

impl Commit {
    /// Rows of the files the commit added (files without a row count count as zero).
    pub fn added_rows(&self) -> u64 {
        self.adds.iter().filter_map(|a| a.rows).sum()
    }
}

/// The commits of one Delta table with the files it holds now.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Table name, for messages.
    pub name: String,
    /// Commits in version order (from the oldest the log still holds).
    pub commits: Vec<Commit>,
    /// Files of the current version, with their row counts.
    pub active: HashMap<String, Option<u64>>,
    /// Files of the current version that storage no longer holds.
    pub missing: HashSet<String>,
    /// When the log no longer holds the first commits (cleaned up past a checkpoint): the files of
    /// the oldest version it can rebuild, with their row counts, which the commits kept build on.
    pub base: HashMap<String, Option<u64>>,
    /// The table's object store, rooted at the table.
    pub store: Arc<dyn ObjectStore>,
}

/// How many commit files are read at once.
const READ_AHEAD: usize = 16;

impl Ledger {
    /// Reads the whole Delta log of `table` (as of its loaded version), its current files, and the
    /// listing of its storage.
    pub async fn read(name: &str, table: &DeltaTable) -> Result<Ledger> {
        let latest = table.version().unwrap_or(0);
        let log_store = table.log_store();
        let entries: Vec<(u64, Option<bytes::Bytes>)> = futures::stream::iter(0..=latest)
            .map(|v| {
                let log_store = Arc::clone(&log_store);
                async move { log_store.read_commit_entry(v).await.map(|bytes| (v, bytes)) }
            })
            .buffered(READ_AHEAD)
            .try_collect()
            .await
            .map_err(Error::delta(name))?;
        let mut commits = Vec::with_capacity(entries.len());
        for (version, bytes) in entries {
            // Versions before the log's retention are gone; the checkpoint holds their files.
            let Some(bytes) = bytes else { continue };
            commits.push(parse_commit(name, version, &bytes)?);
        }

        let snapshot = table.snapshot().map_err(Error::delta(name))?;
        let active: HashMap<String, Option<u64>> = snapshot
            .log_data()
            .iter()
            .map(|f| (f.object_store_path().to_string(), f.num_records().map(|n| n as u64)))
            .collect();
        let store = table.object_store();
        let listed: HashSet<String> = store.list(None).map_ok(|meta| meta.location.to_string()).try_collect().await?;
        let missing = active.keys().filter(|p| !listed.contains(*p)).cloned().collect();
        let base = match commits.first().map(|c| c.version) {
            Some(first) if first > 0 => base_files(name, table, first, &listed).await?,
            _ => HashMap::new(),
        };
        Ok(Ledger { name: name.to_string(), commits, active, missing, store, base })
    }
}

/// The files, with row counts, of the oldest version of `table` its log can rebuild when the
/// commits before `first` are gone: the first checkpoint at or after `first - 1` (`listed` is the
/// table's storage listing).
async fn base_files(
    name: &str,
    table: &DeltaTable,
    first: u64,
    listed: &HashSet<String>,
) -> Result<HashMap<String, Option<u64>>> {
    let checkpoint = listed
        .iter()
        .filter_map(|path| path.strip_prefix("_delta_log/"))
        .filter(|file| file.contains(".checkpoint."))
        .filter_map(|file| file.get(..20)?.parse::<u64>().ok())
        .filter(|version| *version + 1 >= first)
        .min();
    let Some(version) = checkpoint else { return Ok(HashMap::new()) };
    let mut at = table.clone();
    at.load_version(version).await.map_err(Error::delta(name))?;
    let snapshot = at.snapshot().map_err(Error::delta(name))?;
    Ok(snapshot
        .log_data()
        .iter()
        .map(|f| (f.object_store_path().to_string(), f.num_records().map(|n| n as u64)))
        .collect())
}

/// Reads commit `version` of `table` (named `name` in errors); `None` when the log no longer holds it.
pub async fn read_commit(name: &str, table: &DeltaTable, version: u64) -> Result<Option<Commit>> {
    let bytes = table.log_store().read_commit_entry(version).await.map_err(Error::delta(name))?;
    bytes.map(|bytes| parse_commit(name, version, &bytes)).transpose()
}

/// Parses the commit file of `version` of table `table`.
fn parse_commit(table: &str, version: u64, bytes: &[u8]) -> Result<Commit> {
    let bad = |reason: String| Error::Ledger { table: table.to_string(), version, reason };
    let mut commit = Commit {
        version,
        timestamp_ms: 0,
        operation: String::new(),
        info: None,
        rollup: None,
        replace: None,
        adds: vec![],
        removes: vec![],
        txns: vec![],
    };
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
        let action: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| bad(format!("a line is not JSON: {e}")))?;
        if let Some(info) = action.get("commitInfo") {
            commit.timestamp_ms = info.get("timestamp").and_then(|t| t.as_i64()).unwrap_or(0);
            commit.operation = info.get("operation").and_then(|o| o.as_str()).unwrap_or_default().to_string();
            if let Some(ours) = info.get(INFO_KEY) {
                commit.info = Some(
                    serde_json::from_value(ours.clone())
                        .map_err(|e| bad(format!("its `{INFO_KEY}` commit info does not parse: {e}")))?,
                );
            }
            if let Some(swap) = info.get(REPLACE_INFO_KEY) {
                commit.replace = Some(
                    serde_json::from_value(swap.clone())
                        .map_err(|e| bad(format!("its `{REPLACE_INFO_KEY}` commit info does not parse: {e}")))?,
                );
            }
            if let Some(lineage) = info.get(ROLLUP_INFO_KEY) {
                commit.rollup = Some(
                    serde_json::from_value(lineage.clone())
                        .map_err(|e| bad(format!("its `{ROLLUP_INFO_KEY}` commit info does not parse: {e}")))?,
                );
            }
        } else if let Some(add) = action.get("add") {
            let rows = add
                .get("stats")
                .and_then(|s| s.as_str())
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|s| s.get("numRecords").and_then(|n| n.as_u64()));
            commit.adds.push(file_action(add, rows));
        } else if let Some(remove) = action.get("remove") {
            commit.removes.push(file_action(remove, None));
        } else if let Some(txn) = action.get("txn") {
            let app_id = txn.get("appId").and_then(|a| a.as_str());
            if let Some((app_id, version)) = app_id.zip(txn.get("version").and_then(|v| v.as_i64())) {
                commit.txns.push((app_id.to_string(), version));
            }
        }
    }
    Ok(commit)
}

fn file_action(action: &serde_json::Value, rows: Option<u64>) -> FileAction {
    let raw = action.get("path").and_then(|p| p.as_str()).unwrap_or_default();
    // Paths in the log are URL-encoded; the object store path is the decoded one.
    let path = object_store::path::Path::from_url_path(raw).map(|p| p.to_string()).unwrap_or_else(|_| raw.to_string());
    let partition_values = action
        .get("partitionValues")
        .and_then(|v| v.as_object())
        .map(|values| values.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_string))).collect())
        .unwrap_or_default();
    FileAction {
        path,
        rows,
        data_change: action.get("dataChange").and_then(|d| d.as_bool()).unwrap_or(true),
        partition_values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_line_set_parses_into_files_and_counts() {
        let log = br#"{"add":{"path":"event_date=2026-11-23/part-1.parquet","partitionValues":{},"size":10,"modificationTime":1,"dataChange":true,"stats":"{\"numRecords\":7}"}}
{"txn":{"appId":"tidelake-ingest:ads-0","version":41}}
{"commitInfo":{"timestamp":1700,"operation":"WRITE","tidelake":{"kind":"data","rows":7,"dead_letters":1,"duplicates":2,"duplicates_in_batch":1,"duplicates_in_table":1,"beyond_dedup_window":0,"offsets":{"ad-events-0":{"first":32,"last":41,"records":10,"rows":7,"dead_letters":1,"duplicates":2}}}}}
"#;
        let commit = parse_commit("t", 3, log).unwrap();
        assert_eq!(commit.added_rows(), 7);
        assert_eq!(commit.operation, "WRITE");
        assert_eq!(commit.txns, vec![("tidelake-ingest:ads-0".to_string(), 41)]);
        let info = commit.info.unwrap();
        let (tp, counts) = info.partitions().next().unwrap();
        assert_eq!(tp, TopicPartition::new("ad-events", 0));
        assert_eq!((counts.first, counts.last, counts.records), (32, 41, 10));
    }
}
