//! The local entry point: an rdkafka consumer that cuts micro-batches the way a Lambda event source
//! mapping does (by record count, bytes and a wait window) and hands each to the same [`Ingestor`].
//!
//! Where to start reading comes from the lake, never from the consumer group alone: each partition
//! starts one past the offset its data table holds, or, for a partition the lake has never held,
//! where the config's `start_from` says. The consumer group's offsets are committed only after the
//! lake commit, and only as a courtesy to lag monitors.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tidelake_lake::batch::TopicNames;
use tidelake_lake::kafka::{is_unanswered, to_record, RangeReader, ANSWER_TIMEOUT};
use tidelake_lake::logging::ms_since;
use tidelake_lake::{BatchConfig, KafkaBatch, KafkaRecord, PipelineConfig, StartFrom, TopicPartition};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::ingest::{BatchReport, Ingestor};

/// How the poller runs.
#[derive(Debug, Clone)]
pub struct PollerOptions {
    /// Micro-batch limits.
    pub batch: BatchConfig,
    /// Stop once every partition is consumed up to the end it had when the poller started.
    pub stop_at_end: bool,
    /// How long a fault (storage failing, the broker gone) is retried before the poller gives up.
    pub max_retry_time: Duration,
    /// Where the config was read from. A batch stopped by a record of a newer writer schema
    /// ([`SchemaChanged`](tidelake_lake::Error::SchemaChanged)) then makes the poller read the config
    /// and the registry again from there, reopen the tables ([`Ingestor::reopen`]) and handle the
    /// batch again, as the Lambda handler does; without it, such a batch stops the poller.
    pub config_location: Option<String>,
}

/// How long a fault is retried unless told otherwise.
pub const MAX_RETRY_TIME: Duration = Duration::from_secs(15 * 60);

impl PollerOptions {
    /// Options with `batch` cuts, the default retry time.
    pub fn new(batch: BatchConfig, stop_at_end: bool) -> Self {
        PollerOptions { batch, stop_at_end, max_retry_time: MAX_RETRY_TIME, config_location: None }
    }
}

/// A fault being ridden out: logged when it starts and when it ends, retried with capped
/// exponential backoff and jitter until `max` has passed.
struct Weather {
    what: &'static str,
    since: Option<(Instant, usize)>,
    max: Duration,
    /// Longest wait between tries, in milliseconds.
    ceiling_ms: u64,
}

impl Weather {
    fn new(what: &'static str, max: Duration, ceiling_ms: u64) -> Self {
        Weather { what, since: None, max, ceiling_ms }
    }

    fn failing(&self) -> bool {
        self.since.is_some()
    }

    /// Waits before trying again after `error`, or gives it back when it is not worth retrying or
    /// has lasted longer than `max`.
    async fn retry(&mut self, error: Error) -> Result<()> {
        if !error.is_retryable() {
            return Err(error);
        }
        let (since, tries) = self.since.get_or_insert((Instant::now(), 0));
        *tries += 1;
        if *tries == 1 {
            tracing::warn!(error = %error, what = self.what, "failing; retrying with backoff until it recovers");
        } else {
            tracing::debug!(error = %error, what = self.what, tries = *tries, "still failing");
        }
        if since.elapsed() > self.max {
            tracing::error!(what = self.what, tries = *tries, "giving up after --max-retry-time");
            return Err(error);
        }
        let ceiling = (100u64 << (*tries).min(8)).min(self.ceiling_ms);
        tokio::time::sleep(Duration::from_millis(rand::random_range(ceiling / 2..=ceiling))).await;
        Ok(())
    }

    /// The fault is over.
    fn recovered(&mut self) {
        if let Some((since, tries)) = self.since.take() {
            tracing::info!(what = self.what, tries, seconds = since.elapsed().as_secs_f64(), "recovered");
        }
    }
}

