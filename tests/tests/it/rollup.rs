//! Rollups end to end: partial minute rows written by ingest hold, bucket for bucket, what the raw
//! table holds, also across crashes between the data commit and the minute commit.

use std::collections::BTreeMap;

use tidelake_lake::ledger::{Ledger, RollupKind, TableKind};
use tidelake_lake::rollup::Grain;

use crate::helpers::*;

/// Which data commits each minute commit took its rows from: every data commit that wrote rows
/// must be in exactly one minute commit. Returns how many minute commits caught up with data
/// commits a crash left behind.
pub(crate) async fn assert_each_data_commit_once(config: &tidelake_lake::PipelineConfig) -> usize {
    let spec = &config.tables[0];
    let options = &config.storage_options;
    let rollup = spec.rollup.as_ref().unwrap();
    let data = Ledger::read(&spec.name, &open(&spec.location, options).await).await.unwrap();
    let minute_name = rollup.table_name(Grain::Minute);
    let minute =
        Ledger::read(&minute_name, &open(rollup.location(Grain::Minute).unwrap(), options).await).await.unwrap();
    let mut taken: BTreeMap<u64, usize> = BTreeMap::new();
    let mut catch_ups = 0;
    let mut source_rows = 0;
    for commit in minute.commits.iter().filter_map(|c| c.rollup.as_ref()) {
        assert_eq!(commit.kind, RollupKind::Partial);
        catch_ups += usize::from(commit.caught_up);
        source_rows += commit.source_rows;
        for v in &commit.source_versions {
            *taken.entry(*v).or_default() += 1;
        }
    }
    let mut data_rows = 0;
    for commit in &data.commits {
        let Some(info) = commit.info.as_ref().filter(|i| i.kind == TableKind::Data) else { continue };
        data_rows += info.rows;
        let times = taken.remove(&commit.version).unwrap_or(0);
        assert!(
            times == 1 || (times == 0 && info.rows == 0),
            "data version {} ({} rows) is in {times} minute commits",
            commit.version,
            info.rows
        );
    }
    assert!(taken.is_empty(), "minute commits name data versions that are not data commits: {taken:?}");
    assert_eq!(
        source_rows, data_rows,
        "minute commits aggregated {source_rows} rows, the data table holds {data_rows}"
    );
    catch_ups
}

