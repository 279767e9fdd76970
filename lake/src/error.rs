//! The one error type of `tidelake-lake`.

use std::path::PathBuf;

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the lake core, with the context a user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },

    /// The pipeline config could not be fetched from object storage.
    #[error("cannot read config {location}: {reason}")]
    ConfigFetch {
        /// The `s3://` URI asked for.
        location: String,
        /// Why reading failed.
        reason: String,
    },

    /// The pipeline config is not valid TOML or does not have the expected shape.
    #[error("{path}: {message}")]
    ConfigSyntax {
        /// The file (or `<inline>` for a string).
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },

    /// A config key holds a value tidelake refuses; nothing was written.
    #[error("{path}: invalid `{key}`: {reason}")]
    ConfigInvalid {
        /// The file (or `<inline>` for a string).
        path: String,
        /// The dotted key, for example `tables.ad_events.columns[2].type`.
        key: String,
        /// What is wrong and what would be right.
        reason: String,
    },

    /// A table location could not be turned into an object store URL.
    #[error("invalid table location `{location}`: {reason}")]
    Location {
        /// The location as written.
        location: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A table exists but its schema or partitioning differs from the config.
    #[error("table {table} at {uri} does not match the config: {reason}")]
    TableMismatch {
        /// Table name from the config.
        table: String,
        /// Where the table lives.
        uri: String,
        /// The difference found.
        reason: String,
    },

    /// The Kafka client failed (feature `kafka`).
    #[cfg(feature = "kafka")]
    #[error("kafka: {context}: {source}")]
    Kafka {
        /// What tidelake was doing.
        context: String,
        /// The librdkafka error.
        source: rdkafka::error::KafkaError,
    },

    /// No broker of the cluster answered in time (feature `kafka`).
    #[cfg(feature = "kafka")]
    #[error("kafka at {brokers} does not answer: {reason}")]
    KafkaUnreachable {
        /// The bootstrap servers asked.
        brokers: String,
        /// What the client said.
        reason: String,
    },

    /// A commit to a Delta table failed for good (after its retries).
    #[error("commit to table {table} failed after {attempts} attempt(s): {source}")]
    CommitFailed {
        /// Table name.
        table: String,
        /// How many times the commit was tried.
        attempts: usize,
        /// The last failure.
        source: Box<deltalake::DeltaTableError>,
    },

    /// A commit that landed first touched what this one depends on (see [`crate::commit`]):
    /// nothing was committed, and the writer plans again on the new table.
    #[error("delta table {table}: version {version} landed first and conflicts with this commit: {reason}")]
    Conflict {
        /// Table name.
        table: String,
        /// The commit that landed first.
        version: u64,
        /// What it touched.
        reason: String,
    },

    /// A record batch could not be built from decoded rows.
    #[error("arrow error while {context}: {source}")]
    Arrow {
        /// What tidelake was doing.
        context: String,
        /// The arrow failure.
        source: arrow::error::ArrowError,
    },

    /// Any other Delta Lake error (opening, writing files, reading the log).
    #[error("delta table {table}: {source}")]
    Delta {
        /// Table name or URI.
        table: String,
        /// The delta-rs failure.
        source: Box<deltalake::DeltaTableError>,
    },

    /// A commit of a table's Delta log could not be read as tidelake's audit expects.
    #[error("delta table {table}, version {version}: {reason}")]
    Ledger {
        /// Table name.
        table: String,
        /// The commit's version.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// Rows could not be aggregated into a rollup.
    #[error("rollup {table}: {reason}")]
    Rollup {
        /// The rollup table.
        table: String,
        /// What went wrong, and where.
        reason: String,
    },

    /// The schema registry did not answer, or refused the request (not a record's fault: retried).
    #[error("schema registry {url}: {reason}")]
    Registry {
        /// The request's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A record was written with a newer schema than the table's columns, which follow the
    /// registry: stopped before its batch is written, so its new fields are not dropped.
    #[error(
        "table {table}: the record at {at} was written with schema id {id}, whose field `{field}` is not a column \
         yet; the table's columns follow the registry's schemas as of the start: restart to take the newer one"
    )]
    SchemaChanged {
        /// The table.
        table: String,
        /// Where the record is (`topic-partition@offset`).
        at: String,
        /// Its writer schema's id.
        id: u32,
        /// A field of that schema the table does not have.
        field: String,
    },

    /// A record's writer schema does not fit the table's columns, and the table says to stop
    /// (`on_incompatible = "stop"`) rather than send such records to the dead letters.
    #[error(
        "table {table}: the record at {at} was written with schema id {id}, which does not fit the table: {reason}"
    )]
    SchemaIncompatible {
        /// The table.
        table: String,
        /// Where the record is (`topic-partition@offset`).
        at: String,
        /// Its writer schema's id.
        id: u32,
        /// Which field does not fit, and why.
        reason: String,
    },

    /// An object store request failed.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
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

    /// Whether retrying the same work later may succeed (storage hiccups, commit races), as opposed
    /// to errors that will fail the same way every time (bad config, schema mismatch).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::ObjectStore(_) | Error::CommitFailed { .. } | Error::Conflict { .. } | Error::Registry { .. } => {
                true
            }
            #[cfg(feature = "kafka")]
            Error::Kafka { .. } | Error::KafkaUnreachable { .. } => true,
            Error::Delta { source, .. } => {
                matches!(
                    source.as_ref(),
                    deltalake::DeltaTableError::ObjectStore { .. }
                        | deltalake::DeltaTableError::Io { .. }
                        | deltalake::DeltaTableError::VersionAlreadyExists(_)
                        | deltalake::DeltaTableError::Transaction { .. }
                ) || caused_by_storage(source.as_ref())
            }
            Error::Arrow { source, .. } => caused_by_storage(source),
            _ => false,
        }
    }
}

/// Whether storage failing (an object store or I/O error) is somewhere in `error`'s chain: a data
/// file write that failed on a full disk or a 503 comes back from the Parquet writer as its error,
/// and a log listing that failed from the Delta kernel as its own (which wraps the object store
/// error of its own `object_store` version, so only its text says so, at times inside a generic
/// Delta error: `Generic DeltaTable error: Error interacting with object store: ...`).
fn caused_by_storage(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(error);
    while let Some(e) = at {
        if e.is::<object_store::Error>() || e.is::<std::io::Error>() {
            return true;
        }
        if e.to_string().contains("Error interacting with object store") {
            return true;
        }
        at = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(source: deltalake::DeltaTableError) -> Error {
        Error::Delta { table: "t".into(), source: Box::new(source) }
    }

    #[test]
    fn a_log_listing_that_failed_is_retried_however_the_delta_error_wraps_it() {
        let listing = "Error interacting with object store: Generic S3 error: Error performing list request";
        assert!(delta(deltalake::DeltaTableError::Generic(listing.into())).is_retryable());
        let io = std::io::Error::other("disk full");
        assert!(delta(deltalake::DeltaTableError::Io { source: io }).is_retryable());
        assert!(!delta(deltalake::DeltaTableError::Generic("schema mismatch".into())).is_retryable());
    }
}
