//! Deduplication by event UUID: a record whose event UUID the table already holds, or that an earlier
//! record of the same batch carried, is dropped and counted, never written twice.
//!
//! The window is measured in event time, not wall-clock time, so that reprocessing history gives the
//! same answer as the live run: a batch's records are checked against the table when their event time
//! is within `dedup_window` of the newest event time in the batch. Older records are kept and counted
//! as `beyond_window` (a late copy of an old event would land twice; the count makes that visible).
//!
//! The table side is a [`UuidIndex`]: hashes of the UUIDs of the rows in the window. A cold function
//! builds it from the UUID and event-time columns of the files of the window's event days (the
//! `event_date` partitions; all files when the table is not partitioned by date); a warm one only
//! reads the files other writers added since its last batch, so the cost of a batch does not grow
//! with the table. A copy is assumed to carry its original's event time (a producer retry resends
//! the same event), which is what lets the window bound the files to look at.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::TimestampMicrosecondType;
use deltalake::DeltaTable;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::error::{Error, Result};
use crate::schema::{PartitionGrain, TableSpec};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What deduplication dropped and let through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DedupCounts {
    /// Records dropped because an earlier record of the same batch had their event UUID.
    pub in_batch: usize,
    /// Records dropped because the table already held their event UUID.
    pub in_table: usize,
    /// Records kept without a check against the table: older than the window.
    pub beyond_window: usize,
}

impl DedupCounts {
    /// All records dropped as duplicates.
    pub fn dropped(&self) -> usize {
        self.in_batch + self.in_table
    }
}

/// The event-time range (microseconds, inclusive) whose records are checked against the table:
/// `None` when nothing is to be checked.
pub fn window(spec: &TableSpec, rows: &RecordBatch, checked: impl Fn(usize) -> bool) -> Option<(i64, i64)> {
    let window = spec.dedup_window?;
    let times = event_times(spec, rows);
    let newest = (0..rows.num_rows()).filter(|&i| checked(i)).map(|i| times.value(i)).max()?;
    let from = newest.saturating_sub(window.as_micros() as i64);
    let oldest = (0..rows.num_rows()).filter(|&i| checked(i)).map(|i| times.value(i)).filter(|t| *t >= from).min()?;
    Some((oldest, newest))
}

fn event_times<'a>(spec: &TableSpec, rows: &'a RecordBatch) -> &'a TimestampMicrosecondArray {
    rows.column(spec.event_time_index())
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("event time is a microsecond timestamp")
}

/// The event UUIDs the table holds in the window, as 128-bit hashes with the newest event time of
/// a row carrying each: one hash probe per checked record, whatever the size of the table.
///
/// A warm function keeps it between batches and only reads what other writers committed since
/// (the UUID and event-time columns of the files their commits added); its own commits it records
/// without reading them back. A cold function, or a batch older than what the index covers, loads
/// the window once from the table's files. Entries that leave the window are swept.
///
/// The 128-bit xxh3 hash stands for the UUID: two different UUIDs share a hash with probability
/// about n² / 2¹²⁹ (for 10⁹ events in a window, below 10⁻²⁰).
#[derive(Debug, Default)]
pub struct UuidIndex {
    ids: HashMap<u128, i64, PreHashed>,
    /// The table version the index reflects; `None` until loaded.
    version: Option<u64>,
    /// Event time (µs) from which every row of the table is in the index.
    complete_from: i64,
}

/// What [`UuidIndex::prepare`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexLoad {
    /// Whether the window was loaded from the table's files (a cold start or a late batch).
    pub full: bool,
    /// Commits of other writers read from the log.
    pub commits: usize,
    /// Data files whose UUIDs were read.
    pub files: usize,
}

impl UuidIndex {
    /// Brings the index up to `table`'s loaded version for a batch whose checked records span
    /// `range` (event time, µs), and sweeps what left the window.
    pub async fn prepare(&mut self, table: &DeltaTable, spec: &TableSpec, range: (i64, i64)) -> Result<IndexLoad> {
        let window = spec.dedup_window.map_or(i64::MAX, |w| w.as_micros() as i64);
        let window_start = range.1.saturating_sub(window);
        let current = table.version().unwrap_or(0);
        let mut load = IndexLoad::default();
        match self.version {
            Some(version) if range.0 >= self.complete_from => {
                for v in version + 1..=current {
                    load.commits += 1;
                    load.files += self.read_commit(table, spec, v).await?;
                }
            }
            _ => {
                load.full = true;
                // Loaded or not: a load that fails halfway leaves the index unloaded, so the next
                // batch loads it again rather than checking against what it missed.
                self.version = None;
                load.files = self.load_window(table, spec, window_start).await?;
            }
        }
        self.version = Some(current);
        // Sweep in steps of an eighth of the window, not on every batch.
        if window_start > self.complete_from.saturating_add(window / 8) {
            self.ids.retain(|_, t| *t >= window_start);
            self.complete_from = window_start;
        }
        Ok(load)
    }

    /// Records the rows this writer committed as `version`, so they need not be read back.
    pub fn record(&mut self, spec: &TableSpec, version: u64, rows: &RecordBatch) {
        let ids = rows.column(spec.event_uuid_index()).as_string::<i32>();
        let times = event_times(spec, rows);
        for i in 0..rows.num_rows() {
            self.insert(ids.value(i), times.value(i));
        }
        // With no commit in between (the commit would have been refused), the index is current.
        if self.version.is_some_and(|v| v + 1 == version) {
            self.version = Some(version);
        }
    }

