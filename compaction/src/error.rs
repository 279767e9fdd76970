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

    /// The job's commit failed for another reason than a concurrent rewrite (storage, too many
    /// commits landing meanwhile); running the job again plans on top of what is there now.
    #[error("delta table {table}: the compaction commit was refused, run the job again: {source}")]
    CommitFailed {
        /// Table name.
        table: String,
        /// The delta-rs failure.
        source: Box<deltalake::DeltaTableError>,
    },

    /// Another job removed a file this one rewrote while it ran (two compactions of one table at
    /// once); nothing of this run is committed, and running the job again plans on the new table.
    #[error(
        "delta table {table}: file {path} was rewritten by version {version} while this job ran; run the job again"
    )]
    ConcurrentRewrite {
        /// Table name.
        table: String,
        /// The file both jobs rewrote.
        path: String,
        /// The commit that removed it first.
        version: u64,
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
    pub(crate) fn delta(table: impl Into<String>) -> impl FnOnce(deltalake::DeltaTableError) -> Self {
        let table = table.into();
        move |source| Error::Delta { table, source: Box::new(source) }
    }

    pub(crate) fn arrow(context: impl Into<String>) -> impl FnOnce(arrow::error::ArrowError) -> Self {
        let context = context.into();
        move |source| Error::Arrow { context, source }
    }
}
