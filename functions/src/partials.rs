//! Partial minute rows: the fourth commit of a batch, into the rollup's minute table.
//!
//! Partial rows must aggregate exactly the rows the data table holds for the offsets they cover:
//! not the decoded batch (dedup drops copies), and not a new dedup pass on a redelivery (by then the
//! data table holds the rows, so dedup would drop them all). So they are built from the rows of the
//! data commits themselves:
//!
//! - In the normal case, the minute table holds every offset the data table held before this batch's
//!   data commit, and the partial rows come from the rows that commit just wrote, in memory.
//! - Otherwise (a crash between the data commit and this one, redelivered to any instance), the
//!   minute table is behind the data table: the data log is walked back from its latest version to
//!   the data commits the minute table does not cover, their files are read, and their rows
//!   aggregated. A data commit is always taken whole, with the `txn` offsets of every topic-partition
//!   it covers, so a commit is either in the minute table or not, never in part.
//!
//! Catching up happens when records of a partition the minute table is behind on come again: a
//! Lambda retry delivers the batch again, and the poller resumes such a partition from the minute
//! table's offset ([`Ingestor::resume_offsets`](crate::Ingestor::resume_offsets)).
//!
//! A minute table created next to a data table that already holds rows starts from the data
//! table's version at that moment (table property [`SOURCE_VERSION_PROPERTY`]): history before it is
//! not aggregated by ingest.

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow::array::RecordBatch;
use deltalake::DeltaTable;
use tidelake_lake::aggregate::minute_partials;
use tidelake_lake::delta::app_id;
use tidelake_lake::ledger::{self, partition_key, RollupInfo, RollupKind, TableKind};
use tidelake_lake::rollup::{Grain, RollupSpec};
use tidelake_lake::{files, Planned, TableSpec, TopicPartition};

use tidelake_lake::Result;

pub use tidelake_lake::rollup::SOURCE_VERSION_PROPERTY;

/// The data commit this batch just made, and the offsets the data table held before it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataCommit<'a> {
    pub version: u64,
    pub held_before: &'a HashMap<TopicPartition, i64>,
    pub rows: Option<&'a RecordBatch>,
}

/// Where the minute step of a batch stands: the tables, the batch's last offsets, and the offsets
/// the minute table holds of its partitions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MinuteStep<'a> {
    pub spec: &'a TableSpec,
    pub rollup: &'a RollupSpec,
    pub data: &'a DeltaTable,
    pub minute: &'a DeltaTable,
    pub last: &'a BTreeMap<TopicPartition, i64>,
    pub committed: &'a HashMap<TopicPartition, i64>,
}

/// Plans the partial minute rows for a batch whose data step is done; `just` is the data commit the
/// batch made, if it made one.
pub(crate) async fn plan(step: MinuteStep<'_>, just: Option<DataCommit<'_>>) -> Result<Planned> {
    let MinuteStep { spec, rollup, last, committed, .. } = step;
    let in_step = just.as_ref().filter(|j| last.keys().all(|tp| committed.get(tp) == j.held_before.get(tp)));
    let caught_up = in_step.is_none();
    let (rows, versions, also_covers) = match in_step {
        Some(just) => (just.rows.cloned(), vec![just.version], BTreeMap::new()),
        None => catch_up(step).await?,
    };
    let source_rows = rows.as_ref().map_or(0, RecordBatch::num_rows) as u64;
    let partials = match rows.filter(|r| r.num_rows() > 0) {
        Some(rows) => Some(minute_partials(rollup, &spec.event_time, &rows)?),
        None => None,
    };
    let mut offsets: BTreeMap<String, i64> = last.iter().map(|(tp, last)| (partition_key(tp), *last)).collect();
    for (tp, last) in &also_covers {
        let entry = offsets.entry(partition_key(tp)).or_insert(*last);
        *entry = (*entry).max(*last);
    }
    let info = RollupInfo {
        kind: RollupKind::Partial,
        source: spec.name.clone(),
        source_versions: versions,
        source_version: None,
        source_rows,
        buckets: None,
        rows: partials.as_ref().map_or(0, RecordBatch::num_rows) as u64,
        caught_up,
        offsets,
    };
    Ok(Planned { rows: partials, info: info.to_commit_info(), also_covers })
}

