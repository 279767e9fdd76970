//! What finalize and the rollups share: the files of a rollup table with the bucket range their
//! statistics give, reading them back with the partition column, and replacing some of them with new
//! rows in one commit that records its lineage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, Date32Array, RecordBatch};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use deltalake::kernel::{Action, Remove};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::DeltaTable;
use tidelake_lake::commit::{Depends, Prepared};
use tidelake_lake::ledger::{RollupInfo, RollupKind};
use tidelake_lake::rollup::{DATE_COLUMN, MICROS_PER_DAY};

use crate::error::{Error, Result};

/// One file of a rollup table.
#[derive(Debug, Clone)]
pub(crate) struct BucketFile {
    /// Path relative to the table root.
    pub path: String,
    /// Bytes.
    pub size: i64,
    /// Rows, from the statistics.
    pub rows: u64,
    /// Its `event_date` partition, in days since the epoch.
    pub day: i32,
    /// Smallest and largest bucket start in it, from the statistics.
    pub buckets: Option<(i64, i64)>,
    /// Whether it may hold partial rows (minute tables: the statistics' largest `partial`).
    pub may_be_partial: bool,
}

impl BucketFile {
    /// Whether the file may hold a row of a bucket in `[from, to)`.
    pub fn overlaps(&self, from: i64, to: i64) -> bool {
        self.buckets.is_none_or(|(min, max)| min < to && max >= from)
    }
}

/// The files of `table` with the range of `bucket_column` their statistics give.
pub(crate) fn files(table: &DeltaTable, name: &str, bucket_column: &str) -> Result<Vec<BucketFile>> {
    let snapshot = table.snapshot().map_err(Error::delta(name))?;
    let mut out = Vec::new();
    for file in snapshot.log_data().iter() {
        let day =
            file.partition_values_map().get(DATE_COLUMN).cloned().flatten().and_then(|d| epoch_day(&d)).ok_or_else(
                || Error::File {
                    table: name.to_string(),
                    path: file.object_store_path().to_string(),
                    reason: format!("has no `{DATE_COLUMN}` partition value"),
                },
            )?;
        let stats: Option<serde_json::Value> = file.stats().and_then(|s| serde_json::from_str(&s).ok());
        let bound = |side: &str| {
            stats
                .as_ref()?
                .get(side)?
                .get(bucket_column)?
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp_micros()))
        };
        let buckets = bound("minValues").zip(bound("maxValues"));
        let may_be_partial = stats
            .as_ref()
            .and_then(|s| s.get("maxValues")?.get(tidelake_lake::rollup::PARTIAL_COLUMN)?.as_bool())
            .unwrap_or(true);
        out.push(BucketFile {
            path: file.object_store_path().to_string(),
            size: file.size(),
            rows: file.num_records().unwrap_or(0) as u64,
            day,
            buckets,
            may_be_partial,
        });
    }
    Ok(out)
}

