//! Ingest benchmark against the real Kafka broker: throughput of `tidelake ingest` into a local Delta
//! table, as a ratio against just consuming the same records with a consumer group of its own (the
//! floor, best of three; ingest the median of three; both include joining the group), the ingest process's peak RSS with 1, 6 and 32 MB
//! batches, the cold start of the `tidelake` binary (spawn to consuming), the reprocess rate from the
//! archive against the live rate, Avro's ingest rate against JSON's, and an aggregate through `tidelake sql` over the lake's views
//! against a plain glob of the same files.
//!
//! Run: `DUCKDB_LIB_DIR=$(infra/duckdb.sh) cargo bench -p tidelake-tests --features sql --bench ingest`
//! (`TIDELAKE_BENCH_EVENTS` sets the event count, default 300000, `TIDELAKE_BENCH_PARTITIONS` the
//! topic's partitions, default 3; without `sql`, the DuckDB comparison is left out). With `-- --json`
//! the last line of stdout is one JSON object of the figures measured in the run: `ingest_vs_floor`
//! (ingest events/s over the plain consumer's), `peak_rss_mb` and `batch_mb` (the 6 MB run),
//! `peak_rss_mb_by_batch_mb`, `cold_start_ms` (median of 5; `function_cold_start_ms` the same for
//! the `ingest` function's binary with its poller, `lambda_init_ms` for that binary under cargo
//! lambda's runtime API emulator, spawn to ready for an event) and `gb_seconds_per_million` (Lambda
//! GB-seconds per million events: the smallest Lambda memory size in 64 MB steps that holds the
//! `ingest` function binary's peak RSS, times the time per event the binary would take there, where
//! Lambda gives it a share of a vCPU in proportion to its memory: its run's CPU seconds, whole
//! process included, over that share, and at least the run's own time). With
//! `TIDELAKE_BENCH_PERF=<file>`, the 6 MB run is recorded by `perf record -g` into that file.
//! The same events are also produced as Avro and as Protobuf through the test schema registry and
//! ingested with 6 MB batches: `avro_vs_json` and `protobuf_vs_json` are their ingest rates over the
//! JSON one.

#[allow(dead_code)]
#[path = "../tests/it/helpers.rs"]
mod helpers;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;

use helpers::*;

/// The batch size ingest is given, as a Lambda event of Kafka's default 6 MB payload would be.
const BATCH_MB: u64 = 6;