/// Totals of a poller run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PollerReport {
    /// Batches handled.
    pub batches: usize,
    /// Records handled.
    pub records: usize,
    /// Rows committed to data tables.
    pub rows_written: usize,
    /// Records committed to dead-letter tables.
    pub dead_letters: usize,
    /// The first three of those, as `(topic-partition@offset, reason)`.
    pub dead_letter_samples: Vec<(String, String)>,
    /// Records dropped as duplicates of an event UUID.
    pub duplicates_dropped: usize,
    /// Partial minute rows committed to rollup minute tables.
    pub minute_rows: usize,
}

/// Lake offsets shared with the rebalance callback: where each partition resumes.
type ResumeOffsets = Arc<Mutex<HashMap<TopicPartition, i64>>>;

struct LakeContext {
    resume: ResumeOffsets,
    /// The last client error logged at warn level: a fault is logged when it changes, not at
    /// every reconnect attempt.
    last_error: Mutex<String>,
}

impl ClientContext for LakeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", ?level, fac, "{log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // End of partition is how the poller learns it has caught up, not a failure.
        if matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(%reason, "end of partition");
            return;
        }
        let text = error.to_string();
        let mut last = self.last_error.lock().expect("last error lock");
        if *last == text {
            tracing::debug!(%error, %reason, "kafka client error");
        } else {
            tracing::warn!(%error, %reason, "kafka client error (repeats are logged at debug level)");
            *last = text;
        }
    }
}

impl ConsumerContext for LakeContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let resume = self.resume.lock().expect("resume offsets lock");
                let mut with_offsets = tpl.clone();
                for element in tpl.elements() {
                    let tp = TopicPartition::new(element.topic(), element.partition());
                    if let Some(next) = resume.get(&tp) {
                        tracing::info!(partition = %tp, offset = next, "assigned; resuming at the lake's offset");
                        // The element is in the list, so setting its offset cannot fail.
                        let _ = with_offsets.set_partition_offset(
                            element.topic(),
                            element.partition(),
                            Offset::Offset(*next),
                        );
                    }
                }
                drop(resume);
                if cooperative {
                    consumer.incremental_assign(&with_offsets)
                } else {
                    consumer.assign(&with_offsets)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed; dropping the assignment");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "applying a rebalance failed");
        }
    }
}

/// Consumes the pipeline's topics into the lake until `shutdown` resolves (or, with
/// [`PollerOptions::stop_at_end`], until the topics are consumed to their end). The batch being
/// collected when `shutdown` resolves is still handled and committed.
pub async fn run(
    ingestor: &mut Ingestor,
    options: PollerOptions,
    shutdown: impl Future<Output = ()>,
    on_batch: impl FnMut(&BatchReport),
) -> Result<PollerReport> {
    let connection = Connection::open(ingestor.config(), options.stop_at_end).await?;
    run_connected(ingestor, connection, options, shutdown, on_batch).await
}

/// Reads the config at `location` ([`PipelineConfig::for_function`]), then opens its tables and
/// connects to its topics at the same time: the first things `tidelake ingest` and the `ingest`
/// function's local poller do, each a round trip or more to storage or the broker. Logs what each
/// took since `started` (`tables opened`, with `config_ms`, `tables_ms` and `connect_ms`).
/// `stop_at_end`: as [`PollerOptions::stop_at_end`].
pub async fn start(location: &str, stop_at_end: bool, started: std::time::Instant) -> Result<(Ingestor, Connection)> {
    let config = PipelineConfig::for_function(location).await?;
    let config_ms = ms_since(started);
    let tables = async {
        let at = std::time::Instant::now();
        (Ingestor::open(config.clone()).await, ms_since(at))
    };
    let ((ingestor, tables_ms), connection) = tokio::join!(tables, Connection::open(&config, stop_at_end));
    // A table that does not open says so before a broker that does not answer.
    let ingestor = ingestor?;
    let connection = connection?;
    tracing::info!(config_ms, tables_ms, connect_ms = connection.metadata_ms, "tables opened");
    Ok((ingestor, connection))
}

/// The consumer of a config's topics and the partitions the broker has for them: what the poller
/// needs from Kafka before it reads a record.
pub struct Connection {
    consumer: StreamConsumer<LakeContext>,
    resume: ResumeOffsets,
    partitions: Vec<TopicPartition>,
    /// Creating the client and fetching the topics' metadata (the first broker round trip).
    metadata_ms: f64,
}

