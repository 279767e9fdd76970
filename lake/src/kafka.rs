//! Reading bounded offset ranges of a topic (feature `kafka`): a replay of a time range and the
//! Kafka tail of a live query both read "these partitions, from here to there", read_committed, and
//! stop where Kafka says the partition ends.
//!
//! A partition's range ends at its `end` offset or where the consumer reports the end of the
//! partition, whichever comes first: transaction markers and aborted records take offsets too, and
//! read_committed stops at the last stable offset, so the last offsets of a range may hold nothing
//! to read.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::batch::{KafkaRecord, TopicNames, TopicPartition};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};

/// How long a broker request may take before the read gives up.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How long the first request to a cluster may take before it is reported as not answering.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a range reader lets the broker hold a fetch for records not yet there, unless the
/// config's Kafka properties say otherwise. A reader asks only for offsets below the high
/// watermark, so waiting never brings it a record; librdkafka's default (500 ms) left the next read
/// of a reused reader waiting that long behind the last fetch of the one before.
const RANGE_FETCH_WAIT_MS: &str = "5";

/// How long librdkafka waits before its first reconnect to a broker, unless the config's Kafka
/// properties say otherwise (it doubles on each failure, up to `reconnect.backoff.max.ms`). It also
/// spaces the client's connections to brokers it has just learned of by half of it: librdkafka's
/// default, 100 ms, held every new client ~50 ms between the bootstrap connection and the one to
/// the broker the metadata names, most of a poller's start.
const RECONNECT_BACKOFF_MS: &str = "10";

/// A client config for the cluster of `config`: its Kafka properties, its brokers, and the defaults
/// tidelake sets where the properties are silent. `group.id` and what the client is for come on top.
pub fn client_config(config: &PipelineConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (key, value) in &config.kafka.properties {
        client.set(key, value);
    }
    client.set("bootstrap.servers", &config.kafka.brokers);
    if !config.kafka.properties.contains_key("reconnect.backoff.ms") {
        client.set("reconnect.backoff.ms", RECONNECT_BACKOFF_MS);
    }
    client
}

/// The earliest offset each of `partitions` still holds and the offset after its last record a
/// reader of the client's isolation level can see (the last stable offset under read_committed),
/// in the order given. Two requests to each partition leader however many partitions: asked one
/// partition at a time, it is two round trips each.
pub fn watermarks<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> std::result::Result<Vec<(i64, i64)>, KafkaError> {
    // The earliest (-2) and latest (-1) markers in place of a time make the same ListOffsets
    // request a single partition's watermark query sends.
    let known = |offsets: Vec<Offset>| -> std::result::Result<Vec<i64>, KafkaError> {
        offsets
            .into_iter()
            .map(|offset| match offset {
                Offset::Offset(offset) => Ok(offset),
                _ => Err(KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetOutOfRange)),
            })
            .collect()
    };
    let low = known(list_offsets(consumer, partitions, Offset::Beginning, timeout)?)?;
    let high = known(list_offsets(consumer, partitions, Offset::End, timeout)?)?;
    Ok(low.into_iter().zip(high).collect())
}

/// The first offset of each of `partitions` whose record's timestamp is at or after `ms` (Kafka's
/// time index), in the order given; `None` where no record is that late. One request to each
/// partition leader.
pub fn offsets_for_time<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    partitions: &[TopicPartition],
    ms: i64,
    timeout: Duration,
) -> std::result::Result<Vec<Option<i64>>, KafkaError> {
    let found = list_offsets(consumer, partitions, Offset::Offset(ms), timeout)?;
    Ok(found.into_iter().map(|offset| if let Offset::Offset(o) = offset { Some(o) } else { None }).collect())
}

/// One ListOffsets request for all of `partitions` at `at` (a time, or the earliest or latest
/// marker): what each partition answered, in the order given.
fn list_offsets<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    partitions: &[TopicPartition],
    at: Offset,
    timeout: Duration,
) -> std::result::Result<Vec<Offset>, KafkaError> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let mut list = TopicPartitionList::with_capacity(partitions.len());
    for tp in partitions {
        list.add_partition_offset(&tp.topic, tp.partition, at)?;
    }
    let found = consumer.offsets_for_times(list, timeout)?;
    partitions
        .iter()
        .map(|tp| {
            let element = found
                .find_partition(&tp.topic, tp.partition)
                .ok_or(KafkaError::OffsetFetch(RDKafkaErrorCode::UnknownPartition))?;
            element.error()?;
            Ok(element.offset())
        })
        .collect()
}

