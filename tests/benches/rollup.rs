//! Rollup benchmark: what the partial minute rows cost ingest, and how fast compaction finalizes and
//! rolls up, measured in one run on the same events.
//!
//! - ingest: the same batches through two fresh handlers, one table without a rollup and one with
//!   the sample rollup (impressions, clicks, spend, max cost and unique users per ad and campaign);
//! - finalize, hour and day rollups over the minute table that ingest wrote (raw rows/s);
//! - a late batch of 1% of one day's events, in one hour: the incremental rollup against a full
//!   rebuild of the hour and day tables.
//!
//! Run: `cargo bench -p tidelake-tests --bench rollup` (`TIDELAKE_BENCH_EVENTS` events over the 72
//! hours of three days, default 600000; Kafka is not involved).

#[allow(dead_code)]
#[path = "../tests/it/helpers.rs"]
mod helpers;

use std::time::Instant;

use tidelake_compaction::{Finalize, Rollup};
use tidelake_functions::Ingestor;
use tidelake_lake::rollup::{Grain, RollupSpec};
use tidelake_lake::sample::{self, SampleSpec};
use tidelake_lake::{KafkaBatch, KafkaRecord, PipelineConfig};

const DAY_US: i64 = 86_400_000_000;
const END_US: i64 = 1_795_435_200_000_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

fn config(dir: &std::path::Path, rollup: bool) -> PipelineConfig {
    let rollup = if rollup { sample::AD_EVENTS_ROLLUP } else { "" };
    let text =
        format!("[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{}\n{rollup}", sample::AD_EVENTS_TABLE);
    PipelineConfig::parse(&text, dir).unwrap()
}

/// Sample events of `days` days (days back from the last), spread over their 24 hours, as Kafka
/// records of one partition starting at `first_offset`.
fn records(per_day: usize, days: &[i64], seed: u64, first_offset: i64) -> Vec<KafkaRecord> {
    let mut out = Vec::new();
    for day in days {
        for hour in 0..24 {
            let spec = SampleSpec {
                events: per_day / 24,
                duplicate_ratio: 0.0,
                poison_ratio: 0.0,
                end_time_us: END_US - day * DAY_US - hour * DAY_US / 24,
                seed: seed + (day * 24 + hour) as u64,
            };
            for r in sample::generate(&spec) {
                out.push(KafkaRecord {
                    topic: "ad_events".into(),
                    partition: 0,
                    offset: first_offset + out.len() as i64,
                    timestamp_ms: None,
                    key: Some(r.key),
                    value: Some(r.value),
                    headers: vec![],
                });
            }
        }
    }
    out
}

/// Sample events of one hour of the day `day` days back from the last.
fn late_records(events: usize, day: i64, seed: u64, first_offset: i64) -> Vec<KafkaRecord> {
    let spec = SampleSpec { events, duplicate_ratio: 0.0, poison_ratio: 0.0, end_time_us: END_US - day * DAY_US, seed };
    sample::generate(&spec)
        .into_iter()
        .enumerate()
        .map(|(i, r)| KafkaRecord {
            topic: "ad_events".into(),
            partition: 0,
            offset: first_offset + i as i64,
            timestamp_ms: None,
            key: Some(r.key),
            value: Some(r.value),
            headers: vec![],
        })
        .collect()
}

