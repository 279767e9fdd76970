//! # tidelake (the CLI)
//!
//! The operator CLI: parse flags (each also readable from an environment variable), then call the
//! library crates. `main.rs` only calls [`main`]; the end-to-end tests build the same entry point
//! into their own binary.
//!
//! ## Layout
//!
//! - this file: the commands and their flags, `ingest`, progress and exit codes.
//! - `audit`: `tidelake audit`, the lake's ledgers checked against the archive and Kafka.
//! - `compact`: `tidelake compact`, the compaction jobs once or on a schedule.
//! - `duckdb_init`: `tidelake duckdb-init`, DuckDB views over the Delta snapshots.
//! - `package`: `tidelake package`, the function binaries as Lambda bootstrap zips.
//! - `query`: `tidelake query`, SQL over the lake, the Kafka tail and live tables (DataFusion).
//! - `reprocess`: `tidelake reprocess`, archived batches replayed into shadow tables.
//! - `serve`: `tidelake serve`, the Trino client protocol over HTTP.
//! - `sql`: `tidelake sql`, the same views in an embedded DuckDB (features `sql`, `sql-bundled`).
//! - `quickstart`: `tidelake quickstart`, sample events through Kafka into a local lake.

#![warn(missing_docs)]

mod audit;
mod compact;
mod duckdb_init;
mod package;
mod query;
mod quickstart;
mod reprocess;
mod serve;
mod sql;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tidelake_functions::{init_logging, poller, PollerOptions};
use tidelake_lake::PipelineConfig;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// tidelake: Kafka micro-batches into Delta Lake tables, exactly once.
#[derive(Parser, Debug)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate ad events, run them through Kafka and the ingest function into a local lake, and
    /// print a summary. With nothing installed: Kafka is an embedded in-process cluster unless
    /// --brokers names a real one. Each run starts from an empty lake under DIR. With --serve it
    /// keeps going until Ctrl-C: a steady stream of events, ingested as they come, compacted on a
    /// schedule, and queries served over the Trino protocol.
    ///
    /// Examples:
    ///   tidelake quickstart --dir ./tidelake-quickstart --events 20000 --json
    ///   tidelake quickstart --serve --rate 500 --listen 127.0.0.1:8080
    #[command(verbatim_doc_comment)]
    Quickstart(quickstart::Args),
    /// Consume the pipeline's topics into its tables until Ctrl-C (the current batch is committed
    /// first), or until the topics are consumed to their end with --stop-at-end.
    ///
    /// Example:
    ///   tidelake ingest --config tidelake-quickstart/tidelake.toml --stop-at-end
    #[command(verbatim_doc_comment)]
    Ingest(IngestArgs),
    /// Check that every Kafka offset a table consumed landed exactly once: as a row, a dropped
    /// duplicate or a dead letter. Reads the commit infos of the table, its dead letters and its
    /// archive (no data scan), asks Kafka about offsets no commit covers, prints a table per
    /// topic-partition and exits 1 on any gap or double count.
    ///
    /// Example:
    ///   tidelake audit --config tidelake-quickstart/tidelake.toml --table ad_events --from 2026-11-23
    #[command(verbatim_doc_comment)]
    Audit(audit::Args),
    /// Keep the lake fast and its rollups current: merge the partial rows of closed minutes
    /// (finalize), recompute the hour and day buckets whose minutes changed (rollup), bin-pack
    /// small files into large ones per partition (optimize), delete files older than the retention
    /// that no version needs (vacuum) and checkpoint the Delta log, for each table with its dead
    /// letters, archive and rollup tables. Safe while ingest runs; a second run with nothing to do
    /// changes nothing. --dry-run shows the plan and the files vacuum would delete.
    ///
    /// Example:
    ///   tidelake compact --config tidelake.toml --job finalize,rollup --dry-run
    ///   tidelake compact --config tidelake.toml --job optimize --job checkpoint --dry-run
    ///   tidelake compact --config tidelake.toml --every 5m
    #[command(verbatim_doc_comment)]
    Compact(compact::Args),
    /// Print the SQL that defines a DuckDB view per table (data, dead letters, archive, rollups) over the
    /// Parquet files of its current Delta snapshot, or of an older version with --at-version. The
    /// files are resolved from the Delta log, so DuckDB needs no extension; run it again after
    /// new commits.
    ///
    /// Example:
    ///   tidelake duckdb-init --config tidelake.toml > views.sql && duckdb -init views.sql
    #[command(name = "duckdb-init", verbatim_doc_comment)]
    DuckdbInit(duckdb_init::Args),
    /// Run SQL over the lake in an embedded DuckDB: every table (data, dead letters, archive,
    /// rollups) is a view over the Parquet files of its Delta snapshot, an older version with
    /// --at-version. Without SQL, statements ending in `;` are read from stdin (a prompt on a
    /// terminal). Needs a build with the `sql` or `sql-bundled` feature.
    ///
    /// Example:
    ///   tidelake sql --config tidelake.toml "SELECT ad_id, sum(clicks) FROM ad_events_day GROUP BY ALL"
    ///   tidelake sql --config tidelake.toml --format csv "SELECT * FROM ad_events_dead_letters"
    #[command(verbatim_doc_comment)]
    Sql(sql::Args),
    /// Run one SQL statement over the lake and the fresh records still in Kafka: `lake.<table>` is a
    /// Delta table (data, dead letters, archive, rollups; `FOR VERSION AS OF n` or
    /// `FOR TIMESTAMP AS OF TIMESTAMP '...'` for an older version), `kafka.<topic>` the records
    /// above the offsets the lake holds, `live.<table>` both together with no gap and no double count.
    ///
    /// Example:
    ///   tidelake query --config tidelake.toml "SELECT count(*), sum(cost) FROM live.ad_events"
    ///   tidelake query --format csv "SELECT _partition, count(*) FROM kafka.ad_events GROUP BY 1"
    #[command(verbatim_doc_comment)]
    Query(query::Args),
    /// Serve the lake, the Kafka tail and live tables over the Trino client protocol, so Trino and
    /// Presto clients, JDBC drivers and BI tools connect as they would to Trino (catalog
    /// `tidelake`, schemas `lake`, `kafka`, `live`). Bound to 127.0.0.1 by default; any other
    /// address needs --users or --tokens and TLS, and unknown users are refused.
    ///
    /// Example:
    ///   tidelake serve --config tidelake.toml --listen 127.0.0.1:8080
    ///   echo 's3cret' | tidelake serve --hash-password | sed 's/^/alice:/' > users
    ///   tidelake serve --listen 0.0.0.0:8443 --users users --tls-cert cert.pem --tls-key key.pem
    #[command(verbatim_doc_comment)]
    Serve(serve::Args),
    /// Replay a table's archived records (all, or a range of Kafka timestamps) through the same
    /// ingest handler (decoding, dedup, dead letters, minute rollup) into shadow tables next to the
    /// live one; --source kafka reads the range from the topic instead, while it still holds it.
    /// Interrupted, it continues where it stopped when run again. --into replace then swaps those
    /// event days of the live tables (data and minute rollup) for the reprocessed rows, one commit
    /// per table; --compact recomputes the hour and day rollups of the range right after.
    ///
    /// Example:
    ///   tidelake reprocess --config tidelake.toml --table ad_events --from 2026-11-20 --to 2026-11-22
    ///   tidelake reprocess --config tidelake.toml --table ad_events --source kafka --from 2026-11-23T10:00:00Z
    ///   tidelake reprocess --config tidelake.toml --table ad_events --from 2026-11-21 --to 2026-11-21 --into replace --compact
    #[command(verbatim_doc_comment)]
    Reprocess(reprocess::Args),
    /// Build the function binaries (ingest, compact) for the AWS Lambda provided.al2023 runtime and
    /// write one bootstrap zip per function, for the Terraform module or any other deployment.
    /// Needs a tidelake source checkout and `cargo lambda` (`pip install cargo-lambda ziglang`).
    ///
    /// Example:
    ///   tidelake package --out dist
    ///   tidelake package --arch arm64 --out dist/arm64 --json
    #[command(verbatim_doc_comment)]
    Package(package::Args),
}

