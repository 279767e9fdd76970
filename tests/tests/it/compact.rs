//! `tidelake compact`: small files packed, the log checkpointed, old files vacuumed, with the same
//! rows for every reader, and safe while ingest runs.

use std::collections::HashMap;
use std::path::Path;

use tidelake_functions::Ingestor;
use tidelake_lake::{KafkaBatch, KafkaRecord, PipelineConfig};

use crate::helpers::*;

/// Runs `tidelake compact --config <config> --json <extra>`, which must succeed, and returns its report.
fn compact(config: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["compact", "--config", config.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_slice(&run_ok(&args, &[]).stdout).expect("json report")
}

/// The sample table with dedup off, in a lake under `dir`, without Kafka.
fn write_local_config(dir: &Path) -> (std::path::PathBuf, PipelineConfig) {
    let table = tidelake_lake::sample::AD_EVENTS_TABLE.replace("partition_by", "dedup_window = \"off\"\npartition_by");
    let text = format!("[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{table}");
    let path = dir.join("tidelake.toml");
    std::fs::write(&path, &text).unwrap();
    (path.clone(), PipelineConfig::parse(&text, dir).unwrap())
}

/// Batch `batch` of 50 click events at offsets `50 * batch ..`, all in the hour 10:00 of one day.
fn clicks(batch: i64) -> KafkaBatch {
    let records = (0..50)
        .map(|i| local_record(batch * 50 + i, format!(r#"{{"event_id":"e-{batch}-{i}","event_time":"2026-11-23T10:{i:02}:00Z","event_type":"click","ad_id":1,"campaign_id":1000}}"#)))
        .collect();
    KafkaBatch::new(records)
}

fn data_files_on_disk(table: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.ends_with("_delta_log"))
            .map(|p| if p.is_dir() { walk(&p) } else { usize::from(p.extension().is_some_and(|e| e == "parquet")) })
            .sum()
    }
    walk(table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_small_files_pack_into_one_per_partition_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (config_path, config) = write_local_config(dir.path());
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    // 42 batches of 240 events, one in each hour of 10 days: every batch writes one small file into
    // each of the 240 (date, hour) partitions.
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-10T00:30:00Z").unwrap();
    let mut offset = 0;
    for batch in 0..42 {
        let records: Vec<KafkaRecord> = (0..240)
            .map(|hour| {
                let time = (start + chrono::Duration::hours(hour) + chrono::Duration::seconds(batch)).to_rfc3339();
                let value = format!(
                    r#"{{"event_id":"e-{batch}-{hour}","event_time":"{time}","event_type":"impression","ad_id":{hour},"campaign_id":1000,"cost":"0.{batch:06}"}}"#
                );
                offset += 1;
                local_record(offset, value)
            })
            .collect();
        ingestor.handle(&KafkaBatch::new(records)).await.unwrap();
    }
    let spec = &config.tables[0];
    let none = HashMap::new();
    let before = open(&spec.location, &none).await;
    assert_eq!(tidelake_lake::delta::row_and_file_count(&before).unwrap(), (10_080, 10_080));
    let read_before = read_back(&spec.location, "event_id", "cost");

    // A dry run plans the packing and writes nothing.
    let plan = compact(&config_path, &["--job", "optimize", "--dry-run"]);
    assert_eq!(plan["tables"][0]["optimize"]["files_removed"], 10_080, "{plan}");
    assert_eq!(plan["tables"][0]["optimize"]["bins"], 240);
    assert_eq!(open(&spec.location, &none).await.version(), before.version(), "a dry run commits nothing");

    let report = compact(&config_path, &["--job", "optimize"]);
    let optimize = &report["tables"][0]["optimize"];
    assert_eq!((optimize["files_before"].as_u64(), optimize["files_after"].as_u64()), (Some(10_080), Some(240)));
    assert_eq!(optimize["rows"], 10_080);
    let after = open(&spec.location, &none).await;
    assert_eq!(tidelake_lake::delta::row_and_file_count(&after).unwrap(), (10_080, 240));
    // DuckDB and Python deltalake read the same rows as before.
    assert_eq!(read_back(&spec.location, "event_id", "cost"), read_before);
    let (passed, audit_report, stderr) = audit(&config_path, &["--offline"]);
    assert!(passed, "{audit_report} {stderr}");
    assert_eq!(audit_report["rows_in_table"], 10_080);

    // Nothing left to pack: no commit.
    let again = compact(&config_path, &["--job", "optimize"]);
    assert_eq!(again["tables"][0]["optimize"]["files_removed"], 0);
    assert_eq!(open(&spec.location, &none).await.version(), after.version(), "a second run commits nothing");

    // Vacuum: with the default retention the removed files stay (time travel); with none they go.
    let table_dir = spec.location.to_file_path().unwrap();
    assert_eq!(data_files_on_disk(&table_dir), 10_080 + 240);
    let kept = compact(&config_path, &["--job", "vacuum", "--dry-run"]);
    assert_eq!(kept["tables"][0]["vacuum"]["files"].as_array().unwrap().len(), 0);
    let listed = compact(&config_path, &["--job", "vacuum", "--dry-run", "--retention", "0s"]);
    assert_eq!(listed["tables"][0]["vacuum"]["files"].as_array().unwrap().len(), 10_080);
    assert_eq!(data_files_on_disk(&table_dir), 10_080 + 240, "a dry run deletes nothing");
    compact(&config_path, &["--job", "vacuum", "--retention", "0s"]);
    assert_eq!(data_files_on_disk(&table_dir), 240);
    assert_eq!(read_back(&spec.location, "event_id", "cost"), read_before);

    // Checkpoint, then every job again: nothing to do, no commit.
    compact(&config_path, &["--job", "checkpoint"]);
    assert!(table_dir.join("_delta_log/_last_checkpoint").exists());
    let version = open(&spec.location, &none).await.version();
    let idle = compact(&config_path, &["--retention", "0s"]);
    assert_eq!(idle["tables"][0]["checkpoint"]["version"], serde_json::Value::Null, "{idle}");
    assert_eq!(idle["tables"][0]["vacuum"]["files"].as_array().unwrap().len(), 0);
    assert_eq!(open(&spec.location, &none).await.version(), version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_ingest_runs_loses_and_doubles_nothing() {
    let records = events(40_000, 0.05, 0.005, 21);
    // The records come in four parts, each ingested to its end while compaction runs; the next part
    // waits until a compaction run has landed since, so several runs land between ingest's
    // commits however fast either one is.
    let parts: Vec<&[tidelake_lake::sample::SampleRecord]> = records.chunks(records.len().div_ceil(4)).collect();
    let topic = filled_topic("compactlive", 3, parts[0]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with_rollup(dir.path(), &topic, &unique("group"), 100);
    Ingestor::open(load_config(&config)).await.unwrap();
    // Finalize, roll up, optimize (small target, so files keep being packed) and checkpoint every
    // 200 ms while ingest commits small batches; the events are old, so every minute is closed and
    // finalize merges whatever ingest has written. (Not vacuum with no retention: it would delete
    // files a writer has written and not yet committed.)
    let mut compactor = std::process::Command::new(env!("CARGO_BIN_EXE_tidelake-under-test"))
        .args(["compact", "--config", config.to_str().unwrap(), "--every", "200ms", "--target-size", "1MiB"])
        .args(["--job", "finalize,rollup,optimize,checkpoint", "--json"])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (runs_tx, runs) = std::sync::mpsc::channel();
    let stdout = std::io::BufReader::new(compactor.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stdout).map_while(Result::ok) {
            let _ = runs_tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut batches = 0;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            produce(&producer(), &topic, part).await;
        }
        batches += ingest_to_end(&config)["batches"].as_u64().unwrap();
        lines.extend(runs.try_iter());
        let next = runs.recv_timeout(std::time::Duration::from_secs(120)).expect("a compaction run landed");
        lines.push(next);
    }
    compactor.kill().unwrap();
    compactor.wait().unwrap();
    let packed: u64 = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|r| r["tables"][0]["optimize"]["files_removed"].as_u64().unwrap_or(0))
        .sum();
    let last = lines.last().cloned().unwrap_or_default();
    assert!(lines.len() >= 4 && packed > 0, "compaction ran {} times and packed {packed} files: {last}", lines.len());
    assert!(batches > 20, "ingest committed {batches} batches");

    // Ingest has stopped: now the removed files can go.
    compact(&config, &["--retention", "0s"]);
    let spec = &load_config(&config).tables[0];
    let rows = read_rows(&spec.location, &HashMap::new()).await;
    let ids = strings(&rows, "event_id");
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 40_000, "one row per event");
    assert_eq!(distinct.len(), 40_000);
    audit_passes(&config);
    let grains = ["minute", "hour", "day"];
    assert_rollups_match(&rollup_check(&spec.location, &grains), &grains, 0.05);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_compact_function_packs_once_and_then_has_nothing_to_do() {
    use lambda_runtime::{Context, LambdaEvent};
    use tidelake_compaction::lambda::{handle, CompactFunction};

    let dir = tempfile::tempdir().unwrap();
    let (_, config) = write_local_config(dir.path());
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    for batch in 0..6 {
        ingestor.handle(&clicks(batch)).await.unwrap();
    }
    let function = CompactFunction { config: config.clone(), options: Default::default() };
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../../../compaction/fixtures/schedule-event.json")).unwrap();
    let invoke = |payload: serde_json::Value| handle(LambdaEvent::new(payload, Context::default()), &function);

    // A mistyped input fails the invocation, naming its field, and runs nothing.
    let version = open(&config.tables[0].location, &HashMap::new()).await.version();
    for (bad, says) in [
        (serde_json::json!({"jobs": ["optimise"]}), "field `jobs`"),
        (serde_json::json!({"dry_run": "true"}), "field `dry_run`"),
        (serde_json::json!({"tables": "ad_events"}), "unknown field `tables`"),
    ] {
        let refused = invoke(bad.clone()).await.unwrap_err().to_string();
        assert!(refused.contains(says), "{bad}: {refused}");
    }
    assert_eq!(open(&config.tables[0].location, &HashMap::new()).await.version(), version, "nothing ran");

    // An input that narrows the run to a dry run of optimize on the data table.
    let plan = invoke(serde_json::json!({"table": "ad_events", "jobs": ["optimize"], "dry_run": true})).await.unwrap();
    assert_eq!(plan["tables"].as_array().unwrap().len(), 3, "data, dead letters and archive: {plan}");
    assert_eq!(plan["tables"][0]["optimize"]["files_removed"], 6);

    // The plain scheduled event runs every job.
    let done = invoke(fixture.clone()).await.unwrap();
    let data = &done["tables"][0];
    assert_eq!(
        (data["optimize"]["files_before"].as_u64(), data["optimize"]["files_after"].as_u64()),
        (Some(6), Some(1))
    );
    let table = open(&config.tables[0].location, &HashMap::new()).await;
    // Optimize checkpointed its commit; the checkpoint job had nothing newer to checkpoint, or did.
    let last = std::fs::read(config.tables[0].location.to_file_path().unwrap().join("_delta_log/_last_checkpoint"));
    let last: serde_json::Value = serde_json::from_slice(&last.expect("a checkpoint")).unwrap();
    assert_eq!(last["version"].as_u64(), table.version(), "{done}");
    assert_eq!(data["optimize"]["checkpoint"], data["optimize"]["version"], "{done}");
    assert_eq!(tidelake_lake::delta::row_and_file_count(&table).unwrap(), (300, 1));

    let again = invoke(fixture).await.unwrap();
    assert_eq!(again["tables"][0]["optimize"]["files_removed"], 0);
    assert_eq!(
        open(&config.tables[0].location, &HashMap::new()).await.version(),
        table.version(),
        "nothing to do, no commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_killed_at_any_step_then_run_again_gives_the_same_table() {
    let records = events(6_000, 0.05, 0.005, 22);
    let topic = filled_topic("compactcrash", 2, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 200);
    ingest_to_end(&config);
    let spec = &load_config(&config).tables[0];
    let none = HashMap::new();
    let read_before = read_back(&spec.location, "event_id", "cost");
    let files_before = tidelake_lake::delta::row_and_file_count(&open(&spec.location, &none).await).unwrap().1;
    assert!(files_before > 10, "{files_before} files");

    // Killed with the new files written but not committed: the table is as it was.
    let version = open(&spec.location, &none).await.version();
    let out = run_tidelake(
        &["compact", "--config", config.to_str().unwrap(), "--job", "optimize"],
        &[("TIDELAKE_CRASH_AT", "optimize-after-write")],
    );
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && said.contains("crash injected"), "{said}");
    assert_eq!(open(&spec.location, &none).await.version(), version, "nothing committed");
    assert_eq!(read_back(&spec.location, "event_id", "cost"), read_before);
    // Killed after the data table's commit, before the dead letters and the archive.
    let out = run_tidelake(
        &["compact", "--config", config.to_str().unwrap()],
        &[("TIDELAKE_CRASH_AT", "optimize-after-commit")],
    );
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && said.contains("crash injected"), "{said}");

    // Run again: the rest is done, the files the first kill left are vacuumed, the rows are the same.
    let report = compact(&config, &["--retention", "0s"]);
    let data = &report["tables"][0];
    assert_eq!(data["optimize"]["files_removed"], 0, "the data table was optimized before the kill: {report}");
    assert!(report["tables"][2]["optimize"]["files_removed"].as_u64().unwrap() > 0, "the archive is packed now");
    assert!(!data["vacuum"]["files"].as_array().unwrap().is_empty(), "the uncommitted and removed files are vacuumed");
    let files_after = tidelake_lake::delta::row_and_file_count(&open(&spec.location, &none).await).unwrap().1;
    assert!(files_after < files_before / 4, "{files_before} -> {files_after} files");
    assert_eq!(read_back(&spec.location, "event_id", "cost"), read_before);
    audit_passes(&config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_rewriting_the_same_files_never_both_commit_and_vacuum_deletes_the_loser_s_file() {
    use std::time::Duration;
    use tidelake_compaction::{Optimize, Vacuum};
    let dir = tempfile::tempdir().unwrap();
    let (_, config) = write_local_config(dir.path());
    let spec = &config.tables[0];
    let none = HashMap::new();
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    for batch in 0..6 {
        ingestor.handle(&clicks(batch)).await.unwrap();
    }
    // Two runs plan on the same version; the first packs the six files, the second must not too.
    let stale = open(&spec.location, &none).await;
    let (_, first) = Optimize::new(open(&spec.location, &none).await, &spec.name).await.unwrap();
    assert_eq!(first.files_removed, 6);
    let second = Optimize::new(stale, &spec.name).await.unwrap_err();
    assert!(second.is_conflict() && second.to_string().contains("removed"), "{second}");
    assert_eq!(tidelake_lake::delta::row_and_file_count(&open(&spec.location, &none).await).unwrap(), (300, 1));

    // The loser's packed file is an orphan: no commit adds it. Vacuum keeps it and the six removed
    // files while they are younger than the retention, lists exactly those seven past it, and
    // deletes them.
    let on_disk = || data_files_on_disk(&spec.location.to_file_path().unwrap());
    assert_eq!(on_disk(), 6 + 1 + 1);
    let vacuum = |retention: u64, dry_run: bool| {
        let location = spec.location.clone();
        async move {
            let table = open(&location, &HashMap::new()).await;
            Vacuum::new(table, "ad_events").with_retention(Duration::from_secs(retention)).with_dry_run(dry_run).await
        }
    };
    assert_eq!(vacuum(3600, false).await.unwrap().1.files, Vec::<String>::new());
    let mut listed = vacuum(0, true).await.unwrap().1.files;
    assert_eq!((listed.len(), on_disk()), (7, 8), "a dry run deletes nothing: {listed:?}");
    let mut deleted = vacuum(0, false).await.unwrap().1.files;
    listed.sort();
    deleted.sort();
    assert_eq!(deleted, listed);
    assert_eq!(on_disk(), 1);
    assert_eq!(tidelake_lake::delta::row_and_file_count(&open(&spec.location, &none).await).unwrap(), (300, 1));

    // An ingest commit landing meanwhile only adds a file: the rewrite goes on top of it.
    for batch in 6..8 {
        ingestor.handle(&clicks(batch)).await.unwrap();
    }
    let stale = open(&spec.location, &none).await;
    ingestor.handle(&clicks(8)).await.unwrap();
    let (_, packed) = Optimize::new(stale, &spec.name).await.unwrap();
    assert_eq!(packed.files_removed, 3);
    assert_eq!(tidelake_lake::delta::row_and_file_count(&open(&spec.location, &none).await).unwrap(), (450, 2));
}

/// 60 events of round `round` at offsets `60 * round ..`: 40 in an hour of their own (a bucket no
/// rollup file holds yet), 20 in the first round's hour (buckets whose files a rollup replaces).
fn round_of_events(round: i64) -> KafkaBatch {
    let records = (0..60)
        .map(|i| {
            let (day, hour) = if i < 40 { (20 + round / 12, round % 12) } else { (20, 0) };
            let kind = if i % 3 == 0 { "click" } else { "impression" };
            local_record(
                round * 60 + i,
                format!(
                    r#"{{"event_id":"e-{round}-{i}","event_time":"2026-11-{day}T{hour:02}:{:02}:00Z","event_type":"{kind}","ad_id":{},"campaign_id":1000,"user_id":"u-{i}","cost":"0.25"}}"#,
                    i % 60,
                    i % 4
                ),
            )
        })
        .collect();
    KafkaBatch::new(records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compactions_started_together_never_double_or_lose_a_bucket() {
    use tidelake_compaction::{compact_table, CompactOptions, Job};

    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_local_config(dir.path());
    let text = format!("{}\n{}", std::fs::read_to_string(&path).unwrap(), tidelake_lake::sample::AD_EVENTS_ROLLUP);
    std::fs::write(&path, &text).unwrap();
    let config = PipelineConfig::parse(&text, dir.path()).unwrap();
    let spec = config.tables[0].clone();
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    let options = |jobs: &[Job]| CompactOptions { jobs: jobs.to_vec(), ..CompactOptions::default() };

    // Each round: two rollups and an optimize started together while ingest commits.
    for round in 0..20 {
        ingestor.handle(&round_of_events(2 * round)).await.unwrap();
        let runs: Vec<_> = [&[Job::Finalize, Job::Rollup][..], &[Job::Finalize, Job::Rollup], &[Job::Optimize]]
            .into_iter()
            .map(|jobs| {
                let (spec, storage, options) = (spec.clone(), config.storage_options.clone(), options(jobs));
                tokio::spawn(async move { compact_table(&spec, &storage, &options).await })
            })
            .collect();
        ingestor.handle(&round_of_events(2 * round + 1)).await.unwrap();
        for run in runs {
            run.await.unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
    compact_table(&spec, &config.storage_options, &options(&[Job::Finalize, Job::Rollup])).await.unwrap();

    // Every minute, hour and day bucket is the raw table's aggregate: none counted twice, none lost.
    let grains = ["minute", "hour", "day"];
    assert_rollups_match(&rollup_check(&spec.location, &grains), &grains, 0.05);
    let raw = tidelake_lake::delta::row_and_file_count(&open(&spec.location, &HashMap::new()).await).unwrap().0;
    assert_eq!(raw, 40 * 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_sorts_the_rows_of_each_file_it_writes_by_the_configured_columns() {
    use arrow::array::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use tidelake_compaction::{compact_table, CompactOptions, Job};

    let dir = tempfile::tempdir().unwrap();
    let table = tidelake_lake::sample::AD_EVENTS_TABLE.replace(
        "partition_by",
        "dedup_window = \"off\"\noptimize = { sort_by = [\"ad_id\", \"event_id\"] }\npartition_by",
    );
    let text = format!("[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{table}");
    let config = PipelineConfig::parse(&text, dir.path()).unwrap();
    let spec = &config.tables[0];
    assert_eq!(spec.sort_by, ["ad_id", "event_id"]);
    // Eight commits of 50 events in one hour, ad ids in no order.
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    for batch in 0..8i64 {
        let records = (0..50)
            .map(|i| {
                let n = batch * 50 + i;
                local_record(n, format!(r#"{{"event_id":"e-{n:03}","event_time":"2026-11-23T10:{:02}:00Z","event_type":"click","ad_id":{},"campaign_id":1000,"cost":"0.{n:06}"}}"#, i, (n * 37) % 101))
            })
            .collect();
        ingestor.handle(&KafkaBatch::new(records)).await.unwrap();
    }
    let before = read_back(&spec.location, "event_id", "cost");

    let options = CompactOptions { jobs: vec![Job::Optimize], ..CompactOptions::default() };
    let report = compact_table(spec, &HashMap::new(), &options).await.unwrap();
    let optimized = report.iter().find(|r| r.table == "ad_events").unwrap().optimize.as_ref().unwrap();
    assert_eq!((optimized.files_removed, optimized.files_added), (8, 1), "{optimized:?}");

    // The same rows for another engine, and the one file holds them by ad id, then event id.
    assert_eq!(read_back(&spec.location, "event_id", "cost"), before);
    let table = open(&spec.location, &HashMap::new()).await;
    let files: Vec<String> =
        table.snapshot().unwrap().log_data().iter().map(|f| f.object_store_path().to_string()).collect();
    assert_eq!(files.len(), 1);
    let file = std::fs::File::open(spec.location.to_file_path().unwrap().join(&files[0])).unwrap();
    let mut keys = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap() {
        let batch = batch.unwrap();
        let ads = batch.column_by_name("ad_id").unwrap().as_primitive::<arrow::datatypes::Int64Type>().clone();
        let ids = batch.column_by_name("event_id").unwrap().as_string::<i32>().clone();
        keys.extend((0..batch.num_rows()).map(|i| (ads.value(i), ids.value(i).to_string())));
    }
    assert_eq!(keys.len(), 400);
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "rows are not sorted by (ad_id, event_id)");

    // A column the table does not have is refused with its key before anything runs.
    let wrong = text.replace("\"ad_id\", \"event_id\"", "\"ad_id\", \"region\"");
    let refused = PipelineConfig::parse(&wrong, dir.path()).unwrap_err().to_string();
    assert!(refused.contains("tables.ad_events.optimize.sort_by[1]") && refused.contains("region"), "{refused}");
}
