//! BI tools' paths into `tidelake serve`, through the real clients: the Trino JDBC driver from Maven
//! Central (`tests/jdbc/JdbcClient.java`: `DatabaseMetaData`, `PreparedStatement`, `USE`), which
//! DBeaver, DataGrip and Metabase use; the Trino CLI's `SHOW` statements; SQLAlchemy's inspector and reflection with the `trino`
//! dialect (Superset), pandas `read_sql` with parameters, and the `trino` DB-API's two ways of
//! binding parameters (`tests/bi_clients.py`).

use std::process::Command;

use serde_json::{json, Value};
use tidelake_presto::server::Credentials;
use tidelake_presto::Connector;

use crate::helpers::*;
use crate::serve::{lake_with_tail, Served};

/// What `program` printed as JSON; it must exit 0.
async fn run_client(mut program: Command, name: &'static str) -> Value {
    let out = tokio::task::spawn_blocking(move || program.output().unwrap_or_else(|e| panic!("run {name}: {e}")))
        .await
        .unwrap();
    assert!(out.status.success(), "{name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The rows of `sql` as strings, straight from the connector.
async fn rows(connector: &Connector, sql: &str) -> Vec<Vec<String>> {
    let (_, batches) = connector.query(sql).await.unwrap();
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            out.push(
                batch.columns().iter().map(|c| arrow::util::display::array_value_to_string(c, row).unwrap()).collect(),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jdbc_cli_sqlalchemy_and_pandas_browse_bind_and_type_as_against_trino() {
    let (dir, _topic, distinct) = lake_with_tail("bi", 2_000, 100, 0).await;
    let config = load_config(&dir.path().join("tidelake.toml"));
    let lake_tables: Vec<String> = {
        let mut names: Vec<String> = config
            .tables
            .iter()
            .flat_map(|spec| {
                let side = spec.delta_tables().into_iter().map(|(name, _)| name);
                let rollups = spec.rollup.iter().flat_map(|r| r.tables().map(|(_, name, _)| name).collect::<Vec<_>>());
                side.chain(rollups).collect::<Vec<_>>()
            })
            .collect();
        names.sort();
        names
    };
    let truth = Connector::new(config.clone()).unwrap();
    let clicks = rows(
        &truth,
        "SELECT CAST(count(*) AS varchar), CAST(sum(cost) AS varchar) FROM lake.ad_events WHERE event_type = 'click' AND ad_id >= 3",
    )
    .await
    .remove(0);
    let impressions =
        rows(&truth, "SELECT CAST(count(*) AS varchar), CAST(sum(cost) AS varchar) FROM lake.ad_events WHERE event_type = 'impression'")
            .await
            .remove(0);
    let costly = rows(&truth, "SELECT CAST(count(*) AS varchar) FROM lake.ad_events WHERE cost > 0.5").await.remove(0);
    assert_ne!(clicks[0], "0", "the fixture has clicks on ads 3 and up");
    let served = Served::start(config, Credentials::default()).await;

    // The Trino JDBC driver.
    let mut java = Command::new("java");
    java.arg("-cp")
        .arg(trino_client("jdbc"))
        .arg(repo().join("tests/jdbc/JdbcClient.java"))
        .arg(format!("jdbc:trino://127.0.0.1:{}/tidelake/lake", served.port))
        .arg("jdbc-test");
    let jdbc = run_client(java, "JdbcClient.java").await;
    assert_eq!(jdbc["catalogs"], json!(["tidelake"]), "{}", jdbc["catalogs"]);
    assert_eq!(jdbc["schemas_like"], json!([["lake", "tidelake"], ["live", "tidelake"]]), "{}", jdbc["schemas_like"]);
    let listed: Vec<&str> = jdbc["lake_tables"].as_array().unwrap().iter().map(|t| t[1].as_str().unwrap()).collect();
    assert_eq!(listed, lake_tables, "getTables(null, \"lake\", \"%\", null) lists every lake table of the config");
    assert!(jdbc["lake_tables"].as_array().unwrap().iter().all(|t| t[2] == "TABLE"), "{}", jdbc["lake_tables"]);
    assert_eq!(jdbc["live_views"].as_array().map(|v| v.len()), Some(1), "{}", jdbc["live_views"]);
    let column = |name: &str| jdbc["columns"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned();
    assert_eq!(
        column("cost"),
        Some(
            json!({"name": "cost", "type": "decimal(18,6)", "data_type": 3, "size": 18, "digits": 6, "position": 7, "nullable": "YES"})
        ),
        "{}",
        jdbc["columns"]
    );
    assert_eq!(column("event_time").map(|c| c["type"].clone()), Some(json!("timestamp(6) with time zone")));
    assert_eq!(column("event_time").map(|c| c["data_type"].clone()), Some(json!(2014)));
    assert_eq!(column("event_date").map(|c| c["data_type"].clone()), Some(json!(91)));
    assert_eq!(jdbc["table_types"], json!(["TABLE", "VIEW"]));
    // A PreparedStatement with `?` gives the literal query's rows, also when bound again.
    assert_eq!(jdbc["literal"], json!(clicks), "{}", jdbc["literal"]);
    assert_eq!(jdbc["prepared"], json!(clicks), "{}", jdbc["prepared"]);
    let all_impressions = json!([impressions[0], impressions[1]]);
    assert_eq!(jdbc["prepared_again"], all_impressions, "{}", jdbc["prepared_again"]);
    assert_eq!(jdbc["prepared_typed"], json!(costly[0]), "{}", jdbc["prepared_typed"]);
    assert_eq!(
        jdbc["result_types"]["classes"],
        json!(["java.lang.String", "java.sql.Timestamp", "java.lang.Long", "java.math.BigDecimal", "java.sql.Date"]),
        "{}",
        jdbc["result_types"]
    );
    // USE moves the connection to `live`: the lake and the Kafka tail.
    assert_eq!(jdbc["use_schema"], json!(["live", distinct.len().to_string()]), "{}", jdbc["use_schema"]);

    // The Trino CLI: its SHOW statements and USE, in one session.
    let mut cli = Command::new("java");
    cli.arg("-jar").arg(trino_client("cli")).args([
        "--server",
        &format!("http://127.0.0.1:{}", served.port),
        "--user",
        "cli-test",
        "--catalog",
        "tidelake",
        "--schema",
        "lake",
        "--output-format",
        "TSV_HEADER",
        "--execute",
        "SHOW CATALOGS; SHOW SCHEMAS; SHOW TABLES; DESCRIBE ad_events; USE live; SHOW TABLES; SELECT count(*) AS n FROM ad_events",
    ]);
    let printed = tokio::task::spawn_blocking(move || cli.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.status.success(), "trino CLI failed:\n{}\n{stdout}", String::from_utf8_lossy(&printed.stderr));
    let expected = [
        "Catalog\ntidelake\n".to_string(),
        "Schema\ninformation_schema\nkafka\nlake\nlive\n".to_string(),
        format!("Table\n{}\n", lake_tables.join("\n")),
        "Column\tType\tExtra\tComment\n".to_string(),
        "cost\tdecimal(18,6)\t\t\n".to_string(),
        "Table\nad_events\n".to_string(),
        format!("n\n{}\n", distinct.len()),
    ];
    let mut rest = stdout.as_ref();
    for block in &expected {
        let at =
            rest.find(block.as_str()).unwrap_or_else(|| panic!("the CLI printed no {block:?} (in order):\n{stdout}"));
        rest = &rest[at + block.len()..];
    }

    // SQLAlchemy, pandas and the trino DB-API.
    let mut script = Command::new(python());
    script.arg(repo().join("tests/bi_clients.py")).arg("127.0.0.1").arg(served.port.to_string());
    let py = run_client(script, "bi_clients.py").await;
    assert_eq!(py["schemas"], json!(["information_schema", "kafka", "lake", "live"]), "{}", py["schemas"]);
    assert_eq!(py["lake_tables"], json!(lake_tables), "{}", py["lake_tables"]);
    assert_eq!(py["live_views"].as_array().map(|v| v.len()), Some(1), "{}", py["live_views"]);
    let columns = py["columns"].as_array().unwrap_or_else(|| panic!("get_columns: {}", py["columns"]));
    assert!(columns.contains(&json!(["cost", "DECIMAL(18, 6)", true])), "{}", py["columns"]);
    assert!(columns.contains(&json!(["event_time", "TIMESTAMP", false])), "{}", py["columns"]);
    assert!(columns.contains(&json!(["ad_id", "BIGINT", false])), "{}", py["columns"]);
    assert_eq!(py["has_table"], json!([true, false]), "{}", py["has_table"]);
    assert_eq!(py["reflected"].as_array().map(|c| c.len()), Some(columns.len()), "{}", py["reflected"]);
    assert_eq!(py["pandas_literal"], json!([clicks]), "{}", py["pandas_literal"]);
    assert_eq!(py["pandas_params"], json!([clicks]), "{}", py["pandas_params"]);
    assert_eq!(py["pandas_tricky"], json!([["0"]]), "a parameter is a value, never SQL: {}", py["pandas_tricky"]);
    for key in ["dbapi_immediate", "dbapi_prepare"] {
        assert_eq!(py[key]["rows"], json!([clicks]), "{key}: {}", py[key]);
        assert_eq!(py[key]["prepared_left"], json!([]), "{key}: {}", py[key]);
    }
    let session = &py["use_and_session"];
    assert_eq!(session["schema"], "live", "{session}");
    assert_eq!(session["properties"], json!({"query_max_execution_time": "10m"}), "{session}");
    assert_eq!(session["shown"], "10m", "{session}");
    assert_eq!(session["live_count"], json!(distinct.len()), "{session}");
    // A session's time limit stops a query that runs longer (a three-way cross join of 2,000 rows).
    let limited = &py["time_limit"];
    assert_eq!(limited["name"], "EXCEEDED_TIME_LIMIT", "{limited}");
    assert_eq!(limited["message"], "Query exceeded the maximum execution time limit of 1.00s", "{limited}");
}
