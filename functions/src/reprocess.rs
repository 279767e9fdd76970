//! Reprocess: history replayed from the raw-batch archive through the same ingest handler (same
//! decoding, dedup and dead letters), into a shadow table next to the live one.
//!
//! The archive's records of the chosen range are read, put back in Kafka order (topic, partition,
//! offset) and fed to an [`Ingestor`] over the shadow tables in batches. While the topic still holds
//! the range, [`Source::Kafka`] reads it from Kafka instead (by Kafka's time index). The shadow tables record
//! Kafka offsets like any ingest table, so an interrupted run started again skips what it committed
//! and ends with the same tables; a finished run started again writes nothing.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use chrono::NaiveDate;
use deltalake::DeltaTable;
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use serde::Serialize;
use tidelake_lake::decode::decode_records;
use tidelake_lake::files::DataFile;
use tidelake_lake::rollup::{Grain, MICROS_PER_DAY};
use tidelake_lake::schema::PartitionGrain;
use tidelake_lake::sinks::records_from_archive;
use tidelake_lake::{KafkaBatch, KafkaRecord, PipelineConfig, TableSpec};
use url::Url;

use crate::error::{Error, Result};
use crate::ingest::{BatchReport, Ingestor};

/// What a reprocess run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReprocessMetrics {
    /// Archived records in the range.
    pub records: usize,
    /// Batches handed to the handler.
    pub batches: usize,
    /// Rows written to the shadow table.
    pub rows_written: usize,
    /// Records written to the shadow dead letters.
    pub dead_letters: usize,
    /// Records dropped as copies of an event UUID.
    pub duplicates: usize,
    /// The shadow data table.
    pub shadow: String,
    /// With `--into replace`: the swap of each live table (data, then the minute rollup).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<crate::replace::Swapped>,
    /// Wall time.
    pub seconds: f64,
}

/// Where the records of the range come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The table's raw-batch archive (any age).
    #[default]
    Archive,
    /// The topic itself, while it still holds the range (read_committed, by Kafka's time index).
    Kafka,
}

/// A callback told after each batch: the batch's report and the records handled so far.
pub type Progress = Box<dyn FnMut(&BatchReport, usize)>;

/// The reprocess job for one table: `Reprocess::new(config, "ad_events")?.with_range(..).await`.
pub struct Reprocess {
    config: PipelineConfig,
    spec: TableSpec,
    shadow_root: Url,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    batch_size: usize,
    max_rate: Option<f64>,
    source: Source,
    replace: Option<(NaiveDate, NaiveDate)>,
    progress: Option<Progress>,
}

impl std::fmt::Debug for Reprocess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reprocess").field("table", &self.spec.name).field("shadow_root", &self.shadow_root).finish()
    }
}

impl Reprocess {
    /// Reprocesses table `table` of `config` into shadow tables under `_reprocess/` next to it.
    pub fn new(config: PipelineConfig, table: &str) -> Result<Self> {
        let spec = config.tables.iter().find(|t| t.name == table).cloned().ok_or_else(|| Error::UnknownTable {
            table: table.to_string(),
            known: config.tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>().join(", "),
        })?;
        let shadow_root = spec.location.join("_reprocess/").expect("a relative folder joins any URL");
        Ok(Reprocess {
            config,
            spec,
            shadow_root,
            from_ms: None,
            to_ms: None,
            batch_size: 10_000,
            max_rate: None,
            source: Source::Archive,
            replace: None,
            progress: None,
        })
    }

