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
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::files::DataFile;
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

/// The event UUIDs the table holds in the window, as 96-bit hashes with the newest event time of a
/// row carrying each (in whole seconds, rounded up): one hash probe per checked record, whatever the
/// size of the table, in 16 bytes an entry.
///
/// A warm function keeps it between batches and only reads what other writers committed since
/// (the UUID and event-time columns of the files their commits added); its own commits it records
/// without reading them back. A cold function, or a batch older than what the index covers, loads
/// the window once from the table's files. Entries that leave the window are swept.
///
/// 96 bits of the 128-bit xxh3 hash stand for the UUID: two different UUIDs in one window share them
/// with probability about n² / 2⁹⁷ (for 10⁹ events in a window, below 10⁻¹¹).
#[derive(Debug, Default)]
pub struct UuidIndex {
    ids: HashMap<Key, u32, PreHashed>,
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
            let keep_from = seconds_down(window_start);
            self.ids.retain(|_, t| *t >= keep_from);
            self.complete_from = window_start;
        }
        Ok(load)
    }

    /// Records the rows this writer committed as `version` (the UUIDs [`select`] kept for it), so
    /// they need not be read back or hashed again.
    pub fn record(&mut self, version: u64, kept: KeptIds) {
        for (key, time) in kept.0 {
            self.insert_key(key, time);
        }
        // With no commit in between (the commit would have been refused), the index is current.
        if self.version.is_some_and(|v| v + 1 == version) {
            self.version = Some(version);
        }
    }

    fn insert(&mut self, id: &str, time: i64) {
        self.insert_key(Key::of(id), seconds_up(time));
    }

    fn insert_key(&mut self, key: Key, seconds: u32) {
        let newest = self.ids.entry(key).or_insert(seconds);
        *newest = (*newest).max(seconds);
    }

    /// Whether a row of the table in the window holds `uuid`.
    pub fn contains(&self, uuid: &str) -> bool {
        self.ids.contains_key(&Key::of(uuid))
    }

    /// The table version the index reflects; `None` until loaded (or after a load that failed).
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Event UUIDs in the index.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Bytes the index's table allocates: its buckets (a 16-byte entry and a control byte each; a
    /// power of two of them, filled to at most seven eighths) and a group of control bytes more.
    pub fn heap_bytes(&self) -> usize {
        let capacity = self.ids.capacity();
        if capacity == 0 {
            return 0;
        }
        let buckets = if capacity < 8 { (capacity + 1).next_power_of_two() } else { capacity / 7 * 8 };
        buckets * (size_of::<(Key, u32)>() + 1) + 16
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
        let (mut paths, mut rows) = (Vec::new(), 0);
        for file in snapshot.log_data().iter() {
            if by_date {
                let day = file.partition_values_map().get(PartitionGrain::Date.column()).cloned().flatten();
                if day.and_then(|d| epoch_day(&d)).is_some_and(|d| d < first_day) {
                    continue;
                }
            }
            rows += file.num_records().unwrap_or(0);
            paths.push((file.object_store_path(), u64::try_from(file.size()).ok()));
        }
        // Sized once from the log's row counts, rather than grown (and copied) as the files come.
        self.ids.reserve(rows);
        for (path, size) in &paths {
            self.read_file(table, spec, path, *size).await?;
        }
        self.complete_from = from;
        Ok(paths.len())
    }

    /// Reads the files that commit `version` added (rewrites, which add no new rows, are skipped).
    async fn read_commit(&mut self, table: &DeltaTable, spec: &TableSpec, version: u64) -> Result<usize> {
        let Some(commit) = crate::ledger::read_commit(&spec.name, table, version).await? else { return Ok(0) };
        let mut read = 0;
        for add in commit.adds.iter().filter(|a| a.data_change) {
            self.read_file(table, spec, &object_store::path::Path::from(add.path.as_str()), None).await?;
            read += 1;
        }
        Ok(read)
    }

    /// Reads the UUID and event-time column chunks of one file (nothing else of it is fetched).
    async fn read_file(
        &mut self,
        table: &DeltaTable,
        spec: &TableSpec,
        path: &object_store::path::Path,
        size: Option<u64>,
    ) -> Result<()> {
        let store = table.object_store();
        let file = DataFile::new(&store, &spec.name, path).with_size(size);
        let mut batches = file.stream(Some(&[spec.event_uuid.as_str(), spec.event_time.as_str()])).await?;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
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

/// 96 bits of a UUID's 128-bit xxh3 hash, as three words (an entry of the index stays 16 bytes,
/// where a `u128` key would make it 32 by its alignment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key([u32; 3]);

impl Key {
    fn of(id: &str) -> Key {
        let hash = twox_hash::XxHash3_128::oneshot(id.as_bytes());
        Key([hash as u32, (hash >> 32) as u32, (hash >> 64) as u32])
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The first two words are hash bits already: the table uses them as they are.
        state.write_u64(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32));
    }
}

