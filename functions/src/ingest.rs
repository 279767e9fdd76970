//! The ingest handler: one [`KafkaBatch`] in, rows in the lake exactly once.
//!
//! For each table the batch feeds, up to four idempotent commits, in this order:
//! 1. the raw-batch archive (every record as read),
//! 2. the dead-letter table (records that did not decode, with the reason),
//! 3. the data table (the decoded rows, less copies of an event UUID: see
//!    [`dedup`](tidelake_lake::dedup)),
//! 4. when the table declares a rollup, the minute table (partial minute rows of the rows step 3
//!    wrote: see [`partials`](crate::partials)).
//!
//! Each commit records the batch's last offset per topic-partition in its own `txn` action and leaves
//! out offsets its table already holds. A crash between any two steps is finished by the next delivery
//! of the same offsets: the poller resumes from the lowest offsets of the data and minute tables (the
//! archive and dead letters are never behind the data table), and a Lambda retry delivers the batch
//! again.

use std::collections::{BTreeMap, HashMap};

use arrow::compute::filter_record_batch;
use serde::Serialize;
use serde_json::{Map, Value};
use tidelake_lake::decode::decode_records;
use tidelake_lake::dedup::{self, DedupCounts, UuidIndex};
use tidelake_lake::ledger::{partition_key, IngestInfo, PartitionCounts, TableKind};
use tidelake_lake::logging::ms_since;
use tidelake_lake::rollup::{Grain, RollupSpec};
use tidelake_lake::sinks::{self, DeadLetter};
use tidelake_lake::{
    CommitMode, KafkaBatch, KafkaRecord, OffsetTable, PipelineConfig, Planned, TableSpec, TopicPartition,
};

use crate::error::{Error, Result};
use crate::partials::{self, SOURCE_VERSION_PROPERTY};

/// The three tables behind one configured table.
#[derive(Debug)]
struct TableSinks {
    spec: TableSpec,
    /// `None` when the records come from the archive already (reprocessing).
    archive: Option<OffsetTable>,
    dead_letters: OffsetTable,
    data: OffsetTable,
    /// The rollup's minute table, when the table declares a rollup.
    minute: Option<OffsetTable>,
    index: UuidIndex,
    /// Where ingest started each partition the lake had not held (see [`Ingestor::set_start_offsets`]).
    starts: HashMap<TopicPartition, i64>,
}

/// What one batch did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableReport {
    /// Table name.
    pub table: String,
    /// Records of the batch for this table.
    pub records: usize,
    /// Rows committed to the data table.
    pub rows_written: usize,
    /// Records committed to the dead-letter table.
    pub dead_letters: usize,
    /// Up to three of those, as `(topic-partition@offset, reason)`, for a reader to see what they are.
    pub dead_letter_samples: Vec<(String, String)>,
    /// Records dropped as copies of an event UUID already written.
    pub duplicates: usize,
    /// Records kept without a check against the table: older than the dedup window.
    pub beyond_window: usize,
    /// Records archived.
    pub archived: usize,
    /// Partial minute rows committed to the rollup's minute table.
    pub minute_rows: usize,
    /// Data table version committed, if any.
    pub version: Option<u64>,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    /// Records in the batch.
    pub records: usize,
    /// Per table.
    pub tables: Vec<TableReport>,
}

impl BatchReport {
    /// Rows committed to data tables.
    pub fn rows_written(&self) -> usize {
        self.tables.iter().map(|t| t.rows_written).sum()
    }

    /// Records committed to dead-letter tables.
    pub fn dead_letters(&self) -> usize {
        self.tables.iter().map(|t| t.dead_letters).sum()
    }

    /// Records dropped as duplicates of an event UUID.
    pub fn duplicates(&self) -> usize {
        self.tables.iter().map(|t| t.duplicates).sum()
    }

    /// Partial minute rows committed to rollup minute tables.
    pub fn minute_rows(&self) -> usize {
        self.tables.iter().map(|t| t.minute_rows).sum()
    }
}