    fn insert(&mut self, id: &str, time: i64) {
        let newest = self.ids.entry(hash(id)).or_insert(time);
        *newest = (*newest).max(time);
    }

    /// Whether a row of the table in the window holds `uuid`.
    pub fn contains(&self, uuid: &str) -> bool {
        self.ids.contains_key(&hash(uuid))
    }

    /// The table version the index reflects; `None` until loaded (or after a load that failed).
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Event UUIDs in the index.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index holds no UUID.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Loads every file that can hold rows at or after `from` (by its `event_date` partition).
    async fn load_window(&mut self, table: &DeltaTable, spec: &TableSpec, from: i64) -> Result<usize> {
        self.ids.clear();
        let first_day = from.div_euclid(MICROS_PER_DAY) as i32;
        let by_date = spec.partition_by.contains(&PartitionGrain::Date);
        let snapshot = table.snapshot().map_err(Error::delta(&spec.name))?;
        let mut paths = Vec::new();
        for file in snapshot.log_data().iter() {
            if by_date {
                let day = file.partition_values_map().get(PartitionGrain::Date.column()).cloned().flatten();
                if day.and_then(|d| epoch_day(&d)).is_some_and(|d| d < first_day) {
                    continue;
                }
            }
            paths.push(file.object_store_path());
        }
        for path in &paths {
            self.read_file(table, spec, path).await?;
        }
        self.complete_from = from;
        Ok(paths.len())
    }

    /// Reads the files that commit `version` added (rewrites, which add no new rows, are skipped).
    async fn read_commit(&mut self, table: &DeltaTable, spec: &TableSpec, version: u64) -> Result<usize> {
        let Some(commit) = crate::ledger::read_commit(&spec.name, table, version).await? else { return Ok(0) };
        let mut read = 0;
        for add in commit.adds.iter().filter(|a| a.data_change) {
            self.read_file(table, spec, &object_store::path::Path::from(add.path.as_str())).await?;
            read += 1;
        }
        Ok(read)
    }

    async fn read_file(&mut self, table: &DeltaTable, spec: &TableSpec, path: &object_store::path::Path) -> Result<()> {
        let bytes = table.object_store().get(path).await?.bytes().await?;
        let file_error = |e: parquet::errors::ParquetError| Error::Delta {
            table: format!("{} file {path}", spec.name),
            source: Box::new(e.into()),
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(file_error)?;
        let mask =
            ProjectionMask::columns(builder.parquet_schema(), [spec.event_uuid.as_str(), spec.event_time.as_str()]);
        for batch in builder.with_projection(mask).build().map_err(file_error)? {
            let batch = batch.map_err(Error::arrow(format!("reading {path}")))?;
            let (Some(ids), Some(times)) =
                (batch.column_by_name(&spec.event_uuid), batch.column_by_name(&spec.event_time))
            else {
                continue;
            };
            let ids = ids.as_string::<i32>();
            let times = times.as_primitive::<TimestampMicrosecondType>();
            for i in (0..batch.num_rows()).filter(|&i| ids.is_valid(i)) {
                self.insert(ids.value(i), times.value(i));
            }
        }
        Ok(())
    }
}

fn hash(id: &str) -> u128 {
    twox_hash::XxHash3_128::oneshot(id.as_bytes())
}

fn epoch_day(date: &str) -> Option<i32> {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some((day - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

/// A hasher for keys that are hashes already: folds the 128 bits to 64 instead of hashing again.
#[derive(Debug, Clone, Copy, Default)]
struct PreHashed;

impl std::hash::BuildHasher for PreHashed {
    type Hasher = Folded;
    fn build_hasher(&self) -> Folded {
        Folded(0)
    }
}

#[derive(Debug)]
struct Folded(u64);

impl std::hash::Hasher for Folded {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

/// Chooses the rows to write: rows for which `pending` holds, minus copies of an event UUID that an
/// earlier row (written now or before) carried, minus rows whose UUID `index` holds, for rows in
/// `range`. Rows are taken in order, so the first copy wins.
pub fn select(
    spec: &TableSpec,
    rows: &RecordBatch,
    pending: impl Fn(usize) -> bool,
    range: Option<(i64, i64)>,
    index: &UuidIndex,
) -> (BooleanArray, DedupCounts) {
    let ids = rows.column(spec.event_uuid_index()).as_string::<i32>();
    let times = event_times(spec, rows);
    let mut seen: HashSet<&str> = HashSet::with_capacity(rows.num_rows());
    let mut counts = DedupCounts::default();
    let keep: BooleanArray = (0..rows.num_rows())
        .map(|i| {
            let id = ids.value(i);
            if !pending(i) {
                seen.insert(id);
                return Some(false);
            }
            if !seen.insert(id) {
                counts.in_batch += 1;
                return Some(false);
            }
            let in_window = range.is_some_and(|(from, _)| times.value(i) >= from);
            if in_window && index.contains(id) {
                counts.in_table += 1;
                return Some(false);
            }
            if !in_window && spec.dedup_window.is_some() {
                counts.beyond_window += 1;
            }
            Some(true)
        })
        .collect();
    (keep, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_event_time_of_a_uuid_is_kept() {
        let mut index = UuidIndex::default();
        index.insert("x", 10);
        index.insert("x", 5);
        index.insert("y", 7);
        assert!(index.contains("x") && index.contains("y") && !index.contains("z"));
        assert_eq!(index.ids[&hash("x")], 10);
        index.ids.retain(|_, t| *t >= 8);
        assert!(index.contains("x") && !index.contains("y"));
        assert_eq!(index.len(), 1);
    }
}
