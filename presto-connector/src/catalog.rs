//! The `tidelake` catalog and its three schemas.
//!
//! - `lake`: every Delta table of the config (data, dead letters, archive, rollups), at its latest
//!   version or, with a version suffix in the name (`"ad_events@v3"`, `"ad_events@2026-11-23T12:00:00Z"`,
//!   which `FOR VERSION AS OF` / `FOR TIMESTAMP AS OF` turn into), at an older one.
//! - `kafka`: per topic, the records above the offsets its data table holds, decoded with the
//!   table's schema, with their `_partition`, `_offset` and `_timestamp`; records that are not rows
//!   are skipped and counted.
//! - `live`: per data table, the lake snapshot and the Kafka tail above its offsets, the tail's
//!   copies of an event UUID dropped the way ingest would drop them.
//!
//! Each name is resolved when a query is planned, so every query reads the lake's latest commit and
//! the Kafka tail as it is then. The latest snapshot of each table is kept between queries and
//! brought up to date with the commits since (one listing of the log when nothing changed), so a
//! query does not read the whole log and checkpoint again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::datatypes::Schema;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::TableType;
use deltalake::DeltaTable;
use tidelake_lake::dedup::UuidIndex;
use tidelake_lake::rollup::{Grain, RollupSpec};
use tidelake_lake::{PipelineConfig, TableSpec, TopicPartition};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::kafka_table::KafkaTable;
use crate::lake_table::{DayColumns, LakeTable};
use crate::live::LiveTable;
use crate::tail;
use crate::version::TableVersion;

/// What the three schemas share: the config, each table's UUID index (kept warm between queries),
/// and counters.
#[derive(Debug)]
pub struct Shared {
    /// The pipeline config the catalog serves.
    pub config: PipelineConfig,
    indexes: HashMap<String, Mutex<UuidIndex>>,
    /// The latest snapshot of each table read so far: the next query reads only the commits since.
    latest: std::sync::Mutex<HashMap<String, DeltaTable>>,
    readers: Arc<tail::Readers>,
    poison: AtomicU64,
    max_tail_records: AtomicU64,
    tail_offsets_read: AtomicU64,
    allow_lost_tail: std::sync::atomic::AtomicBool,
    /// Commits the status page has read, by table id and version.
    commits: std::sync::Mutex<HashMap<(String, u64), crate::status::CommitSummary>>,
}

/// Records of a Kafka tail a query reads at most, unless the connector is told otherwise.
pub const MAX_TAIL_RECORDS: u64 = 500_000;

impl Shared {
    /// The state for `config`'s tables.
    pub fn new(config: PipelineConfig) -> Self {
        let indexes = config.tables.iter().map(|t| (t.name.clone(), Mutex::new(UuidIndex::default()))).collect();
        Shared {
            config,
            indexes,
            latest: Default::default(),
            readers: Default::default(),
            poison: AtomicU64::new(0),
            max_tail_records: AtomicU64::new(MAX_TAIL_RECORDS),
            tail_offsets_read: AtomicU64::new(0),
            allow_lost_tail: Default::default(),
            commits: Default::default(),
        }
    }

    /// Records of Kafka tails skipped since start because they are not rows of their table.
    pub fn poison_skipped(&self) -> u64 {
        self.poison.load(Ordering::Relaxed)
    }

    /// Reads no Kafka tail of more than `records` records: a query that would is refused.
    pub fn set_max_tail_records(&self, records: u64) {
        self.max_tail_records.store(records, Ordering::Relaxed);
    }

    /// Answers from a Kafka tail whose oldest offsets retention deleted before ingest read them,
    /// without them (with a warning), instead of refusing the query.
    pub fn set_allow_lost_tail(&self, allow: bool) {
        self.allow_lost_tail.store(allow, Ordering::Relaxed);
    }

    pub(crate) fn allow_lost_tail(&self) -> bool {
        self.allow_lost_tail.load(Ordering::Relaxed)
    }

    /// The most records of a Kafka tail a query reads.
    pub(crate) fn max_tail_records(&self) -> u64 {
        self.max_tail_records.load(Ordering::Relaxed)
    }