/// The handler every ingest entry point (Lambda, local poller) calls; built once per process.
#[derive(Debug)]
pub struct Ingestor {
    config: PipelineConfig,
    tables: Vec<TableSinks>,
    /// Whether batches are archived ([`Ingestor::open_with`]).
    archive: bool,
}

impl Ingestor {
    /// Opens every table of the config, creating those that do not exist yet.
    pub async fn open(config: PipelineConfig) -> Result<Self> {
        Self::open_with(config, true).await
    }

    /// Reads the config at `location` ([`PipelineConfig::for_function`]) and opens its tables, then
    /// logs what a cold start spent on each since `started` (`tables opened`, with `config_ms` and
    /// `tables_ms`): what `tidelake ingest` and the `ingest` function do first.
    pub async fn open_at(location: &str, started: std::time::Instant) -> Result<Self> {
        let config = PipelineConfig::for_function(location).await?;
        let config_ms = ms_since(started);
        let ingestor = Ingestor::open(config).await?;
        tracing::info!(config_ms, tables_ms = ms_since(started) - config_ms, "tables opened");
        Ok(ingestor)
    }

    /// Like [`Ingestor::open`]; without `archive`, batches are not archived (records replayed from
    /// the archive are there already).
    pub async fn open_with(config: PipelineConfig, archive: bool) -> Result<Self> {
        // Every table of every configured table opens at once: on object storage each open is a
        // few round trips, and a cold start waits for all of them.
        let opens = config.tables.iter().map(|spec| TableSinks::open(spec, &config.storage_options, archive));
        let tables = futures::future::try_join_all(opens).await?;
        Ok(Ingestor { config, tables, archive })
    }

    /// Reads the config again from `location` ([`PipelineConfig::for_function`]), and with it the
    /// schema registry's subjects of `columns = "registry"` tables, and reopens every table with
    /// it: the tables gain the columns a newer writer schema brought. What a running ingest does
    /// when a record of a newer schema stops a batch
    /// ([`SchemaChanged`](tidelake_lake::Error::SchemaChanged)), before handling that batch again.
    /// The starts of partitions the lake had not held ([`Ingestor::set_start_offsets`]) carry
    /// over; a config that names other topics is refused, as the consumer reading them stays.
    pub async fn reopen(&mut self, location: &str) -> Result<()> {
        let config = PipelineConfig::for_function(location).await?;
        let (now, before) = (config.topics(), self.config.topics());
        if now != before {
            return Err(Error::TopicsChanged { location: location.to_string(), now, before });
        }
        let starts: Vec<(TopicPartition, i64)> =
            self.tables.iter().flat_map(|t| t.starts.iter().map(|(tp, o)| (tp.clone(), *o))).collect();
        let mut reopened = Ingestor::open_with(config, self.archive).await?;
        reopened.set_start_offsets(starts);
        *self = reopened;
        Ok(())
    }

    /// The pipeline config this handler was built from.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Bytes the dedup indexes of the tables hold (what a function's memory size must leave room
    /// for, next to its batches).
    pub fn dedup_index_bytes(&self) -> usize {
        self.tables.iter().map(|t| t.index.heap_bytes()).sum()
    }

    /// Where the poller starts each partition the lake has not held yet: the first commit of such
    /// a partition records it (`start` in its commit info), and the audit checks every offset
    /// from there.
    pub fn set_start_offsets(&mut self, starts: impl IntoIterator<Item = (TopicPartition, i64)>) {
        let starts: HashMap<TopicPartition, i64> = starts.into_iter().collect();
        for sinks in &mut self.tables {
            sinks.starts =
                starts.iter().filter(|(tp, _)| tp.topic == sinks.spec.topic).map(|(t, o)| (t.clone(), *o)).collect();
        }
    }

