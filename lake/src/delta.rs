//! Delta tables that remember which Kafka offsets they hold.
//!
//! Every commit an [`OffsetTable`] makes carries, next to its data files, one `txn` action per
//! topic-partition: app id `tidelake-ingest:<topic>:<partition>`, version = the last offset the commit
//! covers. Before writing, the table is refreshed and records at or below the committed offset are
//! dropped; so a batch delivered again (a Lambda retry, a poller restart, a crash between writing files
//! and committing them) writes nothing twice. When two writers race on the same topic-partition, the
//! lake's commit policy ([`crate::commit`]) refuses the second commit; it refreshes, drops what the
//! winner committed, and retries.
//! Writers of different partitions do not conflict ([`CommitMode::Blind`]), unless the rows depend on
//! what the table holds ([`CommitMode::OnReadVersion`]): then every commit in between sends the
//! writer back to plan its rows again.

use std::collections::{BTreeMap, HashMap};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::{Action, StructField, StructType, Transaction};
use deltalake::operations::create::CreateBuilder;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use url::Url;

use crate::batch::TopicPartition;
use crate::commit::{is_race, Depends, Prepared};
use crate::error::{Error, Result};

/// How many times a commit that lost a race is planned and tried again.
const MAX_RACE_RETRIES: usize = 50;

/// How an append treats commits that land between its plan and its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// Commit on top of them unless they touched the same topic-partitions (appends that do not
    /// depend on the rest of the table).
    Blind,
    /// Plan again on top of them (appends whose rows depend on what the table holds, like
    /// deduplication).
    OnReadVersion,
}

/// What one attempt of [`OffsetTable::append_once`] commits.
#[derive(Debug, Default)]
pub struct Planned {
    /// The rows to write, if any.
    pub rows: Option<RecordBatch>,
    /// The commit info.
    pub info: serde_json::Map<String, serde_json::Value>,
    /// Offsets the commit also covers beyond the batch's own (the rows of earlier commits of another
    /// table that it takes along): recorded in its `txn` actions, raising the batch's where higher.
    pub also_covers: BTreeMap<TopicPartition, i64>,
}

/// The `txn` app id that records the offsets of `tp` in a table.
pub fn app_id(tp: &TopicPartition) -> String {
    format!("tidelake-ingest:{}:{}", tp.topic, tp.partition)
}

/// Opens the Delta table at `location`, creating it with `schema` if nothing is there yet.
///
/// An existing table must have the same columns (names and types) and partition columns, otherwise
/// [`Error::TableMismatch`] says which differ.
pub async fn open_or_create(
    name: &str,
    location: &Url,
    schema: &SchemaRef,
    partition_columns: &[String],
    storage_options: &HashMap<String, String>,
) -> Result<DeltaTable> {
    open_or_create_with(name, location, schema, partition_columns, storage_options, HashMap::new()).await
}

/// Like [`open_or_create`]; a table created here gets the table `properties` (custom keys are
/// kept as they are, readable from the table's metadata).
pub async fn open_or_create_with(
    name: &str,
    location: &Url,
    schema: &SchemaRef,
    partition_columns: &[String],
    storage_options: &HashMap<String, String>,
    properties: HashMap<String, String>,
) -> Result<DeltaTable> {
    let kernel_schema: StructType = schema
        .as_ref()
        .try_into_kernel()
        .map_err(|e| Error::Arrow { context: format!("mapping the schema of {name} to Delta"), source: e })?;
    let builder = DeltaTableBuilder::from_url(location.clone())
        .map_err(Error::delta(name))?
        .with_storage_options(storage_options.clone());
    let exists =
        builder.build().map_err(Error::delta(name))?.verify_deltatable_existence().await.map_err(Error::delta(name))?;
    let table = if exists {
        load(name, location, storage_options).await?
    } else {
        create(name, location, &kernel_schema, partition_columns, storage_options, properties).await?
    };
    let added = check_matches(name, location, &table, &kernel_schema, partition_columns)?;
    if added.is_empty() {
        return Ok(table);
    }
    add_columns(name, location, table, added, &kernel_schema, partition_columns, storage_options).await
}

