//! The ingest function end to end against a real Kafka broker: every offset lands exactly once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use lambda_runtime::{Context, LambdaEvent};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tidelake_functions::lambda;
use tidelake_functions::Ingestor;
use tidelake_lake::sample::{Kind, SampleRecord};
use tidelake_lake::{KafkaBatch, KafkaRecord};

use crate::helpers::*;

/// The event ids the table must hold: each valid event UUID once.
fn valid_ids(records: &[SampleRecord]) -> Vec<String> {
    let ids: std::collections::BTreeSet<String> =
        records.iter().filter(|r| r.kind != Kind::Poison).map(|r| r.event_id.clone()).collect();
    ids.into_iter().collect()
}

/// Asserts the table's ids are exactly `expected` (sorted, distinct), naming a few that differ.
fn assert_same_ids(found: Vec<String>, expected: Vec<String>) {
    let found = sorted(found);
    if found == expected {
        return;
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for id in &found {
        *counts.entry(id).or_default() += 1;
    }
    for id in &expected {
        *counts.entry(id).or_default() -= 1;
    }
    let doubled: Vec<&&str> = counts.iter().filter(|(_, n)| **n > 0).map(|(id, _)| id).take(5).collect();
    let missing: Vec<&&str> = counts.iter().filter(|(_, n)| **n < 0).map(|(id, _)| id).take(5).collect();
    panic!(
        "data table: {} rows, expected {} distinct ids; extra or doubled (first 5): {doubled:?}; missing (first 5): {missing:?}",
        found.len(),
        expected.len()
    );
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Asserts the table holds exactly the valid records, the dead letters exactly the poison ones, the
/// archive every offset once, and the lake's offsets reach each partition's end.
pub(crate) async fn assert_exact(
    config_path: &std::path::Path,
    topic: &str,
    partitions: i32,
    records: &[SampleRecord],
) {
    let config = load_config(config_path);
    let table = &config.tables[0];
    let options = &config.storage_options;
    let rows = read_rows(&table.location, options).await;
    assert_same_ids(strings(&rows, "event_id"), valid_ids(records));

    let dead = read_rows(&table.dead_letters, options).await;
    let poison = records.iter().filter(|r| r.kind == Kind::Poison).count();
    assert_eq!(count(&dead), poison, "dead letters");
    assert!(strings(&dead, "reason").iter().all(|r| !r.is_empty()), "every dead letter has a reason");

    let archive = read_rows(&table.archive, options).await;
    assert_eq!(count(&archive), records.len(), "archive holds every record once");
    let ends = high_watermarks(topic, partitions);
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for batch in &archive {
        let parts = batch.column_by_name("partition").unwrap();
        let parts = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int32Type>(parts.as_ref());
        let offs = int64s(std::slice::from_ref(batch), "offset");
        for (p, o) in parts.values().iter().zip(offs) {
            offsets.entry(*p).or_default().push(o);
        }
    }
    for (p, end) in &ends {
        let mut got = offsets.remove(p).unwrap_or_default();
        got.sort();
        assert_eq!(got, (0..*end).collect::<Vec<_>>(), "partition {p}: archive offsets are 0..{end}, each once");
    }
    let lake = lake_offsets(&table.location, options, topic, partitions).await;
    for (p, end) in ends {
        assert_eq!(lake[&p], (end > 0).then_some(end - 1), "partition {p}: offset recorded in the lake");
    }

    // The audit, from commit infos alone, accounts for the same records.
    let report = audit_passes(config_path);
    assert_eq!(audit_sum(&report, "rows") as usize, valid_ids(records).len(), "audit: rows {}", report["partitions"]);
    assert_eq!(audit_sum(&report, "dead_letters") as usize, poison, "audit: dead letters");
    assert_eq!(audit_sum(&report, "archived") as usize, records.len(), "audit: archived");
    assert_eq!(audit_sum(&report, "records") as usize, records.len(), "audit: records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_offset_lands_once_in_the_table_or_the_dead_letters() {
    let records = events(99_000, 0.0, 0.01, 1);
    assert_eq!(records.len(), 99_990);
    let topic = filled_topic("ingest", 3, &records).await;

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 10_000);
    let report = ingest_to_end(&config);
    assert_eq!(report["records"], 99_990);
    assert_eq!(report["rows_written"], 99_000);
    assert_eq!(report["dead_letters"], 990);
    assert_eq!(report["duplicates_dropped"], 0);
    assert_exact(&config, &topic, 3, &records).await;

    // Two independent readers see the same rows.
    let valid: Vec<SampleRecord> = records.iter().filter(|r| r.kind != Kind::Poison).cloned().collect();
    let seen = read_back(&load_config(&config).tables[0].location, "event_id", "cost");
    for engine in ["duckdb", "deltalake"] {
        assert_eq!(seen[engine]["rows"], 99_000, "{engine}: {seen}");
        assert_eq!(seen[engine]["distinct"], 99_000, "{engine}: {seen}");
        assert_eq!(seen[engine]["sum"], cost_sum(&valid), "{engine}: {seen}");
    }
    assert_eq!(seen["duckdb"]["digest"], seen["deltalake"]["digest"]);

    // The same topic consumed again by a new consumer group (whose offsets start at the beginning):
    // the poller resumes from the lake's offsets and nothing is written.
    let none = HashMap::new();
    let before = open(&load_config(&config).tables[0].location, &none).await.version();
    let again = write_config(dir.path(), &topic, &unique("group"), 10_000);
    let report = ingest_to_end(&again);
    assert_eq!(report["rows_written"], 0);
    assert_eq!(open(&load_config(&again).tables[0].location, &none).await.version(), before, "no new commit");
    assert_exact(&again, &topic, 3, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_aborted_transactions_are_never_ingested() {
    let topic = unique("txn");
    create_topic(&topic, 2).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("transactional.id", unique("tidelake-test-txn"))
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    let all = events(3_000, 0.0, 0.0, 2);
    let (committed_a, rest) = all.split_at(1_000);
    let (aborted, committed_b) = rest.split_at(1_000);
    for (chunk, commit) in [(committed_a, true), (aborted, false), (committed_b, true)] {
        producer.begin_transaction().unwrap();
        for r in chunk {
            producer
                .send(FutureRecord::to(&topic).key(&r.key).payload(&r.value), Duration::from_secs(10))
                .await
                .unwrap();
        }
        if commit {
            producer.commit_transaction(Duration::from_secs(30)).unwrap();
        } else {
            producer.flush(Duration::from_secs(30)).unwrap();
            producer.abort_transaction(Duration::from_secs(30)).unwrap();
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 500);

    // Each partition ends with a transaction marker, which no reader sees as a record.
    let reader = tidelake_lake::kafka::RangeReader::new(&load_config(&config), "probe").unwrap();
    let ends = high_watermarks(&topic, 2);
    let last_offsets: BTreeMap<i32, (i64, i64)> = ends.iter().map(|(p, end)| (*p, (end - 1, *end))).collect();
    assert_eq!(reader.first_offsets(&topic, &last_offsets).unwrap(), ends.keys().map(|p| (*p, None)).collect());
    let whole: BTreeMap<i32, (i64, i64)> = ends.iter().map(|(p, end)| (*p, (0, *end))).collect();
    assert_eq!(reader.first_offsets(&topic, &whole).unwrap(), ends.keys().map(|p| (*p, Some(0))).collect());

    // Two members of one group, both stopping at the end: each waits for the partition the other
    // holds, whose end is a marker, and both stop.
    Ingestor::open(load_config(&config)).await.unwrap();
    let members: Vec<_> = (0..2)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || ingest_to_end(&config))
        })
        .collect();
    for member in members {
        member.join().expect("both members stop");
    }

    let rows = read_rows(&load_config(&config).tables[0].location, &HashMap::new()).await;
    let expected: Vec<SampleRecord> = committed_a.iter().chain(committed_b).cloned().collect();
    assert_eq!(sorted(strings(&rows, "event_id")), valid_ids(&expected));
    let ids: std::collections::HashSet<String> = strings(&rows, "event_id").into_iter().collect();
    assert!(aborted.iter().all(|r| !ids.contains(&r.event_id)), "no record of the aborted transaction");

    // Offsets of aborted records and transaction markers are not records: the audit does not count
    // them as missing.
    let report = audit_passes(&config);
    assert_eq!(audit_sum(&report, "rows"), 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_any_step_the_next_run_finishes_exactly() {
    let records = events(30_000, 0.0, 0.01, 3);
    let topic = filled_topic("crash", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();

    // 500-record batches over 3 partitions: ~60 batches, each three commits (archive, dead letters,
    // data). Each run starts with a fresh consumer group, so only the lake says where to resume,
    // and is killed at a different step.
    let mut crashes = 0;
    let points = [
        "after-data-write:1",
        "after-commit:1",
        "after-commit:2",
        "after-batch:1",
        "after-data-write:2",
        "after-commit:3",
        "after-data-write:3",
        "after-batch:2",
        "after-commit:4",
        "after-data-write:1",
        "after-commit:5",
        "after-batch:1",
        "after-data-write:4",
        "after-commit:6",
        "after-data-write:2",
        "after-batch:3",
        "after-commit:1",
        "after-data-write:5",
        "after-commit:2",
        "after-data-write:3",
        "after-batch:1",
        "after-commit:3",
    ];
    for point in points {
        let config = write_config(dir.path(), &topic, &unique("group"), 500);
        let out = run_tidelake(
            &["ingest", "--config", config.to_str().unwrap(), "--stop-at-end"],
            &[("TIDELAKE_CRASH_AT", point)],
        );
        if !out.status.success() {
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("crash injected"),
                "{point}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            crashes += 1;
        }
    }
    assert!(crashes >= 20, "only {crashes} runs crashed");
    let config = write_config(dir.path(), &topic, &unique("group"), 500);
    ingest_to_end(&config);
    assert_exact(&config, &topic, 3, &records).await;
}

/// `records` with, after every `every`-th event, a copy of it under another key, so in another
/// partition, produced right after it: concurrent instances handle the two copies at about the same
/// time.
fn with_cross_partition_copies(records: Vec<SampleRecord>, every: usize) -> Vec<SampleRecord> {
    let mut out = Vec::with_capacity(records.len() + records.len() / every);
    for (i, r) in records.into_iter().enumerate() {
        let copy = (r.kind == Kind::Event && i % every == 0).then(|| SampleRecord {
            key: format!("copy-{i}").into_bytes(),
            kind: Kind::Duplicate,
            ..r.clone()
        });
        out.push(r);
        out.extend(copy);
    }
    out
}

/// 10% copies of an event UUID: 5% keyed like their originals (same partition, in the same or a
/// later batch), 5% under another key (another partition, at about the same time).
fn events_with_copies(events: usize, seed: u64) -> Vec<SampleRecord> {
    with_cross_partition_copies(crate::helpers::events(events, 0.05, 0.002, seed), 20)
}

/// Four instances of one consumer group write one table at once.
async fn four_instances(lake: impl Fn(&str) -> String, label: &str, events: usize) {
    let topic = unique(label);
    create_topic(&topic, 4).await;
    let records = events_with_copies(events, 4);
    produce(&producer(), &topic, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with_lake(dir.path(), &topic, &unique("group"), 500, &lake(&topic));
    // Create the tables first so the four instances race on commits, not on table creation.
    Ingestor::open(load_config(&config)).await.unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || ingest_to_end(&config))
        })
        .collect();
    let mut writers = 0;
    for run in runs {
        let report = run.join().expect("an instance succeeded");
        writers += usize::from(report["rows_written"].as_u64().unwrap_or(0) > 0);
    }
    assert!(writers >= 2, "only {writers} of the four instances wrote rows: no writers raced");
    // Each instance stopped only once every partition was done, whoever held it: no last run.
    assert_exact(&config, &topic, 4, &records).await;
}

/// One of two members of a consumer group dies holding half of the partitions. The other, with
/// `--stop-at-end`, finishes its own half well before the group notices the death (a 20 s session),
/// then waits, takes the dead member's partitions over and finishes them too, rather than exit 0
/// with them behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_at_end_finishes_the_partitions_a_dead_member_held() {
    let records = events_with_copies(80_000, 4);
    let topic = filled_topic("deadmember", 4, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let group = unique("group");
    let config = write_config(dir.path(), &topic, &group, 500);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"session.timeout.ms\" = \"6000\"", "\"session.timeout.ms\" = \"20000\""))
        .unwrap();
    Ingestor::open(load_config(&config)).await.unwrap();
    let mut members: Vec<std::process::Child> = (0..2).map(|_| crate::faults::spawn_ingest(&config)).collect();
    wait_for_stable_group(&group, 2).await;
    members[0].kill().unwrap();
    members[0].wait().unwrap();
    let survivor = members.pop().unwrap();
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || survivor.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "the survivor failed: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("the survivor finished {:.1} s after the other member died", started.elapsed().as_secs_f64());
    assert_exact(&config, &topic, 4, &records).await;
}

/// Waits until consumer group `group` is stable with `members` members (each then holds its share).
async fn wait_for_stable_group(group: &str, members: usize) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let client: BaseConsumer = ClientConfig::new().set("bootstrap.servers", kafka()).create().unwrap();
    let started = std::time::Instant::now();
    loop {
        let list = client.fetch_group_list(Some(group), Duration::from_secs(10)).unwrap();
        if list.groups().iter().any(|g| g.state() == "Stable" && g.members().len() == members) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "group {group} did not settle with {members} members");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_concurrent_instances_on_s3_lose_and_double_nothing() {
    four_instances(|topic| s3_lake(&format!("lake-{}", &topic[topic.len() - 12..])), "s3concurrent", 80_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_concurrent_instances_on_local_disk_lose_and_double_nothing() {
    four_instances(|_| "[lake]\nroot = \"lake\"\n".to_string(), "concurrent", 200_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_killed_at_random_points_leave_each_uuid_once_in_the_table_and_its_rollup() {
    let records = events_with_copies(200_000, 13);
    let topic = filled_topic("sigkill", 4, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with_rollup(dir.path(), &topic, &unique("group"), 2_000);
    Ingestor::open(load_config(&config)).await.unwrap();

    // Rounds of four instances, each SIGKILLed at a random moment (the seed is printed so a failing
    // schedule can be replayed with TIDELAKE_KILL_SEED). A fresh consumer group per round, so the
    // next round does not wait for the dead members to time out: only the lake says where to resume.
    let seed = std::env::var("TIDELAKE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64);
    eprintln!("kill schedule seed: {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut killed = 0;
    for _ in 0..10 {
        let config = write_config_with_rollup(dir.path(), &topic, &unique("group"), 2_000);
        let mut instances: Vec<std::process::Child> = (0..4)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_tidelake-under-test"))
                    .args(["ingest", "--config", config.to_str().unwrap(), "--stop-at-end"])
                    .env("RUST_LOG", "error")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("start an instance")
            })
            .collect();
        for instance in &mut instances {
            tokio::time::sleep(Duration::from_millis(rand::Rng::random_range(&mut rng, 100..900))).await;
            if instance.try_wait().unwrap().is_none() {
                instance.kill().unwrap();
                killed += 1;
            }
            instance.wait().unwrap();
        }
        let table = open(&load_config(&config).tables[0].location, &HashMap::new()).await;
        eprintln!("after the round: {:?} rows, files", tidelake_lake::delta::row_and_file_count(&table).unwrap());
    }
    eprintln!("{killed} instances killed while running");
    assert!(killed >= 20, "only {killed} instances were killed while running");
    let config = write_config_with_rollup(dir.path(), &topic, &unique("group"), 2_000);
    let last = ingest_to_end(&config);
    eprintln!("the last run wrote {} of the rows", last["rows_written"]);
    assert_exact(&config, &topic, 4, &records).await;
    // The minute rollup, written by the same killed instances, holds every data commit once.
    crate::rollup::assert_each_data_commit_once(&load_config(&config)).await;
    let spec = &load_config(&config).tables[0];
    assert_rollups_match(&rollup_check(&spec.location, &["minute"]), &["minute"], 0.05);
}

const NOON: &str = "2026-11-23T12:00:00Z";

/// A record of topic `ad_events` carrying a valid event `id` at event time `time`.
fn event_at(partition: i32, offset: i64, id: &str, time: &str) -> KafkaRecord {
    KafkaRecord {
        topic: "ad_events".into(),
        partition,
        offset,
        timestamp_ms: None,
        key: None,
        value: Some(
            format!(r#"{{"event_id":"{id}","event_time":"{time}","event_type":"click","ad_id":1,"campaign_id":1000}}"#)
                .into_bytes(),
        ),
        headers: vec![],
    }
}

/// A config for handler tests without Kafka: the sample table (its section passed through `table`)
/// in a lake under `dir`, also written to `dir/tidelake.toml`.
fn local_config(dir: &std::path::Path, table: impl Fn(&str) -> String) -> tidelake_lake::PipelineConfig {
    let text = format!(
        "[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{}",
        table(tidelake_lake::sample::AD_EVENTS_TABLE)
    );
    std::fs::write(dir.join("tidelake.toml"), &text).unwrap();
    tidelake_lake::PipelineConfig::parse(&text, dir).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_event_delivered_twice_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), str::to_string);
    let ingestor = tokio::sync::Mutex::new(Ingestor::open(config.clone()).await.unwrap());
    let mut written = Vec::new();
    for fixture in ["msk-event.json", "self-managed-event.json", "msk-event.json"] {
        let path = repo().join("functions/fixtures").join(fixture);
        let event = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let location = dir.path().join("tidelake.toml");
        let report = lambda::handle(LambdaEvent::new(event, Context::default()), &ingestor, location.to_str().unwrap())
            .await
            .unwrap();
        written.push((report.rows_written(), report.dead_letters()));
    }
    assert_eq!(written, vec![(2, 1), (0, 0), (0, 0)]);
    // Both fixtures carry the same offsets: the second changed nothing.
    let table = &config.tables[0];
    let rows = read_rows(&table.location, &HashMap::new()).await;
    assert_eq!(sorted(strings(&rows, "event_id")).len(), 2);
    let dead = read_rows(&table.dead_letters, &HashMap::new()).await;
    assert_eq!(count(&dead), 1);
    assert!(strings(&dead, "reason")[0].contains("event_time"), "{:?}", strings(&dead, "reason"));
    assert_eq!(count(&read_rows(&table.archive, &HashMap::new()).await), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_redelivery_writes_only_the_new_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), str::to_string);
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    let first = KafkaBatch::new((0..10).map(|o| event_at(0, o, &format!("e-{o}"), NOON)).collect());
    let overlapping = KafkaBatch::new(
        (5..15)
            .map(|o| event_at(0, o, &format!("e-{o}"), NOON))
            .chain((0..3).map(|o| event_at(1, o, &format!("e-{}", 100 + o), NOON)))
            .collect(),
    );
    let a = ingestor.handle(&first).await.unwrap();
    let b = ingestor.handle(&overlapping).await.unwrap();
    let c = ingestor.handle(&overlapping).await.unwrap();
    assert_eq!((a.rows_written(), b.rows_written(), c.rows_written()), (10, 8, 0));
    let rows = read_rows(&config.tables[0].location, &HashMap::new()).await;
    let mut expected: Vec<String> =
        (0..15).map(|i| format!("e-{i}")).chain((100..103).map(|i| format!("e-{i}"))).collect();
    expected.sort();
    assert_eq!(sorted(strings(&rows, "event_id")), expected);
    let counts: HashMap<String, usize> = strings(&rows, "event_id").into_iter().fold(HashMap::new(), |mut m, id| {
        *m.entry(id).or_default() += 1;
        m
    });
    assert!(counts.values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_after_the_current_commit() {
    let records = events(60_000, 0.0, 0.0, 5);
    let topic = filled_topic("sigint", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 500);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tidelake-under-test"))
        .args(["ingest", "--config", config.to_str().unwrap(), "--json"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first rows are in the lake, while batches are still coming.
    let location = load_config(&config).tables[0].location.clone();
    let none = HashMap::new();
    let started = std::time::Instant::now();
    let log = location.to_file_path().unwrap().join("_delta_log");
    while !log.exists() || count(&read_rows(&location, &none).await) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no rows after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "interrupted ingest failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a final report");
    let written = report["rows_written"].as_u64().unwrap() as usize;
    assert_eq!(count(&read_rows(&location, &none).await), written, "the lake holds what the report says");
    assert!(written < records.len(), "stopped before the end ({written} rows)");

    // The next run finishes the work exactly.
    ingest_to_end(&config);
    assert_exact(&config, &topic, 3, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_reports_what_landed() {
    let dir = tempfile::tempdir().unwrap();
    let qs = dir.path().join("qs");
    // Embedded Kafka first (the README's command), then the real broker into the same folder: each
    // run starts over from an empty lake.
    let topic = unique("quickstart");
    for brokers in [None, Some(kafka())] {
        let mut args = vec!["quickstart", "--dir", qs.to_str().unwrap(), "--events", "5000", "--json"];
        if let Some(b) = brokers {
            args.extend(["--brokers", b, "--topic", &topic]);
        }
        let out = run_ok(&args, &[]);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(summary["events_produced"], 5000);
        assert_eq!(summary["duplicates_produced"], 100);
        assert_eq!(summary["poison_produced"], 25);
        assert_eq!(summary["duplicates_dropped"], 100);
        assert_eq!(summary["rows_in_table"], 5000);
        assert_eq!(summary["audit_passed"], true, "{summary}");
        // Three of the dead letters, each with where it was and why.
        let samples = summary["dead_letter_samples"].as_array().unwrap();
        assert_eq!(samples.len(), 3, "{summary}");
        for sample in samples {
            assert!(sample["at"].as_str().unwrap().contains('@'), "{sample}");
            assert!(!sample["reason"].as_str().unwrap().is_empty(), "{sample}");
        }
        let rows = count(&read_rows(&load_config(&qs.join("tidelake.toml")).tables[0].location, &HashMap::new()).await);
        assert_eq!(summary["rows_in_table"].as_u64(), Some(rows as u64));
        assert_eq!(
            summary["table_uri"].as_str().unwrap(),
            load_config(&qs.join("tidelake.toml")).tables[0].location.as_str()
        );
    }
    let config = load_config(&qs.join("tidelake.toml"));
    assert_eq!(config.tables[0].topic, topic);
    assert_eq!(count(&read_rows(&config.tables[0].location, &HashMap::new()).await), 5000);
    assert_eq!(count(&read_rows(&config.tables[0].dead_letters, &HashMap::new()).await), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_does_not_answer_is_said_in_one_line_and_lake_queries_never_wait_for_it() {
    // Nothing listens on port 1.
    let nobody = "127.0.0.1:1";
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = run_tidelake(&["quickstart", "--dir", dir.path().join("qs").to_str().unwrap(), "--brokers", nobody], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&format!("kafka at {nobody} does not answer")), "{stderr}");

    // A lake written through the real broker, then a config naming a broker that is gone.
    let records = events(500, 0.0, 0.0, 83);
    let topic = filled_topic("gone", 1, &records).await;
    let config = write_config(dir.path(), &topic, &unique("group"), 500);
    ingest_to_end(&config);
    let text = std::fs::read_to_string(&config).unwrap().replace(kafka(), nobody);
    std::fs::write(&config, text).unwrap();
    let query = |sql: &str| {
        let started = std::time::Instant::now();
        let out = run_tidelake(&["query", "--config", config.to_str().unwrap(), "--format", "csv", sql], &[]);
        (out, started.elapsed())
    };
    let (out, took) = query("SELECT count(*) FROM lake.ad_events");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("500"));
    assert!(took < Duration::from_secs(10), "a lake query took {took:?}");
    let (out, took) = query("SELECT count(*) FROM live.ad_events");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&format!("kafka at {nobody} does not answer")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_uuid_lands_once_across_batches_runs_and_partitions() {
    let topic = unique("dedup");
    create_topic(&topic, 3).await;
    // 10% copies: within a batch or in later batches of the same partition (the generator keys
    // copies like their originals), plus copies sent under another key to another partition, in a
    // later run.
    let first = events(20_000, 0.10, 0.005, 6);
    produce(&producer(), &topic, &first).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 1_000);
    let one = ingest_to_end(&config);

    let mut later: Vec<SampleRecord> = first.iter().filter(|r| r.kind == Kind::Event).step_by(10).cloned().collect();
    for (i, r) in later.iter_mut().enumerate() {
        r.key = format!("other-{i}").into_bytes();
        r.kind = Kind::Duplicate;
    }
    produce(&producer(), &topic, &later).await;
    let two = ingest_to_end(&config);

    let all: Vec<SampleRecord> = first.iter().chain(&later).cloned().collect();
    let distinct: std::collections::BTreeSet<&str> =
        all.iter().filter(|r| r.kind != Kind::Poison).map(|r| r.event_id.as_str()).collect();
    let copies = all.iter().filter(|r| r.kind == Kind::Duplicate).count();
    assert_eq!(distinct.len(), 20_000);
    assert_eq!(copies, 2_000 + 2_000);

    let table = &load_config(&config).tables[0];
    let ids = strings(&read_rows(&table.location, &HashMap::new()).await, "event_id");
    assert_eq!(ids.len(), 20_000, "one row per event UUID");
    assert_eq!(ids.iter().map(String::as_str).collect::<std::collections::BTreeSet<_>>(), distinct);
    assert_eq!(
        one["duplicates_dropped"].as_u64().unwrap() + two["duplicates_dropped"].as_u64().unwrap(),
        copies as u64
    );
    assert_eq!(two["rows_written"], 0, "the second run brought only copies");
    // Every record is accounted for: a row, a dropped copy or a dead letter.
    let archived = count(&read_rows(&table.archive, &HashMap::new()).await);
    let dead = count(&read_rows(&table.dead_letters, &HashMap::new()).await);
    assert_eq!(archived, ids.len() + copies + dead);
    let report = audit_passes(&config);
    assert_eq!(audit_sum(&report, "duplicates") as usize, copies, "audit: duplicates");
    assert_eq!(audit_sum(&report, "rows") as usize, ids.len(), "audit: rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_older_than_the_dedup_window_is_kept_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), |t| t.replace("partition_by", "dedup_window = \"1h\"\npartition_by"));
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    let batches = [
        vec![event_at(0, 0, "a", "2026-11-23T10:00:00Z")],
        // "a" again, three hours older than the newest event of its batch: beyond the window.
        vec![event_at(0, 1, "b", "2026-11-23T13:00:00Z"), event_at(1, 0, "a", "2026-11-23T10:00:00Z")],
        // "b" again, inside the window, from another partition: dropped.
        vec![event_at(1, 1, "b", "2026-11-23T13:00:00Z"), event_at(1, 2, "c", "2026-11-23T13:30:00Z")],
    ];
    let mut seen = Vec::new();
    for records in batches {
        let report = ingestor.handle(&KafkaBatch::new(records)).await.unwrap();
        let t = &report.tables[0];
        seen.push((t.rows_written, t.duplicates, t.beyond_window));
    }
    assert_eq!(seen, vec![(1, 0, 0), (2, 0, 1), (1, 1, 0)]);
    let ids = sorted(strings(&read_rows(&config.tables[0].location, &HashMap::new()).await, "event_id"));
    assert_eq!(ids, vec!["a", "a", "b", "c"], "the late copy of `a` landed, as documented");

    // The audit shows it too, and the lake's counts still add up.
    let (passed, report, stderr) = audit(&dir.path().join("tidelake.toml"), &["--offline"]);
    assert!(passed, "{report} {stderr}");
    assert_eq!(report["beyond_dedup_window"], 1);
    assert_eq!((audit_sum(&report, "rows"), audit_sum(&report, "duplicates")), (4, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_kept_in_s3_or_in_the_environment_drives_ingest_and_audit() {
    let records = events(3_000, 0.02, 0.01, 17);
    let topic = filled_topic("s3config", 2, &records).await;
    let bucket = format!("config-{}", &topic[topic.len() - 12..]);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config_with_lake(dir.path(), &topic, &unique("group"), 1_000, &s3_lake(&bucket));
    let text = std::fs::read_to_string(&path).unwrap();
    let put = format!(
        "import boto3, sys; boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test').put_object(Bucket='{bucket}', Key='pipelines/tidelake.toml', Body=sys.argv[1].encode())",
        s3()
    );
    let out = std::process::Command::new(python()).args(["-c", &put, &text]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let aws = [
        ("AWS_ENDPOINT_URL", s3()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let at = format!("s3://{bucket}/pipelines/tidelake.toml");
    let out = run_tidelake(&["ingest", "--config", &at, "--stop-at-end", "--json"], &aws);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rows_written"], 3_000);

    // The same config as an environment variable (how a Lambda function can carry it).
    let out = run_tidelake(&["audit", "--json", "--offline"], &[("TIDELAKE_CONFIG_TOML", text.as_str())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(audit_sum(&audit, "rows"), 3_000);

    let missing = run_tidelake(&["audit", "--config", &format!("s3://{bucket}/nowhere.toml")], &aws);
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && said.contains("nowhere.toml"), "{said}");
}

/// A record at `offset` of partition 0 with `value`, produced at `produced` (Kafka timestamp).
fn record_at(offset: i64, produced: &str, value: &str) -> KafkaRecord {
    let at = chrono::DateTime::parse_from_rfc3339(produced).unwrap().timestamp_millis();
    KafkaRecord { timestamp_ms: Some(at), value: Some(value.as_bytes().to_vec()), ..event_at(0, offset, "-", produced) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_a_row_exactly_as_sent_or_a_dead_letter_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), str::to_string);
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    let produced = "2026-11-23T10:30:00Z";
    let event = |id: &str, time: &str, ad: &str, cost: &str| {
        format!(
            r#"{{"event_id":"{id}","event_time":{time},"event_type":"click","ad_id":{ad},"campaign_id":1000,"cost":{cost}}}"#
        )
    };
    let bad = [
        ("far", event("far", "99999999999999999999", "1", "\"1\""), "event time"),
        ("year0", event("year0", "\"0000-12-31T10:00:00Z\"", "1", "\"1\""), "event time"),
        (
            "fraction",
            event("fraction", "\"2026-11-23T10:00:00Z\"", "1.5", "\"1\""),
            "column `ad_id`: `1.5` has a fraction",
        ),
        ("below", event("below", "\"2026-11-23T10:00:00Z\"", "-9223372036854775809", "\"1\""), "column `ad_id`"),
        ("places", event("places", "\"2026-11-23T10:00:00Z\"", "1", "\"1.1234567\""), "more than 6 decimal places"),
        ("ahead", event("ahead", "\"2026-11-25T10:00:00Z\"", "1", "\"1\""), "ahead of the record's Kafka timestamp"),
    ];
    let good = [
        event("whole", "\"2026-11-23T10:00:00Z\"", "1e3", "\"0.000001\""),
        event("exact", "\"2026-11-23T10:01:00Z\"", "-9223372036854775808", "1.100000"),
    ];
    let records: Vec<KafkaRecord> = bad
        .iter()
        .map(|(_, value, _)| value.as_str())
        .chain(good.iter().map(String::as_str))
        .enumerate()
        .map(|(offset, value)| record_at(offset as i64, produced, value))
        .collect();
    let report = ingestor.handle(&KafkaBatch::new(records)).await.unwrap();
    assert_eq!((report.rows_written(), report.dead_letters()), (2, 6), "{report:?}");

    // Each dead letter says why, in the dead-letter table.
    let spec = &config.tables[0];
    let letters = read_rows(&spec.dead_letters, &HashMap::new()).await;
    let reasons = strings(&letters, "reason");
    for ((id, _, says), reason) in bad.iter().zip(&reasons) {
        assert!(reason.contains(says), "{id}: {reason}");
    }
    // The rows hold the values as sent, and every reader takes the table.
    let rows = read_rows(&spec.location, &HashMap::new()).await;
    let mut ads = int64s(&rows, "ad_id");
    ads.sort();
    assert_eq!(ads, vec![i64::MIN, 1_000]);
    let seen = read_back(&spec.location, "event_id", "cost");
    for engine in ["duckdb", "deltalake"] {
        assert_eq!(seen[engine]["rows"], 2, "{engine}: {seen}");
        assert_eq!(seen[engine]["sum"].as_str().unwrap().trim_end_matches('0'), "1.100001", "{engine}: {seen}");
    }

    // 100 events, then in one batch a copy of each and one event two days ahead of the rest: the
    // copies are dropped against the table, the event ahead is a dead letter.
    let originals: Vec<KafkaRecord> = (0..100)
        .map(|i| record_at(100 + i, produced, &event(&format!("e{i}"), "\"2026-11-23T10:05:00Z\"", "2", "\"1\"")))
        .collect();
    ingestor.handle(&KafkaBatch::new(originals.clone())).await.unwrap();
    let mut copies: Vec<KafkaRecord> =
        originals.iter().enumerate().map(|(i, r)| KafkaRecord { offset: 200 + i as i64, ..r.clone() }).collect();
    copies.push(record_at(300, produced, &event("later", "\"2026-11-25T10:05:00Z\"", "2", "\"1\"")));
    let report = ingestor.handle(&KafkaBatch::new(copies)).await.unwrap();
    assert_eq!((report.rows_written(), report.duplicates(), report.dead_letters()), (0, 100, 1), "{report:?}");
    let ids = strings(&read_rows(&spec.location, &HashMap::new()).await, "event_id");
    assert_eq!(ids.len(), 102, "one row per event id");
    let (passed, audit, stderr) = audit(&dir.path().join("tidelake.toml"), &["--offline"]);
    assert!(passed, "{audit} {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedup_index_whose_load_failed_is_loaded_again_before_it_is_trusted() {
    use tidelake_lake::dedup::UuidIndex;
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), str::to_string);
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    for batch in 0..3 {
        let records = (0..10).map(|i| event_at(0, batch * 10 + i, &format!("b{batch}-{i}"), "2026-11-23T10:00:00Z"));
        ingestor.handle(&KafkaBatch::new(records.collect())).await.unwrap();
    }
    let spec = &config.tables[0];
    let table = open(&spec.location, &HashMap::new()).await;
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().timestamp_micros();
    let range = (at, at);
    // A file of the table cannot be read: the load fails, and the index is not loaded.
    let file = table.snapshot().unwrap().log_data().iter().next().unwrap().object_store_path().to_string();
    let on_disk = spec.location.to_file_path().unwrap().join(&file);
    let kept = std::fs::read(&on_disk).unwrap();
    std::fs::remove_file(&on_disk).unwrap();
    let mut index = UuidIndex::default();
    assert!(index.prepare(&table, spec, range).await.is_err());
    assert_eq!(index.version(), None, "a failed load leaves the index unloaded");
    // Once the file is back, the next batch loads the whole window and finds every id.
    std::fs::write(&on_disk, kept).unwrap();
    let load = index.prepare(&table, spec, range).await.unwrap();
    assert!(load.full, "{load:?}");
    assert_eq!(index.len(), 30);
    assert!(index.contains("b0-0") && index.contains("b2-9"));
}

/// Commits the end of every partition of `topic` as the offsets of consumer group `group`.
fn commit_group_at_end(topic: &str, partitions: i32, group: &str) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", kafka()).set("group.id", group).create().unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for (p, end) in high_watermarks(topic, partitions) {
        list.add_partition_offset(topic, p, rdkafka::Offset::Offset(end)).unwrap();
    }
    consumer.commit(&list, rdkafka::consumer::CommitMode::Sync).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_ingest_starts_is_the_lake_s_to_say_never_the_group_s_alone() {
    let records = events(3_000, 0.0, 0.0, 81);
    let topic = filled_topic("start", 3, &records).await;
    let group = unique("group");
    // Another pipeline on the same group has consumed the whole topic.
    commit_group_at_end(&topic, 3, &group);
    // A fresh lake on that group reads the whole topic, every partition to its end.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &group, 500);
    let report = ingest_to_end(&config);
    assert_eq!(report["rows_written"], 3_000, "{report}");
    let audit = audit_passes(&config);
    assert_eq!(audit_sum(&audit, "rows"), 3_000);
    let spec = load_config(&config).tables[0].clone();
    let held = lake_offsets(&spec.location, &HashMap::new(), &topic, 3).await;
    assert_eq!(held, high_watermarks(&topic, 3).into_iter().map(|(p, end)| (p, Some(end - 1))).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_lake_starts_where_start_from_says_on_every_partition() {
    let before = events(1_500, 0.0, 0.0, 83);
    let after = events(1_200, 0.0, 0.0, 84);
    let topic = unique("start-from");
    create_topic(&topic, 3).await;
    produce(&producer(), &topic, &before).await;
    // Kafka stamps records with the time they are produced: the second lot is later than `from`.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let from = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    produce(&producer(), &topic, &after).await;
    let starting = |start_from: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), &topic, &unique("group"), 500);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen("[kafka]\n", &format!("[kafka]\nstart_from = \"{start_from}\"\n"), 1);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    };

    // `latest`: the history is skipped on every partition; nothing lands.
    let (_latest_dir, latest) = starting("latest");
    let report = ingest_to_end(&latest);
    assert_eq!(report["rows_written"], 0, "{report}");

    // A time: each partition starts at its first record that late, so exactly the second lot lands,
    // and the audit holds the lake to the offsets ingest said it started from.
    let (_time_dir, timed) = starting(&from);
    let report = ingest_to_end(&timed);
    assert_eq!(report["rows_written"], after.len(), "{report}");
    let spec = load_config(&timed).tables[0].clone();
    let ids = strings(&read_rows(&spec.location, &HashMap::new()).await, "event_id");
    assert_same_ids(ids, valid_ids(&after));
    let audit = audit_passes(&timed);
    assert_eq!(audit_sum(&audit, "rows"), after.len() as u64);

    // `earliest` (the default) reads both lots.
    let (_earliest_dir, earliest) = starting("earliest");
    let report = ingest_to_end(&earliest);
    assert_eq!(report["rows_written"], before.len() + after.len(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_fails_on_a_lake_that_skipped_the_history_it_started_from() {
    let records = events(2_000, 0.0, 0.0, 82);
    let topic = filled_topic("skipped", 1, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &topic, &unique("group"), 500);
    let config = load_config(&path);
    // Ingest said it started partition 0 at offset 0, then committed only offsets 1000 and above.
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    let tp = tidelake_lake::TopicPartition::new(&topic, 0);
    ingestor.set_start_offsets([(tp, 0)]);
    let batch: Vec<KafkaRecord> = records[1_000..]
        .iter()
        .enumerate()
        .map(|(i, r)| KafkaRecord {
            topic: topic.as_str().into(),
            partition: 0,
            offset: 1_000 + i as i64,
            timestamp_ms: None,
            key: Some(r.key.clone()),
            value: Some(r.value.clone()),
            headers: vec![],
        })
        .collect();
    ingestor.handle(&KafkaBatch::new(batch)).await.unwrap();
    let (passed, report, stderr) = audit(&path, &[]);
    assert!(!passed, "{report}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("1000 records at offsets 0..=999"), "{problems} {stderr}");
}
