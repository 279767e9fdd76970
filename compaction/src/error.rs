//! The one error type of `tidelake-compaction`.

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a compaction job, with the table and file concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Delta Lake operation failed.
    #[error("delta table {table}: {source}")]
    Delta {
        /// Table name.
        table: String,
        /// The delta-rs failure.
        source: Box<deltalake::DeltaTableError>,
    },

    /// A data file could not be read.
    #[error("delta table {table}, file {path}: {reason}")]
    File {
        /// Table name.
        table: String,
        /// The file, relative to the table root.
        path: String,
        /// What failed.
        reason: String,
    },

    /// Rows could not be put together.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The Arrow failure.
        source: arrow::error::ArrowError,
    },

    /// An object store request failed.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),

    /// An error of the lake core (opening a table, reading the config).
    #[error(transparent)]
    Lake(#[from] tidelake_lake::Error),
}

impl Error {
    /// Whether a commit that landed while the job ran touched what it rewrote (see
    /// [`tidelake_lake::commit`]): nothing of it was committed, and running it again plans on the
    /// new table.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Lake(tidelake_lake::Error::Conflict { .. }))
    }

    pub(crate) fn delta(table: impl Into<String>) -> impl FnOnce(deltalake::DeltaTableError) -> Self {
        let table = table.into();
        move |source| Error::Delta { table, source: Box::new(source) }
    }

    pub(crate) fn arrow(context: impl Into<String>) -> impl FnOnce(arrow::error::ArrowError) -> Self {
        let context = context.into();
        move |source| Error::Arrow { context, source }
    }
}
