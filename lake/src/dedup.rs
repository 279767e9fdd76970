//! Deduplication by event UUID: a record whose event UUID the table already holds, or that an earlier
//! record of the same batch carried, is dropped and counted, never written twice.
//!
//! The window is measured in event time, not wall-clock time, so that reprocessing history gives the
//! same answer as the live run: a batch's records are checked against the table when their event time
//! is within `dedup_window` of the newest event time in the batch. Older records are kept and counted
//! as `beyond_window` (a late copy of an old event would land twice; the count makes that visible).
//!
//! The table side reads only the UUID column, and only of the files of the event days the checked
//! records fall on (the `event_date` partitions; all files when the table is not partitioned by
//! date). Data files never change, so a warm function keeps each file's UUIDs and reads a file once;
//! files that leave the window are dropped from that cache.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, TimestampMicrosecondArray};
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

/// The event UUIDs a table holds, per data file, read on demand and kept while their files are in
/// the window.
///
/// A lookup is one hash probe whatever the number of files: `ids` counts, per UUID, the loaded files
/// that hold it, and `files` keeps each file's UUIDs so that a file leaving the window can be taken
/// out again.
#[derive(Debug, Default)]
pub struct UuidIndex {
    files: HashMap<String, Vec<Arc<str>>>,
    ids: HashMap<Arc<str>, u32>,
}

impl UuidIndex {
    /// Loads the UUIDs of every file of `table` that can hold events in `range` (microseconds), and
    /// forgets files outside it. Returns the number of files read from storage.
    pub async fn load(&mut self, table: &DeltaTable, spec: &TableSpec, range: (i64, i64)) -> Result<usize> {
        let days: BTreeSet<i32> =
            (range.0.div_euclid(MICROS_PER_DAY)..=range.1.div_euclid(MICROS_PER_DAY)).map(|d| d as i32).collect();
        let by_date = spec.partition_by.contains(&PartitionGrain::Date);
        let snapshot = table.snapshot().map_err(Error::delta(&spec.name))?;
        let mut wanted = Vec::new();
        for file in snapshot.log_data().iter() {
            if by_date {
                let day = file
                    .partition_values_map()
                    .get(PartitionGrain::Date.column())
                    .cloned()
                    .flatten()
                    .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
                    .map(|d| (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32);
                if day.is_some_and(|d| !days.contains(&d)) {
                    continue;
                }
            }
            wanted.push(file.object_store_path());
        }
        let keep: HashSet<String> = wanted.iter().map(|p| p.to_string()).collect();
        let leaving: Vec<String> = self.files.keys().filter(|path| !keep.contains(*path)).cloned().collect();
        for path in leaving {
            self.remove_file(&path);
        }
        let store = table.object_store();
        let mut read = 0;
        for path in wanted {
            if self.files.contains_key(path.as_ref()) {
                continue;
            }
            let bytes = store.get(&path).await?.bytes().await?;
            let uuids = read_uuids(bytes, &spec.event_uuid).map_err(|e| Error::Delta {
                table: format!("{} file {path}", spec.name),
                source: Box::new(e.into()),
            })?;
            self.add_file(path.to_string(), uuids);
            read += 1;
        }
        Ok(read)
    }

    fn add_file(&mut self, path: String, uuids: HashSet<String>) {
        let uuids: Vec<Arc<str>> = uuids.into_iter().map(Arc::from).collect();
        for id in &uuids {
            *self.ids.entry(Arc::clone(id)).or_default() += 1;
        }
        self.files.insert(path, uuids);
    }

    fn remove_file(&mut self, path: &str) {
        for id in self.files.remove(path).unwrap_or_default() {
            if let Some(n) = self.ids.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    self.ids.remove(&id);
                }
            }
        }
    }

    /// Whether any loaded file holds `uuid`.
    pub fn contains(&self, uuid: &str) -> bool {
        self.ids.contains_key(uuid)
    }

    /// Files whose UUIDs are loaded.
    pub fn files(&self) -> usize {
        self.files.len()
    }
}

fn read_uuids(
    bytes: bytes::Bytes,
    column: &str,
) -> std::result::Result<HashSet<String>, parquet::errors::ParquetError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), [column]);
    let reader = builder.with_projection(mask).build()?;
    let mut ids = HashSet::new();
    for batch in reader {
        let batch = batch?;
        let col = batch.column(0).as_string::<i32>();
        ids.extend((0..col.len()).filter(|&i| col.is_valid(i)).map(|i| col.value(i).to_string()));
    }
    Ok(ids)
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

    fn ids(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_uuid_stays_known_while_any_file_holding_it_is_loaded() {
        let mut index = UuidIndex::default();
        index.add_file("a.parquet".into(), ids(&["x", "y"]));
        index.add_file("b.parquet".into(), ids(&["y", "z"]));
        assert!(index.contains("x") && index.contains("y") && index.contains("z"));
        index.remove_file("a.parquet");
        assert!(!index.contains("x"));
        assert!(index.contains("y"), "b.parquet still holds y");
        index.remove_file("b.parquet");
        assert!(!index.contains("y") && !index.contains("z"));
        assert_eq!(index.files(), 0);
    }
}
