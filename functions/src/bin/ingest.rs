//! The `ingest` function: under the AWS Lambda runtime it handles Kafka events; anywhere else it runs
//! the local Kafka poller (see [`tidelake_functions::entry`]).

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tidelake_functions::entry::ingest()
}
