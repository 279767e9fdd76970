//! The Kafka tail of a table: the records of its topic above the offsets its data table has
//! committed as of one snapshot, decoded with the table's schema.
//!
//! The data table's commits carry, per topic-partition, the last offset they hold (`txn` actions in
//! the same commit as the files). So a snapshot at version V holds exactly the offsets up to those
//! numbers, and the tail starts one past them: together they miss no offset and hold none twice.
//! The tail ends where each partition ends when it is read (read_committed: at the last stable
//! offset; records of aborted transactions are never read).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use deltalake::DeltaTable;
use tidelake_lake::decode::{decode_records, Decoded};
use tidelake_lake::kafka::RangeReader;
use tidelake_lake::{KafkaRecord, PipelineConfig, TableSpec, TopicPartition};

use crate::error::{Error, Result};

/// The tail of one table as of one snapshot of its data table.
#[derive(Debug)]
pub struct Tail {
    /// The records read, in Kafka order (partition, offset).
    pub records: Vec<KafkaRecord>,
    /// Decoded rows in the table schema (declared columns, then partition columns).
    pub rows: RecordBatch,
    /// For each row, the index of its record in `records`.
    pub row_sources: Vec<usize>,
    /// Records that are not a row of the table (they go to the dead letters when ingested): skipped.
    pub poison: usize,
    /// Per partition, the offsets read: `[one past the lake's last, end)`.
    pub ranges: BTreeMap<i32, (i64, i64)>,
}

/// Where the tail of a table lies as of one snapshot of its data table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Per partition, the offsets `[one past the lake's last, end)` Kafka still holds.
    pub ranges: BTreeMap<i32, (i64, i64)>,
    /// Per partition, offsets above the lake's that Kafka no longer holds: `[first, last]`
    /// (retention deleted them before ingest read them).
    pub lost: BTreeMap<i32, (i64, i64)>,
}

impl Bounds {
    /// Offsets above the lake's, summed over the partitions: how far ingest is behind.
    pub fn behind(&self) -> u64 {
        count(&self.ranges)
    }

    /// Refuses a tail with lost offsets, unless `allow` (then it is logged and read without them).
    pub fn check_lost(&self, spec: &TableSpec, allow: bool) -> Result<()> {
        if self.lost.is_empty() {
            return Ok(());
        }
        let lost = self
            .lost
            .iter()
            .map(|(p, (first, last))| format!("partition {p}: offsets {first}..={last} ({} records)", last - first + 1))
            .collect::<Vec<_>>()
            .join(", ");
        if allow {
            tracing::warn!(table = %spec.name, topic = %spec.topic, %lost, "answering without Kafka records lost to retention");
            return Ok(());
        }
        Err(Error::TailLost { table: spec.name.clone(), topic: spec.topic.clone(), lost })
    }
}

/// Offsets in `ranges`, summed.
pub fn count(ranges: &BTreeMap<i32, (i64, i64)>) -> u64 {
    ranges.values().map(|(start, end)| (end - start).max(0) as u64).sum()
}

/// Where the tail of `spec`'s topic lies above the offsets `lake` (the data table, loaded at the
/// snapshot the query reads) holds: the partitions' watermarks and the lake's offsets, no record.
pub async fn bounds(
    config: &PipelineConfig,
    spec: &TableSpec,
    lake: Option<&DeltaTable>,
    readers: &Arc<Readers>,
) -> Result<Bounds> {
    let (reader_config, topic, pool) = (config.clone(), spec.topic.clone(), readers.clone());
    let watermarks = blocking(move || {
        let reader = pool.take(&reader_config)?;
        let listed = reader.partitions(&topic).and_then(|partitions| reader.watermarks(&topic, &partitions));
        pool.give(reader);
        Ok(listed?)
    })
    .await?;

    let partitions: Vec<TopicPartition> = watermarks.keys().map(|p| TopicPartition::new(&spec.topic, *p)).collect();
    let committed = match lake {
        Some(table) => tidelake_lake::delta::committed_offsets(&spec.name, table, &partitions).await?,
        None => Default::default(),
    };
    let mut bounds = Bounds::default();
    for (p, (low, high)) in watermarks {
        let after_lake = committed.get(&TopicPartition::new(&spec.topic, p)).map(|last| last + 1);
        // A partition the lake has never held starts where Kafka does; one it has, one past its
        // offsets, and what retention deleted in between is lost to every query.
        if let Some(after) = after_lake.filter(|after| *after < low) {
            bounds.lost.insert(p, (after, low - 1));
        }
        bounds.ranges.insert(p, (after_lake.unwrap_or(low).max(low), high));
    }
    Ok(bounds)
}

