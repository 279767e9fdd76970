//! The two side tables every data table has: dead letters (records that could not be decoded, with the
//! reason) and the raw-batch archive (every record exactly as read, for reprocessing).
//!
//! Both are Delta tables written through [`OffsetTable`](crate::delta::OffsetTable), so they hold each
//! offset exactly once, like the data table. Their rows are built here from the batch's records,
//! leaving out offsets the table already holds.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Date32Array, Int32Array, Int64Array, ListBuilder, RecordBatch,
    StringArray, StringBuilder, StructBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Field, Fields, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};

use crate::batch::{KafkaRecord, TopicNames, TopicPartition};
use crate::error::{Error, Result};

/// A record that could not be ingested, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    /// The record, bytes and position as read.
    pub record: &'a KafkaRecord,
    /// What was wrong with it.
    pub reason: String,
}

/// The kind of a dead letter: its reason up to the first colon (`column `cost``, `invalid JSON`),
/// what summaries count dead letters by.
pub fn reason_kind(reason: &str) -> &str {
    reason.split(':').next().unwrap_or(reason).trim()
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

static DEAD_LETTER_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("timestamp", utc_micros(), true),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("failed_at", utc_micros(), false),
    ]))
});

fn header_fields() -> Fields {
    Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Binary, true)])
}

static ARCHIVE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("timestamp", utc_micros(), true),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new(
            "headers",
            DataType::List(Arc::new(Field::new("element", DataType::Struct(header_fields()), true))),
            true,
        ),
        Field::new("archive_date", DataType::Date32, false),
    ]))
});

/// Schema of a dead-letter table.
pub fn dead_letter_schema() -> SchemaRef {
    DEAD_LETTER_SCHEMA.clone()
}

/// Schema of an archive table, partitioned by `archive_date` (the UTC day of the Kafka timestamp).
pub fn archive_schema() -> SchemaRef {
    ARCHIVE_SCHEMA.clone()
}

/// Partition columns of an archive table.
pub fn archive_partition_columns() -> Vec<String> {
    vec!["archive_date".to_string()]
}

/// The last offset `committed` holds of `record`'s topic-partition: a scan of the few partitions a
/// batch holds, without building a key.
fn held(record: &KafkaRecord, committed: &HashMap<TopicPartition, i64>) -> Option<i64> {
    committed
        .iter()
        .find(|(tp, _)| tp.partition == record.partition && *tp.topic == *record.topic)
        .map(|(_, done)| *done)
}

/// For each of `records`, whether it is above what `committed` holds for its topic-partition: the
/// topic-partition is looked up once per run of records of one, as a batch's come sorted.
pub fn pending(records: &[&KafkaRecord], committed: &HashMap<TopicPartition, i64>) -> Vec<bool> {
    let mut run: Option<(&KafkaRecord, Option<i64>)> = None;
    records
        .iter()
        .map(|r| {
            let done = match run {
                Some((first, done)) if first.partition == r.partition && first.topic == r.topic => done,
                _ => {
                    let done = held(r, committed);
                    run = Some((r, done));
                    done
                }
            };
            done.is_none_or(|done| r.offset > done)
        })
        .collect()
}

fn micros(ms: Option<i64>) -> Option<i64> {
    ms.map(|ms| ms.saturating_mul(1000))
}

fn utc(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter(values).with_timezone("UTC"))
}

/// A binary column, its buffer sized for the values first: a batch's payloads are held once, not
/// in a buffer grown to twice their size.
fn binary<'a>(values: impl Iterator<Item = Option<&'a [u8]>> + Clone) -> ArrayRef {
    let (count, bytes) = values.clone().fold((0, 0), |(n, b), v| (n + 1, b + v.map_or(0, <[u8]>::len)));
    let mut builder = BinaryBuilder::with_capacity(count, bytes);
    for v in values {
        builder.append_option(v);
    }
    Arc::new(builder.finish())
}

/// Rows for the dead-letter table: `rows` (the letters a commit owes, see [`pending`]), stamped
/// `failed_at_us`.
pub fn dead_letter_rows(rows: &[&DeadLetter<'_>], failed_at_us: i64) -> Result<Option<RecordBatch>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|l| &*l.record.topic))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|l| l.record.partition))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|l| l.record.offset))),
        utc(rows.iter().map(|l| micros(l.record.timestamp_ms))),
        binary(rows.iter().map(|l| l.record.key.as_deref())),
        binary(rows.iter().map(|l| l.record.value.as_deref())),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|l| l.reason.as_str()))),
        utc(rows.iter().map(|_| Some(failed_at_us))),
    ];
    RecordBatch::try_new(dead_letter_schema(), columns).map(Some).map_err(Error::arrow("building dead-letter rows"))
}

/// Rows for the archive table: the records `pending` marks (their [`pending`] against the offsets
/// the table holds). A record without a Kafka timestamp is filed under the day of `now_us`.
pub fn archive_rows(records: &[&KafkaRecord], pending: &[bool], now_us: i64) -> Result<Option<RecordBatch>> {
    let rows: Vec<&KafkaRecord> = records.iter().zip(pending).filter_map(|(r, p)| p.then_some(*r)).collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let mut headers = ListBuilder::new(StructBuilder::from_fields(header_fields(), 0))
        .with_field(Arc::new(Field::new("element", DataType::Struct(header_fields()), true)));
    for r in &rows {
        let entries = headers.values();
        for (key, value) in &r.headers {
            entries.field_builder::<StringBuilder>(0).expect("key").append_value(key);
            entries.field_builder::<BinaryBuilder>(1).expect("value").append_option(value.as_deref());
            entries.append(true);
        }
        headers.append(true);
    }
    let day = |r: &KafkaRecord| (micros(r.timestamp_ms).unwrap_or(now_us).div_euclid(86_400_000_000)) as i32;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &*r.topic))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.partition))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
        utc(rows.iter().map(|r| micros(r.timestamp_ms))),
        binary(rows.iter().map(|r| r.key.as_deref())),
        binary(rows.iter().map(|r| r.value.as_deref())),
        Arc::new(headers.finish()),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| day(r)))),
    ];
    RecordBatch::try_new(archive_schema(), columns).map(Some).map_err(Error::arrow("building archive rows"))
}