    /// Replaces the event days `from..=to` of the live tables with the reprocessed rows: the archived
    /// records whose events fall on those days (archived on any day from the one before `from`)
    /// go through the handler into a shadow of their own (`_reprocess/replace-<from>-<to>-<config>/`,
    /// so a run started again resumes it), then each live table's range is swapped for the
    /// shadow's in one commit ([`crate::replace`]): the data table, then the rollup's minute table.
    /// The hour and day rollups of the range are recomputed by the next compaction.
    pub fn replacing(mut self, from: NaiveDate, to: NaiveDate) -> Result<Self> {
        let reason = if !self.spec.partition_by.contains(&PartitionGrain::Date) {
            Some("a replace swaps whole `event_date` partitions; the table needs partition_by = [\"date\"]".to_string())
        } else if from > to {
            Some(format!("the range {from}..={to} is empty"))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::Replace { table: self.spec.name.clone(), reason });
        }
        let rules = format!(
            "{:?}",
            (
                &self.spec.columns,
                &self.spec.event_uuid,
                &self.spec.event_time,
                &self.spec.dedup_window,
                &self.spec.rollup
            )
        );
        let folder = format!("_reprocess/replace-{from}-{to}-{:016x}/", crate::replace::fnv1a(&rules));
        self.shadow_root = self.spec.location.join(&folder).expect("a relative folder joins any URL");
        self.replace = Some((from, to));
        Ok(self)
    }

    /// Puts the shadow tables under `root` (data at `<root>/<table>`, dead letters at
    /// `<root>/_dead_letters/<table>`).
    pub fn with_shadow_root(mut self, root: Url) -> Self {
        self.shadow_root = root;
        self
    }

    /// Only records with a Kafka timestamp in `from_ms..=to_ms` (milliseconds; open ends allowed).
    pub fn with_range(mut self, from_ms: Option<i64>, to_ms: Option<i64>) -> Self {
        self.from_ms = from_ms;
        self.to_ms = to_ms;
        self
    }

    /// Records per batch handed to the handler.
    pub fn with_batch_size(mut self, records: usize) -> Self {
        self.batch_size = records.max(1);
        self
    }

    /// At most this many records a second.
    pub fn with_max_rate(mut self, records_per_second: Option<f64>) -> Self {
        self.max_rate = records_per_second.filter(|r| *r > 0.0);
        self
    }

    /// Reads the range from `source` (the archive by default).
    pub fn with_source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// Calls `progress` after each batch.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The shadow tables' spec: the live table's columns and topic, at the shadow locations.
    fn shadow_spec(&self) -> Result<TableSpec> {
        let root = match self.shadow_root.path().ends_with('/') {
            true => self.shadow_root.clone(),
            false => Url::parse(&format!("{}/", self.shadow_root)).expect("a URL with a slash added"),
        };
        let at = |path: &str| {
            root.join(path).map_err(|e| {
                Error::Lake(tidelake_lake::Error::Location {
                    location: root.to_string(),
                    reason: format!("cannot place `{path}` under it: {e}"),
                })
            })
        };
        let mut spec = self.spec.clone();
        spec.location = at(&self.spec.name)?;
        spec.dead_letters = at(&format!("_dead_letters/{}", self.spec.name))?;
        if let Some(rollup) = spec.rollup.as_mut() {
            let names: Vec<String> = rollup.grains.iter().map(|g| rollup.table_name(*g)).collect();
            rollup.locations = names.iter().map(|name| at(name)).collect::<Result<_>>()?;
        }
        Ok(spec)
    }

    /// The archived records of the range, in Kafka order.
    async fn archived_records(&self) -> Result<Vec<KafkaRecord>> {
        let [_, _, (name, location)] = self.spec.delta_tables();
        let archive = tidelake_lake::delta::open_existing(&name, location, &self.config.storage_options, None)
            .await?
            .ok_or_else(|| {
            Error::Lake(tidelake_lake::Error::Location {
                location: location.to_string(),
                reason: format!("no archive `{name}` here: nothing has been ingested into `{}` yet", self.spec.name),
            })
        })?;
        let mut records = Vec::new();
        let day = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.date_naive());
        let days = match self.replace {
            Some((from, _)) => (from.pred_opt(), None),
            None => (self.from_ms.and_then(day), self.to_ms.and_then(day)),
        };
        let store = archive.object_store();
        for (path, size) in self.archive_files(&archive, days)? {
            // A storage error stays one (to retry); a file that does not read is the archive's.
            let unreadable = |e: tidelake_lake::Error| match e {
                tidelake_lake::Error::ObjectStore(e) => Error::Lake(tidelake_lake::Error::ObjectStore(e)),
                tidelake_lake::Error::Delta { source, .. } => archive_file_error(&path, source.to_string()),
                other => archive_file_error(&path, other.to_string()),
            };
            let file = DataFile::new(&store, &name, &path).with_size(size);
            let mut rows = file.stream(None).await.map_err(unreadable)?;
            while let Some(batch) = rows.next().await {
                let batch = batch.map_err(unreadable)?;
                records.extend(records_from_archive(&batch)?.into_iter().filter(|r| self.in_range(r)));
            }
        }
        records.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
        records.dedup_by(|a, b| a.topic == b.topic && a.partition == b.partition && a.offset == b.offset);
        Ok(records)
    }

    /// The topic's records of the range, read from Kafka.
    #[cfg(feature = "kafka-client")]
    async fn kafka_records(&self) -> Result<Vec<KafkaRecord>> {
        let (config, topic, from, to) = (self.config.clone(), self.spec.topic.clone(), self.from_ms, self.to_ms);
        let records = tokio::task::spawn_blocking(move || crate::poller::read_range(&config, &topic, from, to))
            .await
            .map_err(|e| Error::Event(format!("the Kafka reader stopped: {e}")))??;
        Ok(records.into_iter().filter(|r| self.in_range(r)).collect())
    }

    /// Without the Kafka client there is no topic to read: the archive serves instead.
    #[cfg(not(feature = "kafka-client"))]
    async fn kafka_records(&self) -> Result<Vec<KafkaRecord>> {
        Err(Error::NotBuilt {
            feature: "kafka-client",
            what: "reprocessing from Kafka",
            instead: "reprocess from the archive",
        })
    }

    /// The archive's files whose `archive_date` is within `first..=last`.
    fn archive_files(
        &self,
        archive: &DeltaTable,
        (first, last): (Option<NaiveDate>, Option<NaiveDate>),
    ) -> Result<Vec<(object_store::path::Path, Option<u64>)>> {
        let snapshot = archive.snapshot().map_err(|e| lake_delta(&self.spec.name, e))?;
        Ok(snapshot
            .log_data()
            .iter()
            .filter(|f| {
                let date = f
                    .partition_values_map()
                    .get("archive_date")
                    .cloned()
                    .flatten()
                    .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
                date.is_none_or(|d| first.is_none_or(|f| d >= f) && last.is_none_or(|l| d <= l))
            })
            .map(|f| (f.object_store_path(), u64::try_from(f.size()).ok()))
            .collect())
    }

    /// The records whose event falls on a day of `from..=to`, as the table's decoding reads them;
    /// records that do not decode have no event day and are left out (they are dead letters of
    /// the ingest that first read them).
    async fn of_event_days(
        &self,
        records: Vec<KafkaRecord>,
        (from, to): (NaiveDate, NaiveDate),
    ) -> Result<Vec<KafkaRecord>> {
        let (first, last) = (day_number(from), day_number(to));
        let mut keep = vec![false; records.len()];
        for (chunk, start) in records.chunks(50_000).zip((0..).step_by(50_000)) {
            let refs: Vec<&KafkaRecord> = chunk.iter().collect();
            let decoded = decode_records(&self.spec, &refs).await?;
            let times = decoded.rows.column(self.spec.event_time_index()).as_primitive::<TimestampMicrosecondType>();
            for (row, source) in decoded.row_sources.iter().enumerate() {
                let day = times.value(row).div_euclid(MICROS_PER_DAY);
                keep[start + source] = day >= first && day <= last;
            }
        }
        Ok(records.into_iter().zip(keep).filter_map(|(r, k)| k.then_some(r)).collect())
    }

    fn in_range(&self, record: &KafkaRecord) -> bool {
        if self.from_ms.is_none() && self.to_ms.is_none() {
            return true;
        }
        record.timestamp_ms.is_some_and(|t| self.from_ms.is_none_or(|f| t >= f) && self.to_ms.is_none_or(|l| t <= l))
    }

    async fn execute(mut self) -> Result<ReprocessMetrics> {
        let started = Instant::now();
        let shadow = self.shadow_spec()?;
        let records = match (self.source, self.replace) {
            (Source::Archive, None) => self.archived_records().await?,
            (Source::Kafka, None) => self.kafka_records().await?,
            (Source::Archive, Some(days)) => self.of_event_days(self.archived_records().await?, days).await?,
            (Source::Kafka, Some(_)) => {
                return Err(Error::Replace {
                    table: self.spec.name.clone(),
                    reason: "a replace reads the archive, which holds every record of a day (--source archive)".into(),
                })
            }
        };
        let config = PipelineConfig { tables: vec![shadow.clone()], ..self.config.clone() };
        let mut ingestor = Ingestor::open_with(config, false).await?;
        let mut metrics = ReprocessMetrics {
            records: records.len(),
            shadow: shadow.location.to_string(),
            ..ReprocessMetrics::default()
        };
        let mut done = 0;
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<KafkaRecord> = records.by_ref().take(self.batch_size).collect();
            done += chunk.len();
            let report = ingestor.handle(&KafkaBatch::new(chunk)).await?;
            metrics.batches += 1;
            metrics.rows_written += report.rows_written();
            metrics.dead_letters += report.dead_letters();
            metrics.duplicates += report.duplicates();
            if let Some(progress) = self.progress.as_mut() {
                progress(&report, done);
            }
            if let Some(rate) = self.max_rate {
                let due = Duration::from_secs_f64(done as f64 / rate);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        if let Some(days) = self.replace {
            let [(name, live), ..] = self.spec.delta_tables();
            metrics.replaced.push(crate::replace::swap(&self.config, &name, live, &shadow.location, days).await?);
            let minute = self.spec.rollup.as_ref().zip(shadow.rollup.as_ref()).and_then(|(live, shadow)| {
                Some((live.table_name(Grain::Minute), live.location(Grain::Minute)?, shadow.location(Grain::Minute)?))
            });
            if let Some((name, live, shadow)) = minute {
                metrics.replaced.push(crate::replace::swap(&self.config, &name, live, shadow, days).await?);
            }
        }
        metrics.seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            table = %self.spec.name,
            shadow = %metrics.shadow,
            records = metrics.records,
            rows_written = metrics.rows_written,
            "reprocessed"
        );
        Ok(metrics)
    }
}

impl IntoFuture for Reprocess {
    type Output = Result<ReprocessMetrics>;
    type IntoFuture = LocalBoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}

fn day_number(day: NaiveDate) -> i64 {
    (day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days()
}

fn lake_delta(table: &str, e: deltalake::DeltaTableError) -> Error {
    Error::Lake(tidelake_lake::Error::Delta { table: table.to_string(), source: Box::new(e) })
}

fn archive_file_error(path: &object_store::path::Path, reason: String) -> Error {
    Error::Archive { path: path.to_string(), reason }
}
