//! Query benchmark against the real broker: how fresh `live` is, what a dashboard query costs
//! through `tidelake serve` against DuckDB on the same files, and what the result cache buys.
//!
//! - Freshness: an event is produced, then `live` is queried until it shows; the time from the
//!   producer's ack to the first answer that holds it, p50 and p99, against a plain consumer's time
//!   to see a produced record (the floor: Kafka's own delivery), measured the same way in the same
//!   run.
//! - Latency: a dashboard aggregate over the minute rollup of `TIDELAKE_BENCH_EVENTS` events
//!   (default 300000) spread over `TIDELAKE_BENCH_DAYS` days (default 7), compacted, through
//!   `tidelake serve` (the Trino protocol over loopback HTTP, no cache and warm cache) against
//!   DuckDB over the table's active Parquet files (best of `REPEATS` each: one run is a few ms, and
//!   the best of many is what both engines do once warm).
//! - Throughput: 16 concurrent clients for `TIDELAKE_BENCH_SECONDS` seconds each (default 10) over
//!   a mix of dashboards (four ranges, or one per day when there are fewer days, by two
//!   groupings), queries per second without and with the result cache, and the cache's hit rate
//!   from `GET /v1/metrics`.
//!
//! Run: `cargo bench -p tidelake-tests --bench query`. With `-- --json` the last line of stdout is
//! one JSON object of the run's figures: `serve_vs_duckdb` (the dashboard's time through `tidelake
//! serve` without the cache over DuckDB's), `cache_speedup` (its time without the cache over its
//! time on a warm cache), `live_p99_ms` (produce ack to visible in `live`), `floor_p99_ms` and
//! `throughput_cache_ratio`.

#[allow(dead_code)]
#[path = "../tests/it/helpers.rs"]
mod helpers;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use serde_json::Value;
use tidelake_presto::server::{self, Credentials};
use tidelake_presto::Connector;

use helpers::*;

