//! The engine users scale out to: Apache Spark (pyspark 4.2 with Delta Lake 4.4, `tests/spark_read.py`)
//! reads every table of a quickstart lake with the rows DuckDB reads, an older version, and a
//! Structured Streaming read of the data table that sees the commits that land while it runs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;
use tidelake_presto::Connector;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_reads_every_table_as_duckdb_does_and_streams_new_commits() {
    let dir = tempfile::tempdir().unwrap();
    let qs = dir.path().join("qs");
    let topic = unique("spark");
    let qs_dir = qs.to_str().unwrap();
    run_ok(
        &["quickstart", "--dir", qs_dir, "--events", "2000", "--brokers", kafka(), "--topic", &topic, "--json"],
        &[],
    );
    let config_path = qs.join("tidelake.toml");
    // A second load, so the latest version is not the first one.
    produce(&producer(), &topic, &events(150, 0.0, 0.0, 7_000)).await;
    ingest_to_end(&config_path);
    // The hour and day rollups are written by compaction.
    run_ok(&["compact", "--config", config_path.to_str().unwrap(), "--json"], &[]);
    let config = load_config(&config_path);
    let spec = &config.tables[0];
    // Each table with the columns DuckDB's read is checked by: an id and a number to sum.
    let mut tables: Vec<(String, url::Url, &str, &str)> = Vec::new();
    let [(data, data_at), (dead, dead_at), (archive, archive_at)] = spec.delta_tables();
    tables.push((data.clone(), data_at.clone(), "event_id", "cost"));
    tables.push((dead, dead_at.clone(), "offset", "partition"));
    tables.push((archive, archive_at.clone(), "offset", "partition"));
    if let Some(rollup) = &spec.rollup {
        for (_, name, at) in rollup.tables() {
            tables.push((name, at.clone(), "ad_id", "spend"));
        }
    }
    let path = |at: &url::Url| at.to_file_path().unwrap().to_str().unwrap().to_string();

    // What DuckDB reads of the lake as it stands (it changes only once Spark's stream waits).
    let duckdb: Vec<Value> = tables.iter().map(|(_, at, id, sum)| read_back(at, id, sum)["duckdb"].clone()).collect();
    let truth = Connector::new(config.clone()).unwrap();
    let (_, batches) = truth.query(&format!("SELECT count(*) FROM lake.{data} FOR VERSION AS OF 1")).await.unwrap();
    let version_1 = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0);

    let python = spark_env("python");
    let jars = spark_env("jars");
    let mut spark = Command::new(python);
    spark.arg(repo().join("tests/spark_read.py")).arg(&jars).arg("/");
    spark.args(tables.iter().map(|(_, at, _, _)| path(at)));
    spark.args(["--stream-wait", "240"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut spark = spark.spawn().expect("start spark_read.py");

    // Once Spark's stream has read the table, 300 new events land in new commits.
    let stderr = spark.stderr.take().unwrap();
    let (said, waiting) = std::sync::mpsc::channel::<Vec<String>>();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut told = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !told && line.contains("waiting up to") {
                let _ = said.send(lines.clone());
                told = true;
            }
            lines.push(line);
        }
        if !told {
            let _ = said.send(lines.clone());
        }
        lines
    });
    let before = waiting.recv().unwrap();
    assert!(
        before.iter().all(|l| !l.contains("Traceback")),
        "spark_read.py failed before its stream waited:\n{}",
        before.join("\n")
    );
    let fresh = events(300, 0.0, 0.0, 7_001);
    produce(&producer(), &topic, &fresh).await;
    ingest_to_end(&config_path);

    let out = tokio::task::spawn_blocking(move || spark.wait_with_output().unwrap()).await.unwrap();
    let log = reader.join().unwrap().join("\n");
    assert!(out.status.success(), "spark_read.py failed:\n{log}");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {log}"));

    for ((name, at, _, _), duck) in tables.iter().zip(&duckdb) {
        let table = &seen["tables"][path(at)];
        assert_eq!(table["rows"], duck["rows"], "{name}: Spark and DuckDB rows differ: {table} / {duck}");
        assert!(table["rows"].as_u64().unwrap() > 0, "{name} is empty: {table}");
    }
    let data_seen = &seen["tables"][path(data_at)];
    assert_eq!(data_seen["rows"], 2150, "{data_seen}");
    assert_eq!(data_seen["sum_cost"], duckdb[0]["sum"], "sum(cost): {data_seen} / {}", duckdb[0]);
    assert_eq!(seen["version_1_rows"], version_1, "a read at version 1: {}", seen["version_1_rows"]);
    assert_eq!(version_1, 2000, "version 1 holds the quickstart's load, not the second one");
    let stream = &seen["stream"];
    assert_eq!(stream["initial"], 2150, "{stream}\n{log}");
    assert_eq!(stream["new"], 300, "{stream}\n{log}");
}