impl Connection {
    /// Creates the consumer of `config`'s topics and fetches their partitions, on a thread of its
    /// own (the fetch blocks until the broker answers). `stop_at_end`: as
    /// [`PollerOptions::stop_at_end`].
    pub async fn open(config: &PipelineConfig, stop_at_end: bool) -> Result<Self> {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let resume: ResumeOffsets = Arc::default();
            let consumer = consumer(&config, stop_at_end, Arc::clone(&resume))?;
            let partitions = partitions(&consumer, &config.kafka.brokers, &config.topics())?;
            Ok(Connection { consumer, resume, partitions, metadata_ms: ms_since(started) })
        })
        .await
        .expect("connecting does not panic")
    }
}

/// [`run`] on a `connection` to the topics of the ingestor's config, made by [`start`] or
/// [`Connection::open`] with the same config and `options.stop_at_end`.
pub async fn run_connected(
    ingestor: &mut Ingestor,
    connection: Connection,
    options: PollerOptions,
    shutdown: impl Future<Output = ()>,
    mut on_batch: impl FnMut(&BatchReport),
) -> Result<PollerReport> {
    let started = std::time::Instant::now();
    let config = ingestor.config().clone();
    let Connection { consumer, resume, partitions, metadata_ms } = connection;
    let topics = config.topics();
    let held = ingestor.resume_offsets(&partitions).await?;
    let lake_offsets_ms = ms_since(started);
    let at = std::time::Instant::now();
    let starts = start_offsets(&consumer, &partitions, &held, config.kafka.start_from)?;
    ingestor.set_start_offsets(starts.iter().filter(|(tp, _)| !held.contains_key(*tp)).map(|(tp, o)| (tp.clone(), *o)));
    *resume.lock().expect("resume offsets lock") = starts.clone();
    let mut watch = EndWatch::new(
        if options.stop_at_end { end_offsets(&consumer, &partitions)? } else { BTreeMap::new() },
        options.max_retry_time,
    );
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs).map_err(kafka("subscribing"))?;
    let broker_offsets_ms = ms_since(at);
    // `setup_ms`: where the lake left each partition and the broker's offsets where the lake has
    // none (and the ends, with `stop_at_end`); `metadata_ms`: the connection's first round trip,
    // made before (beside the tables' opening, when made by `start`).
    let setup_ms = ms_since(started);
    tracing::info!(
        topics = ?topics,
        partitions = partitions.len(),
        setup_ms,
        metadata_ms,
        lake_offsets_ms,
        broker_offsets_ms,
        "consuming"
    );

    let mut report = PollerReport::default();
    let mut stopping = false;
    let mut lake_weather = Weather::new("writing the batch to the lake", options.max_retry_time, 10_000);
    // The client reconnects by itself and queues an error per failed attempt: those are read at
    // most a second apart, and a broker that answers again ends the fault even while stale
    // errors are still queued.
    let broker_weather = Weather::new("reading from Kafka", options.max_retry_time, 1_000);
    let mut eof: HashSet<i32> = HashSet::new();
    tokio::pin!(shutdown);
    let mut source = Source {
        consumer: &consumer,
        options: &options,
        topics: &topics,
        weather: broker_weather,
        last_len: 0,
        names: TopicNames::default(),
    };
    let mut cut = source.cut(shutdown.as_mut(), &mut eof).await?;
    loop {
        stopping |= cut.stopping;
        if cut.records.is_empty() {
            if stopping || (cut.idle && watch.done(&consumer, ingestor, &resume, &eof, topics.len() == 1).await?) {
                break;
            }
            cut = source.cut(shutdown.as_mut(), &mut eof).await?;
            continue;
        }
        let batch = KafkaBatch::new(std::mem::take(&mut cut.records));
        // A batch that fails on a fault is handled again, whole: every commit of it is exactly
        // once, so what landed before the fault is not written twice.
        let handling = async {
            let mut reopened = false;
            loop {
                match ingestor.handle(&batch).await {
                    Ok(done) => break Ok::<_, Error>(done),
                    Err(Error::Lake(changed @ tidelake_lake::Error::SchemaChanged { .. })) if !reopened => {
                        let Some(location) = options.config_location.as_deref() else {
                            return Err(Error::Lake(changed));
                        };
                        tracing::warn!(error = %changed, "reading the config and the registry again");
                        ingestor.reopen(location).await?;
                        reopened = true;
                    }
                    Err(e) => lake_weather.retry(e).await?,
                }
            }
        };
        // The next batch is read while this one is written; it is handled only after this one is
        // committed, so batches still commit in order.
        let (done, next) = match stopping {
            true => (handling.await, Ok(Cut::default())),
            false => tokio::join!(handling, source.cut(shutdown.as_mut(), &mut eof)),
        };
        let done = done?;
        lake_weather.recovered();
        tidelake_lake::fault::point("after-batch");
        commit_offsets(&consumer, &batch, &resume)?;
        report.batches += 1;
        report.records += done.records;
        report.rows_written += done.rows_written();
        report.dead_letters += done.dead_letters();
        for table in &done.tables {
            let room = 3usize.saturating_sub(report.dead_letter_samples.len());
            report.dead_letter_samples.extend(table.dead_letter_samples.iter().take(room).cloned());
        }
        report.duplicates_dropped += done.duplicates();
        report.minute_rows += done.minute_rows();
        on_batch(&done);
        cut = next?;
    }
    Ok(report)
}