    /// The next offset to consume for each of `partitions`: one past the offset the lake holds
    /// (absent when the lake holds nothing of that partition yet). With a rollup, the minute table
    /// may be behind the data table (a crash between their commits): the partition then resumes
    /// from the minute table's offset, so the records the data table holds already come again, write
    /// nothing there, and let the minute table catch up, as a Lambda retry of the batch would.
    pub async fn resume_offsets(&mut self, partitions: &[TopicPartition]) -> Result<HashMap<TopicPartition, i64>> {
        let mut next = HashMap::new();
        let options = &self.config.storage_options;
        for sinks in &mut self.tables {
            let mine: Vec<&TopicPartition> = partitions.iter().filter(|tp| tp.topic == sinks.spec.topic).collect();
            if mine.is_empty() {
                continue;
            }
            sinks.data.refresh().await?;
            let data = sinks.data.committed_offsets(mine.iter().copied()).await?;
            let minute = match sinks.minute.as_mut() {
                Some(minute) => {
                    minute.refresh().await?;
                    Some((minute.committed_offsets(mine.iter().copied()).await?, minute))
                }
                None => None,
            };
            let mut at_start: Option<HashMap<TopicPartition, i64>> = None;
            for tp in mine {
                let Some(held) = data.get(tp).copied() else { continue };
                let resume = match &minute {
                    None => held + 1,
                    Some((offsets, _)) if offsets.contains_key(tp) => offsets[tp].min(held) + 1,
                    Some((_, minute)) => {
                        // The minute table never held this partition: either the data table held
                        // it before the minute table existed (history, not aggregated), or the
                        // first minute commit of it did not happen.
                        if at_start.is_none() {
                            at_start = Some(
                                partials::data_offsets_at_start(&sinks.spec, minute.table(), options, &data).await?,
                            );
                        }
                        match at_start.as_ref().and_then(|s| s.get(tp)) {
                            Some(start) if *start == held => held + 1,
                            Some(start) => start + 1,
                            None => 0,
                        }
                    }
                };
                next.insert(tp.clone(), resume);
            }
        }
        Ok(next)
    }

    /// Handles one batch: archives it, sends what does not decode to the dead letters, appends the
    /// rest, each exactly once. A batch delivered again changes nothing.
    pub async fn handle(&mut self, batch: &KafkaBatch) -> Result<BatchReport> {
        let mut by_topic: BTreeMap<&str, Vec<&KafkaRecord>> = BTreeMap::new();
        for r in &batch.records {
            by_topic.entry(&*r.topic).or_default().push(r);
        }
        let mut report = BatchReport { records: batch.len(), tables: Vec::new() };
        for (topic, records) in by_topic {
            let sinks = self
                .tables
                .iter_mut()
                .find(|t| t.spec.topic == topic)
                .ok_or_else(|| Error::UnknownTopic { topic: topic.to_string(), position: records[0].position() })?;
            report.tables.push(sinks.handle(records).await?);
        }
        Ok(report)
    }
}

impl TableSinks {
    /// Opens (or creates) the tables behind `spec`, at the same time.
    async fn open(spec: &TableSpec, options: &HashMap<String, String>, archive: bool) -> Result<TableSinks> {
        let [(data_name, data_at), (dead_name, dead_at), (archive_name, archive_at)] = spec.delta_tables();
        let archive_table = async {
            match archive {
                true => OffsetTable::open(
                    &archive_name,
                    archive_at,
                    &sinks::archive_schema(),
                    &sinks::archive_partition_columns(),
                    options,
                )
                .await
                .map(Some),
                false => Ok(None),
            }
        };
        let dead_schema = sinks::dead_letter_schema();
        let dead_letters = OffsetTable::open(&dead_name, dead_at, &dead_schema, &[], options);
        let data_and_minute = async {
            let data = OffsetTable::open(&data_name, data_at, &spec.table_schema(), &spec.partition_columns(), options)
                .await?
                .with_distinct_columns([spec.event_uuid.clone()]);
            let Some(rollup) = &spec.rollup else { return Ok((data, None)) };
            let grain = Grain::Minute;
            let at = rollup.location(grain).expect("validated: a rollup keeps minutes");
            // Created now, it aggregates the data commits after this version.
            let start = data.table().version().unwrap_or(0);
            let properties = HashMap::from([(SOURCE_VERSION_PROPERTY.to_string(), start.to_string())]);
            let minute = OffsetTable::open_with(
                &rollup.table_name(grain),
                at,
                &rollup.schema(grain),
                &RollupSpec::partition_columns(),
                options,
                properties,
            )
            .await?;
            Ok::<_, tidelake_lake::Error>((data, Some(minute)))
        };
        let (archive, dead_letters, (data, minute)) = futures::try_join!(archive_table, dead_letters, data_and_minute)?;
        Ok(TableSinks {
            spec: spec.clone(),
            archive,
            dead_letters,
            data,
            minute,
            index: UuidIndex::default(),
            starts: HashMap::new(),
        })
    }

