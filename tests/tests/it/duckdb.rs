//! `tidelake duckdb-init`: views a plain DuckDB reads the lake through, without the delta extension.

use std::path::Path;

use tidelake_functions::Ingestor;
use tidelake_lake::{KafkaBatch, PipelineConfig};

use crate::helpers::*;

/// Runs `sql` in DuckDB after the views `tidelake duckdb-init <args>` prints, and returns the rows
/// as JSON.
fn duckdb(config: &Path, args: &[&str], sql: &str) -> serde_json::Value {
    let mut all = vec!["duckdb-init", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let views = String::from_utf8(run_ok(&all, &[]).stdout).unwrap();
    let script = "import duckdb, json, sys\ncon = duckdb.connect()\ncon.execute(sys.argv[1])\nprint(json.dumps([[str(v) for v in r] for r in con.execute(sys.argv[2]).fetchall()]))";
    let out = std::process::Command::new(python()).args(["-c", script, &views, sql]).output().unwrap();
    assert!(out.status.success(), "duckdb: {}\n{views}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_current_snapshot_an_older_version_and_an_empty_table() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{}",
        tidelake_lake::sample::AD_EVENTS_TABLE
    );
    let config_path = dir.path().join("tidelake.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = PipelineConfig::parse(&text, dir.path()).unwrap();
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    for batch in 0..3i64 {
        let records = (0..100)
            .map(|i| local_record(batch * 100 + i, format!(r#"{{"event_id":"e-{batch}-{i}","event_time":"2026-11-2{batch}T1{}:00:00Z","event_type":"click","ad_id":{i},"campaign_id":1000,"cost":"1.5"}}"#, i % 3)))
            .collect();
        ingestor.handle(&KafkaBatch::new(records)).await.unwrap();
    }

    let rows = duckdb(
        &config_path,
        &[],
        "SELECT count(*), count(DISTINCT event_id), sum(cost), min(event_date), max(event_hour) FROM ad_events",
    );
    assert_eq!(rows, serde_json::json!([["300", "300", "450.000000", "2026-11-20", "12"]]));
    // The same answer as an independent reader of the Delta table.
    let seen = read_back(&config.tables[0].location, "event_id", "cost");
    assert_eq!(seen["deltalake"]["rows"], 300);
    assert_eq!(seen["deltalake"]["sum"], "450.000000");

    // Version 1 is the first data commit.
    let first = duckdb(&config_path, &["--at-version", "1"], "SELECT count(*), max(event_date) FROM ad_events");
    assert_eq!(first, serde_json::json!([["100", "2026-11-20"]]));

    // No record was poison: the dead-letter table has no file, and its view is empty but typed.
    let dead = duckdb(&config_path, &[], "SELECT count(*), typeof(max(\"offset\")) FROM ad_events_dead_letters");
    assert_eq!(dead, serde_json::json!([["0", "BIGINT"]]));
    let archived = duckdb(&config_path, &[], "SELECT count(*), count(DISTINCT \"offset\") FROM ad_events_archive");
    assert_eq!(archived, serde_json::json!([["300", "300"]]));
}
