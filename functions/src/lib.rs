//! # tidelake-functions
//!
//! The stateless function binaries of tidelake. Each function is a handler that takes a
//! [`KafkaBatch`](tidelake_lake::KafkaBatch) and leaves the lake consistent, whatever happens around
//! it; it runs under the AWS Lambda runtime when deployed and under a local Kafka poller otherwise.
//!
//! ```text
//! Lambda KafkaEvent --lambda::batch_from_event--\
//!                                                 +--> KafkaBatch --Ingestor::handle--> lake
//! rdkafka consumer  --poller::run (batch cuts)--/
//! ```
//!
//! ## Layout
//!
//! - [`ingest`]: the [`Ingestor`], the one handler both entry points call.
//! - [`partials`]: the partial minute rows of a rollup, from the rows of the data commits.
//! - [`metrics`]: each batch's counts and timings as CloudWatch embedded metric format lines.
//! - [`lambda`]: Lambda Kafka event to batch, and the Lambda handler.
//! - `poller` (feature `kafka-client`, on by default): the local consumer: batch cutting, resuming
//!   from the lake's offsets, clean stop. Lambda builds leave it out, and librdkafka with it.
//! - [`reprocess`]: history replayed from the archive through the same handler, into shadow tables.
//! - [`replace`]: a range of event days swapped for a shadow table's, in one commit.
//! - [`entry`]: the `ingest` binary's entry point (Lambda runtime or local poller).
//! - [`error`]: the crate's [`Error`], with [`Error::is_retryable`] for the Lambda edge.

#![warn(missing_docs)]

pub mod entry;
pub mod error;
pub mod ingest;
pub mod lambda;
pub mod metrics;
pub mod partials;
#[cfg(feature = "kafka-client")]
pub mod poller;
pub mod replace;
pub mod reprocess;

pub use error::{Error, Result};
pub use ingest::{BatchReport, Ingestor, TableReport};
#[cfg(feature = "kafka-client")]
pub use poller::{PollerOptions, PollerReport};

pub use tidelake_lake::logging::init as init_logging;
