//! Query benchmark against the real broker: how fresh `live` is, and what a query costs.
//!
//! - Freshness: an event is produced, then `live` is queried until it shows; the time from the
//!   producer's ack to the first answer that holds it, p50 and p99, against a plain consumer's time
//!   to see a produced record (the floor: Kafka's own delivery), measured the same way in the same
//!   run.
//! - Latency: the same aggregate over a lake table of `TIDELAKE_BENCH_EVENTS` events (default
//!   200000, over 3 days) through the connector (`lake` and `live`) against DuckDB over a plain
//!   glob of the same Parquet files (best of 5 each).
//!
//! Run: `cargo bench -p tidelake-tests --bench query`

#[allow(dead_code)]
#[path = "../tests/it/helpers.rs"]
mod helpers;

use std::process::Command;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use tidelake_presto::Connector;

use helpers::*;

const PROBES: usize = 50;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let events: usize = std::env::var("TIDELAKE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let records = spread_over_days(helpers::events(events, 0.0, 0.0, 71), 3);
    let topic = filled_topic("qbench", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &topic, &unique("group"), 50_000);
    ingest_to_end(&path);
    let config = load_config(&path);
    let connector = Connector::new(config.clone()).unwrap();
    println!("lake: {events} events over 3 days, {} partitions", 3);

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
    // Let the consumer join and reach the end before timing.
    send(&producer, &topic, "warmup", &probe(usize::MAX)).await;
    while consumer.recv().await.unwrap().payload().is_none_or(|p| !p.starts_with(b"{\"event_id\":\"fresh-")) {}
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

    // Latency of one aggregate, the connector against DuckDB on the same files.
    let aggregate = "SELECT ad_id, count(*), sum(cost) FROM {t} GROUP BY ad_id ORDER BY ad_id";
    let lake = best_of(5, || count_rows(&connector, aggregate.replace("{t}", "lake.ad_events"))).await;
    let live_agg = best_of(5, || count_rows(&connector, aggregate.replace("{t}", "live.ad_events"))).await;
    let duckdb = duckdb_best_of_5(&config.tables[0].location, &aggregate.replace("{t}", "t"));
    println!("aggregate over the lake table (best of 5):");
    println!("  DuckDB, glob of the Parquet files   {:>7.1} ms", duckdb);
    println!("  tidelake lake.ad_events             {:>7.1} ms  ({:.2}x DuckDB)", ms(lake), ms(lake) / duckdb);
    println!(
        "  tidelake live.ad_events             {:>7.1} ms  ({:.2}x DuckDB; tail read included)",
        ms(live_agg),
        ms(live_agg) / duckdb
    );
}

async fn send(producer: &rdkafka::producer::FutureProducer, topic: &str, key: &str, value: &str) -> Instant {
    producer.send(FutureRecord::to(topic).key(key).payload(value), Duration::from_secs(10)).await.unwrap();
    Instant::now()
}

async fn count(connector: &Connector, sql: &str) -> i64 {
    let (_, batches) = connector.query(sql).await.unwrap();
    batches.iter().map(|b| b.column(0).as_primitive::<Int64Type>().value(0)).sum()
}

async fn count_rows(connector: &Connector, sql: String) -> usize {
    let (_, batches) = connector.query(&sql).await.unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
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

/// DuckDB (Python) over a glob of the table's Parquet files: best of 5, in milliseconds.
fn duckdb_best_of_5(location: &url::Url, sql: &str) -> f64 {
    let glob = format!("{}/**/*.parquet", location.to_file_path().unwrap().display());
    let script = format!(
        "import duckdb, time\ncon = duckdb.connect()\ncon.execute(\"CREATE VIEW t AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)\")\nbest = 1e9\nfor _ in range(5):\n    s = time.perf_counter(); rows = con.execute(\"{sql}\").fetchall(); best = min(best, time.perf_counter() - s)\nassert rows\nprint(best * 1000)"
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