const PROBES: usize = 50;
/// Runs of the dashboard per engine; the best counts.
const REPEATS: usize = 20;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let number = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (events, days) = (number("TIDELAKE_BENCH_EVENTS", 300_000), number("TIDELAKE_BENCH_DAYS", 7));
    let seconds = number("TIDELAKE_BENCH_SECONDS", 10) as u64;
    let records = spread_over_days(helpers::events(events, 0.0, 0.0, 71), days as i64);
    let topic = filled_topic("qbench", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 50_000);
    ingest_to_end(&path);
    run_ok(&["compact", "--config", path.to_str().unwrap()], &[]);
    let config = load_config(&path);
    let connector = Connector::new(config.clone()).unwrap();
    let minute_rows = count(&connector, "SELECT count(*) FROM lake.ad_events_minute").await;
    println!("lake: {events} events over {days} days, 3 partitions; {minute_rows} minute rollup rows, compacted");

    // Freshness, floor first: a consumer already at the end of the topic sees each new record.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("group.id", unique("floor"))
        .set("auto.offset.reset", "latest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let producer = producer();
    let probe = |i: usize| {
        format!(
            r#"{{"event_id":"fresh-{i}","event_time":"2026-11-24T09:00:00Z","event_type":"click","ad_id":1,"campaign_id":1000,"user_id":"u-1","cost":"0.100000"}}"#
        )
    };
    // Let the consumer join and reach the end before timing: warm-up records until it sees one
    // (one sent before it has its partitions is never delivered to it).
    loop {
        send(&producer, &topic, "warmup", &probe(usize::MAX)).await;
        let seen = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await;
        if seen.is_ok_and(|m| m.unwrap().payload().is_some_and(|p| p.starts_with(b"{\"event_id\":\"fresh-"))) {
            break;
        }
    }
    let mut floor = Vec::new();
    for i in 0..PROBES {
        let acked = send(&producer, &topic, &i.to_string(), &probe(i)).await;
        loop {
            let message = consumer.recv().await.unwrap();
            if message.payload().is_some_and(|p| p == probe(i).as_bytes()) {
                break;
            }
        }
        floor.push(acked.elapsed());
    }
    // The first `live` query opens the tail's reader and loads the dedup index: not timed.
    count(&connector, "SELECT count(*) FROM live.ad_events").await;
    let mut live = Vec::new();
    for i in PROBES..2 * PROBES {
        let acked = send(&producer, &topic, &i.to_string(), &probe(i)).await;
        let sql = format!("SELECT count(*) FROM live.ad_events WHERE event_id = 'fresh-{i}'");
        while count(&connector, &sql).await == 0 {}
        live.push(acked.elapsed());
    }
    let (f50, f99) = percentiles(&mut floor);
    let (l50, l99) = percentiles(&mut live);
    println!("freshness, produce ack -> visible ({PROBES} events each):");
    println!("  plain consumer (floor)   p50 {:>7.1} ms  p99 {:>7.1} ms", ms(f50), ms(f99));
    println!(
        "  live query               p50 {:>7.1} ms  p99 {:>7.1} ms  ({:.1}x / {:.1}x the floor)",
        ms(l50),
        ms(l99),
        ratio(l50, f50),
        ratio(l99, f99)
    );

    // Latency of a dashboard over the minute rollup: the server without and with the result cache,
    // against DuckDB on the same files.
    let from = records_first_day(days);
    let dashboard = |since: &str, by: &str| {
        format!(
            "SELECT {by}, sum(impressions) AS impressions, sum(clicks) AS clicks, sum(spend) AS spend, \
             max(max_cost) AS top FROM {{t}} WHERE minute >= TIMESTAMP '{since} 00:00:00' GROUP BY {by} ORDER BY {by}"
        )
    };
    let whole = dashboard(&from, "campaign_id");
    let plain = Served::start(Connector::new(config.clone()).unwrap()).await;
    let cached = Served::start(Connector::new(config.clone()).unwrap().with_result_cache(256 << 20)).await;
    let sql = whole.replace("{t}", "lake.ad_events_minute");
    let expected = plain.rows(&sql).await;
    assert!(!expected.is_empty());
    assert_eq!(cached.rows(&sql).await, expected, "the cache answers what the engine answers");
    let no_cache = best_of(REPEATS, || async { plain.rows(&sql).await.len() }).await;
    let warm = best_of(REPEATS, || async { cached.rows(&sql).await.len() }).await;
    let minute = config.tables[0].rollup.as_ref().unwrap().locations[0].clone();
    let duckdb = duckdb_best_of(REPEATS, &minute, &config, &whole.replace("{t}", "t")).await;
    println!("dashboard over {days} days of minute rollups through tidelake serve (best of {REPEATS}):");
    println!("  DuckDB, the table's Parquet files     {duckdb:>8.1} ms");
    println!(
        "  serve, no cache                       {:>8.1} ms  ({:.2}x DuckDB)",
        ms(no_cache),
        ms(no_cache) / duckdb
    );
    println!("  serve, warm result cache              {:>8.1} ms  ({:.2}x DuckDB)", ms(warm), ms(warm) / duckdb);

    // Throughput: 16 clients over a mix of dashboards.
    let start_days: Vec<String> = (0..days.min(4) as i64).map(|k| day_after(&from, k)).collect();
    let mix: Vec<String> = start_days
        .iter()
        .flat_map(|since| {
            ["campaign_id", "ad_id"].map(|by| dashboard(since, by).replace("{t}", "lake.ad_events_minute"))
        })
        .collect();
    let without = plain.throughput(&mix, 16, Duration::from_secs(seconds)).await;
    let with = cached.throughput(&mix, 16, Duration::from_secs(seconds)).await;
    let metrics = cached.metrics().await;
    println!("throughput, 16 concurrent clients, {} dashboards, {seconds} s each:", mix.len());
    println!("  no cache      {without:>8.1} queries/s");
    println!(
        "  result cache  {with:>8.1} queries/s  ({:.1}x; hit rate {:.3}, {} entries, {} KiB)",
        with / without,
        metrics["result_cache"]["hit_rate"].as_f64().unwrap(),
        metrics["result_cache"]["entries"],
        metrics["result_cache"]["bytes"].as_u64().unwrap() / 1024
    );
    if std::env::args().any(|a| a == "--json") {
        let figures = serde_json::json!({
            "serve_vs_duckdb": ms(no_cache) / duckdb,
            "cache_speedup": ms(no_cache) / ms(warm),
            "live_p99_ms": ms(l99),
            "floor_p99_ms": ms(f99),
            "throughput_cache_ratio": with / without,
        });
        println!("{figures}");
    }
}