    async fn handle(&mut self, mut records: Vec<&KafkaRecord>) -> Result<TableReport> {
        records.sort_by_key(|r| (r.partition, r.offset));
        records.dedup_by(|a, b| a.partition == b.partition && a.offset == b.offset);
        let last = tidelake_lake::batch::last_offsets(records.iter().copied());
        let now_us = chrono::Utc::now().timestamp_micros();
        let records = records.as_slice();
        let TableSinks { spec, archive, dead_letters, data, minute, index, starts } = self;
        let starts = &*starts;
        let started = std::time::Instant::now();

        // The archive and the dead letters are blind appends to tables of their own: they commit
        // at the same time, the dead letters once the batch is decoded. The data commit waits for
        // both, so neither is ever behind the data table.
        let archiving = async {
            let Some(archive) = archive.as_mut() else { return Ok(Default::default()) };
            archive
                .append_once(&last, CommitMode::Blind, async |_, c| {
                    let pending = sinks::pending(records, c);
                    Ok(Planned {
                        rows: sinks::archive_rows(records, &pending, now_us)?,
                        also_covers: Default::default(),
                        info: ingest_info(
                            TableKind::Archive,
                            records,
                            (c, starts),
                            &pending,
                            |_| Outcome::Row,
                            |_| true,
                            DedupCounts::default(),
                        ),
                    })
                })
                .await
                .map(|outcome| (outcome, ms_since(started)))
                .map_err(Error::from)
        };
        let mut dead_letter_samples = Vec::new();
        let lettering = async {
            let decoded = decode_records(spec, records).await?;
            let decode_ms = ms_since(started);
            // Each letter with the index of its record in the batch.
            let letters: Vec<(usize, DeadLetter<'_>)> = decoded
                .rejected
                .iter()
                .map(|(i, reason)| (*i, DeadLetter { record: records[*i], reason: reason.clone() }))
                .collect();
            let mut outcomes = vec![Outcome::Undecided; records.len()];
            for (i, _) in &decoded.rejected {
                outcomes[*i] = Outcome::DeadLetter;
            }
            let spec_name = &spec.name;
            let dead = dead_letters
                .append_once(&last, CommitMode::Blind, async |_, c| {
                    // Only letters this commit writes: a batch delivered again does not log them
                    // twice. Each at debug level; the batch's summary, counted by kind, with the
                    // first reason, once at info.
                    let owed = sinks::pending(records, c);
                    let pending: Vec<&DeadLetter<'_>> =
                        letters.iter().filter(|(i, _)| owed[*i]).map(|(_, letter)| letter).collect();
                    for letter in &pending {
                        tracing::debug!(table = %spec_name, at = %letter.record.position(), reason = %letter.reason, "dead letter");
                    }
                    dead_letter_samples =
                        pending.iter().take(3).map(|l| (l.record.position(), l.reason.clone())).collect();
                    if let Some(first) = pending.first() {
                        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
                        for letter in &pending {
                            *kinds.entry(sinks::reason_kind(&letter.reason)).or_default() += 1;
                        }
                        let by_kind =
                            kinds.iter().map(|(kind, n)| format!("{kind}: {n}")).collect::<Vec<_>>().join(", ");
                        tracing::info!(
                            table = %spec_name,
                            dead_letters = pending.len(),
                            %by_kind,
                            first = %first.record.position(),
                            reason = %first.reason,
                            "dead letters in this batch (each logged at debug level)"
                        );
                    }
                    Ok(Planned {
                        rows: sinks::dead_letter_rows(&pending, now_us)?,
                        also_covers: Default::default(),
                        info: ingest_info(
                            TableKind::DeadLetters,
                            records,
                            (c, starts),
                            &owed,
                            |i| outcomes[i],
                            |o| o == Outcome::DeadLetter,
                            DedupCounts::default(),
                        ),
                    })
                })
                .await?;
            Ok::<_, Error>((decoded, outcomes, dead, decode_ms, ms_since(started)))
        };
        let ((archived, archive_ms), (decoded, mut outcomes, dead, decode_ms, dead_letters_ms)) =
            futures::try_join!(archiving, lettering)?;

        let rows = &decoded.rows;
        let sources = &decoded.row_sources;
        // The rows depend on which event UUIDs the table holds, so every commit that lands first
        // sends this one back to check again.
        let mut dedup_counts = DedupCounts::default();
        let mut written = None;
        let mut kept_ids = dedup::KeptIds::default();
        let mut held_before = HashMap::new();
        let data_outcome = data
            .append_once(&last, CommitMode::OnReadVersion, async |table, c| {
                let pending_records = sinks::pending(records, c);
                let pending = |row: usize| pending_records[sources[row]];
                let range = dedup::window(spec, rows, pending);
                if let Some(range) = range {
                    let load = index.prepare(table, spec, range).await?;
                    tracing::debug!(
                        table = %spec.name,
                        full = load.full,
                        commits_read = load.commits,
                        files_read = load.files,
                        uuids = index.len(),
                        bytes = index.heap_bytes(),
                        "dedup index up to date"
                    );
                }
                let dedup::Selection { keep, counts, ids } = dedup::select(spec, rows, pending, range, index);
                dedup_counts = counts;
                for (row, source) in sources.iter().enumerate() {
                    outcomes[*source] = if keep.value(row) { Outcome::Row } else { Outcome::Duplicate };
                }
                let info = ingest_info(
                    TableKind::Data,
                    records,
                    (c, starts),
                    &pending_records,
                    |i| outcomes[i],
                    |o| o == Outcome::Row,
                    counts,
                );
                let rows = match keep.true_count() {
                    0 => None,
                    n if n == rows.num_rows() => Some(rows.clone()),
                    _ => Some(filter_record_batch(rows, &keep).map_err(|e| tidelake_lake::Error::Arrow {
                        context: "selecting new rows".into(),
                        source: e,
                    })?),
                };
                written.clone_from(&rows);
                kept_ids = ids;
                held_before.clone_from(c);
                Ok(Planned { rows, info, also_covers: Default::default() })
            })
            .await?;
        match (data_outcome.version, &written) {
            (None, _) => dedup_counts = DedupCounts::default(),
            (Some(version), Some(_)) if spec.dedup_window.is_some() => index.record(version, kept_ids),
            _ => {}
        }

        if data_outcome.version.is_some() {
            tidelake_lake::fault::point("after-data-commit");
        }
        let data_ms = ms_since(started) - dead_letters_ms;
        let mut minute_rows = 0;
        if let (Some(minute), Some(rollup)) = (minute.as_mut(), spec.rollup.as_ref()) {
            let just = data_outcome.version.map(|version| partials::DataCommit {
                version,
                held_before: &held_before,
                rows: written.as_ref(),
            });
            let data_table = data.table();
            let outcome = minute
                .append_once(&last, CommitMode::Blind, async |table, c| {
                    let step = partials::MinuteStep {
                        spec,
                        rollup,
                        data: data_table,
                        minute: table,
                        last: &last,
                        committed: c,
                    };
                    partials::plan(step, just).await
                })
                .await?;
            minute_rows = outcome.rows;
        }
        // Where a batch's time goes: the archive commit runs beside the decoding and the dead
        // letters' commit; the data commit (deduplication, files, commit) follows both.
        tracing::debug!(
            table = %spec.name,
            records = records.len(),
            archive_ms,
            decode_ms,
            dead_letters_ms,
            data_ms,
            total_ms = ms_since(started),
            "table handled"
        );
        Ok(TableReport {
            table: spec.name.clone(),
            records: records.len(),
            rows_written: data_outcome.rows,
            dead_letters: dead.rows,
            dead_letter_samples,
            duplicates: dedup_counts.dropped(),
            beyond_window: dedup_counts.beyond_window,
            archived: archived.rows,
            minute_rows,
            version: data_outcome.version,
        })
    }
}

/// What became of one record of a batch, for the counts of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Written as a row of the data table.
    Row,
    /// Written to the dead letters.
    DeadLetter,
    /// Dropped as a copy of an event UUID.
    Duplicate,
    /// Not known yet (decoded, not yet deduplicated).
    Undecided,
}