/// The records of one micro-batch as the consumer handed them.
#[derive(Default)]
struct Cut {
    records: Vec<KafkaRecord>,
    /// Nothing came for a while, and the poller stops at the end: time to look whether it is there.
    idle: bool,
    /// The shutdown signal came while the batch was read.
    stopping: bool,
}

/// Where micro-batches come from: the consumer, cut the way a Lambda event source mapping cuts
/// (record count, bytes, a wait window from the first record).
struct Source<'a> {
    consumer: &'a StreamConsumer<LakeContext>,
    options: &'a PollerOptions,
    topics: &'a [String],
    weather: Weather,
    /// Records in the last batch: the next one's list is sized for as many (and an eighth), so a
    /// full batch is not held in a list grown to twice its size.
    last_len: usize,
    names: TopicNames,
}

impl Source<'_> {
    async fn cut(&mut self, mut shutdown: Pin<&mut impl Future<Output = ()>>, eof: &mut HashSet<i32>) -> Result<Cut> {
        let (consumer, options, topics) = (self.consumer, self.options, self.topics);
        let broker_weather = &mut self.weather;
        let mut cut = Cut { records: Vec::with_capacity(self.last_len + self.last_len / 8), ..Cut::default() };
        let mut bytes = 0;
        let mut deadline: Option<Instant> = None;
        while cut.records.len() < options.batch.max_records && bytes < options.batch.max_bytes {
            let wait = match deadline {
                Some(at) => at.saturating_duration_since(Instant::now()),
                None => Duration::from_millis(200),
            };
            if deadline.is_some() && wait.is_zero() {
                break;
            }
            // A record the client holds already is taken without a timer: the select and its
            // timeout are for waiting, when there is none.
            let ready = match shutdown.as_mut().now_or_never() {
                Some(()) => {
                    cut.stopping = true;
                    break;
                }
                None => consumer.recv().now_or_never(),
            };
            let received = match ready {
                Some(received) => Ok(received),
                None => tokio::select! {
                    biased;
                    _ = &mut shutdown => { cut.stopping = true; break; }
                    received = tokio::time::timeout(wait, consumer.recv()) => received,
                },
            };
            match received {
                Err(_elapsed) => {
                    if broker_weather.failing() && broker_answers(consumer, topics) {
                        broker_weather.recovered();
                    }
                    if deadline.is_none() && options.stop_at_end {
                        cut.idle = true;
                        break;
                    }
                }
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    eof.insert(partition);
                    // Stopping at the end, a batch need not wait out its window once every
                    // partition of this consumer is at its end: nothing more is coming.
                    if options.stop_at_end && at_end(consumer, topics, eof) {
                        cut.idle = cut.records.is_empty();
                        break;
                    }
                }
                // The client reconnects by itself; what it reports meanwhile is waited out.
                Ok(Err(e)) => {
                    if broker_weather.failing() && broker_answers(consumer, topics) {
                        // A stale error of the outage: the broker answers.
                        broker_weather.recovered();
                    } else {
                        broker_weather.retry(Error::Kafka { context: "receiving".into(), source: e }).await?;
                    }
                }
                Ok(Ok(message)) => {
                    broker_weather.recovered();
                    eof.remove(&message.partition());
                    let record = to_record(&message, &mut self.names);
                    bytes += record.payload_len();
                    cut.records.push(record);
                    if cut.records.len() % 1024 == 0 {
                        tokio::task::yield_now().await;
                    }
                    deadline.get_or_insert_with(|| Instant::now() + options.batch.max_wait);
                }
            }
        }
        if !cut.records.is_empty() {
            self.last_len = cut.records.len();
        }
        Ok(cut)
    }
}

