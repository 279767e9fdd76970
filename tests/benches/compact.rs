//! Compaction benchmark: optimize throughput (MB/s of small files packed) and the speed-up it buys an
//! aggregate query in DuckDB (delta extension) over the same table of 10,080 small files, before and
//! after, as a ratio measured in one run.
//!
//! Run: `cargo bench -p tidelake-tests --bench compact` (`TIDELAKE_BENCH_BATCHES` sets the number of
//! 240-file commits, default 42). With `-- --json` the last line of stdout is one JSON object of the
//! run's figures: `optimize_speedup` (the aggregate's time before optimize over its time after),
//! `files_before`, `files_after`, `optimize_mb_per_s`, and what `optimize.sort_by = ["ad_id"]` buys
//! on one day of `TIDELAKE_BENCH_SORT_ROWS` events (default 1,000,000) optimized with and without
//! it: `sort_by_point_speedup` (one ad's totals), `sort_by_aggregate_ratio` (every ad's) and
//! `sort_by_size_ratio` (bytes written), each the unsorted figure over the sorted one.

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

/// DuckDB's aggregate over the table at `uri` (over the rows `condition` keeps, when given), best of 5.
fn query(uri: &url::Url, condition: Option<&str>) -> serde_json::Value {
    let path = uri.to_file_path().unwrap();
    let out = std::process::Command::new(helpers::python())
        .arg(helpers::repo().join("tests/query_timing.py"))
        .args([path.to_str().unwrap(), "5"])
        .args(condition)
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
                let time =
                    (start + chrono::Duration::hours(hour) + chrono::Duration::seconds(batch * 20 + n)).to_rfc3339();
                offset += 1;
                impression(offset, &time, offset % 200)
            })
            .collect();
        ingestor.handle(&KafkaBatch::new(records)).await.unwrap();
    }
    let spec = &config.tables[0];
    let table = helpers::open(&spec.location, &Default::default()).await;
    let (rows, files) = tidelake_lake::delta::row_and_file_count(&table).unwrap();
    println!("table: {rows} rows in {files} files over 240 partitions");

    let before = query(&spec.location, None);
    let started = Instant::now();
    let (table, metrics) = Optimize::new(table, &spec.name).await.unwrap();
    let took = started.elapsed().as_secs_f64();
    let after = query(&spec.location, None);
    assert_eq!(before["rows"], after["rows"], "the query answers the same after optimize");
    let (_, files_after) = tidelake_lake::delta::row_and_file_count(&table).unwrap();
    println!(
        "optimize: {} files ({:.1} MB) -> {files_after} files in {took:.2} s (log checkpointed after: {}): {:.1} MB/s, {:.0} files/s, {:.0} rows/s",
        metrics.files_removed,
        metrics.bytes_removed as f64 / 1e6,
        if metrics.checkpoint.is_some() { "yes" } else { "no" },
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
    let sorted = sort_by_ad_id().await;
    if std::env::args().any(|a| a == "--json") {
        let figures = serde_json::json!({
            "optimize_speedup": b / a,
            "files_before": files,
            "files_after": files_after,
            "optimize_mb_per_s": metrics.bytes_removed as f64 / 1e6 / took,
            "sort_by_point_speedup": sorted.point_speedup,
            "sort_by_aggregate_ratio": sorted.aggregate_ratio,
            "sort_by_size_ratio": sorted.size_ratio,
        });
        println!("{figures}");
    }
}

/// What `optimize.sort_by` bought, each as the unsorted figure over the sorted one.
struct Sorted {
    point_speedup: f64,
    aggregate_ratio: f64,
    size_ratio: f64,
}

