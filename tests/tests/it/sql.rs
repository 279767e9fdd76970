//! `tidelake sql`: the lake's tables as views in the CLI's embedded DuckDB (built with the `sql`
//! feature), and the same answers as the DataFusion connector gives.

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

/// A JSON result as rows of (column, value), missing keys as null and timestamps in one form, so
/// two engines' JSON writers compare by value.
fn normalized(rows: &serde_json::Value) -> Vec<std::collections::BTreeMap<String, serde_json::Value>> {
    let rows = rows.as_array().expect("an array of rows");
    let columns: std::collections::BTreeSet<&String> =
        rows.iter().flat_map(|r| r.as_object().expect("a row object").keys()).collect();
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| {
                    let value = match row.get(*c) {
                        Some(serde_json::Value::String(text)) => match chrono::DateTime::parse_from_rfc3339(text) {
                            Ok(t) => serde_json::json!(t.timestamp_micros()),
                            Err(_) => serde_json::json!(text),
                        },
                        Some(other) => other.clone(),
                        None => serde_json::Value::Null,
                    };
                    (c.to_string(), value)
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_views_answer_what_the_datafusion_connector_answers() {
    // 3,000 sample events over three days (copies and poison included) in batches of 500, and the
    // rollups compacted.
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{}\n{}",
        tidelake_lake::sample::AD_EVENTS_TABLE,
        tidelake_lake::sample::AD_EVENTS_ROLLUP
    );
    let config = dir.path().join("tidelake.toml");
    std::fs::write(&config, &text).unwrap();
    let mut ingestor = Ingestor::open(PipelineConfig::parse(&text, dir.path()).unwrap()).await.unwrap();
    let records = spread_over_days(events(3_000, 0.05, 0.01, 91), 2);
    for (b, chunk) in records.chunks(500).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| local_record((b * 500 + i) as i64, String::from_utf8(r.value.clone()).unwrap()))
            .collect();
        ingestor.handle(&KafkaBatch::new(batch)).await.unwrap();
    }
    run_ok(&["compact", "--config", config.to_str().unwrap()], &[]);
    let config = config.to_str().unwrap();

    let queries = [
        "SELECT count(*) AS n, count(DISTINCT event_id) AS ids, sum(cost) AS total, min(cost) AS low, max(cost) AS high FROM ad_events",
        "SELECT ad_id, count(*) AS n, sum(cost) AS spend, min(event_time) AS first, max(event_time) AS last FROM ad_events GROUP BY ad_id ORDER BY ad_id",
        "SELECT event_date, event_hour, event_type, count(*) AS n FROM ad_events GROUP BY event_date, event_hour, event_type ORDER BY 1, 2, 3",
        "SELECT count(*) AS n FROM ad_events WHERE event_date = DATE '2026-11-22' AND event_type = 'click' AND cost > 0.5",
        "SELECT event_id, row_number() OVER (PARTITION BY ad_id ORDER BY event_time, event_id) AS rn FROM ad_events ORDER BY event_id LIMIT 50",
        "SELECT count(*) AS n FROM ad_events WHERE cost > (SELECT avg(cost) FROM ad_events)",
        "SELECT campaign_id, sum(impressions) AS impressions, sum(clicks) AS clicks, sum(spend) AS spend, max(max_cost) AS top FROM ad_events_minute GROUP BY campaign_id ORDER BY campaign_id",
        "SELECT hour, sum(clicks) AS clicks, sum(spend) AS spend FROM ad_events_hour GROUP BY hour ORDER BY hour",
        "SELECT d.day, d.clicks, h.clicks AS from_hours FROM (SELECT day, sum(clicks) AS clicks FROM ad_events_day GROUP BY day) d JOIN (SELECT date_trunc('day', hour) AS day, sum(clicks) AS clicks FROM ad_events_hour GROUP BY 1) h ON d.day = h.day ORDER BY d.day",
        "SELECT (SELECT count(*) FROM ad_events_archive) AS archived, (SELECT count(*) FROM ad_events_dead_letters) AS dead",
        "SELECT user_id, count(*) AS n FROM ad_events WHERE user_id IS NULL OR user_id LIKE 'u-1%' GROUP BY user_id ORDER BY n DESC, user_id LIMIT 10",
    ];
    for query in queries {
        let duckdb = sql(Path::new(config), &[], query);
        let datafusion: serde_json::Value =
            serde_json::from_slice(&run_ok(&["query", "--config", config, "--format", "json", query], &[]).stdout)
                .expect("json rows");
        assert!(!duckdb.as_array().unwrap().is_empty(), "{query}: no rows");
        assert_eq!(normalized(&duckdb), normalized(&datafusion), "{query}");
    }
    // An older version: DuckDB's views at version 2, DataFusion's FOR VERSION AS OF 2.
    let old = "SELECT count(*) AS n, sum(cost) AS total FROM ad_events";
    let duckdb = sql(Path::new(config), &["--at-version", "2"], old);
    let versioned = format!("{} FOR VERSION AS OF 2", old);
    let datafusion: serde_json::Value =
        serde_json::from_slice(&run_ok(&["query", "--config", config, "--format", "json", &versioned], &[]).stdout)
            .unwrap();
    assert_eq!(normalized(&duckdb), normalized(&datafusion));
    assert!(duckdb[0]["n"].as_i64().unwrap() < 2_900, "version 2 holds the first batches only: {duckdb}");
}