/// Whether the broker answers: the first topic's metadata comes back. Asked only during an outage,
/// where a quiet poll or an error may be left over from it.
fn broker_answers(consumer: &StreamConsumer<LakeContext>, topics: &[String]) -> bool {
    consumer.fetch_metadata(Some(&topics[0]), Duration::from_millis(500)).is_ok()
}

/// Whether the consumer reported the end of every partition assigned to it since its last record
/// there. End-of-partition events carry no topic, so with several topics this is never said.
fn at_end(consumer: &StreamConsumer<LakeContext>, topics: &[String], eof: &HashSet<i32>) -> bool {
    let Ok(assignment) = consumer.assignment() else { return false };
    topics.len() == 1 && assignment.count() > 0 && assignment.elements().iter().all(|e| eof.contains(&e.partition()))
}

fn kafka(context: &'static str) -> impl FnOnce(KafkaError) -> Error {
    move |source| Error::Kafka { context: context.into(), source }
}

/// How many kilobytes of records the consumer prefetches, unless the config's Kafka properties say
/// otherwise. The poller reads the next batch itself while one is written, so the queue only has to
/// keep the fetches going: with 6 MB batches, 1 MB held peak RSS 18 MB lower than a batch's worth
/// did, 65 MB lower with 32 MB batches, at the same speed. librdkafka's own default, 64 MB, would
/// hold ten 6 MB batches.
const PREFETCH_KBYTES: &str = "1024";

/// How long the consumer waits before fetching again once its queue was full, unless the config's
/// Kafka properties say otherwise. librdkafka's default, a second, left ingest waiting on every
/// batch: the queue is full whenever a batch is being written, and emptied in milliseconds after.
const FETCH_QUEUE_BACKOFF_MS: &str = "5";

/// How long the broker may hold a fetch that finds no new record, when the poller stops at the end,
/// unless the config's Kafka properties say otherwise. The end of a partition is reported by the
/// first fetch that comes back empty: with librdkafka's default, 500 ms, the last batch of a run
/// waited that long for the end of its last partition.
const END_FETCH_WAIT_MS: &str = "20";

fn consumer(
    config: &PipelineConfig,
    partition_eof: bool,
    resume: ResumeOffsets,
) -> Result<StreamConsumer<LakeContext>> {
    let mut client = tidelake_lake::kafka::client_config(config);
    client
        .set("group.id", &config.kafka.group_id)
        .set("isolation.level", &config.kafka.isolation_level)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", if partition_eof { "true" } else { "false" });
    if !config.kafka.properties.contains_key("auto.offset.reset") {
        client.set("auto.offset.reset", "earliest");
    }
    if !config.kafka.properties.contains_key("queued.max.messages.kbytes") {
        client.set("queued.max.messages.kbytes", PREFETCH_KBYTES);
    }
    if !config.kafka.properties.contains_key("fetch.queue.backoff.ms") {
        client.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    }
    if partition_eof && !config.kafka.properties.contains_key("fetch.wait.max.ms") {
        client.set("fetch.wait.max.ms", END_FETCH_WAIT_MS);
    }
    client
        .create_with_context(LakeContext { resume, last_error: Mutex::default() })
        .map_err(kafka("creating the consumer"))
}

