//! # tidelake-lake
//!
//! The core every tidelake crate builds on: what a pipeline is, what its tables look like, and how
//! Kafka records become rows of Delta Lake tables exactly once.
//!
//! A record's way through this crate:
//!
//! ```text
//! tidelake.toml --config--> PipelineConfig { kafka, batch, tables: [TableSpec] }
//! KafkaBatch (records of many topic-partitions)
//!   --decode--> rows in the table schema            + rejected records with reasons
//!   --dedup--> rows whose event UUID is new          + counts of copies dropped
//!   --delta::OffsetTable::append_once--> data table    (files + txn{topic-partition, last offset})
//!   --sinks--> dead-letter table, raw-batch archive  (each with its own txn, so each exactly once)
//!   --aggregate--> partial minute rows of the rollup (own txn, from the rows the data commit wrote)
//! ```
//!
//! ## Layout
//!
//! - [`config`]: reads and validates `tidelake.toml`; errors name the key at fault.
//! - [`schema`]: column types, table specs, the derived partition columns `event_date`/`event_hour`.
//! - [`batch`]: [`KafkaBatch`] and [`KafkaRecord`], the micro-batch all functions handle.
//! - [`decode`]: JSON values to Arrow with the arrow-json push decoder, isolating poison records.
//! - `flat`: the common JSON record (a flat object of plain values) read straight into column
//!   builders, ahead of the arrow-json decoder, which reads every record it leaves.
//! - [`avro`]: Avro values in the schema registry's wire format, read for the decoder.
//! - [`protobuf`]: Protobuf values in the schema registry's wire format, read for the decoder.
//! - [`cells`]: typed field values (Avro, Protobuf) straight into Arrow columns.
//! - [`registry`]: the schema registry client and its cache of writer schemas.
//! - `exact`: numbers as sent to their column's type, or the reason they do not fit.
//! - [`dedup`]: drops copies of an event UUID, within a batch and against the table's window.
//! - [`delta`]: Delta tables whose commits carry Kafka offsets ([`OffsetTable`]).
//! - [`commit`]: the one commit policy every writer uses: what conflicts, what is rebased, backoff.
//! - [`txn`]: the `txn` versions a table holds, kept current from the commits that land.
//! - [`sinks`]: rows of the dead-letter and archive tables.
//! - [`rollup`]: rollup specs (dimensions, grains, mergeable measures) and their tables' schemas.
//! - [`aggregate`]: events to partial minute rows, and rollup rows merged into coarser buckets.
//! - [`sketch`]: HyperLogLog sketches behind `approx_distinct` measures.
//! - [`files`]: reads columns of a table's Parquet files.
//! - `kafka` (feature `kafka`): reads bounded offset ranges of a topic, read_committed.
//! - [`sample`]: the ad-events example (table config and a generator) for quickstart and tests.
//! - [`ledger`]: what each commit of a table covers (offsets, counts) and did (files), from the log.
//! - [`audit`]: checks the ledgers of a table and its side tables for gaps and double counts.
//! - [`logging`]: the log subscriber every binary installs.
//! - [`fault`]: crash points that tests use to kill a process at a chosen step.
//! - [`error`]: the crate's [`Error`].

#![warn(missing_docs)]

pub mod aggregate;
pub mod audit;
pub mod avro;
pub mod batch;
pub mod cells;
pub mod commit;
pub mod config;
pub mod decode;
pub mod dedup;
pub mod delta;
pub mod error;
mod exact;
pub mod fault;
pub mod files;
mod flat;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod ledger;
pub mod logging;
pub mod protobuf;
pub mod registry;
pub mod rollup;
pub mod sample;
pub mod schema;
pub mod sinks;
pub mod sketch;
pub mod txn;

pub use batch::{KafkaBatch, KafkaRecord, TopicPartition};
pub use config::{BatchConfig, KafkaConfig, PipelineConfig, StartFrom};
pub use delta::{AppendOutcome, CommitMode, OffsetTable, Planned};
pub use error::{Error, Result};
pub use schema::{ColumnSpec, ColumnType, PartitionGrain, RecordFormat, TableSpec};