async fn ingest(ingestor: &mut Ingestor, records: &[KafkaRecord]) -> f64 {
    let started = Instant::now();
    for chunk in records.chunks(10_000) {
        ingestor.handle(&KafkaBatch::new(chunk.to_vec())).await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

async fn table(rollup: &RollupSpec, grain: Grain) -> deltalake::DeltaTable {
    helpers::open(rollup.location(grain).unwrap(), &Default::default()).await
}

async fn roll_up(rollup: &RollupSpec) -> (f64, usize, usize) {
    let started = Instant::now();
    let (_, hour) =
        Rollup::new(table(rollup, Grain::Minute).await, table(rollup, Grain::Hour).await, rollup, Grain::Hour)
            .await
            .unwrap();
    let (_, day) = Rollup::new(table(rollup, Grain::Hour).await, table(rollup, Grain::Day).await, rollup, Grain::Day)
        .await
        .unwrap();
    (started.elapsed().as_secs_f64(), hour.buckets, day.buckets)
}

async fn create(rollup: &RollupSpec, grain: Grain) {
    tidelake_lake::delta::open_or_create(
        &rollup.table_name(grain),
        rollup.location(grain).unwrap(),
        &rollup.schema(grain),
        &RollupSpec::partition_columns(),
        &Default::default(),
    )
    .await
    .unwrap();
}

async fn bench() {
    let events: usize = std::env::var("TIDELAKE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(600_000);
    let per_day = events / 3;
    let all = records(per_day, &[2, 1, 0], 7, 0);
    let (plain_dir, rollup_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut plain = Ingestor::open(config(plain_dir.path(), false)).await.unwrap();
    let with_rollup = config(rollup_dir.path(), true);
    let rollup = with_rollup.tables[0].rollup.clone().unwrap();
    let mut rolling = Ingestor::open(with_rollup.clone()).await.unwrap();

    // Interleaved batch by batch, so both see the same machine state.
    let (mut plain_s, mut rolling_s) = (0.0, 0.0);
    for chunk in all.chunks(50_000) {
        plain_s += ingest(&mut plain, chunk).await;
        rolling_s += ingest(&mut rolling, chunk).await;
    }
    let minute_table = table(&rollup, Grain::Minute).await;
    let (minute_rows, minute_files) = tidelake_lake::delta::row_and_file_count(&minute_table).unwrap();
    println!("events: {} over 3 days of 24 hours, 10,000 per batch", all.len());
    println!(
        "ingest without rollup: {plain_s:.2} s ({:.0} ev/s); with partial minute rows: {rolling_s:.2} s ({:.0} ev/s); with/without {:.2}",
        all.len() as f64 / plain_s,
        all.len() as f64 / rolling_s,
        rolling_s / plain_s
    );
    println!("minute table: {minute_rows} partial rows in {minute_files} files");

    let started = Instant::now();
    let (_, finalized) = Finalize::new(minute_table, &rollup).with_now(END_US + DAY_US).await.unwrap();
    let finalize_s = started.elapsed().as_secs_f64();
    println!(
        "finalize: {} -> {} rows, {} minutes in {finalize_s:.2} s ({:.0} raw rows/s)",
        finalized.rows_before,
        finalized.rows_after,
        finalized.minutes,
        all.len() as f64 / finalize_s
    );
    create(&rollup, Grain::Hour).await;
    create(&rollup, Grain::Day).await;
    let (first_s, hours, days) = roll_up(&rollup).await;
    println!(
        "rollup, first run: {hours} hour and {days} day buckets in {first_s:.2} s ({:.0} raw rows/s)",
        all.len() as f64 / first_s
    );

    // 1% of a day's events arrive late, in one hour of the oldest day.
    let late = late_records(per_day / 100, 2, 99, all.len() as i64);
    ingest(&mut rolling, &late).await;
    Finalize::new(table(&rollup, Grain::Minute).await, &rollup).with_now(END_US + DAY_US).await.unwrap();
    let (incremental_s, hours, days) = roll_up(&rollup).await;
    println!("rollup after {} late events: {hours} hour and {days} day buckets in {incremental_s:.3} s", late.len());

    // The same tables rebuilt from nothing.
    for grain in [Grain::Hour, Grain::Day] {
        let path = rollup.location(grain).unwrap().to_file_path().unwrap();
        std::fs::remove_dir_all(path).unwrap();
        create(&rollup, grain).await;
    }
    let (full_s, hours, days) = roll_up(&rollup).await;
    println!(
        "full rebuild: {hours} hour and {days} day buckets in {full_s:.3} s; incremental/full {:.2}",
        incremental_s / full_s
    );
}