    /// Offsets of Kafka tails read since start (records and transaction markers).
    pub fn tail_offsets_read(&self) -> u64 {
        self.tail_offsets_read.load(Ordering::Relaxed)
    }

    pub(crate) fn count_poison(&self, records: usize) {
        self.poison.fetch_add(records as u64, Ordering::Relaxed);
    }

    async fn tail(&self, spec: &TableSpec, lake: Option<&DeltaTable>) -> Result<tail::Tail> {
        let tail = tail::read(&self.config, spec, lake, &self.readers, self.max_tail_records(), self.allow_lost_tail())
            .await?;
        self.count_poison(tail.poison);
        self.tail_offsets_read.fetch_add(tail::count(&tail.ranges), Ordering::Relaxed);
        Ok(tail)
    }

    /// Offsets `[start, end)` of one partition of `topic`, and whether the partition ended first.
    pub(crate) async fn read_chunk(
        &self,
        topic: &str,
        partition: i32,
        (start, end): (i64, i64),
    ) -> Result<(Vec<tidelake_lake::KafkaRecord>, bool)> {
        let (config, topic, pool) = (self.config.clone(), topic.to_string(), self.readers.clone());
        let range = std::collections::BTreeMap::from([(partition, (start, end))]);
        let (records, ended) = tail::blocking(move || {
            let reader = pool.take(&config)?;
            let read = reader.read_to_end(&topic, &range);
            pool.give(reader);
            Ok(read?)
        })
        .await?;
        self.tail_offsets_read.fetch_add((end - start).max(0) as u64, Ordering::Relaxed);
        Ok((records, ended.contains(&partition)))
    }

    /// Per partition of `topic`, the first offset whose record is at or after `ms`.
    pub(crate) async fn offsets_for_time(
        &self,
        topic: &str,
        partitions: Vec<i32>,
        ms: i64,
    ) -> Result<std::collections::BTreeMap<i32, Option<i64>>> {
        let (config, topic, pool) = (self.config.clone(), topic.to_string(), self.readers.clone());
        tail::blocking(move || {
            let reader = pool.take(&config)?;
            let found = reader.offsets_for_time(&topic, &partitions, ms);
            pool.give(reader);
            Ok(found?)
        })
        .await
    }

    /// Where `spec`'s Kafka tail lies above `lake`, with the connector's readers.
    pub(crate) async fn tail_bounds(&self, spec: &TableSpec, lake: Option<&DeltaTable>) -> Result<tail::Bounds> {
        tail::bounds(&self.config, spec, lake, &self.readers).await
    }

    /// The records of `topic` in `ranges` (partition -> `[start, end)`), with the connector's readers.
    pub(crate) async fn read_offsets(
        &self,
        topic: &str,
        ranges: std::collections::BTreeMap<i32, (i64, i64)>,
    ) -> Result<Vec<tidelake_lake::KafkaRecord>> {
        tail::read_ranges(&self.config, topic, ranges, &self.readers).await
    }

    /// Commit `version` of `table` as the status page shows it; commits do not change, so each is
    /// read once (per table id: a table created again at the same place starts over).
    pub(crate) async fn commit_summary(
        &self,
        name: &str,
        table: &DeltaTable,
        version: u64,
    ) -> Result<Option<crate::status::CommitSummary>> {
        let id = table.snapshot().map_err(Error::delta(name))?.metadata().id().to_string();
        let key = (id, version);
        if let Some(known) = self.commits.lock().expect("commit cache lock").get(&key) {
            return Ok(Some(known.clone()));
        }
        let summary = crate::status::read_summary(name, table, version).await?;
        if let Some(summary) = &summary {
            let mut commits = self.commits.lock().expect("commit cache lock");
            if commits.len() > 4_096 {
                commits.clear();
            }
            commits.insert(key, summary.clone());
        }
        Ok(summary)
    }

    fn spec(&self, name: &str) -> Option<&TableSpec> {
        self.config.tables.iter().find(|t| t.name == name)
    }

    /// Every Delta table the config declares: name and location.
    pub(crate) fn lake_tables(&self) -> Vec<(String, &url::Url)> {
        self.config
            .tables
            .iter()
            .flat_map(|spec| {
                let side = spec.delta_tables().into_iter();
                let rollups = spec.rollup.iter().flat_map(|r| r.tables().map(|(_, name, at)| (name, at)));
                side.chain(rollups).collect::<Vec<_>>()
            })
            .collect()
    }