#[tokio::test(flavor = "multi_thread")]
async fn minute_rollup_matches_the_raw_table_bucket_for_bucket() {
    let records = events(20_000, 0.05, 0.005, 41);
    let topic = filled_topic("rollup", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 700);
    let report = ingest_to_end(&config_path);
    assert!(report["minute_rows"].as_u64().unwrap() > 0, "{report}");

    let config = load_config(&config_path);
    let check = rollup_check(&config.tables[0].location, &["minute"]);
    assert_rollups_match(&check, &["minute"], 0.05);
    assert_eq!(assert_each_data_commit_once(&config).await, 0, "no crash, so no minute commit had to catch up");
    audit_passes(&config_path);

    // Delivered again from the start (a new consumer group): nothing changes.
    let again = write_config_with_rollup(dir.path(), &topic, &unique("group"), 700);
    let report = ingest_to_end(&again);
    assert_eq!(report["minute_rows"], 0, "{report}");
    assert_rollups_match(&rollup_check(&config.tables[0].location, &["minute"]), &["minute"], 0.05);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_the_data_and_minute_commits_is_caught_up_from_the_data_commits() {
    let records = events(12_000, 0.05, 0.005, 43);
    let topic = filled_topic("rollup-crash", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    // Each run dies right after its n-th data commit, before the minute commit of that batch.
    let mut crashes = 0;
    for point in [
        "after-data-commit:1",
        "after-data-commit:2",
        "after-data-commit:4",
        "after-data-commit:1",
        "after-data-commit:3",
    ] {
        let config = write_config_with_rollup(dir.path(), &topic, &unique("group"), 400);
        let out = run_tidelake(
            &["ingest", "--config", config.to_str().unwrap(), "--stop-at-end"],
            &[("TIDELAKE_CRASH_AT", point)],
        );
        if !out.status.success() {
            assert!(String::from_utf8_lossy(&out.stderr).contains("crash injected"), "{point}");
            crashes += 1;
        }
    }
    assert_eq!(crashes, 5, "every run dies at its data commit");
    let config_path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 400);
    ingest_to_end(&config_path);

    let config = load_config(&config_path);
    // Each crash left a data commit for a later run to catch up with; one minute commit catches up
    // all a partition's runs left behind, so there are between one and five of them.
    let catch_ups = assert_each_data_commit_once(&config).await;
    assert!((1..=5).contains(&catch_ups), "{catch_ups} minute commits caught up");
    assert_rollups_match(&rollup_check(&config.tables[0].location, &["minute"]), &["minute"], 0.05);
    let report = audit_passes(&config_path);
    assert_eq!(report["rollup"]["caught_up"], catch_ups as u64, "{report}");
}

/// Runs `tidelake compact --config <config> --json <extra>`, which must succeed, and returns its report.
fn compact(config: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["compact", "--config", config.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_slice(&run_ok(&args, &[]).stdout).expect("json report")
}

/// The report of Delta table `name` in a compact report.
fn table_report<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no report of {name}: {report}"))
}

/// Sample events whose times spread over the hour before `end_us`.
fn events_ending(n: usize, end_us: i64, seed: u64) -> Vec<tidelake_lake::sample::SampleRecord> {
    let spec = tidelake_lake::sample::SampleSpec {
        events: n,
        duplicate_ratio: 0.05,
        poison_ratio: 0.005,
        end_time_us: end_us,
        seed,
    };
    tidelake_lake::sample::generate(&spec)
}

const DAY_US: i64 = 86_400_000_000;
/// 2026-11-23T12:00:00Z: every minute of the events is closed when the tests run.
const END_US: i64 = 1_795_435_200_000_000;
const ALL: [&str; 3] = ["minute", "hour", "day"];

/// Versions of the three rollup tables.
async fn rollup_versions(config: &tidelake_lake::PipelineConfig) -> Vec<Option<u64>> {
    let rollup = config.tables[0].rollup.as_ref().unwrap();
    let mut out = Vec::new();
    for (_, _, at) in rollup.tables() {
        out.push(open(at, &config.storage_options).await.version());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn hours_and_days_match_the_raw_table_and_a_late_event_recomputes_only_its_buckets() {
    // Three days of events, produced oldest first.
    let mut records = Vec::new();
    for (day, seed) in [(2, 51), (1, 52), (0, 53)] {
        records.extend(events_ending(4_000, END_US - day * DAY_US, seed));
    }
    let topic = filled_topic("rollup-days", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 600);
    ingest_to_end(&config_path);
    let config = load_config(&config_path);
    let raw = &config.tables[0].location;

    let plan = compact(&config_path, &["--job", "finalize,rollup", "--dry-run"]);
    assert!(table_report(&plan, "ad_events_minute")["finalize"]["partial_files"].as_u64().unwrap() > 0, "{plan}");
    let report = compact(&config_path, &["--job", "finalize,rollup"]);
    let finalize = &table_report(&report, "ad_events_minute")["finalize"];
    assert_eq!(finalize["waiting_files"], 0, "every minute is closed: {finalize}");
    assert_eq!(
        table_report(&report, "ad_events_hour")["rollup"]["buckets"],
        3,
        "the clock hour before noon, each day: {report}"
    );
    assert_eq!(table_report(&report, "ad_events_day")["rollup"]["buckets"], 3);
    let check = rollup_check(raw, &ALL);
    assert_rollups_match(&check, &ALL, 0.05);
    assert_eq!(check["minute"]["rollup_rows"], check["minute"]["buckets"], "one merged row per key and minute");
    assert_eq!(check["hour"]["rollup_rows"], check["hour"]["buckets"]);

    // Nothing changed: no job commits.
    let versions = rollup_versions(&config).await;
    compact(&config_path, &["--job", "finalize,rollup"]);
    assert_eq!(rollup_versions(&config).await, versions, "a second run commits nothing");

    // Late events of the oldest day, in its hour before noon: minutes, an hour and a day that are
    // finalized and rolled up already.
    let late = events_ending(300, END_US - 2 * DAY_US, 54);
    let producer = producer();
    produce(&producer, &topic, &late).await;
    ingest_to_end(&config_path);
    let report = compact(&config_path, &["--job", "finalize,rollup"]);
    let finalize = &table_report(&report, "ad_events_minute")["finalize"];
    assert!(finalize["final_files"].as_u64().unwrap() > 0, "late rows merge into finalized minutes: {finalize}");
    assert_eq!(table_report(&report, "ad_events_hour")["rollup"]["buckets"], 1, "only the late hour: {report}");
    assert_eq!(table_report(&report, "ad_events_day")["rollup"]["buckets"], 1, "only the late day: {report}");
    let check = rollup_check(raw, &ALL);
    assert_rollups_match(&check, &ALL, 0.05);
    assert_eq!(check["minute"]["rollup_rows"], check["minute"]["buckets"]);
    audit_passes(&config_path);
}

#[tokio::test(flavor = "multi_thread")]
async fn finalize_and_rollup_killed_at_any_step_then_run_again_give_the_same_tables() {
    let mut records = events_ending(3_000, END_US - DAY_US, 61);
    records.extend(events_ending(3_000, END_US, 62));
    let topic = filled_topic("rollup-kill", 2, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 500);
    ingest_to_end(&config_path);
    let config = load_config(&config_path);

    // Each run picks up where the one before stopped: the fifth dies writing the day table.
    for point in [
        "finalize-after-write",
        "finalize-after-commit",
        "rollup-after-write",
        "rollup-after-commit",
        "rollup-after-write",
    ] {
        let out = run_tidelake(
            &["compact", "--config", config_path.to_str().unwrap(), "--job", "finalize,rollup"],
            &[("TIDELAKE_CRASH_AT", point)],
        );
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains("crash injected"), "{point}: {said}");
    }
    compact(&config_path, &["--job", "finalize,rollup"]);
    assert_rollups_match(&rollup_check(&config.tables[0].location, &ALL), &ALL, 0.05);
    let versions = rollup_versions(&config).await;
    let again = compact(&config_path, &["--job", "finalize,rollup", "--retention", "0s"]);
    assert_eq!(rollup_versions(&config).await, versions, "nothing left to do: {again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_last_data_commit_of_a_partition_is_caught_up_on_restart() {
    // One batch holds every record: the crash leaves the minute table behind on a partition that
    // gets no more records, so only a restart that reads them again lets it catch up.
    let records = events(1_500, 0.05, 0.005, 45);
    let topic = filled_topic("rollup-last", 1, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 5_000);
    let out = run_tidelake(
        &["ingest", "--config", config_path.to_str().unwrap(), "--stop-at-end"],
        &[("TIDELAKE_CRASH_AT", "after-data-commit")],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("crash injected"));
    let config = load_config(&config_path);
    assert_eq!(minute_offsets(&config).await, None, "the crash came before the minute commit");
    let (passed, report, _) = audit(&config_path, &["--offline"]);
    assert!(!passed, "the audit sees the minute table behind: {report}");
    assert!(report["problems"].to_string().contains("is in no minute commit"), "{report}");

    ingest_to_end(&write_config_with_rollup(dir.path(), &topic, &unique("group"), 5_000));
    assert_eq!(assert_each_data_commit_once(&config).await, 1);
    assert_rollups_match(&rollup_check(&config.tables[0].location, &["minute"]), &["minute"], 0.05);
    assert_eq!(minute_offsets(&config).await, Some(records.len() as i64 - 1));
    let report = audit_passes(&config_path);
    assert_eq!(report["rollup"]["caught_up"], 1, "{report}");
    assert_eq!(report["rollup"]["aggregated"], report["rollup"]["data_commits"]);
}

/// The last offset of partition 0 the minute table holds.
async fn minute_offsets(config: &tidelake_lake::PipelineConfig) -> Option<i64> {
    let spec = &config.tables[0];
    let minute = open(spec.rollup.as_ref().unwrap().location(Grain::Minute).unwrap(), &config.storage_options).await;
    let tp = tidelake_lake::TopicPartition::new(spec.topic.as_str(), 0);
    tidelake_lake::delta::committed_offsets("minute", &minute, [&tp]).await.unwrap().get(&tp).copied()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollup_added_to_a_table_with_history_starts_at_that_moment() {
    use tidelake_functions::Ingestor;
    use tidelake_lake::{KafkaBatch, KafkaRecord, TopicPartition};
    let dir = tempfile::tempdir().unwrap();
    let text = |rollup: &str| {
        format!(
            "[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{}\n{rollup}",
            tidelake_lake::sample::AD_EVENTS_TABLE
        )
    };
    let event = |partition: i32, offset: i64| KafkaRecord {
        partition,
        ..local_record(
            offset,
            format!(
                r#"{{"event_id":"e-{partition}-{offset}","event_time":"2026-11-23T10:00:00Z","event_type":"click","ad_id":1,"campaign_id":1000,"user_id":"u"}}"#
            ),
        )
    };
    // History: partitions 0 and 1, before the table declares a rollup.
    let plain = tidelake_lake::PipelineConfig::parse(&text(""), dir.path()).unwrap();
    let mut ingestor = Ingestor::open(plain).await.unwrap();
    ingestor.handle(&KafkaBatch::new((0..10).flat_map(|o| [event(0, o), event(1, o)]).collect())).await.unwrap();

    let with_rollup =
        tidelake_lake::PipelineConfig::parse(&text(tidelake_lake::sample::AD_EVENTS_ROLLUP), dir.path()).unwrap();
    let mut ingestor = Ingestor::open(with_rollup.clone()).await.unwrap();
    let (p0, p1) = (TopicPartition::new("ad_events", 0), TopicPartition::new("ad_events", 1));
    let resume = ingestor.resume_offsets(&[p0.clone(), p1.clone()]).await.unwrap();
    assert_eq!((resume[&p0], resume[&p1]), (10, 10), "history is not read again");

    let report = ingestor.handle(&KafkaBatch::new((10..15).map(|o| event(0, o)).collect())).await.unwrap();
    assert_eq!(report.minute_rows(), 1, "one key and minute");
    let minute =
        open(with_rollup.tables[0].rollup.as_ref().unwrap().location(Grain::Minute).unwrap(), &Default::default())
            .await;
    let rows = tidelake_lake::files::read_columns(
        &minute.object_store(),
        "minute",
        &minute.snapshot().unwrap().log_data().iter().next().unwrap().object_store_path(),
        &["clicks"],
    )
    .await
    .unwrap();
    assert_eq!(int64s(&rows, "clicks"), [5], "only the events after the rollup was declared");
    let resume = ingestor.resume_offsets(&[p0.clone(), p1.clone()]).await.unwrap();
    assert_eq!((resume[&p0], resume[&p1]), (15, 10));
}