#[derive(clap::Args, Debug)]
struct IngestArgs {
    /// Pipeline config: a file path or an s3://bucket/key object.
    #[arg(long, env = "TIDELAKE_CONFIG", default_value = "tidelake.toml")]
    config: String,
    /// Stop once every partition is consumed up to where it ended at start.
    #[arg(long, env = "TIDELAKE_STOP_AT_END")]
    stop_at_end: bool,
    /// How long a fault (storage errors, the broker unreachable) is retried, with backoff, before
    /// ingest gives up and exits non-zero.
    #[arg(long, env = "TIDELAKE_MAX_RETRY_TIME", default_value = "15m", value_parser = humantime::parse_duration)]
    max_retry_time: Duration,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the CLI with the process's arguments and exits: 0 on success, 1 with a message on error,
/// 2 on bad usage.
pub fn main() {
    let cli = Cli::parse();
    let terminal = std::io::stderr().is_terminal();
    init_logging(terminal);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Quickstart(args) => quickstart::run(args, terminal).await,
            Command::Ingest(args) => ingest(args, terminal).await,
            Command::Audit(args) => audit::run(args).await,
            Command::Compact(args) => compact::run(args, terminal).await,
            Command::DuckdbInit(args) => duckdb_init::run(args).await,
            Command::Reprocess(args) => reprocess::run(args, terminal).await,
            Command::Sql(args) => sql::run(args).await,
            Command::Package(args) => package::run(args).await,
            Command::Query(args) => query::run(args).await,
            Command::Serve(args) => serve::run(args).await,
        }
    });
    if let Err(e) = result {
        eprintln!("tidelake: error: {e}");
        std::process::exit(1);
    }
}