/// Days since the epoch of a `YYYY-MM-DD` partition value.
pub(crate) fn epoch_day(text: &str) -> Option<i32> {
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some((day - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

/// The `event_date` partition of a file path (`event_date=YYYY-MM-DD/part-...`).
pub(crate) fn day_of_path(path: &str) -> Option<i32> {
    let start = path.find(&format!("{DATE_COLUMN}="))? + DATE_COLUMN.len() + 1;
    epoch_day(path.get(start..start + 10)?)
}

/// Reads a whole file of a rollup table, its partition column put back, in the table's `schema`.
pub(crate) async fn read(
    table: &DeltaTable,
    name: &str,
    path: &str,
    day: i32,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let store = table.object_store();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).filter(|c| *c != DATE_COLUMN).collect();
    let batches =
        tidelake_lake::files::read_columns(&store, name, &object_store::path::Path::from(path), &columns).await?;
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let columns = schema
            .fields()
            .iter()
            .map(|field| match field.name() == DATE_COLUMN {
                true => Ok(Arc::new(Date32Array::from(vec![day; batch.num_rows()])) as ArrayRef),
                false => {
                    let column = batch.column_by_name(field.name()).ok_or_else(|| Error::File {
                        table: name.to_string(),
                        path: path.to_string(),
                        reason: format!("has no column `{}`", field.name()),
                    })?;
                    cast(column, field.data_type()).map_err(Error::arrow(format!("reading {path} of {name}")))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(
            RecordBatch::try_new(schema.clone(), columns).map_err(Error::arrow(format!("reading {path} of {name}")))?,
        );
    }
    concat_batches(schema, &out).map_err(Error::arrow(format!("reading {path} of {name}")))
}

/// Reads only the bucket column of a file (missing from storage: `None`).
pub(crate) async fn read_buckets(
    table: &DeltaTable,
    name: &str,
    path: &str,
    bucket_column: &str,
) -> Result<Option<Vec<i64>>> {
    let store = table.object_store();
    let path = object_store::path::Path::from(path);
    match tidelake_lake::files::read_columns(&store, name, &path, &[bucket_column]).await {
        Ok(batches) => Ok(Some(
            batches
                .iter()
                .filter_map(|b| b.column_by_name(bucket_column))
                .flat_map(|c| c.as_primitive::<TimestampMicrosecondType>().values().to_vec())
                .collect(),
        )),
        Err(tidelake_lake::Error::ObjectStore(object_store::Error::NotFound { .. })) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Rows of `rows` whose `bucket_column` value, truncated by `bucket_of`, `keep` says yes to.
pub(crate) fn select(
    rows: &RecordBatch,
    bucket_column: &str,
    bucket_of: impl Fn(i64) -> i64,
    keep: impl Fn(i64) -> bool,
) -> Result<RecordBatch> {
    let Some(buckets) = rows.column_by_name(bucket_column) else { return Ok(rows.clone()) };
    let mask: BooleanArray =
        buckets.as_primitive::<TimestampMicrosecondType>().values().iter().map(|t| Some(keep(bucket_of(*t)))).collect();
    filter_record_batch(rows, &mask).map_err(Error::arrow("selecting rows of buckets"))
}

/// The day (since the epoch) of a bucket start.
pub(crate) fn day_of(bucket: i64) -> i32 {
    bucket.div_euclid(MICROS_PER_DAY) as i32
}

/// What [`replace`] committed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Replaced {
    pub version: u64,
    pub files_added: usize,
}

/// Replaces `removed` files of `table` with `rows` in one commit carrying `info` as its lineage.
/// `job` names the fault points (`<job>-after-write`, `<job>-after-commit`).
pub(crate) async fn replace(
    table: &mut DeltaTable,
    name: &str,
    removed: &[&BucketFile],
    rows: Option<RecordBatch>,
    info: &RollupInfo,
    job: &str,
) -> Result<Replaced> {
    let mut actions = Vec::new();
    if let Some(rows) = rows.filter(|r| r.num_rows() > 0) {
        let mut writer = RecordBatchWriter::for_table(table).map_err(Error::delta(name))?;
        writer.write(rows).await.map_err(Error::delta(name))?;
        actions.extend(writer.flush().await.map_err(Error::delta(name))?.into_iter().map(Action::Add));
    }
    let files_added = actions.len();
    let now = chrono::Utc::now().timestamp_millis();
    for file in removed {
        let day = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Days::new(file.day as u64);
        actions.push(Action::Remove(Remove {
            path: file.path.clone(),
            data_change: true,
            deletion_timestamp: Some(now),
            extended_file_metadata: Some(true),
            partition_values: Some(HashMap::from([(
                DATE_COLUMN.to_string(),
                Some(day.format("%Y-%m-%d").to_string()),
            )])),
            size: Some(file.size),
            deletion_vector: None,
            tags: None,
            base_row_id: None,
            default_row_commit_version: None,
        }));
    }
    tidelake_lake::fault::point(&format!("{job}-after-write"));
    let operation = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: Some(vec![DATE_COLUMN.to_string()]),
        predicate: None,
    };
    let lineage = (info.kind == RollupKind::Rollup).then_some(RollupKind::Rollup);
    let version = commit_rewrite(table, name, actions, info.to_commit_info(), operation, lineage).await?;
    tidelake_lake::fault::point(&format!("{job}-after-commit"));
    Ok(Replaced { version, files_added })
}

/// Commits `actions` (new files and the removal of the files they replace) on top of whatever
/// landed since `table` was read, by the lake's commit policy ([`tidelake_lake::commit`]): refused
/// when a commit in between removed one of the same files, or, for a rollup (`lineage`), when
/// another rollup commit landed (the source version this one was computed from is no longer the
/// one the table covers). Ingest commits, which only add files, never stop a rewrite.
pub(crate) async fn commit_rewrite(
    table: &mut DeltaTable,
    name: &str,
    actions: Vec<Action>,
    info: serde_json::Map<String, serde_json::Value>,
    operation: DeltaOperation,
    lineage: Option<RollupKind>,
) -> Result<u64> {
    let depends = Depends { lineage, ..Depends::of(&actions, &[]) };
    let prepared = Prepared { actions, operation, info, txns: Vec::new() };
    Ok(tidelake_lake::commit::commit(table, name, prepared, &depends).await?)
}

/// Groups values by key, keeping key order.
pub(crate) fn by<K: Ord, V>(items: impl IntoIterator<Item = (K, V)>) -> BTreeMap<K, Vec<V>> {
    let mut out: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in items {
        out.entry(k).or_default().push(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_come_from_partition_paths() {
        assert_eq!(day_of_path("event_date=1970-01-02/part-0.parquet"), Some(1));
        assert_eq!(day_of_path("event_date=2026-11-23/part-0.parquet"), Some(20_780));
        assert_eq!(day_of_path("part-0.parquet"), None);
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn a_file_without_statistics_may_hold_any_bucket() {
        let file = |buckets| BucketFile { path: "p".into(), size: 1, rows: 1, day: 0, buckets, may_be_partial: true };
        assert!(file(None).overlaps(0, 10));
        assert!(file(Some((5, 9))).overlaps(9, 10));
        assert!(!file(Some((5, 9))).overlaps(10, 20));
        assert!(!file(Some((5, 9))).overlaps(0, 5));
    }
}