/// The commit info of an ingest commit into a `kind` table: per topic-partition, the offsets above
/// `committed` and what became of their records, with `written` saying which outcomes are rows of
/// this table, and, for a partition the table has not held yet, where ingest started it (`starts`).
/// `pending` is [`sinks::pending`] of the records against `committed`.
/// An audit reads these instead of scanning the data.
fn ingest_info(
    kind: TableKind,
    records: &[&KafkaRecord],
    (committed, starts): (&HashMap<TopicPartition, i64>, &HashMap<TopicPartition, i64>),
    pending: &[bool],
    outcome: impl Fn(usize) -> Outcome,
    written: impl Fn(Outcome) -> bool,
    dedup: DedupCounts,
) -> Map<String, Value> {
    let mut offsets: BTreeMap<String, PartitionCounts> = BTreeMap::new();
    // The records come sorted by partition: the key is made once per run of one partition.
    let mut current: Option<(i32, String)> = None;
    for (i, r) in records.iter().enumerate().filter(|(i, _)| pending[*i]) {
        if current.as_ref().is_none_or(|(partition, _)| *partition != r.partition) {
            let tp = TopicPartition::new(&*r.topic, r.partition);
            let key = partition_key(&tp);
            let start = starts.get(&tp).copied().filter(|_| !committed.contains_key(&tp));
            offsets.entry(key.clone()).or_insert(PartitionCounts {
                first: r.offset,
                last: r.offset,
                start,
                ..PartitionCounts::default()
            });
            current = Some((r.partition, key));
        }
        let key = &current.as_ref().expect("set above").1;
        let counts = offsets.get_mut(key).expect("entered above");
        counts.first = counts.first.min(r.offset);
        counts.last = counts.last.max(r.offset);
        counts.records += 1;
        let o = outcome(i);
        counts.rows += u64::from(written(o));
        counts.dead_letters += u64::from(o == Outcome::DeadLetter);
        counts.duplicates += u64::from(o == Outcome::Duplicate);
    }
    let sum = |f: fn(&PartitionCounts) -> u64| offsets.values().map(f).sum::<u64>();
    IngestInfo {
        kind,
        rows: sum(|c| c.rows),
        dead_letters: sum(|c| c.dead_letters),
        duplicates: sum(|c| c.duplicates),
        duplicates_in_batch: dedup.in_batch as u64,
        duplicates_in_table: dedup.in_table as u64,
        beyond_dedup_window: dedup.beyond_window as u64,
        offsets,
    }
    .to_commit_info()
}