/// The records of archive rows, as they were read from Kafka (the inverse of [`archive_rows`]). The
/// rows may lack the partition column `archive_date` (data files of a partitioned table do).
pub fn records_from_archive(rows: &RecordBatch) -> Result<Vec<KafkaRecord>> {
    let column = |name: &str| {
        rows.column_by_name(name).ok_or_else(|| Error::Arrow {
            context: format!("reading archive rows: no column `{name}`"),
            source: arrow::error::ArrowError::SchemaError(name.to_string()),
        })
    };
    let topics = column("topic")?.as_string::<i32>();
    let partitions = column("partition")?.as_primitive::<Int32Type>();
    let offsets = column("offset")?.as_primitive::<Int64Type>();
    let timestamps = column("timestamp")?.as_primitive::<TimestampMicrosecondType>();
    let keys = column("key")?.as_binary::<i32>();
    let values = column("value")?.as_binary::<i32>();
    let headers = column("headers")?.as_list::<i32>();
    let bytes = |a: &arrow::array::BinaryArray, i: usize| a.is_valid(i).then(|| a.value(i).to_vec());
    let mut topic_names = TopicNames::default();
    Ok((0..rows.num_rows())
        .map(|i| {
            let mut pairs = Vec::new();
            if headers.is_valid(i) {
                let entries = headers.value(i);
                let entries = entries.as_struct();
                let (names, contents) = (entries.column(0).as_string::<i32>(), entries.column(1).as_binary::<i32>());
                for j in 0..entries.len() {
                    pairs.push((names.value(j).to_string(), bytes(contents, j)));
                }
            }
            KafkaRecord {
                topic: topic_names.get(topics.value(i)),
                partition: partitions.value(i),
                offset: offsets.value(i),
                timestamp_ms: timestamps.is_valid(i).then(|| timestamps.value(i).div_euclid(1000)),
                key: bytes(keys, i),
                value: bytes(values, i),
                headers: pairs,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64) -> KafkaRecord {
        KafkaRecord {
            topic: "t".into(),
            partition,
            offset,
            timestamp_ms: Some(1_763_900_000_000),
            key: Some(b"k".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: vec![("h".into(), Some(b"v".to_vec())), ("empty".into(), None)],
        }
    }

    #[test]
    fn archive_rows_skip_committed_offsets() {
        let records = [record(0, 5), record(0, 6), record(1, 0)];
        let records: Vec<&KafkaRecord> = records.iter().collect();
        let committed = HashMap::from([(TopicPartition::new("t", 0), 5)]);
        let batch = archive_rows(&records, &pending(&records, &committed), 0).unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let all_held = HashMap::from([(TopicPartition::new("t", 0), 6), (TopicPartition::new("t", 1), 0)]);
        let none = archive_rows(&records, &pending(&records, &all_held), 0).unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn pending_is_asked_once_per_run_and_answers_as_for_each_record() {
        let other = |partition, offset| KafkaRecord { topic: "u".into(), ..record(partition, offset) };
        let records = [
            record(0, 4),
            record(0, 5),
            record(0, 6),
            record(1, 0),
            other(0, 1),
            other(0, 9),
            record(0, 7),
            record(2, 3),
        ];
        let records: Vec<&KafkaRecord> = records.iter().collect();
        let committed = HashMap::from([
            (TopicPartition::new("t", 0), 5),
            (TopicPartition::new("t", 1), 0),
            (TopicPartition::new("u", 0), 3),
        ]);
        let each: Vec<bool> = records.iter().map(|r| held(r, &committed).is_none_or(|done| r.offset > done)).collect();
        assert_eq!(pending(&records, &committed), each);
        assert_eq!(each, [false, false, true, false, false, true, true, true]);
    }

    #[test]
    fn archived_records_read_back_as_they_were() {
        let records = vec![record(0, 5), record(1, 0), KafkaRecord { key: None, headers: vec![], ..record(1, 1) }];
        let refs: Vec<&KafkaRecord> = records.iter().collect();
        let batch = archive_rows(&refs, &pending(&refs, &HashMap::new()), 0).unwrap().unwrap();
        assert_eq!(records_from_archive(&batch).unwrap(), records);
    }

    #[test]
    fn a_dead_letter_s_kind_is_its_reason_up_to_the_first_colon() {
        assert_eq!(reason_kind("column `cost`: `1.1234567` has more than 6 decimal places"), "column `cost`");
        assert_eq!(reason_kind("invalid JSON: expected value at line 1 column 1"), "invalid JSON");
        assert_eq!(
            reason_kind("required field `ad_id` is missing or null"),
            "required field `ad_id` is missing or null"
        );
    }

    #[test]
    fn dead_letters_keep_reason_and_bytes() {
        let r = record(2, 9);
        let letter = DeadLetter { record: &r, reason: "bad".into() };
        let batch = dead_letter_rows(&[&letter], 1).unwrap().unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema().field(6).name(), "reason");
    }
}