/// The first day the spread sample covers, `YYYY-MM-DD`.
fn records_first_day(days: usize) -> String {
    let end = chrono::DateTime::from_timestamp_micros(1_795_435_200_000_000).unwrap();
    (end - chrono::Duration::days(days as i64)).format("%Y-%m-%d").to_string()
}

fn day_after(day: &str, k: i64) -> String {
    let day = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    (day + chrono::Duration::days(k)).format("%Y-%m-%d").to_string()
}

/// An in-process `tidelake serve` on a free loopback port, and a Trino protocol client for it.
struct Served {
    port: u16,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Served {
    async fn start(connector: Connector) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            server::run(listener, Arc::new(connector), Credentials::default(), shutdown).await.expect("serve");
        });
        Served { port, _stop: stop }
    }

    /// One request; the JSON body of a 200 response.
    async fn http(&self, method: &str, path: &str, body: &str) -> Value {
        let (status, text) = http(self.port, method, path, body).await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The rows of `sql`, following `nextUri` to the end, as the Trino clients do.
    async fn rows(&self, sql: &str) -> Vec<Value> {
        let mut page = self.http("POST", "/v1/statement", sql).await;
        let mut rows = Vec::new();
        loop {
            assert!(page.get("error").is_none(), "{sql}: {}", page["error"]);
            if let Some(data) = page["data"].as_array() {
                rows.extend(data.iter().cloned());
            }
            let Some(next) = page["nextUri"].as_str() else { break };
            let path = next.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
            page = self.http("GET", &path, "").await;
        }
        rows
    }

    async fn metrics(&self) -> Value {
        self.http("GET", "/v1/metrics", "").await
    }

    /// Queries a second over `clients` concurrent clients running `mix` round robin for `window`.
    async fn throughput(&self, mix: &[String], clients: usize, window: Duration) -> f64 {
        let started = Instant::now();
        let runs = futures::future::join_all((0..clients).map(|c| async move {
            let mut done = 0usize;
            while started.elapsed() < window {
                assert!(!self.rows(&mix[(c + done) % mix.len()]).await.is_empty());
                done += 1;
            }
            done
        }))
        .await;
        runs.iter().sum::<usize>() as f64 / started.elapsed().as_secs_f64()
    }
}

async fn send(producer: &rdkafka::producer::FutureProducer, topic: &str, key: &str, value: &str) -> Instant {
    producer.send(FutureRecord::to(topic).key(key).payload(value), Duration::from_secs(10)).await.unwrap();
    Instant::now()
}

async fn count(connector: &Connector, sql: &str) -> i64 {
    let (_, batches) = connector.query(sql).await.unwrap();
    batches.iter().map(|b| b.column(0).as_primitive::<Int64Type>().value(0)).sum()
}

async fn best_of<F, Fut>(n: usize, mut run: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut best = Duration::MAX;
    for _ in 0..n {
        let started = Instant::now();
        assert!(run().await > 0);
        best = best.min(started.elapsed());
    }
    best
}

/// DuckDB (Python) over the Delta table's active Parquet files, best of `runs`, in milliseconds.
async fn duckdb_best_of(runs: usize, location: &url::Url, config: &tidelake_lake::PipelineConfig, sql: &str) -> f64 {
    let table = open(location, &config.storage_options).await;
    let root = location.to_file_path().unwrap();
    let files: Vec<String> = table
        .snapshot()
        .unwrap()
        .log_data()
        .iter()
        .map(|f| format!("'{}'", root.join(f.path().as_ref()).display()))
        .collect();
    let script = format!(
        "import duckdb, time\ncon = duckdb.connect()\ncon.execute(\"CREATE VIEW t AS SELECT * FROM read_parquet([{}], hive_partitioning = true)\")\nbest = 1e9\nfor _ in range({runs}):\n    s = time.perf_counter(); rows = con.execute(\"{sql}\").fetchall(); best = min(best, time.perf_counter() - s)\nassert rows\nprint(best * 1000)",
        files.join(", ")
    );
    let out = Command::new(python()).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