/// Reads the whole tail of `spec`'s topic above the offsets `lake` holds; a tail of more than
/// `max_records` offsets is refused before anything is read (ingest is that far behind).
pub async fn read(
    config: &PipelineConfig,
    spec: &TableSpec,
    lake: Option<&DeltaTable>,
    readers: &Arc<Readers>,
    max_records: u64,
    allow_lost: bool,
) -> Result<Tail> {
    let bounds = bounds(config, spec, lake, readers).await?;
    bounds.check_lost(spec, allow_lost)?;
    let behind = bounds.behind();
    if behind > max_records {
        return Err(Error::TailTooLarge {
            table: spec.name.clone(),
            topic: spec.topic.clone(),
            reads: behind,
            behind,
            max: max_records,
        });
    }
    let records = read_ranges(config, &spec.topic, bounds.ranges.clone(), readers).await?;
    let decoded = decode_logged(spec, &records).await?;
    Ok(Tail {
        poison: decoded.rejected.len(),
        rows: decoded.rows,
        row_sources: decoded.row_sources,
        records,
        ranges: bounds.ranges,
    })
}

/// The records of `topic` in `ranges` (partition -> `[start, end)`), with a reader of the pool.
pub async fn read_ranges(
    config: &PipelineConfig,
    topic: &str,
    ranges: BTreeMap<i32, (i64, i64)>,
    readers: &Arc<Readers>,
) -> Result<Vec<KafkaRecord>> {
    let (reader_config, topic, pool) = (config.clone(), topic.to_string(), readers.clone());
    blocking(move || {
        let reader = pool.take(&reader_config)?;
        let records = reader.read(&topic, &ranges)?;
        pool.give(reader);
        Ok(records)
    })
    .await
}

/// `records` decoded with `spec`'s schema; the records that are not rows are logged, once.
pub async fn decode_logged(spec: &TableSpec, records: &[KafkaRecord]) -> Result<Decoded> {
    let refs: Vec<&KafkaRecord> = records.iter().collect();
    let decoded = decode_records(spec, &refs).await?;
    if let Some((first, reason)) = decoded.rejected.first() {
        tracing::warn!(
            table = %spec.name,
            skipped = decoded.rejected.len(),
            first = %records[*first].position(),
            %reason,
            "records of the Kafka tail that are not rows of the table were skipped"
        );
    }
    Ok(decoded)
}

/// Kafka readers kept between queries: a reader that has read a topic knows its partitions' leaders
/// and has its broker connections open, so the next tail read skips those round trips. Each read
/// takes a reader of its own and gives it back when it has read its range.
#[derive(Default)]
pub struct Readers(Mutex<Vec<RangeReader>>);

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").field("idle", &self.0.lock().map_or(0, |r| r.len())).finish()
    }
}

impl Readers {
    pub(crate) fn take(&self, config: &PipelineConfig) -> Result<RangeReader> {
        match self.0.lock().expect("reader pool lock").pop() {
            Some(reader) => Ok(reader),
            None => Ok(RangeReader::new(config, "query")?),
        }
    }

    pub(crate) fn give(&self, reader: RangeReader) {
        self.0.lock().expect("reader pool lock").push(reader);
    }
}

/// Runs blocking Kafka client work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Query(datafusion::error::DataFusionError::External(Box::new(e))))?
}