fn partitions(consumer: &StreamConsumer<LakeContext>, brokers: &str, topics: &[String]) -> Result<Vec<TopicPartition>> {
    let mut all = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), ANSWER_TIMEOUT).map_err(|e| {
            if is_unanswered(&e) {
                Error::Lake(tidelake_lake::Error::KafkaUnreachable {
                    brokers: brokers.to_string(),
                    reason: e.to_string(),
                })
            } else {
                Error::Kafka { context: "fetching topic metadata".into(), source: e }
            }
        })?;
        for t in metadata.topics() {
            if let Some(err) = t.error() {
                return Err(Error::Kafka {
                    context: format!("topic `{}` is not available", t.name()),
                    source: KafkaError::MetadataFetch(err.into()),
                });
            }
            all.extend(t.partitions().iter().map(|p| TopicPartition::new(t.name(), p.id())));
        }
    }
    Ok(all)
}

/// Where each partition starts: one past the lake's last offset where the lake holds it
/// (`held`), else where `start_from` says (the low watermark for `earliest`, the high one for
/// `latest`, Kafka's time index for a time).
fn start_offsets(
    consumer: &StreamConsumer<LakeContext>,
    partitions: &[TopicPartition],
    held: &HashMap<TopicPartition, i64>,
    start_from: StartFrom,
) -> Result<HashMap<TopicPartition, i64>> {
    let mut starts: HashMap<TopicPartition, i64> =
        partitions.iter().filter_map(|tp| held.get(tp).map(|next| (tp.clone(), *next))).collect();
    let new: Vec<TopicPartition> = partitions.iter().filter(|tp| !held.contains_key(*tp)).cloned().collect();
    if new.is_empty() {
        return Ok(starts);
    }
    let watermarks =
        tidelake_lake::kafka::watermarks(consumer, &new, WATERMARK_TIMEOUT).map_err(kafka("fetching watermarks"))?;
    let by_time = match start_from {
        StartFrom::Time(ms) => tidelake_lake::kafka::offsets_for_time(consumer, &new, ms, WATERMARK_TIMEOUT)
            .map_err(kafka("looking offsets up by time"))?,
        _ => vec![None; new.len()],
    };
    for ((tp, (low, high)), found) in new.into_iter().zip(watermarks).zip(by_time) {
        let start = match start_from {
            StartFrom::Earliest => low,
            StartFrom::Latest => high,
            // No record that late yet: start at the end.
            StartFrom::Time(_) => found.unwrap_or(high),
        };
        tracing::info!(partition = %tp, offset = start, ?start_from, "the lake has never held this partition; starting here");
        starts.insert(tp, start);
    }
    Ok(starts)
}

/// How long the broker may take to answer for the partitions' offsets.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(30);

