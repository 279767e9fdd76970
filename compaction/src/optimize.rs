//! Optimize: bin-packs the small files of each partition into files near a target size.
//!
//! The plan groups a table's files by partition, leaves alone files already near the target, and
//! packs the rest, smallest first, into bins of at most the target size; a bin of one file is left
//! as it is. Executing reads each bin's files, writes their rows as one new file, and commits the new
//! files and the removal of the old ones in one Delta commit whose actions all say `dataChange =
//! false`: readers and the audit see the same rows, and ingest commits that land meanwhile (they
//! only add files) do not conflict with it. Running it again on an optimized table plans nothing
//! and commits nothing.
//!
//! Its commit then gets a checkpoint of the log: it holds an action for every file it removed and
//! added, thousands on a table of small files, which every reader (DuckDB, Spark, the query server)
//! would otherwise read from JSON on every load of the table.
//!
//! With [`Optimize::with_sort_by`] (the table's `optimize.sort_by` in the config), the rows of each
//! file it writes are sorted by those columns (ascending, nulls first) and written in row groups of
//! [`SORTED_ROW_GROUP_ROWS`] rows, so each row group's statistics cover a narrow range of the first
//! column: a reader looking for a few values of it skips the other row groups. Files left as they
//! are (near the target size, or alone in their partition) are not rewritten to sort them.

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::{cast, concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::error::ArrowError;
use deltalake::kernel::{Action, Remove};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::DeltaTable;
use futures::future::BoxFuture;
use serde::Serialize;
use tidelake_lake::files::DataFile;

use crate::error::{Error, Result};

/// Files at or above this share of the target size are left as they are.
const BIG_ENOUGH: f64 = 0.75;

/// The default target file size: 128 MB.
pub const DEFAULT_TARGET_SIZE: u64 = 128 * 1024 * 1024;

/// Rows per row group of a file written sorted.
pub const SORTED_ROW_GROUP_ROWS: usize = 128 * 1024;

/// One data file of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    /// Path relative to the table root.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Rows, from the file statistics.
    pub rows: u64,
}

/// Files of one partition to be rewritten as one.
#[derive(Debug, Clone, Serialize)]
pub struct Bin {
    /// The partition's values.
    pub partition: BTreeMap<String, Option<String>>,
    /// The files to merge.
    pub files: Vec<PlannedFile>,
}

/// What an optimize run would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OptimizePlan {
    /// Files of the table.
    pub files: usize,
    /// Bins to rewrite.
    pub bins: Vec<Bin>,
}

impl OptimizePlan {
    /// Files the plan rewrites.
    pub fn files_to_rewrite(&self) -> usize {
        self.bins.iter().map(|b| b.files.len()).sum()
    }

    /// Bytes the plan rewrites.
    pub fn bytes_to_rewrite(&self) -> u64 {
        self.bins.iter().flat_map(|b| &b.files).map(|f| f.size).sum()
    }
}

/// What an optimize run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OptimizeMetrics {
    /// Whether it only planned.
    pub dry_run: bool,
    /// Data files before.
    pub files_before: usize,
    /// Data files after (the same as before for a dry run).
    pub files_after: usize,
    /// Files removed (in a dry run: that would be).
    pub files_removed: usize,
    /// Files written.
    pub files_added: usize,
    /// Bins planned: the files written (or, in a dry run, that would be).
    pub bins: usize,
    /// Bytes of the removed files.
    pub bytes_removed: u64,
    /// Bytes of the written files.
    pub bytes_added: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// The table version committed, if any.
    pub version: Option<u64>,
    /// The version of the log checkpoint written after the commit, if one was (a failed checkpoint
    /// is logged and left to the checkpoint job: the commit stands).
    pub checkpoint: Option<u64>,
    /// Wall time.
    pub seconds: f64,
}

/// The optimize job on one table: `Optimize::new(table).with_target_size(..).await`.
#[derive(Debug)]
pub struct Optimize {
    table: DeltaTable,
    name: String,
    target_size: u64,
    dry_run: bool,
    sort_by: Vec<String>,
}