/// A client context that keeps librdkafka's own log lines and error callbacks at debug level:
/// what fails reaches the caller as the error of its request, in one line, rather than as a
/// stream of reconnect attempts on the terminal.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", ?level, fac, "{log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, reason, "client error");
    }
}

impl ConsumerContext for QuietContext {}

/// Whether `error` means no broker answered (down, unreachable, too slow), rather than a refusal.
pub fn is_unanswered(error: &KafkaError) -> bool {
    let code = match error {
        KafkaError::MetadataFetch(code) | KafkaError::Global(code) => *code,
        other => match other.rdkafka_error_code() {
            Some(code) => code,
            None => return false,
        },
    };
    matches!(
        code,
        RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::RequestTimedOut
    )
}

/// A consumer of the config's cluster that reads fixed ranges, outside any consumer group's
/// assignment (it never commits offsets).
pub struct RangeReader {
    consumer: BaseConsumer<QuietContext>,
    brokers: String,
}

impl std::fmt::Debug for RangeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeReader").finish_non_exhaustive()
    }
}

impl RangeReader {
    /// A reader for `config`'s cluster; `purpose` names its `group.id` (`<group_id>-<purpose>`).
    pub fn new(config: &PipelineConfig, purpose: &str) -> Result<Self> {
        let mut client = client_config(config);
        client
            .set("group.id", format!("{}-{purpose}", config.kafka.group_id))
            .set("isolation.level", &config.kafka.isolation_level)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true");
        for key in ["fetch.wait.max.ms", "fetch.queue.backoff.ms"] {
            if !config.kafka.properties.contains_key(key) {
                client.set(key, RANGE_FETCH_WAIT_MS);
            }
        }
        let consumer =
            client.create_with_context(QuietContext).map_err(kafka(format!("creating the {purpose} consumer")))?;
        Ok(RangeReader { consumer, brokers: config.kafka.brokers.clone() })
    }

    /// The partitions of `topic`. A cluster that does not answer within [`ANSWER_TIMEOUT`] is
    /// reported as such.
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>> {
        let metadata = self.consumer.fetch_metadata(Some(topic), ANSWER_TIMEOUT).map_err(|e| {
            if is_unanswered(&e) {
                Error::KafkaUnreachable { brokers: self.brokers.clone(), reason: e.to_string() }
            } else {
                Error::Kafka { context: format!("fetching metadata of {topic}"), source: e }
            }
        })?;
        let topic_metadata = metadata.topics().iter().find(|t| t.name() == topic);
        match topic_metadata {
            Some(t) if t.error().is_none() => Ok(t.partitions().iter().map(|p| p.id()).collect()),
            _ => Err(Error::Kafka {
                context: format!("topic {topic} does not exist on {}", self.brokers),
                source: KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
            }),
        }
    }

    /// For each of `partitions` of `topic`, the earliest offset it still holds and the offset after
    /// its last record ([`watermarks`]).
    pub fn watermarks(&self, topic: &str, partitions: &[i32]) -> Result<BTreeMap<i32, (i64, i64)>> {
        let listed: Vec<TopicPartition> = partitions.iter().map(|p| TopicPartition::new(topic, *p)).collect();
        let found = watermarks(&self.consumer, &listed, TIMEOUT)
            .map_err(kafka(format!("fetching the watermarks of {topic}")))?;
        Ok(partitions.iter().copied().zip(found).collect())
    }

    /// The first offset of each of `partitions` whose record is at or after `ms` (Kafka's time
    /// index); `None` where no record is that late.
    pub fn offsets_for_time(&self, topic: &str, partitions: &[i32], ms: i64) -> Result<BTreeMap<i32, Option<i64>>> {
        let listed: Vec<TopicPartition> = partitions.iter().map(|p| TopicPartition::new(topic, *p)).collect();
        let found = offsets_for_time(&self.consumer, &listed, ms, TIMEOUT)
            .map_err(kafka(format!("looking offsets of {topic} up by time")))?;
        Ok(partitions.iter().copied().zip(found).collect())
    }