/// Adds the nullable `columns` the config has and the table lacks, in one `metaData` commit: rows
/// written before it read them as null, and readers of an older version still see the old columns.
/// When another writer adds them first, its table is used.
async fn add_columns(
    name: &str,
    location: &Url,
    table: DeltaTable,
    columns: Vec<StructField>,
    expected: &StructType,
    partition_columns: &[String],
    storage_options: &HashMap<String, String>,
) -> Result<DeltaTable> {
    let names: Vec<&str> = columns.iter().map(|c| c.name().as_str()).collect();
    let from = table.version();
    match table.add_columns().with_fields(columns.clone()).await {
        Ok(table) => {
            tracing::info!(table = %name, columns = ?names, from_version = ?from, version = ?table.version(), "added the config's new nullable columns to the table");
            Ok(table)
        }
        // Another writer changed the table first: take what it committed, then check again.
        Err(e) if is_race(&e) => {
            let table = load(name, location, storage_options).await?;
            let left = check_matches(name, location, &table, expected, partition_columns)?;
            if left.is_empty() {
                return Ok(table);
            }
            Err(Error::delta(name)(e))
        }
        Err(e) => Err(Error::delta(name)(e)),
    }
}

/// Opens the Delta table at `location` as of `version` (the latest when `None`), or `None` when there
/// is no table there yet (nothing has been written to it).
pub async fn open_existing(
    name: &str,
    location: &Url,
    storage_options: &HashMap<String, String>,
    version: Option<u64>,
) -> Result<Option<DeltaTable>> {
    let builder = || {
        DeltaTableBuilder::from_url(location.clone())
            .map(|b| b.with_storage_options(storage_options.clone()))
            .map_err(Error::delta(name))
    };
    let exists = builder()?
        .build()
        .map_err(Error::delta(name))?
        .verify_deltatable_existence()
        .await
        .map_err(Error::delta(name))?;
    if !exists {
        return Ok(None);
    }
    let mut builder = builder()?;
    if let Some(version) = version {
        builder = builder.with_version(version);
    }
    match builder.load().await {
        Ok(table) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(Error::delta(name)(e)),
    }
}

async fn load(name: &str, location: &Url, options: &HashMap<String, String>) -> Result<DeltaTable> {
    DeltaTableBuilder::from_url(location.clone())
        .map_err(Error::delta(name))?
        .with_storage_options(options.clone())
        .load()
        .await
        .map_err(Error::delta(name))
}

async fn create(
    name: &str,
    location: &Url,
    schema: &StructType,
    partition_columns: &[String],
    options: &HashMap<String, String>,
    properties: HashMap<String, String>,
) -> Result<DeltaTable> {
    if location.scheme() == "file" {
        if let Ok(path) = location.to_file_path() {
            std::fs::create_dir_all(&path).map_err(|e| Error::Location {
                location: location.to_string(),
                reason: format!("cannot create the folder: {e}"),
            })?;
        }
    }
    let mut builder = CreateBuilder::new()
        .with_location(location.as_str())
        .with_table_name(name)
        .with_storage_options(options.clone())
        .with_columns(schema.fields().cloned())
        .with_save_mode(SaveMode::Ignore);
    if !properties.is_empty() {
        builder = builder
            .with_raise_if_key_not_exists(false)
            .with_configuration(properties.into_iter().map(|(k, v)| (k, Some(v))));
    }
    if !partition_columns.is_empty() {
        builder = builder.with_partition_columns(partition_columns.to_vec());
    }
    match builder.await {
        Ok(table) => Ok(table),
        // Another instance created it first: use theirs.
        Err(_) => load(name, location, options).await,
    }
}

