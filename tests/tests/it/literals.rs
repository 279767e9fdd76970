//! The right answer for any SQL: statements with quotes, comments, Unicode, escape strings,
//! quoted identifiers and time travel reach the planner as written, through `tidelake query` and
//! through the `trino` client against `tidelake serve`, and answer what DuckDB answers on the same
//! Delta table (`tests/literal_check.py`).

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use tidelake_functions::Ingestor;
use tidelake_lake::{KafkaBatch, PipelineConfig};

use crate::helpers::*;

/// User ids that break SQL built by pasting text together.
const TRICKY: [&str; 10] =
    ["O'Brien", "x' OR '1'='1", "Zoë 🚀", "back\\slash", "a@b", "--", "/* c */", "\"quoted\"", "tab\there", ""];

/// A lake whose version 1 holds 100 events of the ten tricky users (ten each) and version 2 another
/// 50 of the first five.
pub(crate) async fn lake(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        "[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{}",
        tidelake_lake::sample::AD_EVENTS_TABLE
    );
    let config_path = dir.join("tidelake.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = PipelineConfig::parse(&text, dir).unwrap();
    let mut ingestor = Ingestor::open(config).await.unwrap();
    for (batch, (rows, users)) in [(100i64, 10usize), (50, 5)].into_iter().enumerate() {
        let records = (0..rows)
            .map(|i| {
                let value = json!({
                    "event_id": format!("e-{batch}-{i}"),
                    "event_time": "2026-11-20T10:00:00Z",
                    "event_type": "click",
                    "ad_id": i % 7,
                    "campaign_id": 1000,
                    "user_id": TRICKY[i as usize % users],
                    "cost": "1.5",
                });
                local_record(batch as i64 * 1000 + i, value.to_string())
            })
            .collect();
        ingestor.handle(&KafkaBatch::new(records)).await.unwrap();
    }
    config_path
}

/// `(name, SQL, the same in DuckDB's syntax when it differs)`.
fn statements() -> Vec<(&'static str, &'static str, Option<&'static str>)> {
    vec![
        ("quote", "SELECT 'O''Brien' AS v", None),
        ("injection", "SELECT count(*) AS n FROM ad_events WHERE user_id = 'x'' OR ''1''=''1'", None),
        ("escaped_quote", "SELECT count(*) AS n FROM ad_events WHERE user_id = 'O''Brien'", None),
        (
            "like_quote",
            "SELECT user_id, count(*) AS n FROM ad_events WHERE user_id LIKE '%''%' GROUP BY user_id ORDER BY user_id",
            None,
        ),
        ("line_comment", "SELECT count(*) AS n FROM ad_events -- WHERE user_id = 'nobody'\nWHERE user_id <> '--'", None),
        (
            "block_comment",
            "SELECT /* FOR VERSION AS OF 1 */ count(*) AS n FROM ad_events WHERE user_id = '/* c */'",
            None,
        ),
        ("unicode", "SELECT count(*) AS n, 'Zoë 🚀' AS v FROM ad_events WHERE user_id = 'Zoë 🚀'", None),
        (
            "escape_string",
            "SELECT count(*) AS n FROM ad_events WHERE user_id = E'back\\\\slash' OR user_id = E'tab\\there'",
            None,
        ),
        (
            "unicode_escape",
            "SELECT count(*) AS n FROM ad_events WHERE user_id = U&'Zo\\00EB \\+01F680'",
            Some("SELECT count(*) AS n FROM ad_events WHERE user_id = 'Zoë 🚀'"),
        ),
        (
            "quoted_identifiers",
            "SELECT user_id AS \"who@where\", count(*) AS \"n\"\"q\" FROM ad_events WHERE user_id = 'a@b' GROUP BY user_id",
            None,
        ),
        ("double_quotes_in_literal", "SELECT count(*) AS n FROM ad_events WHERE user_id = '\"quoted\"'", None),
        ("empty_string", "SELECT count(*) AS n FROM ad_events WHERE user_id = ''", None),
        (
            "time_travel_with_literal",
            "SELECT count(*) AS n FROM ad_events FOR VERSION AS OF 1 WHERE user_id = 'O''Brien'",
            Some("SELECT count(*) AS n FROM ad_events_v1 WHERE user_id = 'O''Brien'"),
        ),
        (
            "versioned_name_with_literal",
            "SELECT count(*) AS n FROM \"ad_events@v1\" WHERE user_id <> 'x'' OR ''1''=''1'",
            Some("SELECT count(*) AS n FROM ad_events_v1 WHERE user_id <> 'x'' OR ''1''=''1'"),
        ),
    ]
}

/// The rows of `tidelake query --format json`, each value as text, in the order of `columns`.
fn queried(config: &Path, sql: &str, columns: &[Value]) -> Vec<Vec<Option<String>>> {
    let out = run_ok(&["query", "--config", config.to_str().unwrap(), "--format", "json", sql], &[]);
    let rows: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&out.stdout).expect("json rows");
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| match &row[c.as_str().unwrap()] {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tricky_literals_answer_as_duckdb_does_through_query_and_the_trino_client() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = lake(dir.path()).await;
    let config = load_config(&config_path);
    let table = config.tables[0].location.to_file_path().unwrap();
    let served = crate::serve::Served::start(config, Default::default()).await;

    let list: Vec<Value> = statements()
        .iter()
        .map(|(name, sql, duck)| {
            let mut s = json!({"name": name, "sql": sql});
            if let Some(duck) = duck {
                s["duckdb"] = json!(duck);
            }
            s
        })
        .collect();
    let file = dir.path().join("statements.json");
    std::fs::write(&file, serde_json::to_vec(&list).unwrap()).unwrap();
    let (port, table_arg) = (served.port.to_string(), table.to_str().unwrap().trim_end_matches('/').to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(repo().join("tests/literal_check.py"))
            .args([port, table_arg, file.to_str().unwrap().to_string()])
            .output()
            .expect("run literal_check.py")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "literal_check.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let answers: Value = serde_json::from_slice(&out.stdout).unwrap();

    for (name, sql, _) in statements() {
        let (trino, duckdb) = (&answers[name]["trino"], &answers[name]["duckdb"]);
        assert!(duckdb.get("rows").is_some(), "{name}: DuckDB failed: {duckdb}");
        assert_eq!(trino, duckdb, "{name}: the trino client through tidelake serve and DuckDB disagree on\n{sql}");
        let expected: Vec<Vec<Option<String>>> = serde_json::from_value(duckdb["rows"].clone()).unwrap();
        let columns = duckdb["columns"].as_array().unwrap();
        assert_eq!(
            queried(&config_path, sql, columns),
            expected,
            "{name}: tidelake query and DuckDB disagree on\n{sql}"
        );
    }
    // What the statements of the report say, as numbers a reader can check by hand.
    assert_eq!(answers["quote"]["duckdb"]["rows"], json!([["O'Brien"]]));
    assert_eq!(answers["injection"]["duckdb"]["rows"], json!([["20"]]), "only the user named so, not all 150 rows");
    assert_eq!(answers["time_travel_with_literal"]["duckdb"]["rows"], json!([["10"]]));
    assert_eq!(answers["quoted_identifiers"]["duckdb"]["columns"], json!(["who@where", "n\"q"]));
}
