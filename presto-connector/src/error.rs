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

    /// Whether the query itself is at fault (syntax, unknown names, types), as opposed to the lake,
    /// storage or Kafka failing while it ran.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Syntax(_) | Error::Version { .. } => true,
            Error::Query(e) => matches!(
                e.find_root(),
                DataFusionError::Plan(_)
                    | DataFusionError::SchemaError(..)
                    | DataFusionError::SQL(..)
                    | DataFusionError::NotImplemented(_)
            ),
            Error::Delta { .. } | Error::Lake(_) => false,
        }
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
