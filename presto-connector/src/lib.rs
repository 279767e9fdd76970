//! # tidelake-presto
//!
//! Federated SQL over a pipeline's lake and the fresh records still in Kafka, on DataFusion.
//!
//! The lake is minutes behind by design. Its data commits record, per topic-partition, the last
//! Kafka offset they hold, in the same commit as the files; so one snapshot of a table and the
//! records of its topic above those offsets make the whole stream, with no gap and no double
//! count at the boundary:
//!
//! ```text
//! SQL --Connector::sql--> DataFusion plan over the `tidelake` catalog:
//!   lake.<table>   Delta snapshot (partition + file-statistics pruning; `FOR VERSION AS OF`)
//!   kafka.<topic>  records above the snapshot's offsets, decoded with the table's schema, read at
//!                  scan time in chunks, narrowed by LIMIT and filters on _partition/_offset/_timestamp
//!   live.<table>   lake snapshot UNION its Kafka tail, copies of an event UUID dropped as ingest would
//! ```
//!
//! ## Layout
//!
//! - [`connector`]: the [`Connector`], a read-only DataFusion session with the catalog.
//! - [`cache`]: the result cache: aggregates over closed days computed once per day.
//! - [`catalog`]: the `lake`, `kafka` and `live` schemas, resolved per query.
//! - [`tail`]: the Kafka records above a snapshot's offsets, read_committed, decoded.
//! - [`kafka_table`]: `kafka.<topic>`: the tail read at scan time, in chunks, as far as the query needs.
//! - [`lake_table`]: one Delta snapshot as a DataFusion table, below the catalog, `live` and the cache.
//! - [`functions`]: `sketch_distinct`, the merge of rollup sketches.
//! - [`trino_functions`]: Trino's date and time functions where DataFusion lacks them or differs.
//! - [`live`]: a snapshot and its tail as one table.
//! - [`metadata`]: Trino's `information_schema` and the `SHOW` and `DESCRIBE` statements.
//! - [`prepared`]: `EXECUTE`'s values bound to a planned statement's parameters; `DESCRIBE INPUT`/`OUTPUT`.
//! - [`overflow`]: integer `+`, `-`, `*` that fail on overflow instead of wrapping.
//! - [`statement`]: SQL text to the planner's statement: limits, and time travel on the parsed statement.
//! - [`system`]: the `system` catalog: `system.jdbc` (what the Trino JDBC driver's `DatabaseMetaData`
//!   reads) and `system.metadata.table_comments` (what SQLAlchemy's table reflection reads).
//! - [`status`]: how each table stands (freshness, lag, files, dead letters, commits), for `/ui` and `/metrics`.
//! - [`session`]: a client's session (schema, time zone, properties, prepared statements) and the
//!   statements that change it; `EXECUTE`'s parameters.
//! - [`server`]: the Trino client protocol over HTTP (`tidelake serve`).
//! - [`version`]: which version of a lake table a name asks for (`"t@v3"`, `"t@2026-11-23"`).
//! - [`error`]: the crate's [`Error`].

#![warn(missing_docs)]

pub mod cache;
pub mod catalog;
pub mod connector;
pub mod error;
pub mod functions;
pub mod kafka_table;
pub mod lake_table;
pub mod live;
pub mod metadata;
pub mod overflow;
pub mod prepared;
pub mod server;
pub mod session;
pub mod statement;
pub mod status;
pub mod system;
pub mod tail;
pub mod trino_functions;
pub mod version;

pub use cache::{CacheStats, ResultCache};
pub use connector::{Connector, CATALOG};
pub use error::{Error, Result};
pub use session::Session;