/// The Lambda memory size that comes with one vCPU; a smaller function gets its share of one.
const VCPU_MB: f64 = 1769.0;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let events: usize = std::env::var("TIDELAKE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(300_000);
    let partitions: i32 = std::env::var("TIDELAKE_BENCH_PARTITIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let topic = unique("bench");
    create_topic(&topic, partitions).await;
    let records = helpers::events(events, 0.0, 0.0, 11);
    let bytes: usize = records.iter().map(|r| r.key.len() + r.value.len()).sum();
    produce(&producer(), &topic, &records).await;
    let mb = bytes as f64 / 1e6;
    println!("records: {} ({mb:.1} MB of keys and values) over {partitions} partitions", records.len());

    // The floor: the same records consumed and copied into batches, nothing written; the best of
    // three, the hardest one for ingest to come near.
    let mut floors = Vec::new();
    for _ in 0..3 {
        floors.push(consume_only(&topic, records.len()).await);
    }
    let floor = *floors.iter().min().unwrap();
    println!(
        "consume only (floor):   {:>7.2} s  {:>9.0} events/s  {:>6.1} MB/s  (best of {})",
        floor.as_secs_f64(),
        records.len() as f64 / floor.as_secs_f64(),
        mb / floor.as_secs_f64(),
        floors.iter().map(|f| format!("{:.2} s", f.as_secs_f64())).collect::<Vec<_>>().join(", ")
    );

    // Ingest with Lambda-sized batches: at most 6 MB each (the headline), then 1 MB and 32 MB for the
    // memory each batch size needs, each into a lake of its own.
    let bin = env!("CARGO_BIN_EXE_tidelake-under-test");
    let dir = tempfile::tempdir().unwrap();
    let run = ingest_run(bin, dir.path(), &topic, BATCH_MB, Format::Json, std::env::var("TIDELAKE_BENCH_PERF").ok());
    assert_eq!(run.rows_written, records.len() as u64, "every event ingested");
    // One run's time moves by a tenth either way on two cores: the median of three, each into a
    // lake of its own.
    let mut times = vec![run.time];
    for _ in 0..2 {
        times.push(fresh_run(bin, &topic, BATCH_MB, Format::Json, records.len()).time);
    }
    let runs = times.iter().map(|t| format!("{:.2} s", t.as_secs_f64())).collect::<Vec<_>>().join(", ");
    times.sort();
    let ingest = times[1];
    let config = run.config.clone();
    println!(
        "ingest (this binary):   {:>7.2} s  {:>9.0} events/s  {:>6.1} MB/s  in {} batches (median of {runs})",
        ingest.as_secs_f64(),
        records.len() as f64 / ingest.as_secs_f64(),
        mb / ingest.as_secs_f64(),
        run.batches
    );
    println!("ingest time / floor:    {:.2}x", ingest.as_secs_f64() / floor.as_secs_f64());

    // The same events as Avro through the schema registry (confluent-kafka's AvroSerializer), into a
    // lake of their own with the same batch size.
    let avro_topic = unique("bench-avro");
    create_topic(&avro_topic, partitions).await;
    produce_avro(&avro_topic, &records, &[], "v1");
    let avro = fresh_run(bin, &avro_topic, BATCH_MB, Format::Avro, records.len());
    let avro_vs_json = ingest.as_secs_f64() / avro.time.as_secs_f64();
    println!(
        "ingest of Avro:         {:>7.2} s  {:>9.0} events/s  ({avro_vs_json:.2}x the JSON rate)",
        avro.time.as_secs_f64(),
        records.len() as f64 / avro.time.as_secs_f64(),
    );
    let proto_topic = unique("bench-protobuf");
    create_topic(&proto_topic, partitions).await;
    produce_protobuf(&proto_topic, &records, &[]);
    let proto = fresh_run(bin, &proto_topic, BATCH_MB, Format::Protobuf, records.len());
    let protobuf_vs_json = ingest.as_secs_f64() / proto.time.as_secs_f64();
    println!(
        "ingest of Protobuf:     {:>7.2} s  {:>9.0} events/s  ({protobuf_vs_json:.2}x the JSON rate)",
        proto.time.as_secs_f64(),
        records.len() as f64 / proto.time.as_secs_f64(),
    );
    let peak_rss_mb = run.peak_rss_mb;
    let mut peaks = serde_json::Map::new();
    for batch_mb in [1, BATCH_MB, 32] {
        let peak = if batch_mb == BATCH_MB {
            run.peak_rss_mb
        } else {
            let run = fresh_run(bin, &topic, batch_mb, Format::Json, records.len());
            println!(
                "ingest with {batch_mb:>2} MB batches: {:>7.2} s  {:>9.0} events/s  in {} batches",
                run.time.as_secs_f64(),
                records.len() as f64 / run.time.as_secs_f64(),
                run.batches
            );
            run.peak_rss_mb
        };
        match peak {
            Some(mb) => println!("peak RSS of ingest with {batch_mb:>2} MB batches: {mb:.1} MB"),
            None => println!("peak RSS: not measured (/usr/bin/time is missing)"),
        }
        peaks.insert(batch_mb.to_string(), peak.into());
    }

    // The same 6 MB run with the `ingest` function's binary, which leaves out the CLI's other
    // commands (and the DuckDB library `tidelake sql` links).
    let function = env!("CARGO_BIN_EXE_ingest-function-under-test");
    let function_run = fresh_run(function, &topic, BATCH_MB, Format::Json, records.len());
    println!(
        "ingest function's binary, {BATCH_MB} MB batches: {:>7.2} s  {:>9.0} events/s; peak RSS {}",
        function_run.time.as_secs_f64(),
        records.len() as f64 / function_run.time.as_secs_f64(),
        function_run.peak_rss_mb.map_or("not measured".to_string(), |mb| format!("{mb:.1} MB"))
    );

    // Reprocess: the same records replayed from the archive into a shadow table.
    let started = Instant::now();
    let out = Command::new(bin)
        .args(["reprocess", "--config", config.to_str().unwrap(), "--table", "ad_events", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let reprocess = started.elapsed();
    assert!(out.status.success(), "reprocess failed: {}", String::from_utf8_lossy(&out.stderr));
    let replayed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replayed["rows_written"].as_u64(), Some(run.rows_written), "the shadow table holds the same rows");
    println!(
        "reprocess from archive: {:>7.2} s  {:>9.0} events/s  ({:.2}x the live ingest rate)",
        reprocess.as_secs_f64(),
        records.len() as f64 / reprocess.as_secs_f64(),
        ingest.as_secs_f64() / reprocess.as_secs_f64()
    );

    // DuckDB through the lake's views against a plain glob of the same files.
    duckdb_views_against_glob(bin, &config);

    // Cold start: spawn to "consuming" (config read, tables opened, consumer subscribed), median of
    // 5, and its parts in the median run; the process start alone is `--version`'s spawn to exit.
    // The same for the `ingest` function's binary (no DuckDB linked: what Lambda runs) with its own
    // poller, and under the Lambda runtime API emulator: spawn to ready for the first event.
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median_start = |bin: &str| {
        let mut loads: Vec<Duration> = (0..5).map(|_| process_start(bin)).collect();
        loads.sort();
        ms(loads[2])
    };
    let median = median_of_5(|| cold_start(tidelake_ingest(bin, &config)));
    let process_ms = median_start(bin);
    println!(
        "cold start of tidelake ingest (spawn to consuming), median of 5: {:.0} ms; config {:.1} ms, tables opened {:.1} ms (the topics' metadata {:.1} ms at the same time), then Kafka {:.1} ms (the lake's offsets {:.1}, the broker's {:.1}); the process's own start (--version) {process_ms:.1} ms",
        ms(median.total),
        median.config_ms,
        median.tables_ms,
        median.metadata_ms,
        median.kafka_ms,
        median.lake_offsets_ms,
        median.broker_offsets_ms,
    );
    let function_median = median_of_5(|| cold_start(function_poller(function, &config)));
    let function_process_ms = median_start(function);
    println!(
        "cold start of the ingest function's binary with its poller: {:.0} ms; config {:.1} ms, tables opened {:.1} ms (the topics' metadata {:.1} ms at the same time), then Kafka {:.1} ms; the process's own start {function_process_ms:.1} ms",
        ms(function_median.total),
        function_median.config_ms,
        function_median.tables_ms,
        function_median.metadata_ms,
        function_median.kafka_ms,
    );
    let emulator = LambdaEmulator::start();
    let lambda = median_of_5(|| lambda_init(function, &config, emulator.port));
    drop(emulator);
    println!(
        "Lambda init of the ingest function under cargo lambda's emulator (spawn to tables opened), median of 5: {:.1} ms; config {:.1} ms, tables opened {:.1} ms",
        ms(lambda.total),
        lambda.config_ms,
        lambda.tables_ms,
    );

    // Lambda cost: the memory size (64 MB steps, at least 128 MB) that holds the function binary's
    // peak, for as long as the run would take there. Lambda gives a function CPU in proportion to
    // its memory, so below one vCPU the run's CPU seconds stretch over its share of one; a function
    // bound by its CPU costs the same per event at any size from its peak up to one vCPU, and only
    // the time a batch takes changes with the size.
    let memory_mb = function_run.peak_rss_mb.map(|peak| ((peak / 64.0).ceil() * 64.0).max(128.0));
    let lambda_seconds = |mb: f64| {
        let cpu = function_run.cpu_seconds.unwrap_or(0.0);
        function_run.time.as_secs_f64().max(cpu / (mb / VCPU_MB).min(1.0))
    };
    let batch_ms = |mb: f64| lambda_seconds(mb) / function_run.batches.max(1) as f64 * 1e3;
    let gb_seconds = memory_mb.map(|mb| lambda_seconds(mb) / records.len() as f64 * 1e6 * mb / 1024.0);
    if let (Some(mb), Some(cost)) = (memory_mb, gb_seconds) {
        println!(
            "Lambda cost: {cost:.1} GB-s per million events at {mb:.0} MB ({:.2} CPU-s for the run: {:.0} ms a {BATCH_MB} MB batch there, {:.0} ms at {VCPU_MB:.0} MB, one vCPU)",
            function_run.cpu_seconds.unwrap_or(f64::NAN),
            batch_ms(mb),
            batch_ms(VCPU_MB)
        );
    }
    // An always-on process of the same memory costs the same GB-seconds every day, whatever the
    // traffic: below the break-even rate the functions cost less.
    let always_on = memory_mb.map(|mb| mb / 1024.0 * 86_400.0);
    let break_even = always_on.zip(gb_seconds).map(|(day, per_million)| day / per_million * 1e6);
    if let (Some(day), Some(events)) = (always_on, break_even) {
        println!(
            "always-on process of that memory: {day:.0} GB-s a day; the functions cost less below {:.0} million events a day",
            events / 1e6
        );
    }
    if std::env::args().any(|a| a == "--json") {
        let figures = serde_json::json!({
            "events": records.len(),
            "partitions": partitions,
            "ingest_vs_floor": floor.as_secs_f64() / ingest.as_secs_f64(),
            "ingest_events_per_s": records.len() as f64 / ingest.as_secs_f64(),
            "floor_events_per_s": records.len() as f64 / floor.as_secs_f64(),
            "peak_rss_mb": peak_rss_mb,
            "batch_mb": BATCH_MB,
            "peak_rss_mb_by_batch_mb": peaks,
            "cold_start_ms": ms(median.total),
            "cold_start_parts_ms": {
                "process": process_ms,
                "config": median.config_ms,
                "tables": median.tables_ms,
                "kafka": median.kafka_ms,
                "kafka_metadata": median.metadata_ms,
                "lake_offsets": median.lake_offsets_ms,
                "broker_offsets": median.broker_offsets_ms,
            },
            "function_cold_start_ms": ms(function_median.total),
            "function_peak_rss_mb": function_run.peak_rss_mb,
            "function_events_per_s": records.len() as f64 / function_run.time.as_secs_f64(),
            "function_cpu_seconds": function_run.cpu_seconds,
            "function_process_start_ms": function_process_ms,
            "lambda_init_ms": ms(lambda.total),
            "lambda_init_parts_ms": { "config": lambda.config_ms, "tables": lambda.tables_ms },
            "lambda_memory_mb": memory_mb,
            "lambda_batch_ms": memory_mb.map(batch_ms),
            "gb_seconds_per_million": gb_seconds,
            "always_on_gb_seconds_per_day": always_on,
            "break_even_events_per_day": break_even,
            "reprocess_vs_ingest": ingest.as_secs_f64() / reprocess.as_secs_f64(),
            "avro_vs_json": avro_vs_json,
            "avro_events_per_s": records.len() as f64 / avro.time.as_secs_f64(),
            "protobuf_vs_json": protobuf_vs_json,
            "protobuf_events_per_s": records.len() as f64 / proto.time.as_secs_f64(),
        });
        println!("{figures}");
    }
}

/// How the bench topic's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Avro,
    Protobuf,
}

/// One `tidelake ingest --stop-at-end` run of `topic` into a fresh lake in `dir`.
struct IngestRun {
    config: std::path::PathBuf,
    time: Duration,
    rows_written: u64,
    batches: u64,
    peak_rss_mb: Option<f64>,
    /// User and system CPU seconds of the whole process.
    cpu_seconds: Option<f64>,
}

/// An [`ingest_run`] of `bin` into a lake of its own (dropped after), which must write every one of
/// the topic's `events` events.
fn fresh_run(bin: &str, topic: &str, batch_mb: u64, format: Format, events: usize) -> IngestRun {
    let dir = tempfile::tempdir().unwrap();
    let run = ingest_run(bin, dir.path(), topic, batch_mb, format, None);
    assert_eq!(run.rows_written, events as u64, "every event ingested by {bin} ({batch_mb} MB batches, {format:?})");
    run
}

/// Ingests `topic` to its end with batches of at most `batch_mb` MB (the bytes decide, not a record
/// count), timing the whole process; peak RSS and CPU seconds from /usr/bin/time, and with
/// `profile`, a CPU profile of the run recorded by `perf record -g` into that file.
fn ingest_run(
    bin: &str,
    dir: &std::path::Path,
    topic: &str,
    batch_mb: u64,
    format: Format,
    profile: Option<String>,
) -> IngestRun {
    let config = write_config(dir, topic, &unique("group"), 1_000_000);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("max_wait = \"300ms\"", &format!("max_wait = \"500ms\"\nmax_bytes = \"{batch_mb}MB\""));
    std::fs::write(&config, text).unwrap();
    match format {
        Format::Json => {}
        Format::Avro => read_through_registry(&config, "avro"),
        Format::Protobuf => read_through_registry(&config, "protobuf"),
    }
    let timed = std::path::Path::new("/usr/bin/time").exists();
    let mut wrappers: Vec<String> = Vec::new();
    if timed {
        wrappers.extend(["/usr/bin/time", "-f", "peak_rss_kb=%M\ncpu_seconds=%U+%S"].map(String::from));
    }
    if let Some(profile) = &profile {
        wrappers.extend(["perf", "record", "-F", "999", "-g", "-o", profile, "--"].map(String::from));
        println!("profiling the ingest run into {profile}");
    }
    let mut cmd = match wrappers.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    // The `ingest` function's binary takes the config and prints its report as it is; `tidelake`
    // has the subcommand and prints it with --json.
    if bin == env!("CARGO_BIN_EXE_ingest-function-under-test") {
        cmd.args(["--config", config.to_str().unwrap(), "--stop-at-end"]);
    } else {
        cmd.args(["ingest", "--config", config.to_str().unwrap(), "--stop-at-end", "--json"]);
    }
    cmd.env("RUST_LOG", "warn");
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let time = started.elapsed();
    assert!(out.status.success(), "ingest failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak_rss_mb = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kb="))
        .map(|kb| kb.trim().parse::<f64>().unwrap() / 1024.0);
    let cpu_seconds = stderr
        .lines()
        .find_map(|l| l.strip_prefix("cpu_seconds="))
        .map(|s| s.split('+').map(|part| part.trim().parse::<f64>().unwrap()).sum());
    IngestRun {
        config,
        time,
        rows_written: report["rows_written"].as_u64().unwrap(),
        batches: report["batches"].as_u64().unwrap(),
        peak_rss_mb,
        cpu_seconds,
    }
}

