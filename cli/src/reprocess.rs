//! `tidelake reprocess`: replays archived batches through the ingest handler into shadow tables.

use tidelake_functions::reprocess::{Reprocess, Source};
use tidelake_lake::PipelineConfig;

use crate::audit::{parse_end_time, parse_time};
use crate::{progress, BoxError};

/// Flags of `tidelake reprocess`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pipeline config: a file path or an s3://bucket/key object.
    #[arg(long, env = "TIDELAKE_CONFIG", default_value = "tidelake.toml")]
    config: String,
    /// The table whose archive is replayed.
    #[arg(long, env = "TIDELAKE_TABLE")]
    table: String,
    /// Only records with a Kafka timestamp at or after this time (RFC 3339 or a date).
    #[arg(long, value_parser = parse_time)]
    from: Option<i64>,
    /// Only records with a Kafka timestamp at or before this time (RFC 3339, or a date: its end).
    #[arg(long, value_parser = parse_end_time)]
    to: Option<i64>,
    /// Where the records come from: the table's `archive`, or `kafka` while the topic still holds
    /// the range (looked up by Kafka's time index).
    #[arg(long, value_enum, default_value = "archive", env = "TIDELAKE_REPROCESS_SOURCE")]
    source: SourceArg,
    /// Where the result goes: `shadow` tables next to the live one (the live table is untouched).
    #[arg(long, value_enum, default_value = "shadow")]
    into: Into,
    /// Root of the shadow tables (default: `_reprocess/` next to the live table).
    #[arg(long, env = "TIDELAKE_SHADOW_ROOT")]
    shadow_root: Option<url::Url>,
    /// Records per batch handed to the handler.
    #[arg(long, default_value_t = 10_000)]
    batch_size: usize,
    /// At most this many records a second.
    #[arg(long, env = "TIDELAKE_MAX_RATE")]
    max_rate: Option<f64>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum Into {
    Shadow,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum SourceArg {
    Archive,
    Kafka,
}

/// Runs the reprocess.
pub async fn run(args: Args, terminal: bool) -> Result<(), BoxError> {
    let config = PipelineConfig::for_function(&args.config).await?;
    let Into::Shadow = args.into;
    let (source, reading) = match args.source {
        SourceArg::Archive => (Source::Archive, "reading the archive"),
        SourceArg::Kafka => (Source::Kafka, "reading the range from Kafka"),
    };
    let bar = progress(terminal, reading);
    let status = bar.clone();
    let mut job = Reprocess::new(config, &args.table)?
        .with_source(source)
        .with_range(args.from, args.to)
        .with_batch_size(args.batch_size)
        .with_max_rate(args.max_rate)
        .with_progress(Box::new(move |_, done| status.set_message(format!("{done} records reprocessed"))));
    if let Some(root) = args.shadow_root {
        job = job.with_shadow_root(root);
    }
    let metrics = job.await?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&metrics)?);
    } else {
        println!(
            "reprocessed {} records in {} batches ({:.1}s) into {}: {} rows written, {} dead letters, {} duplicates dropped",
            metrics.records,
            metrics.batches,
            metrics.seconds,
            metrics.shadow,
            metrics.rows_written,
            metrics.dead_letters,
            metrics.duplicates
        );
    }
    Ok(())
}
