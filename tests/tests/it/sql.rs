//! `tidelake sql`: the lake's tables as views in the CLI's embedded DuckDB (built with the `sql`
//! feature).

use std::io::Write;
use std::path::Path;

use tidelake_functions::Ingestor;
use tidelake_lake::{KafkaBatch, PipelineConfig};

use crate::helpers::*;

/// Runs `tidelake sql --config <config> --format json <args> <sql>`, which must succeed, and returns
/// its rows.
fn sql(config: &Path, args: &[&str], sql: &str) -> serde_json::Value {
    let mut all = vec!["sql", "--config", config.to_str().unwrap(), "--format", "json"];
    all.extend_from_slice(args);
    all.push(sql);
    serde_json::from_slice(&run_ok(&all, &[]).stdout).expect("json rows")
}

/// A lake of 300 click events over three days (one data commit per day) with the sample rollup.
async fn lake(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        "[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{}\n{}",
        tidelake_lake::sample::AD_EVENTS_TABLE,
        tidelake_lake::sample::AD_EVENTS_ROLLUP
    );
    let config_path = dir.join("tidelake.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = PipelineConfig::parse(&text, dir).unwrap();
    let mut ingestor = Ingestor::open(config).await.unwrap();
    for batch in 0..3i64 {
        let records = (0..100)
            .map(|i| local_record(batch * 100 + i, format!(r#"{{"event_id":"e-{batch}-{i}","event_time":"2026-11-2{batch}T1{}:00:00Z","event_type":"click","ad_id":{},"campaign_id":1000,"user_id":"u-{i}","cost":"1.5"}}"#, i % 3, i % 7)))
            .collect();
        ingestor.handle(&KafkaBatch::new(records)).await.unwrap();
    }
    config_path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_reads_every_table_an_older_version_and_the_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let config = lake(dir.path()).await;
    let rows =
        sql(&config, &[], "SELECT count(*) AS n, count(DISTINCT event_id) AS ids, sum(cost) AS total FROM ad_events");
    assert_eq!(rows, serde_json::json!([{"n": 300, "ids": 300, "total": "450.000000"}]));
    // The same as an independent reader of the Delta table.
    let seen = read_back(&load_config(&config).tables[0].location, "event_id", "cost");
    assert_eq!(
        (seen["deltalake"]["rows"].as_u64(), seen["deltalake"]["sum"].as_str()),
        (Some(300), Some("450.000000"))
    );

    let first = sql(&config, &["--at-version", "1"], "SELECT count(*) AS n, max(event_date) AS day FROM ad_events");
    assert_eq!(first, serde_json::json!([{"n": 100, "day": "2026-11-20"}]));
    let side = sql(&config, &[], "SELECT (SELECT count(*) FROM ad_events_archive) AS archived, (SELECT count(*) FROM ad_events_dead_letters) AS dead");
    assert_eq!(side, serde_json::json!([{"archived": 300, "dead": 0}]));

    run_ok(&["compact", "--config", config.to_str().unwrap(), "--job", "finalize,rollup"], &[]);
    let days = sql(
        &config,
        &[],
        "SELECT day, sum(clicks) AS clicks, sum(spend) AS spend FROM ad_events_day GROUP BY ALL ORDER BY day",
    );
    assert_eq!(
        days,
        serde_json::json!([
            {"day": "2026-11-20T00:00:00Z", "clicks": 100, "spend": "150.000000"},
            {"day": "2026-11-21T00:00:00Z", "clicks": 100, "spend": "150.000000"},
            {"day": "2026-11-22T00:00:00Z", "clicks": 100, "spend": "150.000000"},
        ])
    );
    let users = sql(&config, &[], "SELECT max(unique_users) AS users FROM ad_events_day");
    assert_eq!(users, serde_json::json!([{"users": 15}]), "at most 15 distinct users an ad a day");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_from_stdin_run_in_turn_and_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = lake(dir.path()).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidelake-under-test"))
        .args(["sql", "--config", config.to_str().unwrap(), "--format", "csv"])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*) AS n\n  FROM ad_events;\nSELECT * FROM ad_eventz;\nSELECT 'a, b' AS text;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n300\ntext\n\"a, b\"\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ad_eventz"), "{stderr}");
    assert!(!out.status.success(), "a failed statement fails the run");

    let bad = run_tidelake(&["sql", "--config", config.to_str().unwrap(), "SELEC 1"], &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("syntax error"), "{}", String::from_utf8_lossy(&bad.stderr));
}
