//! A table's columns as its config or its producers' schema change: a nullable column added to the
//! config (or to the registry's latest schema, with `columns = "registry"`) is added to the Delta
//! table in a commit of its own, rows written before read it as null, a writer still on the old
//! config goes on writing, and any other change is refused before anything is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use tidelake_lake::sample::SampleRecord;

use crate::helpers::*;

/// The `write_config` column line the tests put a new column before.
const USER_ID: &str = "  { name = \"user_id\", type = \"string\" },\n";

/// `config` with its text changed by `edit`, saved next to it as `name` (the lake root stays the
/// same folder).
fn variant(config: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed nothing");
    let path = config.with_file_name(name);
    std::fs::write(&path, edited).unwrap();
    path
}

/// `records` with `"device": device` in each value.
fn with_device(records: Vec<SampleRecord>, device: &str) -> Vec<SampleRecord> {
    records
        .into_iter()
        .map(|mut r| {
            let mut value: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
            value["device"] = device.into();
            r.value = serde_json::to_vec(&value).unwrap();
            r
        })
        .collect()
}

/// What DuckDB and Python `deltalake` see of the table at `uri` (`tests/evolution_check.py`): for
/// each, the rows, how many hold `column`, the columns, the largest value of `max_of` if given; for
/// deltalake also the columns at `version`.
fn columns_seen(uri: &url::Url, column: &str, version: u64, max_of: Option<&str>) -> serde_json::Value {
    let out = Command::new(python())
        .arg(repo().join("tests/evolution_check.py"))
        .args([uri.to_file_path().unwrap().to_str().unwrap(), column, &version.to_string()])
        .args(max_of)
        .output()
        .unwrap();
    assert!(out.status.success(), "evolution_check.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn version_of(uri: &url::Url) -> u64 {
    deltalake::open_table(uri.clone()).await.unwrap().version().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nullable_column_added_to_the_config_joins_the_table_and_other_changes_are_refused() {
    let first = events(600, 0.0, 0.0, 41);
    let topic = filled_topic("evolve", 3, &first).await;
    let dir = tempfile::tempdir().unwrap();
    let v1 = write_config(dir.path(), &topic, &unique("group"), 250);
    assert_eq!(ingest_to_end(&v1)["rows_written"], 600);
    let uri = load_config(&v1).tables[0].location.clone();
    let before = version_of(&uri).await;

    // v2 adds a nullable `device`, listed among the other columns rather than at the end.
    let v2 = variant(&v1, "v2.toml", |t| {
        t.replacen(USER_ID, &format!("  {{ name = \"device\", type = \"string\" }},\n{USER_ID}"), 1)
    });
    let second = with_device(events(600, 0.0, 0.0, 42), "phone");
    produce(&producer(), &topic, &second).await;
    let report = ingest_to_end(&v2);
    assert_eq!(report["rows_written"], 600, "{report}");

    // A writer still on v1 reads the newer events: it writes them, `device` null.
    let third = with_device(events(300, 0.0, 0.0, 43), "tablet");
    produce(&producer(), &topic, &third).await;
    assert_eq!(ingest_to_end(&v1)["rows_written"], 300);

    // Refused, naming the column, before anything is written: a narrowed type, a required column
    // the table does not have.
    let latest = version_of(&uri).await;
    let narrowed = variant(&v2, "v3.toml", |t| {
        t.replacen("{ name = \"ad_id\", type = \"int64\"", "{ name = \"ad_id\", type = \"int32\"", 1)
    });
    let required = variant(&v2, "v4.toml", |t| {
        t.replacen(USER_ID, &format!("  {{ name = \"region\", type = \"string\", nullable = false }},\n{USER_ID}"), 1)
    });
    for (config, says) in [
        (&narrowed, "column `ad_id` is long in the table but integer in the config"),
        (&required, "column `region` is missing from the table, and only a nullable column can be added"),
    ] {
        let out = run_tidelake(&["ingest", "--config", config.to_str().unwrap(), "--stop-at-end", "--json"], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} was taken", config.display());
        assert!(stderr.contains(says), "{stderr}");
    }
    assert_eq!(version_of(&uri).await, latest, "a refused config wrote nothing");

    // Small files packed across the change keep every value.
    run_ok(&["compact", "--config", v2.to_str().unwrap(), "--job", "optimize", "--json"], &[]);

    // DuckDB and Python deltalake: every row, `device` filled exactly for the v2 writer's rows; the
    // version before the change has the old columns, the one after it the new.
    let seen = columns_seen(&uri, "device", before, None);
    for engine in ["duckdb", "deltalake"] {
        assert_eq!(seen[engine]["rows"], 1_500, "{seen}");
        assert_eq!(seen[engine]["filled"], 600, "{seen}");
        assert!(seen[engine]["columns"].as_array().unwrap().contains(&"device".into()), "{seen}");
    }
    assert!(!seen["deltalake"]["columns_at_version"].as_array().unwrap().contains(&"device".into()), "{seen}");
    let added_at = deltalake::DeltaTableBuilder::from_url(uri.clone()).unwrap().with_version(before + 1);
    let added_at = added_at.load().await.unwrap();
    let columns: Vec<String> = added_at.snapshot().unwrap().schema().fields().map(|f| f.name().clone()).collect();
    assert!(columns.contains(&"device".to_string()), "{columns:?}");
    audit_passes(&v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_from_the_registry_follow_a_producer_that_adds_a_field() {
    // v1 events land in a table whose columns are the subject's latest schema.
    let topic = unique("registry-columns");
    create_topic(&topic, 2).await;
    produce_avro(&topic, &events(300, 0.0, 0.0, 51), &[], "v1");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 100);
    read_as_avro(&config);
    columns_from_registry(&config);
    let path = config.to_str().unwrap().to_string();
    let mut running = Command::new(env!("CARGO_BIN_EXE_tidelake-under-test"))
        .args(["ingest", "--config", &path])
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;

    // The producer moves to v2 (a nullable `device`, `campaign_id` widened from int to long) while
    // that process runs: at the first v2 record it reads the config and the registry again, the
    // table gains `device` at a version of its own, and every event lands, v1's with no device,
    // v2's campaign ids beyond an int's range exact (the column was an int64 from the start).
    let second: Vec<SampleRecord> = with_device(events(200, 0.0, 0.0, 52), "phone")
        .into_iter()
        .map(|mut r| {
            let mut value: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
            value["campaign_id"] = (value["campaign_id"].as_i64().unwrap() + 5_000_000_000).into();
            r.value = serde_json::to_vec(&value).unwrap();
            r
        })
        .collect();
    let campaign =
        |r: &SampleRecord| serde_json::from_slice::<serde_json::Value>(&r.value).unwrap()["campaign_id"].as_i64();
    let widest = second.iter().filter_map(campaign).max().unwrap();
    produce_avro(&topic, &second, &[], "v2");
    let uri = load_config(&config).tables[0].location.clone();
    let started = std::time::Instant::now();
    while count(&read_rows(&uri, &Default::default()).await) < 500
        && started.elapsed() < std::time::Duration::from_secs(60)
    {
        assert!(running.try_wait().unwrap().is_none(), "ingest stopped at the newer schema");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    running.kill().unwrap();
    let seen = columns_seen(&uri, "device", 0, Some("campaign_id"));
    let stopped = running.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(stderr.contains("reading the config and the registry again"), "{stderr}");
    assert!(stderr.contains("whose field `device` is not a column yet"), "{stderr}");
    for engine in ["duckdb", "deltalake"] {
        assert_eq!(seen[engine]["rows"], 500, "{seen}");
        assert_eq!(seen[engine]["filled"], 200, "{seen}");
        assert_eq!(seen[engine]["max"], widest, "{seen}");
    }
    assert!(!seen["deltalake"]["columns_at_version"].as_array().unwrap().contains(&"device".into()), "{seen}");

    // v3 makes `cost` a double, which the decimal column does not take: its records are dead
    // letters saying so, and the pipeline goes on.
    produce_avro(&topic, &events(100, 0.0, 0.0, 53), &[], "v3");
    let report = ingest_to_end(&config);
    assert_eq!((report["rows_written"].as_u64(), report["dead_letters"].as_u64()), (Some(0), Some(100)), "{report}");
    let reasons = report["dead_letter_samples"].to_string();
    assert!(
        reasons.contains(
            "does not fit the table: field `cost` is double, which column `cost` (decimal(18, 6)) does not take"
        ),
        "{reasons}"
    );
    audit_passes(&config);

    // With on_incompatible = "stop", a lake started now (the same columns: each is made by the
    // first version with its field) stops at the first v3 record, its batch not written.
    let other = tempfile::tempdir().unwrap();
    let stopping = write_config(other.path(), &topic, &unique("group"), 100);
    read_as_avro(&stopping);
    columns_from_registry(&stopping);
    let text = std::fs::read_to_string(&stopping).unwrap();
    let topic_line = format!("topic = \"{topic}\"\n");
    std::fs::write(&stopping, text.replacen(&topic_line, &format!("{topic_line}on_incompatible = \"stop\"\n"), 1))
        .unwrap();
    let out = run_tidelake(&["ingest", "--config", stopping.to_str().unwrap(), "--stop-at-end", "--json"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("which does not fit the table: field `cost` is double"),
        "{stderr}"
    );
    let stopped_at = load_config(&stopping).tables[0].location.clone();
    let seen = columns_seen(&stopped_at, "device", 0, None);
    assert!(seen["duckdb"]["rows"].as_u64().unwrap() <= 500, "a v3 record was written: {seen}");
}

/// Registers `schema` under `subject` in the test registry with confluent-kafka's client; its id.
fn register(subject: &str, schema: &str) -> u32 {
    let script = "import sys\nfrom confluent_kafka.schema_registry import Schema, SchemaRegistryClient\n\
                  print(SchemaRegistryClient({'url': sys.argv[1], 'timeout': 10}).register_schema(sys.argv[2], Schema(sys.argv[3], 'AVRO')))";
    let out = Command::new(python()).args(["-c", script, schema_registry(), subject, schema]).output().unwrap();
    assert!(out.status.success(), "registering failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

/// A Lambda event of a Kafka event source mapping holding `values` at offsets `first..` of
/// partition 0 of `topic`.
fn kafka_event(topic: &str, first: i64, values: &[Vec<u8>]) -> serde_json::Value {
    use base64::Engine;
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let now = chrono::Utc::now().timestamp_millis();
    let records: Vec<serde_json::Value> = values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            serde_json::json!({"topic": topic, "partition": 0, "offset": first + i as i64, "timestamp": now,
                "timestampType": "CREATE_TIME", "key": base64(b"k"), "value": base64(value), "headers": []})
        })
        .collect();
    serde_json::json!({"eventSource": "SelfManagedKafka", "bootstrapServers": "unused:9092",
        "records": {format!("{topic}-0"): records}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_lambda_function_takes_a_newer_registry_schema_without_a_restart() {
    use lambda_runtime::{Context, LambdaEvent};
    use tidelake_functions::{lambda, Ingestor};

    let topic = unique("lambda-registry");
    let subject = format!("{topic}-value");
    let v1_id = register(&subject, EVENT_SCHEMA);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, "unused", 100);
    read_as_avro(&config);
    columns_from_registry(&config);
    let location = config.to_str().unwrap();
    let ingestor = tokio::sync::Mutex::new(Ingestor::open(load_config(&config)).await.unwrap());
    let framed = |id: u32, datum: Vec<u8>| [vec![0], id.to_be_bytes().to_vec(), datum].concat();

    let v1 = apache_avro::Schema::parse_str(EVENT_SCHEMA).unwrap();
    let first: Vec<Vec<u8>> =
        events(50, 0.0, 0.0, 61).iter().map(|r| framed(v1_id, plain_avro(&v1, &r.value))).collect();
    let event = LambdaEvent::new(serde_json::from_value(kafka_event(&topic, 0, &first)).unwrap(), Context::default());
    assert_eq!(lambda::handle(event, &ingestor, location).await.unwrap().rows_written(), 50);

    // The producer registers v2 (a nullable `device`) and its records reach the same warm function:
    // it reads the registry again, the table gains the column, and the batch lands whole.
    let mut v2_json: serde_json::Value = serde_json::from_str(EVENT_SCHEMA).unwrap();
    let device = serde_json::json!({"name": "device", "type": ["null", "string"], "default": null});
    v2_json["fields"].as_array_mut().unwrap().push(device);
    let v2_text = v2_json.to_string();
    let v2_id = register(&subject, &v2_text);
    let v2 = apache_avro::Schema::parse_str(&v2_text).unwrap();
    let second: Vec<Vec<u8>> = with_device(events(30, 0.0, 0.0, 62), "phone")
        .iter()
        .map(|r| framed(v2_id, plain_avro(&v2, &r.value)))
        .collect();
    let event = LambdaEvent::new(serde_json::from_value(kafka_event(&topic, 50, &second)).unwrap(), Context::default());
    let report = lambda::handle(event, &ingestor, location).await.unwrap();
    assert_eq!((report.rows_written(), report.dead_letters()), (30, 0));

    let uri = load_config(&config).tables[0].location.clone();
    let seen = columns_seen(&uri, "device", 0, None);
    assert_eq!((seen["duckdb"]["rows"].as_u64(), seen["duckdb"]["filled"].as_u64()), (Some(80), Some(30)), "{seen}");
}