/// The columns of `expected` the table lacks, all nullable: the table can take them. Any other
/// difference (a missing required column, a column of another type, other partitioning) is
/// [`Error::TableMismatch`] naming it.
fn check_matches(
    name: &str,
    location: &Url,
    table: &DeltaTable,
    expected: &StructType,
    partition_columns: &[String],
) -> Result<Vec<StructField>> {
    let snapshot = table.snapshot().map_err(Error::delta(name))?;
    let mismatch = |reason: String| Error::TableMismatch { table: name.into(), uri: location.to_string(), reason };
    let actual = snapshot.schema();
    let mut added = Vec::new();
    for field in expected.fields() {
        match actual.field(field.name()) {
            None if field.is_nullable() && !partition_columns.contains(field.name()) => added.push(field.clone()),
            None => {
                return Err(mismatch(format!(
                    "column `{}` is missing from the table, and only a nullable column can be added to a table \
                     that has rows without it",
                    field.name()
                )))
            }
            Some(found) if found.data_type() != field.data_type() => {
                return Err(mismatch(format!(
                    "column `{}` is {} in the table but {} in the config; a column's type is not changed",
                    field.name(),
                    found.data_type(),
                    field.data_type()
                )))
            }
            Some(_) => {}
        }
    }
    let actual_partitions = snapshot.metadata().partition_columns();
    if actual_partitions != partition_columns {
        return Err(mismatch(format!(
            "partitioned by {actual_partitions:?} but the config asks for {partition_columns:?}"
        )));
    }
    Ok(added)
}

/// `batch` with every column of `table` in the table's order. A column the table gained after the
/// writer's config was read (a newer config added it) is null in these rows; a batch with every
/// column already is returned as it is.
fn with_columns_of(name: &str, batch: RecordBatch, table: &SchemaRef) -> Result<RecordBatch> {
    if table.fields().iter().all(|f| batch.schema_ref().column_with_name(f.name()).is_some()) {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(table.fields().len());
    let mut columns = Vec::with_capacity(table.fields().len());
    for field in table.fields() {
        match batch.schema_ref().column_with_name(field.name()) {
            Some((i, own)) => {
                fields.push(own.clone());
                columns.push(batch.column(i).clone());
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(arrow::array::new_null_array(field.data_type(), batch.num_rows()));
            }
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), columns).map_err(|e| {
        Error::Arrow { context: format!("filling the columns of {name} this writer's config does not have"), source: e }
    })
}

/// The last offset of each of `partitions` that `table` (named `name` in errors) holds as of its
/// loaded version, from its `txn` actions (absent: none).
pub async fn committed_offsets<'a>(
    name: &str,
    table: &DeltaTable,
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) -> Result<HashMap<TopicPartition, i64>> {
    let partitions: Vec<&TopicPartition> = partitions.into_iter().collect();
    let app_ids: Vec<String> = partitions.iter().map(|tp| app_id(tp)).collect();
    let versions = crate::txn::versions(name, table, &app_ids).await?;
    Ok(partitions
        .into_iter()
        .zip(&app_ids)
        .filter_map(|(tp, app_id)| versions.get(app_id).copied().flatten().map(|v| (tp.clone(), v)))
        .collect())
}

/// What [`OffsetTable::append_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The table version committed, or `None` when every offset was already in the table.
    pub version: Option<u64>,
    /// Rows written by that commit.
    pub rows: usize,
    /// Commits lost to a concurrent writer of the same topic-partitions, then retried.
    pub races: usize,
}

/// A Delta table whose commits carry Kafka offsets, making every append idempotent.
#[derive(Debug)]
pub struct OffsetTable {
    name: String,
    table: DeltaTable,
    /// Columns written without a dictionary ([`OffsetTable::with_distinct_columns`]).
    distinct_columns: Vec<String>,
}