    /// For each of `ranges` (partition -> `[start, end)`), the offset of its first record a reader
    /// of this isolation level sees, or `None` when it has none: the offsets it spans are
    /// transaction markers, aborted records, or nothing yet. Reads at most one record per
    /// partition. Meant for a reader used once: an end-of-partition event names no range, so one
    /// left over from an earlier use would be taken for this one's.
    pub fn first_offsets(&self, topic: &str, ranges: &BTreeMap<i32, (i64, i64)>) -> Result<BTreeMap<i32, Option<i64>>> {
        let mut first: BTreeMap<i32, Option<i64>> =
            ranges.iter().filter(|(_, (start, end))| start >= end).map(|(p, _)| (*p, None)).collect();
        self.scan(topic, ranges, |p, (start, end), message| match message {
            None => {
                first.insert(p, None);
                true
            }
            Some(message) if message.offset() < start => false,
            Some(message) => {
                first.insert(p, (message.offset() < end).then_some(message.offset()));
                true
            }
        })?;
        Ok(first)
    }

    /// Assigns the non-empty ranges of `ranges` (partition -> `[start, end)`) and polls until
    /// `visit` has closed each: it gets every record of a partition still open, or `None` when
    /// Kafka reports the partition's end, and says whether that partition is done.
    fn scan(
        &self,
        topic: &str,
        ranges: &BTreeMap<i32, (i64, i64)>,
        mut visit: impl FnMut(i32, (i64, i64), Option<&BorrowedMessage<'_>>) -> bool,
    ) -> Result<()> {
        let mut open: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for (p, (start, end)) in ranges {
            if start < end {
                assignment
                    .add_partition_offset(topic, *p, Offset::Offset(*start))
                    .map_err(kafka("assigning".into()))?;
                open.insert(*p, (*start, *end));
            }
        }
        if open.is_empty() {
            return Ok(());
        }
        self.consumer.assign(&assignment).map_err(kafka(format!("assigning partitions of {topic}")))?;
        while !open.is_empty() {
            let (p, message) = match self.consumer.poll(TIMEOUT) {
                None => {
                    return Err(Error::Kafka {
                        context: format!("reading {topic}: no record for {} s", TIMEOUT.as_secs()),
                        source: KafkaError::NoMessageReceived,
                    })
                }
                Some(Err(KafkaError::PartitionEOF(p))) => (p, None),
                Some(Err(e)) => return Err(Error::Kafka { context: format!("reading {topic}"), source: e }),
                Some(Ok(message)) => (message.partition(), Some(message)),
            };
            // A reader used before may still hand over a record of a partition no longer asked for.
            let Some(range) = open.get(&p).copied() else { continue };
            if visit(p, range, message.as_ref()) {
                open.remove(&p);
            }
        }
        self.consumer.unassign().map_err(kafka(format!("releasing partitions of {topic}")))?;
        Ok(())
    }

    /// The records of `topic` in `ranges` (partition -> `[start, end)`), in offset order per
    /// partition.
    pub fn read(&self, topic: &str, ranges: &BTreeMap<i32, (i64, i64)>) -> Result<Vec<KafkaRecord>> {
        Ok(self.read_to_end(topic, ranges)?.0)
    }

    /// Like [`read`](Self::read), with the partitions that ended before their range did (Kafka
    /// reported the end of the partition first): nothing past the records read is there to read.
    pub fn read_to_end(
        &self,
        topic: &str,
        ranges: &BTreeMap<i32, (i64, i64)>,
    ) -> Result<(Vec<KafkaRecord>, BTreeSet<i32>)> {
        let mut ended = BTreeSet::new();
        let (mut records, mut names) = (Vec::new(), TopicNames::default());
        // Per partition, the next offset not seen yet: a reader used before may still hand over a
        // record fetched for an earlier range; only the asked range counts, and each offset once.
        let mut next: BTreeMap<i32, i64> = ranges.iter().map(|(p, (start, _))| (*p, *start)).collect();
        self.scan(topic, ranges, |p, (_, end), message| {
            let Some(message) = message else {
                ended.insert(p);
                return true;
            };
            let next = next.entry(p).or_default();
            if message.offset() < *next {
                return false;
            }
            if message.offset() < end {
                records.push(to_record(message, &mut names));
            }
            *next = message.offset() + 1;
            message.offset() >= end - 1
        })?;
        records.sort_by_key(|r| (r.partition, r.offset));
        Ok((records, ended))
    }
}

/// Copies a consumed message into a [`KafkaRecord`], its topic's name from `names`.
pub fn to_record(message: &BorrowedMessage<'_>, names: &mut TopicNames) -> KafkaRecord {
    let headers = message
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
        .unwrap_or_default();
    KafkaRecord {
        topic: names.get(message.topic()),
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

fn kafka(context: String) -> impl FnOnce(KafkaError) -> Error {
    move |source| Error::Kafka { context, source }
}