/// The rows of every data commit the minute table does not cover yet, the versions they come from,
/// and the offsets those commits cover.
async fn catch_up(step: MinuteStep<'_>) -> Result<(Option<RecordBatch>, Vec<u64>, BTreeMap<TopicPartition, i64>)> {
    let MinuteStep { spec, rollup, data, minute, last, committed } = step;
    let minute_name = rollup.table_name(Grain::Minute);
    let snapshot = minute.snapshot().map_err(lake_error(&minute_name))?;
    let floor: Option<u64> =
        snapshot.metadata().configuration().get(SOURCE_VERSION_PROPERTY).and_then(|v| v.parse().ok());
    let mut held: HashMap<TopicPartition, Option<i64>> =
        last.keys().map(|tp| (tp.clone(), committed.get(tp).copied())).collect();
    let mut open: HashSet<TopicPartition> =
        last.iter().filter(|(tp, l)| committed.get(*tp).is_none_or(|c| c < *l)).map(|(tp, _)| tp.clone()).collect();
    let mut versions = Vec::new();
    let mut also_covers: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut paths = Vec::new();
    let latest = data.version().unwrap_or(0);
    let lowest = floor.map_or(0, |f| f + 1);
    let mut version = latest + 1;
    while !open.is_empty() && version > lowest {
        version -= 1;
        let Some(commit) = ledger::read_commit(&spec.name, data, version).await? else {
            tracing::warn!(table = %spec.name, version, "the data log no longer holds this commit; minute rows of older commits cannot be caught up");
            break;
        };
        let Some(info) = commit.info.as_ref().filter(|i| i.kind == TableKind::Data) else { continue };
        let mut partitions = Vec::new();
        for (tp, counts) in info.partitions() {
            let minute_holds = match held.get(&tp) {
                Some(h) => *h,
                None => {
                    let id = app_id(&tp);
                    let h = tidelake_lake::txn::versions(&minute_name, minute, std::slice::from_ref(&id)).await?[&id];
                    held.insert(tp.clone(), h);
                    h
                }
            };
            partitions.push((tp, counts.first, counts.last, minute_holds));
        }
        let missing = partitions.iter().any(|(_, _, last, holds)| holds.is_none_or(|h| h < *last));
        for (tp, first, last, holds) in partitions {
            let older_covered = !missing || holds.is_some_and(|h| first <= h + 1);
            if older_covered {
                open.remove(&tp);
            } else {
                open.insert(tp.clone());
            }
            if missing {
                let entry = also_covers.entry(tp).or_insert(last);
                *entry = (*entry).max(last);
            }
        }
        if missing {
            versions.push(version);
            paths.extend(commit.adds.into_iter().filter(|a| a.data_change).map(|a| a.path));
        }
    }
    versions.reverse();
    tracing::info!(
        table = %spec.name,
        data_versions = ?versions,
        files = paths.len(),
        "minute rollup catching up with data commits it does not hold"
    );
    let columns = rollup.input_columns(&spec.event_time);
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let store = data.object_store();
    let mut batches = Vec::new();
    for path in &paths {
        batches.extend(
            files::read_columns(&store, &spec.name, &object_store::path::Path::from(path.as_str()), &columns).await?,
        );
    }
    let rows = match batches.first() {
        None => None,
        Some(first) => Some(arrow::compute::concat_batches(&first.schema(), &batches).map_err(|source| {
            tidelake_lake::Error::Arrow { context: format!("joining rows of {}", spec.name), source }
        })?),
    };
    Ok((rows, versions, also_covers))
}

/// The data table's offsets when the minute table was created (its [`SOURCE_VERSION_PROPERTY`]),
/// for the partitions of `now` (the data table's offsets now): where the minute table's history
/// starts.
pub(crate) async fn data_offsets_at_start(
    spec: &TableSpec,
    minute: &DeltaTable,
    storage_options: &HashMap<String, String>,
    now: &HashMap<TopicPartition, i64>,
) -> Result<HashMap<TopicPartition, i64>> {
    let snapshot = minute.snapshot().map_err(lake_error(&spec.name))?;
    let start: u64 =
        snapshot.metadata().configuration().get(SOURCE_VERSION_PROPERTY).and_then(|v| v.parse().ok()).unwrap_or(0);
    if start == 0 {
        // Version 0 creates the table: it holds no offsets.
        return Ok(HashMap::new());
    }
    match tidelake_lake::delta::open_existing(&spec.name, &spec.location, storage_options, Some(start)).await {
        Ok(Some(then)) => tidelake_lake::delta::committed_offsets(&spec.name, &then, now.keys()).await,
        // The log no longer reaches back to that version (cleaned up after a checkpoint): take what
        // the data table holds as history rather than read the partitions again from their start.
        other => {
            let reason = other.err().map_or_else(|| "no table".to_string(), |e| e.to_string());
            tracing::warn!(table = %spec.name, version = start, %reason, "cannot read the data table as the minute table found it; resuming from the data table's offsets");
            Ok(now.clone())
        }
    }
}

fn lake_error(table: &str) -> impl Fn(deltalake::DeltaTableError) -> tidelake_lake::Error + '_ {
    move |source| tidelake_lake::Error::Delta { table: table.to_string(), source: Box::new(source) }
}