impl OffsetTable {
    /// Opens (or creates) the table; see [`open_or_create`].
    pub async fn open(
        name: &str,
        location: &Url,
        schema: &SchemaRef,
        partition_columns: &[String],
        storage_options: &HashMap<String, String>,
    ) -> Result<Self> {
        Self::open_with(name, location, schema, partition_columns, storage_options, HashMap::new()).await
    }

    /// Opens (or creates, with table `properties`) the table; see [`open_or_create_with`].
    pub async fn open_with(
        name: &str,
        location: &Url,
        schema: &SchemaRef,
        partition_columns: &[String],
        storage_options: &HashMap<String, String>,
        properties: HashMap<String, String>,
    ) -> Result<Self> {
        let table = open_or_create_with(name, location, schema, partition_columns, storage_options, properties).await?;
        Ok(OffsetTable { name: name.to_string(), table, distinct_columns: Vec::new() })
    }

    /// Names columns whose values are (nearly) all distinct, such as an event UUID: their files
    /// are written without a dictionary, as are binary columns (record payloads). A dictionary of
    /// distinct values is built, found too large and dropped for every page: CPU spent on nothing.
    pub fn with_distinct_columns(mut self, columns: impl IntoIterator<Item = String>) -> Self {
        self.distinct_columns = columns.into_iter().collect();
        self
    }

    /// The Delta table, as of the last refresh or commit.
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// Loads the commits made since the last refresh.
    pub async fn refresh(&mut self) -> Result<()> {
        self.table.update_incremental(None).await.map_err(Error::delta(&self.name))
    }

    /// The last committed offset of each of `partitions`, as of the last refresh (absent: none yet).
    pub async fn committed_offsets<'a>(
        &self,
        partitions: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> Result<HashMap<TopicPartition, i64>> {
        committed_offsets(&self.name, &self.table, partitions).await
    }

