//! `tidelake reprocess`: replays archived batches through the ingest handler into shadow tables.

use tidelake_compaction::{compact_table, CompactOptions, Job};
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
    /// Where the result goes: `shadow` tables next to the live one (the live table is untouched), or
    /// `replace`: the event days --from..--to (dates) of the live tables swapped for the
    /// reprocessed rows, one commit per table.
    #[arg(long, value_enum, default_value = "shadow")]
    into: Into,
    /// After a replace, run compaction's finalize and rollup jobs so the hour and day rollups of
    /// the range are recomputed now rather than at the next scheduled compaction.
    #[arg(long)]
    compact: bool,
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
    Replace,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum SourceArg {
    Archive,
    Kafka,
}

/// Runs the reprocess.
pub async fn run(args: Args, terminal: bool) -> Result<(), BoxError> {
    let config = PipelineConfig::for_function(&args.config).await?;
    let days = match args.into {
        Into::Shadow if args.compact => return Err("--compact goes with --into replace".into()),
        Into::Shadow => None,
        Into::Replace => Some(event_days(args.from, args.to)?),
    };
    let (source, reading) = match args.source {
        SourceArg::Archive => (Source::Archive, "reading the archive"),
        SourceArg::Kafka => (Source::Kafka, "reading the range from Kafka"),
    };
    let bar = progress(terminal, reading);
    let status = bar.clone();
    let mut job = Reprocess::new(config.clone(), &args.table)?
        .with_source(source)
        .with_range(args.from, args.to)
        .with_batch_size(args.batch_size)
        .with_max_rate(args.max_rate)
        .with_progress(Box::new(move |_, done| status.set_message(format!("{done} records reprocessed"))));
    if let Some((from, to)) = days {
        job = job.with_range(None, None).replacing(from, to)?;
    }
    if let Some(root) = args.shadow_root {
        job = job.with_shadow_root(root);
    }
    let metrics = job.await?;
    let compacted = match days.is_some() && args.compact {
        true => {
            let spec = config.tables.iter().find(|t| t.name == args.table).expect("the reprocess found the table");
            let options = CompactOptions { jobs: vec![Job::Finalize, Job::Rollup], ..CompactOptions::default() };
            let bar = progress(terminal, "recomputing the rollups of the range");
            let tables = compact_table(spec, &config.storage_options, &options).await?;
            bar.finish_and_clear();
            Some(serde_json::to_value(tables)?)
        }
        false => None,
    };
    bar.finish_and_clear();
    if args.json {
        let mut report = serde_json::to_value(&metrics)?;
        if let Some(compacted) = compacted {
            report["compacted"] = compacted;
        }
        println!("{report}");
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
        for swap in &metrics.replaced {
            match (swap.already_done, swap.version) {
                (true, _) => println!("  {}: the range was replaced by an earlier run", swap.table),
                (false, Some(version)) => println!(
                    "  {}: version {version} replaced {} rows in {} files with {} rows in {} files",
                    swap.table, swap.rows_removed, swap.files_removed, swap.rows_added, swap.files_added
                ),
                (false, None) => println!("  {}: nothing in the range to replace", swap.table),
            }
        }
        if compacted.is_some() {
            println!("  compacted: the hour and day rollups of the range are recomputed");
        }
    }
    Ok(())
}

/// The event days of a replace: --from and --to must both be given, as dates.
fn event_days(from: Option<i64>, to: Option<i64>) -> Result<(chrono::NaiveDate, chrono::NaiveDate), BoxError> {
    const DAY_MS: i64 = 86_400_000;
    let (Some(from), Some(to)) = (from, to) else {
        return Err("--into replace needs --from and --to: the first and last event day to replace".into());
    };
    if from.rem_euclid(DAY_MS) != 0 || (to + 1).rem_euclid(DAY_MS) != 0 {
        return Err("--into replace swaps whole event days: give --from and --to as dates (2026-11-21)".into());
    }
    let day =
        |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.date_naive()).ok_or("a date out of range");
    Ok((day(from)?, day(to)?))
}
