//! `tidelake compact`: the compaction jobs over the tables of a pipeline, once or on a schedule.

use std::time::{Duration, Instant};

use serde::Serialize;
use tidelake_compaction::{compact_table, CompactOptions, Job, TableCompaction};

use crate::{progress, BoxError, TableArgs};

/// Flags of `tidelake compact`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    tables: TableArgs,
    /// Jobs to run, in this order (repeat the flag or separate with commas).
    #[arg(long = "job", env = "TIDELAKE_COMPACT_JOBS", value_enum, value_delimiter = ',', default_values_t = Job::DEFAULT)]
    jobs: Vec<Job>,
    /// Show what each job would do; write and delete nothing.
    #[arg(long, env = "TIDELAKE_DRY_RUN")]
    dry_run: bool,
    /// Optimize packs small files into files up to this size.
    #[arg(long, env = "TIDELAKE_TARGET_SIZE", default_value = "128MiB", value_parser = parse_size)]
    target_size: u64,
    /// Vacuum deletes files removed longer ago than this, and files no commit added that are older
    /// than it. Keep it longer than any write takes: a file a writer has written but not committed
    /// yet looks the same as one a crashed writer left.
    #[arg(long, env = "TIDELAKE_RETENTION", default_value = "7days", value_parser = humantime::parse_duration)]
    retention: Duration,
    /// Run again every so often until Ctrl-C, instead of once.
    #[arg(long, env = "TIDELAKE_COMPACT_EVERY", value_parser = humantime::parse_duration)]
    every: Option<Duration>,
    /// Print each run's report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_size(text: &str) -> Result<u64, String> {
    tidelake_lake::config::parse_size(text)
        .filter(|n| *n > 0)
        .map(|n| n as u64)
        .ok_or_else(|| format!("`{text}` is not a size; write it like 128MiB, 64MB or 1000000"))
}

#[derive(Debug, Serialize)]
struct Report {
    dry_run: bool,
    seconds: f64,
    tables: Vec<TableCompaction>,
}

/// Runs the chosen jobs once, or every `--every` until Ctrl-C.
pub async fn run(args: Args, terminal: bool) -> Result<(), BoxError> {
    let (config, specs) = args.tables.load().await?;
    let options = CompactOptions {
        jobs: args.jobs,
        target_size: args.target_size,
        retention: args.retention,
        dry_run: args.dry_run,
    };
    loop {
        let started = Instant::now();
        let mut tables = Vec::new();
        for spec in &specs {
            let bar = progress(terminal, &format!("compacting {}", spec.name));
            tables.extend(compact_table(spec, &config.storage_options, &options).await?);
            bar.finish_and_clear();
        }
        let report = Report { dry_run: args.dry_run, seconds: started.elapsed().as_secs_f64(), tables };
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print_report(&report);
        }
        let Some(every) = args.every else { return Ok(()) };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn print_report(report: &Report) {
    let mode = if report.dry_run { " (dry run: nothing written or deleted)" } else { "" };
    println!("tidelake compact{mode}, {:.1}s", report.seconds);
    for t in &report.tables {
        if let Some(f) = &t.finalize {
            match (f.dry_run, f.partial_files) {
                (_, 0) => println!(
                    "  {:<28} finalize    no closed minute to merge ({} files wait for theirs to close)",
                    t.table, f.waiting_files
                ),
                (true, n) => println!(
                    "  {:<28} finalize    would merge {n} files of partial rows (and {} of merged rows) over {} minutes",
                    t.table, f.final_files, f.minutes
                ),
                (false, n) => println!(
                    "  {:<28} finalize    {} minutes: {n} + {} files, {} rows -> {} rows at version {}",
                    t.table,
                    f.minutes,
                    f.final_files,
                    f.rows_before,
                    f.rows_after,
                    f.version.unwrap_or_default()
                ),
            }
        }
        if let Some(r) = &t.rollup {
            match (r.dry_run, r.buckets) {
                (_, 0) => println!(
                    "  {:<28} rollup      up to date (source version {})",
                    t.table,
                    r.source_version.unwrap_or_default()
                ),
                (true, n) => println!("  {:<28} rollup      would recompute {n} buckets", t.table),
                (false, n) => println!(
                    "  {:<28} rollup      {n} buckets recomputed from {} source rows; {} files -> {} at version {}",
                    t.table,
                    r.source_rows,
                    r.files_removed,
                    r.files_added,
                    r.version.unwrap_or_default()
                ),
            }
        }
        if let Some(o) = &t.optimize {
            match (o.dry_run, o.files_removed) {
                (_, 0) => println!("  {:<28} optimize    {} files, nothing to pack", t.table, o.files_before),
                (true, n) => println!(
                    "  {:<28} optimize    would pack {n} of {} files ({:.1} MB, {} rows) into {} files",
                    t.table,
                    o.files_before,
                    o.bytes_removed as f64 / 1e6,
                    o.rows,
                    o.bins
                ),
                (false, n) => println!(
                    "  {:<28} optimize    {} files -> {}: packed {n} files ({:.1} MB, {} rows) into {} at version {}{}",
                    t.table,
                    o.files_before,
                    o.files_after,
                    o.bytes_removed as f64 / 1e6,
                    o.rows,
                    o.files_added,
                    o.version.unwrap_or_default(),
                    if o.checkpoint.is_some() { ", checkpointed" } else { "" }
                ),
            }
        }
        if let Some(v) = &t.vacuum {
            let verb = if v.dry_run { "would delete" } else { "deleted" };
            println!("  {:<28} vacuum      {verb} {} files", t.table, v.files.len());
            if v.dry_run {
                for file in &v.files {
                    println!("      {file}");
                }
            }
        }
        if let Some(c) = &t.checkpoint {
            match (c.version, c.dry_run) {
                (None, _) => println!("  {:<28} checkpoint  already at the current version", t.table),
                (Some(v), true) => println!("  {:<28} checkpoint  would checkpoint version {v}", t.table),
                (Some(v), false) => println!(
                    "  {:<28} checkpoint  version {v}; {} expired commit files deleted",
                    t.table, c.log_files_deleted
                ),
            }
        }
    }
}