    /// The columns the config gives lake table `name` (a data table, its dead letters, archive or a
    /// rollup table): what it reads as before its first commit.
    pub(crate) fn declared_schema(&self, name: &str) -> Option<arrow::datatypes::SchemaRef> {
        self.config.tables.iter().find_map(|spec| {
            let [(data, _), (dead, _), (archive, _)] = spec.delta_tables();
            if name == data {
                return Some(spec.table_schema());
            }
            if name == dead {
                return Some(tidelake_lake::sinks::dead_letter_schema());
            }
            if name == archive {
                return Some(tidelake_lake::sinks::archive_schema());
            }
            let rollup = spec.rollup.as_ref()?;
            rollup.tables().find(|(_, table, _)| table == name).map(|(grain, _, _)| rollup.schema(grain))
        })
    }

    /// The data table and rollup whose minute table is `name`.
    fn minute_table(&self, name: &str) -> Option<(&TableSpec, &RollupSpec)> {
        self.config.tables.iter().find_map(|spec| match minute_name(spec) {
            Some((rollup, minute)) if minute == name => Some((spec, rollup)),
            _ => None,
        })
    }

    /// `live.<t>_minute`: the minute table's rows and the partial minute rows of the records above
    /// the offsets it holds.
    ///
    /// Those records are the data table's rows the minute table does not cover yet (ingest writes
    /// the minute commit right after the data commit, or catches up later after a crash) and the
    /// Kafka tail above the data table. So the tail is read above the minute table's offsets and
    /// deduplicated against the data snapshot that holds exactly those offsets, the way ingest
    /// deduplicated them, then aggregated with ingest's own minute aggregation.
    async fn live_minute(&self, spec: &TableSpec, rollup: &RollupSpec) -> Result<LiveTable> {
        let name = rollup.table_name(Grain::Minute);
        let location = rollup.location(Grain::Minute).expect("a minute table has a location");
        let mut index = self.indexes[&spec.name].lock().await;
        let minute = self.open(&name, location, &TableVersion::Latest).await?;
        let tail = self.tail(spec, minute.as_ref()).await?;
        let data = self.open(&spec.name, &spec.location, &TableVersion::Latest).await?;
        let latest = data.as_ref().and_then(|d| d.version());
        let covered = match data {
            Some(data) => Some(self.covered_by(spec, data, minute.as_ref(), &tail).await?),
            None => None,
        };
        let mut older_index = UuidIndex::default();
        let index = match covered.as_ref().and_then(|c| c.version()) == latest {
            true => &mut *index,
            false => &mut older_index,
        };
        let covered = match covered {
            Some(table) => Some(LakeTable::new(table).await?),
            None => None,
        };
        let new_rows = LiveTable::new(spec, covered, &tail, index).await?;
        let decoded = crate::live::conform(new_rows.new_rows(), &tail.rows.schema())?;
        let partials = tidelake_lake::aggregate::minute_partials(rollup, &spec.event_time, &decoded)?;
        let minute = match minute {
            Some(table) => Some(LakeTable::new(table).await?),
            None => None,
        };
        LiveTable::of_rollup(minute, partials)
    }

    /// The snapshot of the data table (`data` at its latest version, or an earlier one) that holds
    /// exactly the offsets `minute` holds.
    async fn covered_by(
        &self,
        spec: &TableSpec,
        mut data: DeltaTable,
        minute: Option<&DeltaTable>,
        tail: &tail::Tail,
    ) -> Result<DeltaTable> {
        let partitions: Vec<TopicPartition> =
            tail.ranges.keys().map(|p| TopicPartition::new(&spec.topic, *p)).collect();
        let wanted = match minute {
            Some(minute) => tidelake_lake::delta::committed_offsets(&spec.name, minute, &partitions).await?,
            None => HashMap::new(),
        };
        for _ in 0..COVERED_LOOKBACK {
            if tidelake_lake::delta::committed_offsets(&spec.name, &data, &partitions).await? == wanted {
                return Ok(data);
            }
            match data.version() {
                Some(version) if version > 0 => {
                    data.load_version(version - 1).await.map_err(Error::delta(&spec.name))?
                }
                _ => break,
            }
        }
        Err(Error::Query(DataFusionError::Plan(format!(
            "live: no version of `{}` among its last {COVERED_LOOKBACK} holds the offsets its minute table holds \
             ({wanted:?}); the next ingest batch of those partitions catches the minute table up",
            spec.name
        ))))
    }

