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