/// One day of `TIDELAKE_BENCH_SORT_ROWS` events (default 1,000,000; ad ids 0-999 in turn) in 20
/// commits, optimized twice from the same files: as they come, and with `optimize.sort_by =
/// ["ad_id"]`. DuckDB then asks for one ad's totals and for every ad's (best of 5 each).
async fn sort_by_ad_id() -> Sorted {
    let rows: i64 = std::env::var("TIDELAKE_BENCH_SORT_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let commits = 20;
    let plain = tempfile::tempdir().unwrap();
    let table = tidelake_lake::sample::AD_EVENTS_TABLE
        .replace("partition_by = [\"date\", \"hour\"]", "dedup_window = \"off\"\npartition_by = [\"date\"]");
    let text = format!("[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{table}");
    let config = PipelineConfig::parse(&text, plain.path()).unwrap();
    let mut ingestor = Ingestor::open(config.clone()).await.unwrap();
    for commit in 0..commits {
        let records: Vec<KafkaRecord> = (commit * rows / commits..(commit + 1) * rows / commits)
            .map(|offset| {
                let time = format!("2026-11-10T{:02}:{:02}:00Z", offset * 24 / rows, offset % 60);
                impression(offset, &time, offset % 1000)
            })
            .collect();
        ingestor.handle(&KafkaBatch::new(records)).await.unwrap();
    }
    drop(ingestor);
    let sorted = tempfile::tempdir().unwrap();
    copy_tree(plain.path(), sorted.path());
    let location =
        |dir: &tempfile::TempDir| PipelineConfig::parse(&text, dir.path()).unwrap().tables[0].location.clone();
    let mut figures = Vec::new();
    for (dir, sort_by) in [(&plain, vec![]), (&sorted, vec!["ad_id".to_string()])] {
        let at = location(dir);
        let table = helpers::open(&at, &Default::default()).await;
        let (table, metrics) = Optimize::new(table, "ad_events").with_sort_by(sort_by).await.unwrap();
        let (_, files) = tidelake_lake::delta::row_and_file_count(&table).unwrap();
        let point = query(&at, Some("ad_id = 17"));
        let all = query(&at, None);
        figures.push((metrics.bytes_added, files, point, all));
    }
    let [(plain_bytes, plain_files, plain_point, plain_all), (sorted_bytes, sorted_files, sorted_point, sorted_all)] =
        <[_; 2]>::try_from(figures).unwrap();
    assert_eq!(plain_point["rows"], sorted_point["rows"], "sorting changes no answer");
    assert_eq!(plain_all["rows"], sorted_all["rows"], "sorting changes no answer");
    let seconds = |v: &serde_json::Value| v["seconds"].as_f64().unwrap();
    let sorted = Sorted {
        point_speedup: seconds(&plain_point) / seconds(&sorted_point),
        aggregate_ratio: seconds(&plain_all) / seconds(&sorted_all),
        size_ratio: plain_bytes as f64 / sorted_bytes as f64,
    };
    println!(
        "optimize.sort_by = [\"ad_id\"], {rows} events of one day in {commits} commits, optimized with and without:"
    );
    println!(
        "  files: {plain_files} of {:.1} MB as they come, {sorted_files} of {:.1} MB sorted ({:.2}x the bytes)",
        plain_bytes as f64 / 1e6,
        sorted_bytes as f64 / 1e6,
        1.0 / sorted.size_ratio
    );
    println!(
        "  DuckDB, one ad's totals (ad_id = 17): {:.1} ms -> {:.1} ms ({:.1}x); every ad's: {:.1} ms -> {:.1} ms ({:.2}x)",
        seconds(&plain_point) * 1e3,
        seconds(&sorted_point) * 1e3,
        sorted.point_speedup,
        seconds(&plain_all) * 1e3,
        seconds(&sorted_all) * 1e3,
        sorted.aggregate_ratio
    );
    sorted
}

/// An impression of `ad_id` at `time`, at `offset` of partition 0, its event id and cost made from
/// the offset.
fn impression(offset: i64, time: &str, ad_id: i64) -> KafkaRecord {
    let value = format!(
        r#"{{"event_id":"e-{offset}","event_time":"{time}","event_type":"impression","ad_id":{ad_id},"campaign_id":1000,"cost":"0.{:06}"}}"#,
        offset % 999_999
    );
    helpers::local_record(offset, value)
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        match path.is_dir() {
            true => copy_tree(&path, &target),
            false => {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
}