    /// The day columns of lake table `name` (its `event_date` partition and the timestamp it is
    /// the day of), when it is partitioned by day.
    fn day_columns(&self, name: &str, schema: &Schema) -> Option<DayColumns> {
        let date = tidelake_lake::rollup::DATE_COLUMN;
        let time = self.config.tables.iter().find_map(|spec| {
            if spec.name == name && spec.partition_by.contains(&tidelake_lake::schema::PartitionGrain::Date) {
                return Some(spec.event_time.clone());
            }
            let rollup = spec.rollup.as_ref()?;
            rollup.tables().find(|(_, table, _)| table == name).map(|(grain, _, _)| grain.name().to_string())
        })?;
        let field = schema.field_with_name(&time).ok()?;
        schema.field_with_name(date).ok()?;
        Some(DayColumns { date: date.to_string(), time: (!field.is_nullable()).then_some(time) })
    }

    pub(crate) async fn open(
        &self,
        name: &str,
        location: &url::Url,
        version: &TableVersion,
    ) -> Result<Option<DeltaTable>> {
        if *version == TableVersion::Latest {
            let known = self.latest.lock().expect("snapshot cache lock").get(name).cloned();
            if let Some(mut table) = known {
                table.update_incremental(None).await.map_err(Error::delta(name))?;
                let mut latest = self.latest.lock().expect("snapshot cache lock");
                if latest.get(name).is_none_or(|t| t.version() < table.version()) {
                    latest.insert(name.to_string(), table.clone());
                }
                return Ok(Some(table));
            }
        }
        let options = &self.config.storage_options;
        let number = match version {
            TableVersion::Version(v) => Some(*v),
            TableVersion::Latest | TableVersion::Timestamp(_) => None,
        };
        let opened = tidelake_lake::delta::open_existing(name, location, options, number).await;
        let Some(mut table) = (match (opened, number) {
            (Err(e), Some(v)) => return Err(self.unreadable_version(name, location, format!("version {v}"), e).await),
            (opened, _) => opened?,
        }) else {
            return Ok(None);
        };
        if let TableVersion::Timestamp(at) = version {
            if let Err(e) = table.load_with_datetime(*at).await {
                let e = tidelake_lake::Error::Delta { table: name.to_string(), source: Box::new(e) };
                return Err(self.unreadable_version(name, location, format!("the version current at {at}"), e).await);
            }
        }
        if *version == TableVersion::Latest {
            self.latest.lock().expect("snapshot cache lock").insert(name.to_string(), table.clone());
        }
        Ok(Some(table))
    }

    /// The error of a version of `name` that cannot be loaded: the query's fault, with the versions
    /// the table has, when the latest one can be read; the storage's fault otherwise.
    async fn unreadable_version(
        &self,
        name: &str,
        location: &url::Url,
        asked: String,
        cause: tidelake_lake::Error,
    ) -> Error {
        match Box::pin(self.open(name, location, &TableVersion::Latest)).await {
            Ok(Some(latest)) => Error::Version {
                table: name.to_string(),
                reason: format!(
                    "{asked} cannot be read: the table's log has versions up to {} ({cause})",
                    latest.version().unwrap_or_default()
                ),
            },
            Ok(None) => {
                Error::Version { table: name.to_string(), reason: format!("{asked}: the table has no commit yet") }
            }
            Err(_) => Error::Lake(cause),
        }
    }
}