impl Optimize {
    /// Optimizes `table` (named `name` in messages) with the default target size.
    pub fn new(table: DeltaTable, name: impl Into<String>) -> Self {
        Optimize { table, name: name.into(), target_size: DEFAULT_TARGET_SIZE, dry_run: false, sort_by: Vec::new() }
    }

    /// Sorts the rows of each file written by these columns of the table, in this order.
    pub fn with_sort_by(mut self, columns: Vec<String>) -> Self {
        self.sort_by = columns;
        self
    }

    /// Sets the size files are packed up to.
    pub fn with_target_size(mut self, bytes: u64) -> Self {
        self.target_size = bytes.max(1);
        self
    }

    /// Plans only: nothing is written.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// The bins this run would rewrite.
    pub fn plan(&self) -> Result<OptimizePlan> {
        let snapshot = self.table.snapshot().map_err(Error::delta(&self.name))?;
        let mut partitions: BTreeMap<BTreeMap<String, Option<String>>, Vec<PlannedFile>> = BTreeMap::new();
        let mut files = 0;
        for file in snapshot.log_data().iter() {
            files += 1;
            let size = file.size().max(0) as u64;
            if size as f64 >= self.target_size as f64 * BIG_ENOUGH {
                continue;
            }
            partitions.entry(file.partition_values_map().into_iter().collect()).or_default().push(PlannedFile {
                path: file.object_store_path().to_string(),
                size,
                rows: file.num_records().unwrap_or(0) as u64,
            });
        }
        let mut bins = Vec::new();
        for (partition, mut small) in partitions {
            small.sort_by_key(|f| f.size);
            let mut bin: Vec<PlannedFile> = Vec::new();
            let mut bytes = 0;
            for file in small {
                if !bin.is_empty() && bytes + file.size > self.target_size {
                    bins.push(Bin { partition: partition.clone(), files: std::mem::take(&mut bin) });
                    bytes = 0;
                }
                bytes += file.size;
                bin.push(file);
            }
            bins.push(Bin { partition, files: bin });
        }
        bins.retain(|b| b.files.len() > 1);
        Ok(OptimizePlan { files, bins })
    }

