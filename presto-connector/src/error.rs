//! The one error type of `tidelake-presto`.

use datafusion::error::DataFusionError;

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong answering a query, with the table, topic or SQL concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL does not parse.
    #[error("SQL syntax error: {0}")]
    Syntax(String),

    /// The query cannot be planned or run (unknown table or column, type mismatch, ...).
    #[error("{0}")]
    Query(#[from] DataFusionError),

    /// A table reference asks for a version in a way tidelake cannot answer.
    #[error("{table}: {reason}")]
    Version {
        /// The table as written.
        table: String,
        /// What is wrong and what would be right.
        reason: String,
    },

    /// A table's Kafka tail is longer than a query may read: ingest is that far behind.
    #[error(
        "the query would read {reads} records of the Kafka tail of `{table}` ({topic}), more than the {max} a query reads \
         (--max-tail-records): ingest is behind by {behind} records; query `lake.{table}` for what it has, run ingest, \
         or narrow a `kafka.*` query with a LIMIT or a filter on `_partition`, `_offset` or `_timestamp`"
    )]
    TailTooLarge {
        /// The data table.
        table: String,
        /// Its topic.
        topic: String,
        /// Offsets the query would read.
        reads: u64,
        /// Offsets above the lake's, summed over the partitions.
        behind: u64,
        /// The limit.
        max: u64,
    },

    /// Offsets above the lake's are gone from Kafka: its retention deleted them before ingest read
    /// them, so an answer without them would be short.
    #[error(
        "the Kafka tail of `{table}` ({topic}) has lost records: {lost}; Kafka's retention deleted them before ingest \
         read them, so the lake and the tail together miss them (reprocess them from the archive if it holds them); \
         answer without them with --allow-lost-tail"
    )]
    TailLost {
        /// The data table.
        table: String,
        /// Its topic.
        topic: String,
        /// The offsets lost, per partition.
        lost: String,
    },

    /// A session statement or header asks for what does not exist or is not allowed (an unknown
    /// prepared statement, catalog, schema or session property, a bad parameter).
    #[error("{0}")]
    Session(String),

    /// The query ran longer than its session's `query_max_execution_time`.
    #[error("Query exceeded the maximum execution time limit of {0}")]
    TimeLimit(String),

    /// The statement is longer, or its expressions nest deeper, than the connector takes.
    #[error("statement too large: {0}")]
    TooLarge(String),

    /// The query needed more memory than the connector gives all running queries together.
    #[error("the query needs more memory than the {limit_mb} MiB queries may hold together (--memory-mb): {source}")]
    MemoryExceeded {
        /// The limit, in MiB.
        limit_mb: usize,
        /// DataFusion's account of what asked for the memory.
        source: DataFusionError,
    },

    /// Planning or running the query panicked: a bug in tidelake, never the client's doing.
    #[error("internal error while running the query: {0}")]
    Panicked(String),

    /// A Delta table could not be read.
    #[error("delta table {table}: {source}")]
    Delta {
        /// Table name.
        table: String,
        /// The delta-rs failure.
        source: Box<deltalake::DeltaTableError>,
    },

    /// The lake core failed (opening a table, reading offsets, decoding, reading Kafka).
    #[error(transparent)]
    Lake(#[from] tidelake_lake::Error),
}

impl Error {
    pub(crate) fn delta(table: impl Into<String>) -> impl FnOnce(deltalake::DeltaTableError) -> Self {
        let table = table.into();
        move |source| Error::Delta { table, source: Box::new(source) }
    }

    /// The error itself when DataFusion wrapped it (an error of a table provider comes back from
    /// the planner as `External`), so it is classified as what it is.
    pub fn unwrapped(self) -> Self {
        match self {
            Error::Query(DataFusionError::External(inner)) => match inner.downcast::<Error>() {
                Ok(own) => own.unwrapped(),
                Err(other) => Error::Query(DataFusionError::External(other)),
            },
            Error::Query(DataFusionError::Context(context, inner))
                if matches!(*inner, DataFusionError::External(_)) =>
            {
                match Error::Query(*inner).unwrapped() {
                    Error::Query(inner) => Error::Query(DataFusionError::Context(context, Box::new(inner))),
                    own => own,
                }
            }
            other => other,
        }
    }

    /// Whether the query itself is at fault (syntax, unknown names, types, a value out of range),
    /// as opposed to the lake, storage or Kafka failing while it ran.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Syntax(_)
            | Error::Version { .. }
            | Error::TooLarge(_)
            | Error::TailTooLarge { .. }
            | Error::Session(_)
            | Error::TimeLimit(_) => true,
            Error::Query(e) => {
                self.is_overflow()
                    || matches!(
                        e.find_root(),
                        DataFusionError::Plan(_)
                            | DataFusionError::SchemaError(..)
                            | DataFusionError::SQL(..)
                            | DataFusionError::NotImplemented(_)
                    )
            }
            Error::MemoryExceeded { .. }
            | Error::Panicked(_)
            | Error::TailLost { .. }
            | Error::Delta { .. }
            | Error::Lake(_) => false,
        }
    }

    /// Whether the query needed more memory than the connector's limit gives all queries.
    pub fn is_memory_exceeded(&self) -> bool {
        match self {
            Error::MemoryExceeded { .. } => true,
            Error::Query(e) => matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)),
            _ => false,
        }
    }

    /// Whether a value did not fit its type (integer overflow).
    pub fn is_overflow(&self) -> bool {
        matches!(self, Error::Query(e) if matches!(
            e.find_root(),
            DataFusionError::ArrowError(source, _) if matches!(source.as_ref(), arrow::error::ArrowError::ArithmeticOverflow(_))
        ))
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::Query(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
