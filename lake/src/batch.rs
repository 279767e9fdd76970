//! [`KafkaBatch`]: the micro-batch every function handles, whether it came from a Lambda Kafka event or
//! from the local rdkafka poller.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A topic and partition, written `topic-partition` as in the Lambda Kafka event.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a topic-partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// One Kafka record, exactly as it was read: the archive keeps these bytes for reprocessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    /// Topic it was read from, shared by the records of one topic (see [`TopicNames`]).
    pub topic: Arc<str>,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Kafka timestamp in milliseconds since the epoch, when the broker gave one.
    pub timestamp_ms: Option<i64>,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub value: Option<Vec<u8>>,
    /// Record headers, in order; a header may have no value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The topic names records are read with: each name is allocated once and shared by every record
/// of its topic, not copied into each.
#[derive(Debug, Default)]
pub struct TopicNames(Vec<Arc<str>>);

impl TopicNames {
    /// The shared name `topic`.
    pub fn get(&mut self, topic: &str) -> Arc<str> {
        if let Some(name) = self.0.iter().find(|name| name.as_ref() == topic) {
            return name.clone();
        }
        let name: Arc<str> = topic.into();
        self.0.push(name.clone());
        name
    }
}

impl KafkaRecord {
    /// Key and value bytes, the size a batch limit counts.
    pub fn payload_len(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len)
    }

    /// Where the record came from, `topic-partition@offset`.
    pub fn position(&self) -> String {
        format!("{}-{}@{}", self.topic, self.partition, self.offset)
    }
}

/// A micro-batch of records from any number of topic-partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaBatch {
    /// The records, in any order; offsets within a partition need not be contiguous.
    pub records: Vec<KafkaRecord>,
}

impl KafkaBatch {
    /// Wraps records into a batch.
    pub fn new(records: Vec<KafkaRecord>) -> Self {
        KafkaBatch { records }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Key and value bytes of all records.
    pub fn payload_len(&self) -> usize {
        self.records.iter().map(KafkaRecord::payload_len).sum()
    }

    /// The highest offset of each topic-partition in the batch.
    pub fn last_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        last_offsets(&self.records)
    }
}

/// The highest offset of each topic-partition of `records`.
pub fn last_offsets<'a>(records: impl IntoIterator<Item = &'a KafkaRecord>) -> BTreeMap<TopicPartition, i64> {
    let mut last = BTreeMap::new();
    for r in records {
        let entry = last.entry(TopicPartition::new(&*r.topic, r.partition)).or_insert(r.offset);
        *entry = (*entry).max(r.offset);
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_one_topic_share_its_name() {
        let mut names = TopicNames::default();
        let (a, b) = (names.get("ad_events"), names.get("orders"));
        assert!(Arc::ptr_eq(&a, &names.get("ad_events")));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!((&*a, &*b), ("ad_events", "orders"));
    }
}
