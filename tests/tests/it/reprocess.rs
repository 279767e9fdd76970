//! `tidelake reprocess`: the archive replayed through the ingest handler gives the same table.

use std::path::Path;

use crate::helpers::*;

/// Rows of `a` not in `b` and rows of `b` not in `a` (multisets, every column), per DuckDB.
fn except_both_ways(a: &url::Url, b: &url::Url) -> (u64, u64, u64, u64) {
    let script = r#"
import duckdb, glob, json, os, sys
ext = glob.glob(os.path.join(os.path.dirname(duckdb.__file__), "..", "duckdb_extension_delta", "**", "delta.duckdb_extension"), recursive=True)
con = duckdb.connect()
con.execute(f"LOAD '{ext[0]}'")
a, b = sys.argv[1], sys.argv[2]
q = lambda sql: con.execute(sql).fetchone()[0]
print(json.dumps([
    q(f"SELECT count(*) FROM delta_scan('{a}')"),
    q(f"SELECT count(*) FROM delta_scan('{b}')"),
    q(f"SELECT count(*) FROM (SELECT * FROM delta_scan('{a}') EXCEPT ALL SELECT * FROM delta_scan('{b}'))"),
    q(f"SELECT count(*) FROM (SELECT * FROM delta_scan('{b}') EXCEPT ALL SELECT * FROM delta_scan('{a}'))"),
]))
os._exit(0)
"#;
    let path = |u: &url::Url| u.to_file_path().unwrap().display().to_string();
    let out = std::process::Command::new(python()).args(["-c", script, &path(a), &path(b)]).output().unwrap();
    assert!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    let v: Vec<u64> = serde_json::from_slice(&out.stdout).unwrap();
    (v[0], v[1], v[2], v[3])
}

