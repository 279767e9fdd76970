//! Compaction benchmark: optimize throughput (MB/s of small files packed) and the speed-up it buys an
//! aggregate query in DuckDB (delta extension) over the same table of 10,080 small files, before and
//! after, as a ratio measured in one run.
//!
//! Run: `cargo bench -p tidelake-tests --bench compact` (`TIDELAKE_BENCH_BATCHES` sets the number of
//! 240-file commits, default 42). With `-- --json` the last line of stdout is one JSON object of the
//! run's figures: `optimize_speedup` (the aggregate's time before optimize over its time after),
//! `files_before`, `files_after`, `optimize_mb_per_s`.

#[allow(dead_code)]
#[path = "../tests/it/helpers.rs"]
mod helpers;

use std::time::Instant;

use tidelake_compaction::Optimize;
use tidelake_functions::Ingestor;
use tidelake_lake::{KafkaBatch, KafkaRecord, PipelineConfig};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

fn query(uri: &url::Url) -> serde_json::Value {
    let path = uri.to_file_path().unwrap();
    let out = std::process::Command::new(helpers::python())
        .arg(helpers::repo().join("tests/query_timing.py"))
        .args([path.to_str().unwrap(), "5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "query_timing.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn bench() {
    let batches: i64 = std::env::var("TIDELAKE_BENCH_BATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(42);
    let dir = tempfile::tempdir().unwrap();
    let table = tidelake_lake::sample::AD_EVENTS_TABLE.replace("partition_by", "dedup_window = \"off\"\npartition_by");
    let text = format!("[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{table}");
    let config = PipelineConfig::parse(&text, dir.path()).unwrap();
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    // Each commit: 240 events, one per hour of 10 days, so one small file per (date, hour) partition.
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-10T00:30:00Z").unwrap();
    let mut offset = 0;
    for batch in 0..batches {
        let records: Vec<KafkaRecord> = (0..240)
            .flat_map(|hour| (0..20).map(move |n| (hour, n)))
            .map(|(hour, n)| {
                let time = (start + chrono::Duration::hours(hour) + chrono::Duration::seconds(batch * 20 + n)).to_rfc3339();
                offset += 1;
                KafkaRecord {
                    topic: "ad_events".into(),
                    partition: 0,
                    offset,
                    timestamp_ms: None,
                    key: None,
                    value: Some(
                        format!(
                            r#"{{"event_id":"e-{offset}","event_time":"{time}","event_type":"impression","ad_id":{},"campaign_id":1000,"cost":"0.{:06}"}}"#,
                            offset % 200,
                            offset % 999_999
                        )
                        .into_bytes(),
                    ),
                    headers: vec![],
                }
            })
            .collect();
        ingestor.handle(&KafkaBatch::new(records)).await.unwrap();
    }
    let spec = &config.tables[0];
    let table = helpers::open(&spec.location, &Default::default()).await;
    let (rows, files) = tidelake_lake::delta::row_and_file_count(&table).unwrap();
    println!("table: {rows} rows in {files} files over 240 partitions");

    let before = query(&spec.location);
    let started = Instant::now();
    let (table, metrics) = Optimize::new(table, &spec.name).await.unwrap();
    let took = started.elapsed().as_secs_f64();
    let after = query(&spec.location);
    assert_eq!(before["rows"], after["rows"], "the query answers the same after optimize");
    let (_, files_after) = tidelake_lake::delta::row_and_file_count(&table).unwrap();
    println!(
        "optimize: {} files ({:.1} MB) -> {files_after} files in {took:.2} s: {:.1} MB/s, {:.0} files/s, {:.0} rows/s",
        metrics.files_removed,
        metrics.bytes_removed as f64 / 1e6,
        metrics.bytes_removed as f64 / 1e6 / took,
        metrics.files_removed as f64 / took,
        metrics.rows as f64 / took
    );
    let (b, a) = (before["seconds"].as_f64().unwrap(), after["seconds"].as_f64().unwrap());
    println!(
        "DuckDB aggregate (ad_id, count, sum(cost)), best of 5: before {:.0} ms, after {:.0} ms: {:.1}x faster",
        b * 1e3,
        a * 1e3,
        b / a
    );
    if std::env::args().any(|a| a == "--json") {
        let figures = serde_json::json!({
            "optimize_speedup": b / a,
            "files_before": files,
            "files_after": files_after,
            "optimize_mb_per_s": metrics.bytes_removed as f64 / 1e6 / took,
        });
        println!("{figures}");
    }
}