/// The pipeline config and, optionally, one of its tables: the flags of every command that works on
/// tables.
#[derive(clap::Args, Debug)]
pub(crate) struct TableArgs {
    /// Pipeline config: a file path or an s3://bucket/key object.
    #[arg(long, env = "TIDELAKE_CONFIG", default_value = "tidelake.toml")]
    config: String,
    /// Only this table (with its dead letters and archive); all tables when left out.
    #[arg(long, env = "TIDELAKE_TABLE")]
    table: Option<String>,
}

impl TableArgs {
    /// Loads the config and picks the tables asked for: the named one, or all.
    pub(crate) async fn load(&self) -> Result<(PipelineConfig, Vec<tidelake_lake::TableSpec>), BoxError> {
        let config = PipelineConfig::for_function(&self.config).await?;
        let specs = match &self.table {
            None => config.tables.clone(),
            Some(name) => {
                let spec = config.tables.iter().find(|t| &t.name == name).ok_or_else(|| {
                    let names: Vec<&str> = config.tables.iter().map(|t| t.name.as_str()).collect();
                    format!("{}: no table `{name}`; the config has {}", self.config, names.join(", "))
                })?;
                vec![spec.clone()]
            }
        };
        Ok((config, specs))
    }
}

/// A spinner with running counts on a terminal; hidden otherwise (the logs say the same).
pub(crate) fn progress(terminal: bool, what: &str) -> ProgressBar {
    let bar = if terminal { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"));
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar counting up to `len` on a terminal (hidden otherwise).
pub(crate) fn progress_bar(terminal: bool, len: u64, what: &str) -> ProgressBar {
    let bar = if terminal { ProgressBar::new(len) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:32}] {pos}/{len} {msg} ({per_sec})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn ingest(args: IngestArgs, terminal: bool) -> Result<(), BoxError> {
    let (mut ingestor, connection) = poller::start(&args.config, args.stop_at_end, Instant::now()).await?;
    let options = PollerOptions {
        max_retry_time: args.max_retry_time,
        config_location: Some(args.config.clone()),
        ..PollerOptions::new(ingestor.config().batch, args.stop_at_end)
    };
    let bar = progress(terminal, "waiting for records");
    let (mut records, mut rows, mut dead, mut dup) = (0, 0, 0, 0);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping after the current batch");
    };
    let report = poller::run_connected(&mut ingestor, connection, options, shutdown, |batch| {
        records += batch.records;
        rows += batch.rows_written();
        dead += batch.dead_letters();
        dup += batch.duplicates();
        bar.set_message(format!(
            "{records} records, {rows} rows written, {dead} dead letters, {dup} duplicates dropped"
        ));
    })
    .await?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "ingested {} records in {} batches: {} rows written, {} dead letters, {} duplicates dropped",
            report.records, report.batches, report.rows_written, report.dead_letters, report.duplicates_dropped
        );
    }
    Ok(())
}