fn reprocess(config: &Path, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut args = vec!["reprocess", "--config", config.to_str().unwrap(), "--table", "ad_events", "--json"];
    args.extend_from_slice(extra);
    run_tidelake(&args, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_reprocessed_gives_the_same_rows_even_when_killed_midway() {
    let records = events(100_000, 0.05, 0.005, 31);
    let topic = filled_topic("reprocess", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 5_000);
    ingest_to_end(&config);
    let live = load_config(&config).tables[0].clone();

    let out = reprocess(&config, &[], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["records"].as_u64().unwrap() as usize, records.len(), "every archived record replayed");
    assert_eq!(report["rows_written"], 100_000);
    assert_eq!(report["dead_letters"], 500);
    let shadow = url::Url::parse(report["shadow"].as_str().unwrap()).unwrap();
    assert_eq!(except_both_ways(&live.location, &shadow), (100_000, 100_000, 0, 0));

    // Run again: it was all done.
    let again: serde_json::Value = serde_json::from_slice(&reprocess(&config, &[], &[]).stdout).unwrap();
    assert_eq!(again["rows_written"], 0);

    // Killed after a few commits, then run again: the same table.
    let root = url::Url::from_directory_path(dir.path().join("second")).unwrap();
    let args = ["--shadow-root", root.as_str(), "--batch-size", "7000"];
    let killed = reprocess(&config, &args, &[("TIDELAKE_CRASH_AT", "after-commit:7")]);
    assert!(!killed.status.success() && String::from_utf8_lossy(&killed.stderr).contains("crash injected"));
    let resumed = reprocess(&config, &args, &[]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let resumed: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert!(resumed["rows_written"].as_u64().unwrap() < 100_000, "the first run committed some: {resumed}");
    let second = url::Url::parse(resumed["shadow"].as_str().unwrap()).unwrap();
    assert_eq!(except_both_ways(&live.location, &second), (100_000, 100_000, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_replayed_from_kafka_equals_the_same_range_from_the_archive() {
    let records = events(6_000, 0.05, 0.01, 33);
    let topic = filled_topic("replay", 3, &records[..3_000]).await;
    // A second burst, so the range below starts between the two.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let from = chrono::Utc::now().to_rfc3339();
    produce(&producer(), &topic, &records[3_000..]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 1_000);
    ingest_to_end(&config);

    let run = |source: &str, root: &str| -> serde_json::Value {
        let root = url::Url::from_directory_path(dir.path().join(root)).unwrap();
        let out = reprocess(&config, &["--source", source, "--from", &from, "--shadow-root", root.as_str()], &[]);
        assert!(out.status.success(), "{source}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (replayed, archive) = (run("kafka", "from-kafka"), run("archive", "from-archive"));
    assert_eq!(replayed["records"].as_u64(), Some(records.len() as u64 - 3_000), "the second burst only: {replayed}");
    assert_eq!(replayed["records"], archive["records"]);
    assert_eq!(replayed["rows_written"], archive["rows_written"]);
    let shadow = |r: &serde_json::Value| url::Url::parse(r["shadow"].as_str().unwrap()).unwrap();
    let (rows, _, a_not_b, b_not_a) = except_both_ways(&shadow(&replayed), &shadow(&archive));
    assert!(rows > 2_500, "{rows} rows");
    assert_eq!((a_not_b, b_not_a), (0, 0), "the same rows from Kafka and from the archive");

    // Kafka deletes the oldest records of partition 0: a range that starts before them is refused
    // (the archive still has it).
    use rdkafka::admin::{AdminClient, AdminOptions};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", kafka()).create().unwrap();
    let mut below = rdkafka::TopicPartitionList::new();
    below.add_partition_offset(&topic, 0, rdkafka::Offset::Offset(100)).unwrap();
    admin.delete_records(&below, &AdminOptions::new()).await.unwrap();
    let root = url::Url::from_directory_path(dir.path().join("too-old")).unwrap();
    let out = reprocess(&config, &["--source", "kafka", "--from", "2020-01-01", "--shadow-root", root.as_str()], &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("no longer holds the start of the range"), "{said}");
    let out = reprocess(&config, &["--from", "2020-01-01", "--shadow-root", root.as_str()], &[]);
    assert!(out.status.success(), "the archive has it: {}", String::from_utf8_lossy(&out.stderr));
}

/// Rows of a `tidelake query --format json` over `config`.
fn query(config: &Path, sql: &str) -> serde_json::Value {
    let out = run_ok(&["query", "--config", config.to_str().unwrap(), "--format", "json", sql], &[]);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sample's events over 2026-11-20..23, every tenth one without a user.
fn events_some_without_users(n: usize, seed: u64) -> Vec<tidelake_lake::sample::SampleRecord> {
    let mut records = spread_over_days(events(n, 0.03, 0.01, seed), 3);
    for r in records.iter_mut().step_by(10) {
        let text = String::from_utf8(r.value.clone()).unwrap();
        if let Some(start) = text.find(",\"user_id\":\"") {
            let end = start + 12 + text[start + 12..].find('"').unwrap() + 1;
            r.value = format!("{}{}", &text[..start], &text[end..]).into_bytes();
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_rule_replaces_a_range_of_days_in_one_commit_even_when_killed() {
    let records = events_some_without_users(20_000, 35);
    let topic = filled_topic("replace", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with_rollup(dir.path(), &topic, &unique("group"), 2_000);
    // Copies are dropped against the table, so the rows do not depend on how records are batched.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("event_time = \"event_time\"\n", "event_time = \"event_time\"\ndedup_window = \"30d\"\n"),
    )
    .unwrap();
    assert!(load_config(&config).tables[0].dedup_window.is_some());
    ingest_to_end(&config);
    let live = load_config(&config).tables[0].clone();
    let per_day = "SELECT CAST(event_date AS VARCHAR) AS day, count(*) AS n, count(DISTINCT event_id) AS ids, \
                   sum(cost) AS spend, count(user_id) AS users, sum(CASE WHEN user_id = 'anonymous' THEN 1 ELSE 0 END) AS anonymous \
                   FROM lake.ad_events GROUP BY 1 ORDER BY 1";
    let minutes = "SELECT sum(impressions) + sum(clicks) AS events, sum(spend) AS spend FROM lake.ad_events_minute";
    let before = query(&config, per_day);
    let minutes_before = query(&config, minutes);
    let days: Vec<&str> = before.as_array().unwrap().iter().map(|d| d["day"].as_str().unwrap()).collect();
    assert_eq!(days, ["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"]);
    let version_before = open(&live.location, &Default::default()).await.version().unwrap();

    // The new rule: an event without a user gets "anonymous".
    let text = std::fs::read_to_string(&config).unwrap();
    let rule = "{ name = \"user_id\", type = \"string\" }";
    assert!(text.contains(rule));
    std::fs::write(&config, text.replace(rule, "{ name = \"user_id\", type = \"string\", default = \"anonymous\" }"))
        .unwrap();
    let replace = ["--from", "2026-11-21", "--to", "2026-11-22", "--into", "replace", "--batch-size", "1500"];

    // Killed midway through the shadow, then after the data table's swap: each run goes on.
    let killed = reprocess(&config, &replace, &[("TIDELAKE_CRASH_AT", "after-commit:4")]);
    assert!(!killed.status.success() && String::from_utf8_lossy(&killed.stderr).contains("crash injected"));
    assert_eq!(open(&live.location, &Default::default()).await.version().unwrap(), version_before, "untouched");
    let killed = reprocess(&config, &replace, &[("TIDELAKE_CRASH_AT", "replace-after-commit")]);
    assert!(!killed.status.success() && String::from_utf8_lossy(&killed.stderr).contains("crash injected"));
    let mut args = replace.to_vec();
    args.push("--compact");
    let out = reprocess(&config, &args, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let swaps = report["replaced"].as_array().unwrap();
    assert_eq!(swaps.len(), 2, "{report}");
    assert_eq!(swaps[0]["already_done"], true, "the data table was swapped by the killed run: {report}");
    assert!(swaps[1]["version"].as_u64().is_some() && swaps[1]["rows_added"].as_u64().unwrap() > 0, "{report}");
    // The data table's swap was one commit on top of what ingest wrote.
    assert_eq!(open(&live.location, &Default::default()).await.version().unwrap(), version_before + 1);

    // The range has the new values, counts unchanged; the other days are as they were.
    let after = query(&config, per_day);
    for (old, new) in before.as_array().unwrap().iter().zip(after.as_array().unwrap()) {
        for same in ["day", "n", "ids", "spend"] {
            assert_eq!(old[same], new[same], "{same}: {old} -> {new}");
        }
        match old["day"].as_str().unwrap() {
            "2026-11-21" | "2026-11-22" => {
                assert_eq!(new["users"], new["n"], "every event of the range has a user now: {new}");
                let missing = old["n"].as_i64().unwrap() - old["users"].as_i64().unwrap();
                assert!(missing > 0, "{old}");
                assert_eq!(new["anonymous"].as_i64().unwrap(), missing, "{new}");
            }
            _ => assert_eq!(old, new, "outside the range nothing changed"),
        }
    }
    assert_eq!(query(&config, minutes), minutes_before, "the minute rollup adds up to the same events");
    // The rollups agree with the raw table, hours and days recomputed by --compact.
    let grains = ["minute", "hour", "day"];
    assert_rollups_match(&rollup_check(&live.location, &grains), &grains, 0.05);
    let audit = audit_passes(&config);
    assert_eq!(audit["replaces"], 1, "{audit}");
    assert!(audit["rows_replaced"].as_u64().unwrap() > 0, "{audit}");

    // Run again: the range is already replaced, nothing is written.
    let again: serde_json::Value = serde_json::from_slice(&reprocess(&config, &replace, &[]).stdout).unwrap();
    assert_eq!(again["rows_written"], 0, "{again}");
    assert!(again["replaced"].as_array().unwrap().iter().all(|s| s["already_done"] == true), "{again}");
    assert_eq!(query(&config, per_day), after);

    // What a replace cannot do is refused before anything is written.
    let no_dates =
        reprocess(&config, &["--from", "2026-11-21T10:00:00Z", "--to", "2026-11-22", "--into", "replace"], &[]);
    assert!(String::from_utf8_lossy(&no_dates.stderr).contains("whole event days"), "{no_dates:?}");
    let no_range = reprocess(&config, &["--into", "replace"], &[]);
    assert!(String::from_utf8_lossy(&no_range.stderr).contains("needs --from and --to"), "{no_range:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replace_of_days_the_log_no_longer_holds_audits_clean_after_checkpoint_and_cleanup() {
    let records = events_some_without_users(6_000, 36);
    let topic = filled_topic("oldlog", 2, &records[..4_000]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 400);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("event_time = \"event_time\"\n", "event_time = \"event_time\"\ndedup_window = \"30d\"\n"),
    )
    .unwrap();
    ingest_to_end(&config);
    run_ok(&["compact", "--config", config.to_str().unwrap(), "--job", "optimize,checkpoint", "--json"], &[]);

    // What a short log retention does: the commit files before the checkpoint are deleted, so the
    // files of the early commits are known from the checkpoint only.
    let live = load_config(&config).tables[0].clone();
    let log = live.location.to_file_path().unwrap().join("_delta_log");
    let names: Vec<String> =
        std::fs::read_dir(&log).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let version = |name: &str| name.get(..20).and_then(|v| v.parse::<u64>().ok());
    let checkpoint = names.iter().filter(|n| n.contains(".checkpoint.")).filter_map(|n| version(n)).max().unwrap();
    let mut deleted = 0;
    for name in names.iter().filter(|n| n.ends_with(".json") && version(n).is_some_and(|v| v < checkpoint)) {
        std::fs::remove_file(log.join(name)).unwrap();
        deleted += 1;
    }
    assert!(deleted >= 10, "{deleted} commit files deleted before checkpoint {checkpoint}");
    // Ingest goes on after the cleanup; the audit checks the commits the log holds.
    produce(&producer(), &topic, &records[4_000..]).await;
    ingest_to_end(&config);
    let audit = audit_passes(&config);
    assert!(audit["commits"].as_u64().unwrap() >= 3, "{audit}");

    // A replace of two of those days removes files only the checkpoint knows: it audits clean.
    let text = std::fs::read_to_string(&config).unwrap();
    let rule = "{ name = \"user_id\", type = \"string\" }";
    std::fs::write(&config, text.replace(rule, "{ name = \"user_id\", type = \"string\", default = \"anonymous\" }"))
        .unwrap();
    let out = reprocess(&config, &["--from", "2026-11-21", "--to", "2026-11-22", "--into", "replace"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let audit = audit_passes(&config);
    assert_eq!(audit["replaces"], 1, "{audit}");
}