    /// Appends the rows of a batch that covers offsets up to `last_offsets`, exactly once.
    ///
    /// `plan` gets the table (refreshed) and the offsets it already holds per topic-partition, and
    /// returns the rows of the records above them (or none) with the commit info. The commit records
    /// `last_offsets` for every topic-partition that still had uncommitted offsets, even when no row
    /// is left (all of them were dead letters, say), so the table always knows how far the source
    /// has been handled. With [`CommitMode::OnReadVersion`], any commit that lands between the plan
    /// and the commit makes this one plan again, so what `plan` checked against the table still
    /// holds when the commit lands (serializable).
    pub async fn append_once<F>(
        &mut self,
        last_offsets: &BTreeMap<TopicPartition, i64>,
        mode: CommitMode,
        mut plan: F,
    ) -> Result<AppendOutcome>
    where
        F: AsyncFnMut(&DeltaTable, &HashMap<TopicPartition, i64>) -> Result<Planned>,
    {
        let mut races = 0;
        loop {
            let started = std::time::Instant::now();
            self.refresh().await?;
            let committed = self.committed_offsets(last_offsets.keys()).await?;
            let mut pending: BTreeMap<&TopicPartition, i64> = last_offsets
                .iter()
                .filter(|(tp, last)| committed.get(*tp).is_none_or(|done| done < *last))
                .map(|(tp, last)| (tp, *last))
                .collect();
            if pending.is_empty() {
                return Ok(AppendOutcome { version: None, rows: 0, races });
            }
            let read_ms = crate::logging::ms_since(started);
            let planned = plan(&self.table, &committed).await?;
            let plan_ms = crate::logging::ms_since(started) - read_ms;
            for (tp, last) in &planned.also_covers {
                let version = pending.entry(tp).or_insert(*last);
                *version = (*version).max(*last);
            }
            let pending: Vec<Transaction> =
                pending.into_iter().map(|(tp, last)| Transaction::new(app_id(tp), last)).collect();
            let rows = planned.rows.as_ref().map_or(0, RecordBatch::num_rows);
            let mut actions = Vec::new();
            if let Some(batch) = planned.rows.filter(|b| b.num_rows() > 0) {
                actions = self.write_files(batch).await?;
            }
            crate::fault::point("after-data-write");
            let write_ms = crate::logging::ms_since(started) - read_ms - plan_ms;

            match self.commit(actions, pending, planned.info, mode).await {
                Ok(version) => {
                    crate::fault::point("after-commit");
                    tracing::debug!(
                        table = %self.name,
                        version,
                        rows,
                        read_ms,
                        plan_ms,
                        write_ms,
                        commit_ms = crate::logging::ms_since(started) - read_ms - plan_ms - write_ms,
                        "committed"
                    );
                    return Ok(AppendOutcome { version: Some(version), rows, races });
                }
                Err(Error::Conflict { reason, version, .. }) if races < MAX_RACE_RETRIES => {
                    races += 1;
                    tracing::debug!(table = %self.name, races, version, %reason, "another commit landed first; planning again");
                    crate::commit::backoff(races).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn write_files(&self, batch: RecordBatch) -> Result<Vec<Action>> {
        let table_schema = self.table.snapshot().map_err(Error::delta(&self.name))?.snapshot().arrow_schema();
        let batch = with_columns_of(&self.name, batch, &table_schema)?;
        let mut writer = RecordBatchWriter::for_table(&self.table)
            .map_err(Error::delta(&self.name))?
            .with_writer_properties(self.writer_properties(&batch.schema()));
        // Encoding the files is CPU work: on a task of its own it runs on another core while the
        // batch's other work (decoding, another table's files) goes on here.
        let written = tokio::spawn(async move {
            writer.write(batch).await?;
            writer.flush().await
        })
        .await;
        let adds = match written {
            Ok(adds) => adds.map_err(Error::delta(&self.name))?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(Error::delta(&self.name)(DeltaTableError::Generic(format!("writing files: {e}")))),
        };
        Ok(adds.into_iter().map(Action::Add).collect())
    }

    /// Snappy, as the Delta writer's own default, with no dictionary for the distinct and binary
    /// columns.
    fn writer_properties(&self, schema: &arrow::datatypes::Schema) -> WriterProperties {
        let plain = schema.fields().iter().filter(|f| {
            matches!(f.data_type(), DataType::Binary | DataType::LargeBinary)
                || self.distinct_columns.contains(f.name())
        });
        plain
            .fold(WriterProperties::builder().set_compression(Compression::SNAPPY), |builder, field| {
                builder.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false)
            })
            .set_created_by(format!("tidelake {}", env!("CARGO_PKG_VERSION")))
            .build()
    }

    async fn commit(
        &mut self,
        actions: Vec<Action>,
        txns: Vec<Transaction>,
        info: serde_json::Map<String, serde_json::Value>,
        mode: CommitMode,
    ) -> Result<u64> {
        let snapshot = self.table.snapshot().map_err(Error::delta(&self.name))?;
        let partition_by = snapshot.metadata().partition_columns().to_vec();
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: (!partition_by.is_empty()).then_some(partition_by),
            predicate: None,
        };
        let depends = match mode {
            CommitMode::Blind => Depends::of(&actions, &txns),
            CommitMode::OnReadVersion => Depends::everything(),
        };
        let prepared = Prepared { actions, operation, info, txns };
        crate::commit::commit(&mut self.table, &self.name, prepared, &depends).await
    }
}

/// Rows and data files of a table as of its loaded version, from the Delta log's file statistics
/// (no data file is read). Files written without a row count are counted as zero rows.
pub fn row_and_file_count(table: &DeltaTable) -> Result<(u64, usize)> {
    let snapshot = table.snapshot().map_err(Error::delta(table.table_url().as_str()))?;
    let mut rows = 0u64;
    let mut files = 0;
    for file in snapshot.log_data().iter() {
        rows += file.num_records().unwrap_or(0) as u64;
        files += 1;
    }
    Ok((rows, files))
}