    async fn execute(mut self) -> Result<(DeltaTable, OptimizeMetrics)> {
        let started = Instant::now();
        let plan = self.plan()?;
        let mut metrics = OptimizeMetrics {
            dry_run: self.dry_run,
            files_before: plan.files,
            files_after: plan.files,
            files_removed: plan.files_to_rewrite(),
            bins: plan.bins.len(),
            bytes_removed: plan.bytes_to_rewrite(),
            rows: plan.bins.iter().flat_map(|b| &b.files).map(|f| f.rows).sum(),
            ..OptimizeMetrics::default()
        };
        if self.dry_run || plan.bins.is_empty() {
            metrics.seconds = started.elapsed().as_secs_f64();
            return Ok((self.table, metrics));
        }
        let snapshot = self.table.snapshot().map_err(Error::delta(&self.name))?.clone();
        let schema = snapshot.snapshot().arrow_schema();
        let store = self.table.object_store();
        let mut actions = Vec::new();
        let now = chrono::Utc::now().timestamp_millis();
        for bin in &plan.bins {
            let mut batches = Vec::new();
            for file in &bin.files {
                let path = object_store::path::Path::from(file.path.as_str());
                // A storage error stays one (to retry); a file that does not read is named.
                let unreadable = |e: tidelake_lake::Error| match e {
                    tidelake_lake::Error::ObjectStore(e) => Error::from(e),
                    tidelake_lake::Error::Delta { source, .. } => {
                        Error::File { table: self.name.clone(), path: file.path.clone(), reason: source.to_string() }
                    }
                    other => {
                        Error::File { table: self.name.clone(), path: file.path.clone(), reason: other.to_string() }
                    }
                };
                let data_file = DataFile::new(&store, &self.name, &path).with_size(Some(file.size));
                for batch in data_file.read(None).await.map_err(unreadable)? {
                    batches.push(with_partition_columns(&batch, &schema, &bin.partition)?);
                }
            }
            let merged = concat_batches(&schema, &batches).map_err(Error::arrow("merging a bin's rows"))?;
            drop(batches);
            let mut writer = RecordBatchWriter::for_table(&self.table).map_err(Error::delta(&self.name))?;
            let merged = match self.sort_by.is_empty() {
                true => merged,
                false => {
                    writer = writer.with_writer_properties(
                        WriterProperties::builder()
                            .set_compression(Compression::SNAPPY)
                            .set_max_row_group_row_count(Some(SORTED_ROW_GROUP_ROWS))
                            .build(),
                    );
                    self.sorted(merged)?
                }
            };
            writer.write(merged).await.map_err(Error::delta(&self.name))?;
            for mut add in writer.flush().await.map_err(Error::delta(&self.name))? {
                add.data_change = false;
                metrics.bytes_added += add.size.max(0) as u64;
                metrics.files_added += 1;
                actions.push(Action::Add(add));
            }
            for file in &bin.files {
                actions.push(Action::Remove(Remove {
                    path: file.path.clone(),
                    data_change: false,
                    deletion_timestamp: Some(now),
                    extended_file_metadata: Some(true),
                    partition_values: Some(bin.partition.clone().into_iter().collect()),
                    size: Some(file.size as i64),
                    deletion_vector: None,
                    tags: None,
                    base_row_id: None,
                    default_row_commit_version: None,
                }));
            }
        }
        let info = serde_json::json!({
            "job": "optimize",
            "files_removed": metrics.files_removed,
            "files_added": metrics.files_added,
            "rows": metrics.rows,
        });
        tidelake_lake::fault::point("optimize-after-write");
        let info = serde_json::Map::from_iter([("tidelake_compaction".to_string(), info)]);
        let operation = DeltaOperation::Optimize { predicate: None, target_size: self.target_size as i64 };
        let version =
            crate::buckets::commit_rewrite(&mut self.table, &self.name, actions, info, operation, None).await?;
        metrics.version = Some(version);
        tidelake_lake::fault::point("optimize-after-commit");
        match crate::checkpoint::write(&self.table, &self.name).await {
            Ok(()) => metrics.checkpoint = Some(version),
            Err(e) => tracing::warn!(table = %self.name, version, error = %e, "no checkpoint after optimize"),
        }
        metrics.files_after = plan.files - metrics.files_removed + metrics.files_added;
        metrics.seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            table = %self.name,
            files_removed = metrics.files_removed,
            files_added = metrics.files_added,
            rows = metrics.rows,
            "optimized"
        );
        Ok((self.table, metrics))
    }
}

impl Optimize {
    /// `rows` sorted by the sort columns (taken, so the unsorted copy is freed before writing).
    fn sorted(&self, rows: RecordBatch) -> Result<RecordBatch> {
        let keys = self
            .sort_by
            .iter()
            .map(|name| {
                let values = rows.column_by_name(name).ok_or_else(|| {
                    ArrowError::SchemaError(format!(
                        "optimize.sort_by names `{name}`, which {} does not have",
                        self.name
                    ))
                });
                let values = values.map_err(Error::arrow("sorting a bin's rows"))?;
                Ok(SortColumn { values: Arc::clone(values), options: None })
            })
            .collect::<Result<Vec<_>>>()?;
        let order = lexsort_to_indices(&keys, None).map_err(Error::arrow("sorting a bin's rows"))?;
        take_record_batch(&rows, &order).map_err(Error::arrow("sorting a bin's rows"))
    }
}

impl IntoFuture for Optimize {
    type Output = Result<(DeltaTable, OptimizeMetrics)>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}

/// The rows of a data file with the table's partition columns put back (a partitioned table's files
/// leave them out; their values are in the file's partition), in the table's column order.
fn with_partition_columns(
    batch: &RecordBatch,
    schema: &arrow::datatypes::SchemaRef,
    partition: &BTreeMap<String, Option<String>>,
) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => Ok(Arc::clone(column)),
            None => {
                let value = partition.get(field.name()).cloned().flatten();
                let text: ArrayRef = Arc::new(StringArray::from(vec![value; batch.num_rows()]));
                cast(&text, field.data_type())
                    .map_err(Error::arrow(format!("reading partition value of `{}`", field.name())))
            }
        })
        .collect::<Result<_>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(Error::arrow("rebuilding rows with partition columns"))
}
