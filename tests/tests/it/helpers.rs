//! Shared helpers of the end-to-end tests: the real Kafka broker, topics, producers, pipeline configs,
//! the `tidelake` binary, and reading tables back.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use deltalake::DeltaTable;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tidelake_lake::sample::{self, SampleRecord, SampleSpec};
use tidelake_lake::PipelineConfig;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Runs `infra/<script> <args>`, which must succeed, and returns what it printed on stdout.
fn infra(script: &str, args: &[&str]) -> String {
    let out = Command::new(repo().join("infra").join(script)).args(args).output().expect("run an infra script");
    assert!(out.status.success(), "infra/{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// Bootstrap address of the test broker, started by `infra/kafka.sh` if it is not running yet.
pub fn kafka() -> &'static str {
    static BOOTSTRAP: OnceLock<String> = OnceLock::new();
    BOOTSTRAP.get_or_init(|| infra("kafka.sh", &["start"]))
}

/// The API URL of the test schema registry, started by `infra/schema-registry.sh` if it is not
/// running yet.
pub fn schema_registry() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| infra("schema-registry.sh", &["start"]))
}

/// Produces `records` to `topic` as Avro through the test registry, serialized by confluent-kafka's
/// `AvroSerializer` (`tests/produce_registry.py`) with the sample schema `version` ("v1", or "v2" with
/// a nullable `device`, "v3" with `cost` a double), then each of `extra` as it is: `{"key", "raw": hex}`
/// sent unframed, `{"key", "datum": hex}` framed with the registered schema's id.
pub fn produce_avro(topic: &str, records: &[SampleRecord], extra: &[serde_json::Value], version: &str) {
    produce_registered(topic, records, extra, version)
}

/// Produces `records` to `topic` as Protobuf `AdEvent` messages through the test registry, serialized
/// by confluent-kafka's `ProtobufSerializer`, then each of `extra` as [`produce_avro`] does (a
/// `datum` is framed with the schema id only: it starts with its own message index array).
pub fn produce_protobuf(topic: &str, records: &[SampleRecord], extra: &[serde_json::Value]) {
    produce_registered(topic, records, extra, "protobuf")
}