fn end_offsets(
    consumer: &StreamConsumer<LakeContext>,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>> {
    let watermarks = tidelake_lake::kafka::watermarks(consumer, partitions, WATERMARK_TIMEOUT)
        .map_err(kafka("fetching watermarks"))?;
    Ok(partitions
        .iter()
        .zip(watermarks)
        .filter(|(_, (low, high))| high > low)
        .map(|(tp, (_, high))| (tp.clone(), high))
        .collect())
}

/// What `--stop-at-end` waits for: every partition of the topics consumed up to the end it had
/// when the poller started, whichever member of the consumer group holds it.
struct EndWatch {
    ends: BTreeMap<TopicPartition, i64>,
    /// Partitions of other members found finished; they stay finished.
    finished: HashSet<TopicPartition>,
    last_look: Option<Instant>,
    /// The unfinished partitions of other members and their lake offsets, since when unchanged.
    stalled: Option<(Instant, BTreeMap<TopicPartition, i64>)>,
    max_stall: Duration,
}

/// How often the lake and the broker are asked about other members' partitions.
const LOOK_EVERY: Duration = Duration::from_secs(1);

impl EndWatch {
    fn new(ends: BTreeMap<TopicPartition, i64>, max_stall: Duration) -> Self {
        EndWatch { ends, finished: HashSet::new(), last_look: None, stalled: None, max_stall }
    }

    /// Whether every partition is done. Only called between batches, so every record this
    /// consumer was handed has been handled.
    ///
    /// A partition assigned here is done when the lake holds offsets up to its end, or when the
    /// consumer reported reaching its end since its last record (the end can lie past the last
    /// record: transaction markers and aborted records take offsets too; end-of-partition events
    /// carry no topic, so with several topics only the lake's offsets count). A partition another
    /// member holds is done when the lake holds it up to its end, or when no record a reader sees
    /// lies between the lake's offset and that end. Those are looked at once a second, and only
    /// once this consumer's own partitions are done. When they stop moving for the retry time (a
    /// member that is alive but stuck), the poller gives up naming them, rather than exit 0 short.
    async fn done(
        &mut self,
        consumer: &StreamConsumer<LakeContext>,
        ingestor: &mut Ingestor,
        resume: &ResumeOffsets,
        eof: &HashSet<i32>,
        single_topic: bool,
    ) -> Result<bool> {
        // The client answers from its own state; should it fail, this is asked again next time.
        let Ok(assignment) = consumer.assignment() else { return Ok(false) };
        let own: HashSet<TopicPartition> =
            assignment.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())).collect();
        {
            let resume = resume.lock().expect("resume offsets lock");
            let own_done = own.iter().all(|tp| {
                let Some(end) = self.ends.get(tp) else { return true };
                resume.get(tp).is_some_and(|next| next >= end) || (single_topic && eof.contains(&tp.partition))
            });
            if !own_done {
                return Ok(false);
            }
        }
        let others: Vec<TopicPartition> =
            self.ends.keys().filter(|tp| !own.contains(*tp) && !self.finished.contains(*tp)).cloned().collect();
        if others.is_empty() {
            return Ok(true);
        }
        if self.last_look.is_some_and(|at| at.elapsed() < LOOK_EVERY) {
            return Ok(false);
        }
        self.last_look = Some(Instant::now());
        let unfinished = match self.look(ingestor, resume, &others).await {
            Ok(unfinished) => unfinished,
            // The lake or the broker failing to answer is a reason to look again, for as long as a
            // stall is waited out.
            Err(e) => {
                let (since, _) = self.stalled.get_or_insert_with(|| (Instant::now(), BTreeMap::new()));
                if since.elapsed() > self.max_stall {
                    return Err(e);
                }
                tracing::debug!(error = %e, "looking at the partitions other members hold failed; looking again");
                return Ok(false);
            }
        };
        if unfinished.is_empty() {
            tracing::info!("the partitions other members held are finished");
            return Ok(true);
        }
        match &self.stalled {
            Some((_, before)) if *before == unfinished => {}
            _ => {
                if self.stalled.is_none() {
                    tracing::info!(partitions = %names(unfinished.keys()), "own partitions done; waiting for the partitions other members hold");
                }
                self.stalled = Some((Instant::now(), unfinished));
                return Ok(false);
            }
        }
        let (since, unfinished) = self.stalled.as_ref().expect("stalled set above");
        if since.elapsed() > self.max_stall {
            return Err(Error::Unfinished {
                partitions: unfinished
                    .iter()
                    .map(|(tp, next)| format!("{tp} (lake at {next}, end {})", self.ends[tp]))
                    .collect::<Vec<_>>()
                    .join(", "),
                seconds: since.elapsed().as_secs(),
            });
        }
        Ok(false)
    }

    /// Of `others`, the partitions not finished yet, with the offset the lake resumes them at.
    async fn look(
        &mut self,
        ingestor: &mut Ingestor,
        resume: &ResumeOffsets,
        others: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let lake = ingestor.resume_offsets(others).await?;
        let mut probe: BTreeMap<String, BTreeMap<i32, (i64, i64)>> = BTreeMap::new();
        {
            let mut resume = resume.lock().expect("resume offsets lock");
            for tp in others {
                // A partition handed here later resumes where the lake is now, not where it was.
                if let Some(next) = lake.get(tp) {
                    let at = resume.entry(tp.clone()).or_insert(*next);
                    *at = (*at).max(*next);
                }
                let next = resume.get(tp).copied().unwrap_or(0);
                let end = self.ends[tp];
                if next >= end {
                    self.finished.insert(tp.clone());
                } else {
                    probe.entry(tp.topic.clone()).or_default().insert(tp.partition, (next, end));
                }
            }
        }
        let mut unfinished = BTreeMap::new();
        if probe.is_empty() {
            return Ok(unfinished);
        }
        let config = ingestor.config().clone();
        let found = tokio::task::spawn_blocking(move || -> Result<BTreeMap<TopicPartition, Option<i64>>> {
            // A reader of its own each time: see `RangeReader::first_offsets`.
            let reader = RangeReader::new(&config, "end-probe")?;
            let mut found = BTreeMap::new();
            for (topic, ranges) in probe {
                let firsts = reader.first_offsets(&topic, &ranges)?;
                found.extend(firsts.into_iter().map(|(p, first)| (TopicPartition::new(&topic, p), first)));
            }
            Ok(found)
        })
        .await
        .expect("the end probe does not panic")?;
        let resume = resume.lock().expect("resume offsets lock");
        for (tp, first) in found {
            if first.is_none() {
                self.finished.insert(tp);
            } else {
                let next = resume.get(&tp).copied().unwrap_or(0);
                unfinished.insert(tp, next);
            }
        }
        Ok(unfinished)
    }
}