/// An event time (µs) as whole seconds since the epoch, rounded up, so an entry never leaves the
/// index before its row leaves the window (times outside 1970..2106 are held at the ends).
fn seconds_up(micros: i64) -> u32 {
    micros.div_euclid(1_000_000).saturating_add(i64::from(micros.rem_euclid(1_000_000) != 0)).clamp(0, u32::MAX as i64)
        as u32
}

/// The window's start (µs) as whole seconds, rounded down: entries from there on stay.
fn seconds_down(micros: i64) -> u32 {
    micros.div_euclid(1_000_000).clamp(0, u32::MAX as i64) as u32
}

fn epoch_day(date: &str) -> Option<i32> {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some((day - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

/// A hasher for keys that are hashes already: takes their bits instead of hashing again.
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
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The hashed UUIDs and event times of the rows [`select`] kept, for [`UuidIndex::record`] once
/// they are committed.
#[derive(Debug, Default)]
pub struct KeptIds(Vec<(Key, u32)>);

/// What [`select`] chose.
#[derive(Debug)]
pub struct Selection {
    /// Rows to write.
    pub keep: BooleanArray,
    /// What was dropped, and what was let through unchecked.
    pub counts: DedupCounts,
    /// The kept rows' UUIDs, hashed already.
    pub ids: KeptIds,
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
) -> Selection {
    let ids = rows.column(spec.event_uuid_index()).as_string::<i32>();
    let times = event_times(spec, rows);
    // Each UUID hashed once, for the batch's own copies, the probe of the index and the record of
    // what was written.
    let keys: Vec<Key> = (0..rows.num_rows()).map(|i| Key::of(ids.value(i))).collect();
    // The index probed in a loop of its own: in a table of millions of entries each probe waits on
    // memory, and probes that do not depend on each other wait together.
    let held: Vec<bool> = match range {
        Some(_) if !index.ids.is_empty() => keys.iter().map(|key| index.ids.contains_key(key)).collect(),
        _ => vec![false; keys.len()],
    };
    let mut seen: HashSet<Key, PreHashed> = HashSet::with_capacity_and_hasher(rows.num_rows(), PreHashed);
    // Only a table with a window checks against the table and keeps an index to record them in.
    let indexed = spec.dedup_window.is_some();
    let mut kept = Vec::with_capacity(if indexed { rows.num_rows() } else { 0 });
    let mut counts = DedupCounts::default();
    let keep: BooleanArray = (0..rows.num_rows())
        .map(|i| {
            let id = keys[i];
            if !pending(i) {
                seen.insert(id);
                return Some(false);
            }
            if !seen.insert(id) {
                counts.in_batch += 1;
                return Some(false);
            }
            let in_window = range.is_some_and(|(from, _)| times.value(i) >= from);
            if in_window && held[i] {
                counts.in_table += 1;
                return Some(false);
            }
            if !in_window && indexed {
                counts.beyond_window += 1;
            }
            if indexed {
                kept.push((id, seconds_up(times.value(i))));
            }
            Some(true)
        })
        .collect();
    Selection { keep, counts, ids: KeptIds(kept) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_event_time_of_a_uuid_is_kept() {
        let mut index = UuidIndex::default();
        index.insert("x", 10_000_000);
        index.insert("x", 5_000_000);
        index.insert("y", 7_000_000);
        assert!(index.contains("x") && index.contains("y") && !index.contains("z"));
        assert_eq!(index.ids[&Key::of("x")], 10);
        index.ids.retain(|_, t| *t >= 8);
        assert!(index.contains("x") && !index.contains("y"));
        assert_eq!(index.len(), 1);
        assert_eq!(size_of::<(Key, u32)>(), 16);
    }

    #[test]
    fn an_index_sized_for_ten_million_uuids_takes_under_32_bytes_each() {
        let mut index = UuidIndex::default();
        assert_eq!(index.heap_bytes(), 0);
        index.ids.reserve(10_000_000);
        // 2^24 buckets of 17 bytes: 28.5 bytes a UUID.
        assert_eq!(index.heap_bytes(), (1 << 24) * 17 + 16);
        assert!(index.heap_bytes() / 10_000_000 < 32);
    }

    #[test]
    fn an_entry_stays_until_its_row_leaves_the_window() {
        // Rounded up when stored, down at the window's start: kept at least as long as the row.
        assert_eq!(seconds_up(7_000_000), 7);
        assert_eq!(seconds_up(7_000_001), 8);
        assert_eq!(seconds_down(7_999_999), 7);
        assert_eq!(seconds_up(-5), 0);
        assert_eq!(seconds_up(i64::MAX), u32::MAX);
        for (row, start) in [(7_000_001, 7_000_001), (7_500_000, 7_000_000), (8_000_000, 7_999_999)] {
            assert!(seconds_up(row) >= seconds_down(start), "{row} {start}");
        }
    }
}