async fn consume_only(topic: &str, expected: usize) -> Duration {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("group.id", unique("floor"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // The client settings the poller uses: with librdkafka's default queue backoff, a full
        // prefetch queue stalled this consumer for a second in about one run of two.
        .set("fetch.queue.backoff.ms", "5")
        .set("reconnect.backoff.ms", "10")
        .create()
        .unwrap();
    let started = Instant::now();
    consumer.subscribe(&[topic]).unwrap();
    let (mut seen, mut batch, mut names) = (0, Vec::with_capacity(10_000), tidelake_lake::batch::TopicNames::default());
    while seen < expected {
        match consumer.recv().await {
            Ok(message) => {
                batch.push(tidelake_lake::kafka::to_record(&message, &mut names));
                seen += 1;
                if batch.len() == 10_000 {
                    batch.clear();
                }
            }
            Err(KafkaError::PartitionEOF(_)) => {}
            Err(e) => panic!("consume failed: {e}"),
        }
    }
    started.elapsed()
}

/// One cold start of `tidelake ingest` and its parts, from the process's own log.
#[derive(Debug, Clone, Copy, Default)]
struct ColdStart {
    /// Spawn to the "consuming" log line.
    total: Duration,
    config_ms: f64,
    tables_ms: f64,
    /// The Kafka side after the tables opened: the lake's offsets and the broker's.
    kafka_ms: f64,
    /// Creating the client and fetching the topics' metadata, while the tables open.
    metadata_ms: f64,
    /// The parts of `kafka_ms`: reading where the lake left each partition, asking the broker for
    /// the offsets the lake lacks.
    lake_offsets_ms: f64,
    broker_offsets_ms: f64,
}

/// `tidelake ingest --config <config>`.
fn tidelake_ingest(bin: &str, config: &std::path::Path) -> Command {
    let mut command = Command::new(bin);
    command.args(["ingest", "--config", config.to_str().unwrap()]);
    command
}

/// The `ingest` function's binary with its local poller: `ingest --config <config>`.
fn function_poller(function: &str, config: &std::path::Path) -> Command {
    let mut command = Command::new(function);
    command.args(["--config", config.to_str().unwrap()]);
    command
}

/// The cold start of the process `command` starts (an ingest with its local poller): spawn to its
/// "consuming" line, and the parts its log gives.
fn cold_start(mut command: Command) -> ColdStart {
    let started = Instant::now();
    let mut child = command.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut start = ColdStart::default();
    let field = |event: &serde_json::Value, name: &str| event[name].as_f64().unwrap_or(f64::NAN);
    let mut ready = false;
    for line in stderr.lines() {
        let line = line.unwrap();
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        match event["message"].as_str() {
            Some("tables opened") => {
                (start.config_ms, start.tables_ms) = (field(&event, "config_ms"), field(&event, "tables_ms"))
            }
            Some("consuming") => {
                start.total = started.elapsed();
                start.kafka_ms = field(&event, "setup_ms");
                start.metadata_ms = field(&event, "metadata_ms");
                start.lake_offsets_ms = field(&event, "lake_offsets_ms");
                start.broker_offsets_ms = field(&event, "broker_offsets_ms");
                ready = true;
                break;
            }
            _ => {}
        }
    }
    child.kill().ok();
    child.wait().ok();
    assert!(ready, "the ingest process reported it was consuming");
    start
}

/// The `ingest` function started as Lambda starts it, against cargo lambda's runtime API emulator
/// on `port`, with the config at `config`: spawn to its "tables opened" line (config read, tables
/// opened; next is the runtime's first request for an event), and that line's parts.
fn lambda_init(function: &str, config: &std::path::Path, port: u16) -> ColdStart {
    let started = Instant::now();
    let mut child = Command::new(function)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("TIDELAKE_CONFIG", config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut init = None;
    for line in stderr.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line.unwrap()) else { continue };
        if event["message"] == "tables opened" {
            let field = |name: &str| event[name].as_f64().unwrap_or(f64::NAN);
            init = Some(ColdStart {
                total: started.elapsed(),
                config_ms: field("config_ms"),
                tables_ms: field("tables_ms"),
                ..ColdStart::default()
            });
            break;
        }
    }
    child.kill().ok();
    child.wait().ok();
    init.expect("the function reported its tables opened")
}

/// The median of five runs of `run`, by total time.
fn median_of_5(mut run: impl FnMut() -> ColdStart) -> ColdStart {
    let mut runs: Vec<ColdStart> = (0..5).map(|_| run()).collect();
    runs.sort_by_key(|s| s.total);
    runs[2]
}

/// Spawn to exit of `tidelake --version`: loading the binary and its libraries, nothing else.
fn process_start(bin: &str) -> Duration {
    let started = Instant::now();
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    started.elapsed()
}

/// The same aggregate through `tidelake sql` over the lake's views and over a plain glob of the
/// table's files, five times each in one session, best run (`--timing`).
#[cfg(feature = "sql")]
fn duckdb_views_against_glob(bin: &str, config: &std::path::Path) {
    use std::io::Write;
    let table_dir = load_config(config).tables[0].location.to_file_path().unwrap();
    let glob = format!("read_parquet('{}/**/*.parquet', hive_partitioning = true)", table_dir.display());
    let query = |from: &str| format!("SELECT ad_id, count(*), sum(cost) FROM {from} GROUP BY ad_id;\n");
    let mut script = String::new();
    for from in ["ad_events", glob.as_str()] {
        for _ in 0..5 {
            script.push_str(&query(from));
        }
    }
    let mut child = Command::new(bin)
        .args(["sql", "--config", config.to_str().unwrap(), "--timing", "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "tidelake sql: {}", String::from_utf8_lossy(&out.stderr));
    let times: Vec<f64> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("timing: statement ")?.strip_suffix(" ms")?.parse().ok())
        .collect();
    let views_ms: f64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("timing: views ")?.strip_suffix(" ms")?.parse().ok())
        .unwrap();
    let best = |t: &[f64]| t.iter().copied().fold(f64::INFINITY, f64::min);
    let (through_views, plain) = (best(&times[..5]), best(&times[5..]));
    println!(
        "tidelake sql aggregate, best of 5: through the views {through_views:.1} ms, plain glob {plain:.1} ms ({:.2}x); resolving the views from the Delta logs {views_ms:.1} ms",
        through_views / plain
    );
}

/// Without the embedded DuckDB (`--features sql`), the comparison is left out.
#[cfg(not(feature = "sql"))]
fn duckdb_views_against_glob(_bin: &str, _config: &std::path::Path) {
    println!("tidelake sql aggregate: left out (run with --features sql)");
}