/// The `lake` schema: Delta tables, with time travel.
#[derive(Debug)]
pub struct LakeSchema(pub Arc<Shared>);

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        self.0.lake_tables().into_iter().map(|(name, _)| name).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let (base, version) = TableVersion::split(name)?;
        let Some((_, location)) = self.0.lake_tables().into_iter().find(|(n, _)| *n == base) else {
            return Ok(None);
        };
        let Some(table) = self.0.open(base, location, &version).await? else {
            // Declared but not written yet: its columns from the config, no rows. A version of it
            // cannot be read.
            return match (version, self.0.declared_schema(base)) {
                (TableVersion::Latest, Some(schema)) => {
                    Ok(Some(Arc::new(datafusion::datasource::empty::EmptyTable::new(schema))))
                }
                _ => Err(DataFusionError::Plan(format!(
                    "lake.{base}: no Delta table at {location} yet (nothing has been written to it)"
                ))),
            };
        };
        let mut table = LakeTable::new(table).await?;
        if version == TableVersion::Latest {
            let days = self.0.day_columns(base, &table.schema());
            table = table.latest(days);
        }
        Ok(Some(Arc::new(table)))
    }

    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        Ok(self.table_exist(name).then_some(TableType::Base))
    }

    fn table_exist(&self, name: &str) -> bool {
        TableVersion::split(name).is_ok_and(|(base, _)| self.0.lake_tables().iter().any(|(n, _)| n == base))
    }
}

/// The `kafka` schema: per topic, the records above the lake's offsets.
#[derive(Debug)]
pub struct KafkaSchema(pub Arc<Shared>);

#[async_trait]
impl SchemaProvider for KafkaSchema {
    fn table_names(&self) -> Vec<String> {
        self.0.config.tables.iter().map(|t| t.topic.clone()).collect()
    }

    /// Plans a read of the tail: where it lies, no record yet (see [`KafkaTable`]).
    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(spec) = self.0.config.tables.iter().find(|t| t.topic == name) else {
            return Ok(None);
        };
        let lake = self.0.open(&spec.name, &spec.location, &TableVersion::Latest).await?;
        let bounds = tail::bounds(&self.0.config, spec, lake.as_ref(), &self.0.readers).await?;
        bounds.check_lost(spec, self.0.allow_lost_tail())?;
        Ok(Some(Arc::new(KafkaTable::new(self.0.clone(), spec.clone(), bounds)?)))
    }

    /// Listing tables (`information_schema`, `SHOW TABLES`) reads no Kafka tail.
    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        Ok(self.table_exist(name).then_some(TableType::Base))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.0.config.tables.iter().any(|t| t.topic == name)
    }
}

/// The `live` schema: per data table, the lake and its Kafka tail, no gap and no double count.
#[derive(Debug)]
pub struct LiveSchema(pub Arc<Shared>);

#[async_trait]
impl SchemaProvider for LiveSchema {
    fn table_names(&self) -> Vec<String> {
        let minutes = self.0.config.tables.iter().filter_map(|t| minute_name(t).map(|(_, name)| name));
        self.0.config.tables.iter().map(|t| t.name.clone()).chain(minutes).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(spec) = self.0.spec(name) else {
            return match self.0.minute_table(name) {
                Some((spec, rollup)) => Ok(Some(Arc::new(self.0.live_minute(spec, rollup).await?))),
                None => Ok(None),
            };
        };
        // The snapshot, its tail and the index's check against it belong together: one query at a
        // time per table moves the index, and only forward.
        let mut index = self.0.indexes[name].lock().await;
        let lake = self.0.open(&spec.name, &spec.location, &TableVersion::Latest).await?;
        let tail = self.0.tail(spec, lake.as_ref()).await?;
        let lake = match lake {
            Some(table) => Some(LakeTable::new(table).await?),
            None => None,
        };
        let live = LiveTable::new(spec, lake, &tail, &mut index).await?;
        Ok(Some(Arc::new(live)))
    }

    /// Listing tables reads neither the lake nor a Kafka tail.
    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        Ok(self.table_exist(name).then_some(TableType::View))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.0.spec(name).is_some() || self.0.minute_table(name).is_some()
    }
}

/// The rollup of `spec` and the name of its minute table, when it keeps minutes.
fn minute_name(spec: &TableSpec) -> Option<(&RollupSpec, String)> {
    let rollup = spec.rollup.as_ref()?;
    rollup.location(Grain::Minute)?;
    Some((rollup, rollup.table_name(Grain::Minute)))
}

/// Versions of the data table looked back through for the one a minute table covers.
const COVERED_LOOKBACK: usize = 100;
