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
use tidelake_lake::decode::decode;
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

/// Reads the tail of `spec`'s topic above the offsets `lake` (the data table, loaded at the
/// snapshot the query reads) holds; a tail of more than `max_records` offsets is refused before
/// anything is read (ingest is that far behind).
pub async fn read(
    config: &PipelineConfig,
    spec: &TableSpec,
    lake: Option<&DeltaTable>,
    readers: &Arc<Readers>,
    max_records: u64,
) -> Result<Tail> {
    let (reader_config, topic, pool) = (config.clone(), spec.topic.clone(), readers.clone());
    let (reader, bounds) = blocking(move || {
        let reader = pool.take(&reader_config)?;
        let mut bounds = BTreeMap::new();
        for p in reader.partitions(&topic)? {
            bounds.insert(p, reader.watermarks(&topic, p)?);
        }
        Ok((reader, bounds))
    })
    .await?;

    let partitions: Vec<TopicPartition> = bounds.keys().map(|p| TopicPartition::new(&spec.topic, *p)).collect();
    let committed = match lake {
        Some(table) => tidelake_lake::delta::committed_offsets(&spec.name, table, &partitions).await?,
        None => Default::default(),
    };
    let ranges: BTreeMap<i32, (i64, i64)> = bounds
        .iter()
        .map(|(p, (low, high))| {
            let after_lake = committed.get(&TopicPartition::new(&spec.topic, *p)).map(|last| last + 1);
            (*p, (after_lake.unwrap_or(*low).max(*low), *high))
        })
        .collect();

    let behind: u64 = ranges.values().map(|(start, end)| (end - start).max(0) as u64).sum();
    if behind > max_records {
        readers.give(reader);
        return Err(Error::TailTooLarge {
            table: spec.name.clone(),
            topic: spec.topic.clone(),
            behind,
            max: max_records,
        });
    }
    let (topic, read_ranges) = (spec.topic.clone(), ranges.clone());
    let pool = readers.clone();
    let records = blocking(move || {
        let records = reader.read(&topic, &read_ranges)?;
        pool.give(reader);
        Ok(records)
    })
    .await?;
    let refs: Vec<&KafkaRecord> = records.iter().collect();
    let decoded = decode(spec, &refs)?;
    if !decoded.rejected.is_empty() {
        let (first, reason) = &decoded.rejected[0];
        tracing::warn!(
            table = %spec.name,
            skipped = decoded.rejected.len(),
            first = %records[*first].position(),
            %reason,
            "records of the Kafka tail that are not rows of the table were skipped"
        );
    }
    Ok(Tail { poison: decoded.rejected.len(), rows: decoded.rows, row_sources: decoded.row_sources, records, ranges })
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
    fn take(&self, config: &PipelineConfig) -> Result<RangeReader> {
        match self.0.lock().expect("reader pool lock").pop() {
            Some(reader) => Ok(reader),
            None => Ok(RangeReader::new(config, "query")?),
        }
    }

    fn give(&self, reader: RangeReader) {
        self.0.lock().expect("reader pool lock").push(reader);
    }
}

/// Runs blocking Kafka client work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Query(datafusion::error::DataFusionError::External(Box::new(e))))?
}