fn produce_registered(topic: &str, records: &[SampleRecord], extra: &[serde_json::Value], version: &str) {
    use std::io::Write;
    let mut lines = tempfile::NamedTempFile::new().expect("a temporary file");
    let mut out = std::io::BufWriter::new(lines.as_file_mut());
    for r in records {
        let value: serde_json::Value = serde_json::from_slice(&r.value).expect("a JSON event");
        let key = String::from_utf8(r.key.clone()).expect("a text key");
        writeln!(out, "{}", serde_json::json!({"key": key, "value": value})).unwrap();
    }
    for line in extra {
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let done = Command::new(python())
        .arg(repo().join("tests/produce_registry.py"))
        .args([kafka(), schema_registry(), topic, lines.path().to_str().unwrap(), version])
        .output()
        .expect("run produce_registry.py");
    assert!(done.status.success(), "produce_registry.py failed:\n{}", String::from_utf8_lossy(&done.stderr));
}

/// The sample events' Avro schema (`tests/ad_event.avsc`, which `tests/produce_registry.py` registers
/// as v1).
pub const EVENT_SCHEMA: &str = include_str!("../../ad_event.avsc");

/// A sample event's JSON value as a plain Avro datum of `schema` (apache-avro's writer): the
/// sample fields (`campaign_id` an `int` or a `long`, as the schema has it), and `device` (a
/// `["null", "string"]` field) where the schema has one.
pub fn plain_avro(schema: &apache_avro::Schema, value: &[u8]) -> Vec<u8> {
    use apache_avro::types::Value;
    let event: serde_json::Value = serde_json::from_slice(value).unwrap();
    let text = |name: &str| event[name].as_str().unwrap().to_string();
    let time = chrono::DateTime::parse_from_rfc3339(&text("event_time")).unwrap();
    let (whole, fraction) = text("cost").split_once('.').map(|(w, f)| (w.to_string(), f.to_string())).unwrap();
    let unscaled: i128 = format!("{whole}{fraction:0<6}").parse().unwrap();
    let bytes = unscaled.to_be_bytes();
    let start = (0..15)
        .find(|&i| !((bytes[i] == 0 && bytes[i + 1] & 0x80 == 0) || (bytes[i] == 0xff && bytes[i + 1] & 0x80 != 0)))
        .unwrap_or(15);
    let apache_avro::Schema::Record(record) = schema else { panic!("a record schema") };
    let field = |name: &str| record.fields.iter().find(|f| f.name == name);
    let campaign_id = event["campaign_id"].as_i64().unwrap();
    let campaign = match field("campaign_id").map(|f| &f.schema) {
        Some(apache_avro::Schema::Int) => Value::Int(i32::try_from(campaign_id).expect("an int campaign id")),
        _ => Value::Long(campaign_id),
    };
    let mut fields = vec![
        ("event_id".into(), Value::Uuid(uuid::Uuid::parse_str(&text("event_id")).unwrap())),
        ("event_time".into(), Value::TimestampMicros(time.timestamp_micros())),
        ("event_type".into(), Value::String(text("event_type"))),
        ("ad_id".into(), Value::Long(event["ad_id"].as_i64().unwrap())),
        ("campaign_id".into(), campaign),
        ("user_id".into(), Value::Union(1, Box::new(Value::String(text("user_id"))))),
        ("cost".into(), Value::Union(1, Box::new(Value::Decimal(apache_avro::Decimal::from(bytes[start..].to_vec()))))),
    ];
    if field("device").is_some() {
        let device = event["device"].as_str().map_or(Value::Null, |d| Value::String(d.to_string()));
        let branch = u32::from(!matches!(device, Value::Null));
        fields.push(("device".into(), Value::Union(branch, Box::new(device))));
    }
    apache_avro::to_avro_datum(schema, Value::Record(fields)).unwrap()
}

/// Turns the config at `path` (one `write_config` wrote) to read its topic as Avro through the test
/// registry.
pub fn read_as_avro(path: &Path) {
    read_through_registry(path, "avro")
}

/// Makes the table of the config at `path` read `format` ("avro", "protobuf") through the test registry.
pub fn read_through_registry(path: &Path, format: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let topic_line = text.lines().find(|l| l.starts_with("topic = ")).expect("a topic line").to_string();
    let text = text
        .replacen(&format!("{topic_line}\n"), &format!("{topic_line}\nformat = \"{format}\"\n"), 1)
        .replacen("[tables.", &format!("[schema_registry]\nurl = \"{}\"\n\n[tables.", schema_registry()), 1);
    std::fs::write(path, text).unwrap();
}

/// `config` (a `write_config` config, turned to Avro) with `columns = "registry"` in place of the
/// column list.
pub fn columns_from_registry(config: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("columns = [").expect("a column list");
    let end = start + text[start..].find("\n]\n").expect("the list's end") + 3;
    std::fs::write(config, format!("{}columns = \"registry\"\n{}", &text[..start], &text[end..])).unwrap();
}

/// A topic name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates `topic` with `partitions` partitions on the test broker.
pub async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", kafka()).create().expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for result in admin.create_topics([&new], &AdminOptions::new()).await.expect("create topics") {
        result.expect("topic created");
    }
}

/// Deletes the records of `topic`-`partition` below `offset`, as the topic's retention would.
pub async fn delete_records_below(topic: &str, partition: i32, offset: i64) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", kafka()).create().expect("admin client");
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset)).unwrap();
    let done = admin.delete_records(&list, &AdminOptions::new()).await.expect("delete records");
    let low = done.find_partition(topic, partition).expect("partition deleted from");
    assert_eq!(low.error().map(|()| low.offset()), Ok(rdkafka::Offset::Offset(offset)), "low watermark moved");
}

/// A new topic (named after `label`) with `partitions` partitions, holding `records`.
pub async fn filled_topic(label: &str, partitions: i32, records: &[SampleRecord]) -> String {
    let topic = unique(label);
    create_topic(&topic, partitions).await;
    produce(&producer(), &topic, records).await;
    topic
}

/// A plain idempotent producer.
pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("enable.idempotence", "true")
        .set("linger.ms", "10")
        .create()
        .expect("producer")
}

