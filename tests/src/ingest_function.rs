//! The `ingest` function, built as part of the end-to-end test package.

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tidelake_functions::entry::ingest()
}
