//! tidelake's end-to-end tests: one binary, against a real Apache Kafka broker (started by
//! `infra/kafka.sh` when none is running).

mod audit;
mod bi;
mod compact;
mod deploy;
mod duckdb;
mod evolution;
mod faults;
mod formats;
mod helpers;
mod hostile;
mod ingest;
mod literals;
mod query;
mod reprocess;
mod rollup;
mod serve;
mod slt;
mod spark;
#[cfg(feature = "sql")]
mod sql;
