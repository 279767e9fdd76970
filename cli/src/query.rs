//! `tidelake query`: one SQL statement over the `lake`, `kafka` and `live` schemas from the shell.

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tidelake_lake::PipelineConfig;
use tidelake_presto::Connector;

use crate::BoxError;

/// Flags of `tidelake query`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pipeline config: a file path or an s3://bucket/key object.
    #[arg(long, env = "TIDELAKE_CONFIG", default_value = "tidelake.toml")]
    config: String,
    /// How to print the rows.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Kafka records a `kafka.*` or `live.*` table reads at most; a longer tail (ingest that far
    /// behind) is refused, saying by how much.
    #[arg(long, env = "TIDELAKE_MAX_TAIL_RECORDS", default_value_t = tidelake_presto::catalog::MAX_TAIL_RECORDS)]
    max_tail_records: u64,
    /// Answer `kafka.*` and `live.*` queries whose Kafka tail lost records to the topic's retention
    /// (deleted before ingest read them) without those records, instead of refusing them.
    #[arg(long, env = "TIDELAKE_ALLOW_LOST_TAIL")]
    allow_lost_tail: bool,
    /// The statement, for example `SELECT count(*) FROM live.ad_events`.
    sql: String,
}

/// Output formats.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON array of objects (decimals as exact strings).
    Json,
}

/// Runs the statement and prints its rows.
pub async fn run(args: Args) -> Result<(), BoxError> {
    let config = PipelineConfig::for_function(&args.config).await?;
    let connector =
        Connector::new(config)?.with_max_tail_records(args.max_tail_records).with_allow_lost_tail(args.allow_lost_tail);
    let (schema, batches) = connector.query(&args.sql).await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Table => {
            writeln!(out, "{}", arrow::util::pretty::pretty_format_batches_with_schema(schema, &batches)?)?
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema))?;
            }
            for batch in &batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut out);
            for batch in &batches {
                writer.write(&decimals_as_text(batch)?)?;
            }
            writer.finish()?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                write!(out, "[]")?;
            }
            writeln!(out)?;
        }
    }
    if connector.poison_skipped() > 0 {
        eprintln!(
            "tidelake: {} Kafka records that are not rows of their table were skipped (they go to the dead letters when ingested)",
            connector.poison_skipped()
        );
    }
    Ok(())
}

/// The batch with its decimal columns as text, so JSON readers keep every digit.
fn decimals_as_text(batch: &RecordBatch) -> Result<RecordBatch, BoxError> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(field.data_type(), DataType::Decimal128(..) | DataType::Decimal256(..)) {
            fields.push(Field::new(field.name(), DataType::Utf8, field.is_nullable()));
            columns.push(cast(column, &DataType::Utf8)?);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns)?)
}