fn names<'a>(partitions: impl Iterator<Item = &'a TopicPartition>) -> String {
    partitions.map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn commit_offsets(consumer: &StreamConsumer<LakeContext>, batch: &KafkaBatch, resume: &ResumeOffsets) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    let mut resume = resume.lock().expect("resume offsets lock");
    for (tp, last) in batch.last_offsets() {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(last + 1))
            .map_err(kafka("building the offset commit"))?;
        let next = resume.entry(tp).or_insert(last + 1);
        *next = (*next).max(last + 1);
    }
    drop(resume);
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        // The lake holds the offsets that matter; a failed group commit only delays lag metrics.
        tracing::warn!(error = %e, "committing consumer group offsets failed");
    }
    Ok(())
}

/// The records of `topic` whose offsets Kafka's time index puts in `[from_ms, to_ms]` (both
/// optional), read_committed, in offset order per partition. For reprocessing from Kafka while the
/// topic still holds the range: when a partition no longer holds the start of the range (its
/// earliest record is already at or after `from_ms` and earlier records were deleted), the error
/// says so rather than replaying part of it.
pub fn read_range(
    config: &PipelineConfig,
    topic: &str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Vec<KafkaRecord>> {
    let reader = RangeReader::new(config, "replay")?;
    let partitions = reader.partitions(topic)?;
    let starts = from_ms.map(|ms| reader.offsets_for_time(topic, &partitions, ms)).transpose()?;
    let ends = to_ms.map(|ms| reader.offsets_for_time(topic, &partitions, ms + 1)).transpose()?;
    let watermarks = reader.watermarks(topic, &partitions)?;
    let mut ranges = BTreeMap::new();
    for p in &partitions {
        let (low, high) = watermarks[p];
        let start = match &starts {
            Some(starts) => match starts[p] {
                Some(o) if o == low && low > 0 => {
                    return Err(Error::Kafka {
                        context: format!(
                            "replaying {topic}-{p} from {}: Kafka no longer holds the start of the range (offsets below {low} are deleted); reprocess it from the archive",
                            chrono::DateTime::from_timestamp_millis(from_ms.unwrap_or_default()).map_or_else(String::new, |t| t.to_rfc3339())
                        ),
                        source: KafkaError::Seek("range start deleted".into()),
                    });
                }
                Some(o) => o,
                None => high,
            },
            None => low,
        };
        let end = ends.as_ref().and_then(|e| e[p]).unwrap_or(high);
        ranges.insert(*p, (start, end));
    }
    Ok(reader.read(topic, &ranges)?)
}