/// Produces `records` to `topic`, spreading them over the partitions by key, and waits for all acks.
pub async fn produce(producer: &FutureProducer, topic: &str, records: &[SampleRecord]) {
    let mut acks = Vec::with_capacity(records.len());
    for r in records {
        loop {
            match producer.send_result(FutureRecord::to(topic).key(&r.key).payload(&r.value)) {
                Ok(ack) => {
                    acks.push(ack);
                    break;
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    _,
                )) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => panic!("produce failed: {e}"),
            }
        }
    }
    for ack in acks {
        ack.await.expect("delivery").expect("ack");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Generates sample ad events.
pub fn events(events: usize, duplicate_ratio: f64, poison_ratio: f64, seed: u64) -> Vec<SampleRecord> {
    sample::generate(&SampleSpec { events, duplicate_ratio, poison_ratio, end_time_us: 1_795_435_200_000_000, seed })
}

/// Spreads the sample's event times (the hour before its end) over `days` days: each event moves
/// back a whole number of hours picked from its event UUID, so its copies move with it (records
/// without a readable event time stay as they are).
pub fn spread_over_days(records: Vec<SampleRecord>, days: i64) -> Vec<SampleRecord> {
    records
        .into_iter()
        .map(|mut r| {
            let text = String::from_utf8(r.value.clone()).unwrap();
            let Some(start) = text.find("\"event_time\":\"").map(|at| at + 14) else {
                return r;
            };
            let Some(Ok(at)) = text.get(start..start + 27).map(chrono::DateTime::parse_from_rfc3339) else {
                return r;
            };
            let hash = r
                .event_id
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
            let shifted = at - chrono::Duration::hours((hash % (24 * days as u64)) as i64);
            let time = shifted.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            r.value = format!("{}{time}{}", &text[..start], &text[start + 27..]).into_bytes();
            r
        })
        .collect()
}

/// A record of topic `ad_events`, partition 0, at `offset`, with `value` (for handlers fed without
/// Kafka).
pub fn local_record(offset: i64, value: String) -> tidelake_lake::KafkaRecord {
    tidelake_lake::KafkaRecord {
        topic: "ad_events".into(),
        partition: 0,
        offset,
        timestamp_ms: None,
        key: None,
        value: Some(value.into_bytes()),
        headers: vec![],
    }
}

/// Writes a pipeline config for `topic` into `dir` (lake under `dir/lake`) and returns its path.
pub fn write_config(dir: &Path, topic: &str, group: &str, max_records: usize) -> PathBuf {
    write_config_with_lake(dir, topic, group, max_records, "[lake]\nroot = \"lake\"\n")
}

/// Like [`write_config`], with the given `[lake]` section.
pub fn write_config_with_lake(dir: &Path, topic: &str, group: &str, max_records: usize, lake: &str) -> PathBuf {
    let table = sample::AD_EVENTS_TABLE.replace("topic = \"ad_events\"", &format!("topic = \"{topic}\""));
    let text = format!(
        "[kafka]\nbrokers = \"{}\"\ngroup_id = \"{group}\"\n[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\n[batch]\nmax_records = {max_records}\nmax_wait = \"300ms\"\n\n{lake}\n{table}",
        kafka()
    );
    let path = dir.join("tidelake.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Like [`write_config`], with the sample rollup (impressions, clicks, spend, unique users per ad and
/// campaign) declared for the table.
pub fn write_config_with_rollup(dir: &Path, topic: &str, group: &str, max_records: usize) -> PathBuf {
    let path = write_config(dir, topic, group, max_records);
    let text = std::fs::read_to_string(&path).expect("read config");
    std::fs::write(&path, format!("{text}\n{}", sample::AD_EVENTS_ROLLUP)).expect("write config");
    path
}

/// Compares the rollup tables of `grains` with the raw table at `uri`, bucket by bucket
/// (`tests/rollup_check.py`), and returns its report per grain.
pub fn rollup_check(uri: &url::Url, grains: &[&str]) -> serde_json::Value {
    let path = uri.to_file_path().expect("local table");
    let out = Command::new(python())
        .arg(repo().join("tests/rollup_check.py"))
        .arg(path.to_str().unwrap().trim_end_matches('/'))
        .args(grains)
        .output()
        .expect("run rollup_check.py");
    assert!(out.status.success(), "rollup_check.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("rollup check json")
}

/// Asserts that every bucket of every grain in `report` (from [`rollup_check`]) matched the raw table,
/// with distinct-user estimates within `max_error` (relative).
pub fn assert_rollups_match(report: &serde_json::Value, grains: &[&str], max_error: f64) {
    for grain in grains {
        let r = &report[grain];
        assert!(r["buckets"].as_u64().unwrap() > 0, "{grain}: no bucket compared");
        assert_eq!(r["mismatch_count"], 0, "{grain}: buckets differ from the raw table, first: {}", r["mismatches"]);
        let error = r["max_distinct_error"].as_f64().unwrap();
        assert!(error <= max_error, "{grain}: unique users off by {:.1}%", error * 100.0);
    }
}

/// Endpoint of the test S3 API server, started by `infra/s3.sh` if it is not running yet.
pub fn s3() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| infra("s3.sh", &["start"]))
}

/// Creates a bucket on the test S3 endpoint and returns the `[lake]` section of a config that keeps
/// the lake there, committing with conditional writes.
pub fn s3_lake(bucket: &str) -> String {
    let endpoint = s3();
    let script = format!(
        "import boto3; boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='{bucket}')"
    );
    let out = Command::new(python()).args(["-c", &script]).output().expect("create bucket");
    assert!(out.status.success(), "create bucket: {}", String::from_utf8_lossy(&out.stderr));
    format!(
        "[lake]\nroot = \"s3://{bucket}/lake\"\n[lake.storage]\nAWS_ENDPOINT_URL = \"{endpoint}\"\nAWS_REGION = \"us-east-1\"\nAWS_ACCESS_KEY_ID = \"test\"\nAWS_SECRET_ACCESS_KEY = \"test\"\nAWS_ALLOW_HTTP = \"true\"\nconditional_put = \"etag\"\n"
    )
}

/// Loads a config written by [`write_config`].
pub fn load_config(path: &Path) -> PipelineConfig {
    PipelineConfig::load(path).expect("valid config")
}

/// Runs `tidelake <args>` with extra environment variables.
pub fn run_tidelake(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidelake-under-test"));
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run tidelake")
}

/// Runs `tidelake <args>`, which must succeed.
pub fn run_ok(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = run_tidelake(args, env);
    assert!(out.status.success(), "tidelake {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs `tidelake ingest --config <config> --stop-at-end --json`, which must succeed, and returns its
/// report.
pub fn ingest_to_end(config: &Path) -> serde_json::Value {
    let out = run_ok(&["ingest", "--config", config.to_str().unwrap(), "--stop-at-end", "--json"], &[]);
    serde_json::from_slice(&out.stdout).expect("json report")
}

/// Runs `tidelake audit --config <config> --json <extra>` and returns whether it passed (exit 0), its
/// report, and what it printed on stderr.
pub fn audit(config: &Path, extra: &[&str]) -> (bool, serde_json::Value, String) {
    let mut args = vec!["audit", "--config", config.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = run_tidelake(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("audit printed no JSON report ({e}):\n{stderr}"));
    (out.status.success(), report, stderr)
}

/// Runs the audit of `config`'s table against Kafka, which must pass, and returns its report.
pub fn audit_passes(config: &Path) -> serde_json::Value {
    let (passed, report, stderr) = audit(config, &[]);
    assert!(passed, "audit failed: {}\n{stderr}", report["problems"]);
    assert_eq!(report["passed"], true);
    report
}

/// Sums field `name` over the partitions of an audit report.
pub fn audit_sum(report: &serde_json::Value, name: &str) -> u64 {
    report["partitions"].as_array().expect("partitions").iter().map(|p| p[name].as_u64().expect(name)).sum()
}

/// Opens a Delta table at `uri` as of its latest version.
pub async fn open(uri: &url::Url, options: &HashMap<String, String>) -> DeltaTable {
    deltalake::open_table_with_storage_options(uri.clone(), options.clone()).await.expect("open delta table")
}

/// Reads every data file of a Delta table, on any object store (partition columns are in the
/// paths, not in these rows).
pub async fn read_rows(uri: &url::Url, options: &HashMap<String, String>) -> Vec<RecordBatch> {
    let table = open(uri, options).await;
    let store = table.object_store();
    let snapshot = table.snapshot().expect("snapshot");
    let paths: Vec<String> = snapshot.log_data().iter().map(|f| f.path().to_string()).collect();
    let mut batches = Vec::new();
    for path in paths {
        let path = object_store::path::Path::from_url_path(&path).expect("data file path");
        let bytes = store.get(&path).await.expect("get data file").bytes().await.expect("read data file");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("parquet").build().expect("reader");
        batches.extend(reader.map(|b| b.expect("batch")));
    }
    batches
}

/// The values of string column `name` over `batches`.
pub fn strings(batches: &[RecordBatch], name: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name(name).unwrap_or_else(|| panic!("column {name}"));
            let col = col.as_string::<i32>();
            (0..col.len()).map(|i| col.value(i).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

/// The values of int64 column `name` over `batches`.
pub fn int64s(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name(name).unwrap_or_else(|| panic!("column {name}"));
            col.as_primitive::<arrow::datatypes::Int64Type>().values().to_vec()
        })
        .collect()
}

/// The number of rows over `batches`.
pub fn count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// High watermark of each partition of `topic`.
pub fn high_watermarks(topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", kafka()).create().expect("consumer");
    (0..partitions)
        .map(|p| (p, consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks").1))
        .collect()
}

/// The Kafka offsets a table's commits record, per partition of `topic`.
pub async fn lake_offsets(
    uri: &url::Url,
    options: &HashMap<String, String>,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, Option<i64>> {
    let table = open(uri, options).await;
    let snapshot = table.snapshot().expect("snapshot");
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let tp = tidelake_lake::TopicPartition::new(topic, p);
        let v = snapshot
            .transaction_version(table.log_store().as_ref(), tidelake_lake::delta::app_id(&tp))
            .await
            .expect("txn version");
        out.insert(p, v);
    }
    out
}

/// A Python with the test clients (`infra/python.sh` creates it on first use).
pub fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| infra("python.sh", &[]))
}

/// PATH with the test environment's `bin` folder first: `cargo lambda` and zig come from there.
pub fn tools_path() -> String {
    let bin = Path::new(python()).parent().unwrap().to_path_buf();
    std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap()
    .into_string()
    .unwrap()
}

/// cargo lambda's runtime API emulator (`cargo lambda watch --only-lambda-apis`), listening once
/// [`LambdaEmulator::start`] returns; killed on drop. A function process reaches it with
/// `AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:<port>/.rt`.
pub struct LambdaEmulator {
    pub port: u16,
    process: std::process::Child,
}

impl LambdaEmulator {
    pub fn start() -> LambdaEmulator {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new("cargo")
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(repo())
            .env("PATH", tools_path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start cargo lambda watch");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the runtime API emulator did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        LambdaEmulator { port, process }
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        self.process.kill().ok();
        self.process.wait().ok();
    }
}

/// The jar of a Trino client, `jdbc` or `cli`, fetched from Maven Central by `infra/trino-client.sh`
/// on first use.
pub fn trino_client(kind: &str) -> String {
    infra("trino-client.sh", &[kind])
}

/// Apache Spark's test environment from `infra/spark.sh`: `python` (pyspark's interpreter) or `jars`
/// (the Delta Lake jars, comma-separated), made or fetched on first use.
pub fn spark_env(what: &str) -> String {
    infra("spark.sh", &[what])
}

/// What DuckDB and Python `deltalake` each read from a table: `{"duckdb": {...}, "deltalake": {...}}`
/// with `rows`, `distinct` ids, a `digest` of the sorted ids and the `sum` of `sum_column`.
pub fn read_back(uri: &url::Url, id_column: &str, sum_column: &str) -> serde_json::Value {
    let path = uri.to_file_path().expect("local table");
    let out = Command::new(python())
        .arg(repo().join("tests/readback.py"))
        .args([path.to_str().unwrap(), id_column, sum_column])
        .output()
        .expect("run readback.py");
    assert!(out.status.success(), "readback.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("readback json")
}

/// The sum of the `cost` field (a decimal with 6 places) over sample records, as text like `12.345600`.
pub fn cost_sum(records: &[SampleRecord]) -> String {
    let micros: i128 = records
        .iter()
        .filter_map(|r| {
            let text = std::str::from_utf8(&r.value).ok()?;
            let start = text.find("\"cost\":\"")? + 8;
            let end = start + text[start..].find('"')?;
            let (int, frac) = text[start..end].split_once('.')?;
            Some(int.parse::<i128>().ok()? * 1_000_000 + format!("{frac:0<6}").parse::<i128>().ok()?)
        })
        .sum();
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// One HTTP/1.1 request to a `tidelake serve` on a loopback port: the status code and the body.
pub async fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trino-User: analyst\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_string())
}

/// `tidelake serve --config <config> --listen 127.0.0.1:0 <args>` in a process of its own: the
/// process, the port it listens on, and the rest of what it writes on stderr.
pub fn spawn_serve(
    config: &Path,
    args: &[&str],
    log_level: &str,
) -> (std::process::Child, u16, std::io::Lines<std::io::BufReader<std::process::ChildStderr>>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidelake-under-test"))
        .args(["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", log_level)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start tidelake serve");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(address) = line.strip_prefix("tidelake serve: Trino client protocol on http://") {
            break address.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    (child, port, lines)
}
