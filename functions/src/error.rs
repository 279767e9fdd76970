//! The one error type of `tidelake-functions`.

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop a function.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lake refused or failed (config, storage, commit).
    #[error(transparent)]
    Lake(#[from] tidelake_lake::Error),

    /// A record came from a topic no table of the config consumes.
    #[error("record {position} is from topic `{topic}`, which no table in the config consumes; add a table with `topic = \"{topic}\"` or fix the event source")]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// `topic-partition@offset` of the first such record.
        position: String,
    },

    /// The Kafka client failed.
    #[cfg(feature = "kafka-client")]
    #[error("kafka: {context}: {source}")]
    Kafka {
        /// What tidelake was doing.
        context: String,
        /// The librdkafka error.
        source: rdkafka::error::KafkaError,
    },

    /// The config has no table of that name.
    #[error("no table `{table}` in the config; it has {known}")]
    UnknownTable {
        /// The name asked for.
        table: String,
        /// The tables the config has.
        known: String,
    },

    /// An archive file could not be read back.
    #[error("archive file {path}: {reason}")]
    Archive {
        /// The file, relative to the archive table.
        path: String,
        /// What failed.
        reason: String,
    },

    /// The build left out what this needs (a Lambda build has no Kafka client).
    #[error("{what} needs tidelake's `{feature}` feature, which this build leaves out; {instead}")]
    NotBuilt {
        /// The cargo feature.
        feature: &'static str,
        /// What was asked for.
        what: &'static str,
        /// What to do instead.
        instead: &'static str,
    },

    /// A range cannot be replaced: what is wrong and what to do.
    #[error("replace in {table}: {reason}")]
    Replace {
        /// The table.
        table: String,
        /// Why.
        reason: String,
    },

    /// `--stop-at-end` could not finish partitions another member of the consumer group holds.
    #[error("stopping at the end: {partitions} did not move for {seconds} s; the member of the consumer group holding them is stuck or gone (see its logs, or run again once the group has settled)")]
    Unfinished {
        /// Each partition with where the lake holds it and the end it had at start.
        partitions: String,
        /// How long they did not move.
        seconds: u64,
    },

    /// A Lambda event could not be turned into a batch.
    #[error("lambda event: {0}")]
    Event(String),

    /// The config read again to take a newer writer schema names other topics than the running
    /// consumer reads.
    #[error("the config at {location} now names topics {now:?}, and this process consumes {before:?}: restart it to take the new topics")]
    TopicsChanged {
        /// Where the config was read again from.
        location: String,
        /// The topics it names now.
        now: Vec<String>,
        /// The topics the process consumes.
        before: Vec<String>,
    },
}

impl Error {
    /// Whether the same input may succeed later (so a Lambda invocation should be retried) rather
    /// than fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Lake(e) => e.is_retryable(),
            #[cfg(feature = "kafka-client")]
            Error::Kafka { .. } => true,
            Error::UnknownTopic { .. }
            | Error::UnknownTable { .. }
            | Error::Archive { .. }
            | Error::NotBuilt { .. }
            | Error::Replace { .. }
            | Error::Unfinished { .. }
            | Error::TopicsChanged { .. }
            | Error::Event(_) => false,
        }
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    /// The error type tells retryable failures (`tidelake.Retryable`) from those that will repeat
    /// (`tidelake.Fatal`), so alarms and on-failure destinations can tell them apart.
    fn from(e: Error) -> Self {
        let kind = if e.is_retryable() { "tidelake.Retryable" } else { "tidelake.Fatal" };
        lambda_runtime::Diagnostic { error_type: kind.to_string(), error_message: e.to_string() }
    }
}
