//! `tidelake audit` finds what went wrong in a lake: files lost or removed, files appended twice,
//! offsets Kafka holds that no commit covers.

use std::path::{Path, PathBuf};

use tidelake_functions::Ingestor;
use tidelake_lake::{KafkaBatch, KafkaRecord};

use crate::helpers::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The commit files of a local Delta table, in version order.
fn commits(table: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The `add` actions of the last commit of `table` that added files.
fn last_adds(table: &Path) -> Vec<serde_json::Value> {
    commits(table)
        .iter()
        .rev()
        .map(|c| {
            std::fs::read_to_string(c)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter_map(|a| a.get("add").cloned())
                .collect::<Vec<_>>()
        })
        .find(|adds| !adds.is_empty())
        .expect("a commit with files")
}

/// Writes the next commit of `table` by hand, as any Delta writer could.
fn commit_by_hand(table: &Path, operation: &str, actions: Vec<serde_json::Value>) {
    let version = commits(table).len();
    let mut lines: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
    let info =
        serde_json::json!({"commitInfo": {"timestamp": chrono::Utc::now().timestamp_millis(), "operation": operation}});
    lines.push(info.to_string());
    std::fs::write(table.join("_delta_log").join(format!("{version:020}.json")), lines.join("\n") + "\n").unwrap();
}

/// A copy of the lake under `dir` with its own config, for one planted fault.
fn lake_copy(lake: &Path, topic: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(lake, &copy.path().join("lake"));
    let config = write_config(copy.path(), topic, &unique("group"), 500);
    let table = load_config(&config).tables[0].location.to_file_path().unwrap();
    (copy, config, table)
}

/// Runs the audit, which must fail with a problem of `kind` whose message contains `text`.
fn assert_audit_finds(config: &Path, kind: &str, text: &str) {
    let (passed, report, stderr) = audit(config, &[]);
    assert!(!passed, "the audit passed a planted {kind}: {report}");
    assert!(stderr.contains("audit of ad_events failed"), "{stderr}");
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["kind"] == kind && p["message"].as_str().unwrap().contains(text)),
        "no {kind} problem mentioning `{text}`: {problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_catches_a_lost_file_a_removed_file_and_a_file_appended_twice() {
    let records = events(6_000, 0.05, 0.005, 11);
    let topic = filled_topic("audit", 2, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 500);
    ingest_to_end(&config);
    let report = audit_passes(&config);
    assert_eq!(audit_sum(&report, "rows"), 6_000);
    assert_eq!(audit_sum(&report, "records") as usize, records.len());
    let lake = dir.path().join("lake");

    // A data file deleted from storage behind the table's back.
    let (_keep, planted, table) = lake_copy(&lake, &topic);
    let add = &last_adds(&table)[0];
    std::fs::remove_file(table.join(add["path"].as_str().unwrap())).unwrap();
    assert_audit_finds(&planted, "gap", "gone from storage");

    // A data file removed by a commit (a stray DELETE).
    let (_keep, planted, table) = lake_copy(&lake, &topic);
    let add = &last_adds(&table)[0];
    let remove = serde_json::json!({"remove": {
        "path": add["path"], "dataChange": true, "deletionTimestamp": chrono::Utc::now().timestamp_millis(),
        "partitionValues": add["partitionValues"], "size": add["size"]
    }});
    commit_by_hand(&table, "DELETE", vec![remove]);
    assert_audit_finds(&planted, "gap", "was removed by version");

    // A data file appended a second time under another name.
    let (_keep, planted, table) = lake_copy(&lake, &topic);
    let mut add = last_adds(&table)[0].clone();
    let path = add["path"].as_str().unwrap().to_string();
    let copy = path.replace(".parquet", "-again.parquet");
    std::fs::copy(table.join(path), table.join(&copy)).unwrap();
    add["path"] = copy.into();
    commit_by_hand(&table, "WRITE", vec![serde_json::json!({ "add": add })]);
    assert_audit_finds(&planted, "double", "no ingest commit accounts for");

    // The untouched lake still passes.
    audit_passes(&config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_asks_kafka_about_offsets_no_commit_covers() {
    let sample = events(300, 0.0, 0.0, 12);
    let topic = filled_topic("audithole", 1, &sample).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 500);
    let as_record = |offset: usize| KafkaRecord {
        topic: topic.as_str().into(),
        partition: 0,
        offset: offset as i64,
        timestamp_ms: None,
        key: Some(sample[offset].key.clone()),
        value: Some(sample[offset].value.clone()),
        headers: vec![],
    };
    // A consumer that skipped offsets 100..=199 (they are in Kafka, committed).
    let mut ingestor = Ingestor::open(load_config(&config)).await.unwrap();
    for range in [0..100, 200..300] {
        ingestor.handle(&KafkaBatch::new(range.map(as_record).collect())).await.unwrap();
    }
    assert_audit_finds(&config, "gap", "Kafka holds 100 records at offsets 100..=199");
    // Offline, the audit cannot see it (the lake's own ledgers agree with each other), but it
    // reports the offsets it could not check.
    let (passed, report, _) = audit(&config, &["--offline"]);
    assert!(passed, "{report}");
    assert_eq!(
        report["holes"],
        serde_json::json!([{"partition": {"topic": topic, "partition": 0}, "from": 100, "to": 199}])
    );
    assert_eq!(audit_sum(&report, "rows"), 200);
}
