//! Dedup benchmark: the ingest handler's throughput with dedup on, as a ratio against the same handler
//! with dedup off, into a local table that already holds 1 million and then 10 million events inside
//! the dedup window (one run, both sizes). Batches are Lambda-sized (10,000 records); each measured
//! run brings 200,000 new events plus 10% copies (half of rows already in the table, half within the
//! run). Kafka is left out on purpose: it costs the same with dedup on or off.
//!
//! Printed per table size: events/s off and on (warm functions), the ratio, the median batch time,
//! the first batch of a cold function off and on (on loads the window into its index first), and
//! the memory the dedup-on function's index allocates and the resident memory the function added.
//!
//! Run: `cargo bench -p tidelake-tests --bench dedup` (`TIDELAKE_BENCH_SIZES=1000000,10000000`
//! sets the table sizes). With `-- --json` the last line of stdout is one JSON object of the run's
//! figures at the largest size: `dedup_on_vs_off_10m` (events/s with dedup on over off),
//! `index_bytes_per_uuid` (the bytes the dedup-on function's index allocates, over the UUIDs in its
//! window), `rss_bytes_per_uuid` (the resident memory the function added with its first batch,
//! allocator slack and the table's log included, over the same) and `table_rows` (the size they
//! were measured at).

use std::time::{Duration, Instant};

use tidelake_functions::Ingestor;
use tidelake_lake::sample::{self, SampleRecord, SampleSpec};
use tidelake_lake::{KafkaBatch, KafkaRecord, PipelineConfig};

const BATCH: usize = 10_000;
const RUN_EVENTS: usize = 200_000;
const PARTITIONS: i32 = 4;
const END_TIME_US: i64 = 1_795_435_200_000_000;
/// The seed of the first events the table is grown with.
const FIRST_SEED: u64 = 101;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

/// Hands out Kafka positions, round-robin over the partitions.
struct Offsets(Vec<i64>, usize);

impl Offsets {
    fn records(&mut self, sample: &[SampleRecord]) -> Vec<KafkaRecord> {
        sample
            .iter()
            .map(|r| {
                let partition = self.1 % PARTITIONS as usize;
                self.1 += 1;
                let offset = self.0[partition];
                self.0[partition] += 1;
                KafkaRecord {
                    topic: "ad_events".into(),
                    partition: partition as i32,
                    offset,
                    timestamp_ms: None,
                    key: Some(r.key.clone()),
                    value: Some(r.value.clone()),
                    headers: vec![],
                }
            })
            .collect()
    }
}

fn config(dir: &std::path::Path, lake: &str, window: &str) -> PipelineConfig {
    let table = sample::AD_EVENTS_TABLE.replace("partition_by", &format!("dedup_window = \"{window}\"\npartition_by"));
    let text = format!("[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"{lake}\"\n\n{table}");
    PipelineConfig::parse(&text, dir).unwrap()
}

fn generate(events: usize, duplicate_ratio: f64, seed: u64) -> Vec<SampleRecord> {
    sample::generate(&SampleSpec { events, duplicate_ratio, poison_ratio: 0.0, end_time_us: END_TIME_US, seed })
}

/// Resident and peak memory of this process, in MB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Time spent in the handler and what it wrote.
#[derive(Default)]
struct Run {
    batch_times: Vec<Duration>,
    rows: usize,
    duplicates: usize,
}

impl Run {
    async fn handle(&mut self, ingestor: &mut Ingestor, records: &[KafkaRecord]) -> Duration {
        let started = Instant::now();
        let report = ingestor.handle(&KafkaBatch::new(records.to_vec())).await.unwrap();
        let took = started.elapsed();
        self.rows += report.rows_written();
        self.duplicates += report.duplicates();
        took
    }

    fn seconds(&self) -> f64 {
        self.batch_times.iter().map(Duration::as_secs_f64).sum()
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn bench() {
    let sizes: Vec<usize> = std::env::var("TIDELAKE_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000_000, 10_000_000]);
    let dir = tempfile::tempdir().unwrap();
    let mut offsets = Offsets(vec![0; PARTITIONS as usize], 0);
    // Table A is grown and then ingested into with dedup off; table B is a copy of A made just before
    // the measured run, ingested into with dedup on. Both get the same batches, interleaved.
    let mut grow = Ingestor::open(config(dir.path(), "lake-off", "off")).await.unwrap();
    let mut in_table = 0usize;
    let mut seed = FIRST_SEED - 1;
    println!("batches of {BATCH} records; each run: {RUN_EVENTS} new events + 10% copies; events of the last hour");
    println!(
        "{:>12} {:>12} {:>12} {:>9} {:>14} {:>14} {:>16} {:>10} {:>8}",
        "table rows",
        "off ev/s",
        "on ev/s",
        "on/off",
        "batch ms off",
        "batch ms on",
        "1st batch off/on",
        "index MB",
        "RSS MB"
    );
    let mut largest = serde_json::Value::Null;
    for size in sizes {
        // Grow the table to `size` events with dedup off, in big batches.
        while in_table < size {
            let n = (size - in_table).min(200_000);
            seed += 1;
            let records = offsets.records(&generate(n, 0.0, seed));
            for chunk in records.chunks(100_000) {
                grow.handle(&KafkaBatch::new(chunk.to_vec())).await.unwrap();
            }
            in_table += n;
        }
        let on_lake = dir.path().join("lake-on");
        if on_lake.exists() {
            std::fs::remove_dir_all(&on_lake).unwrap();
        }
        copy_dir(&dir.path().join("lake-off"), &on_lake);

        // New events with 5% copies among themselves, plus 5% copies of rows already in the table
        // (the first events the table was grown with), spread evenly.
        seed += 1;
        let new = generate(RUN_EVENTS, 0.05, seed);
        let old = generate(RUN_EVENTS / 20, 0.0, FIRST_SEED);
        let step = new.len() / old.len();
        let mut mixed = Vec::with_capacity(new.len() + old.len());
        for (i, r) in new.into_iter().enumerate() {
            if i % step == 0 && i / step < old.len() {
                mixed.push(old[i / step].clone());
            }
            mixed.push(r);
        }
        let records = offsets.records(&mixed);
        let batches: Vec<&[KafkaRecord]> = records.chunks(BATCH).collect();

        // Two cold functions, one per table: the first batch of the dedup-on one loads the window.
        // The rest run warm, batch for batch.
        let mut off = Ingestor::open(config(dir.path(), "lake-off", "off")).await.unwrap();
        let (mut off_run, mut on_run) = (Run::default(), Run::default());
        let off_cold = off_run.handle(&mut off, batches[0]).await;
        let before = memory().0;
        let mut on = Ingestor::open(config(dir.path(), "lake-on", "24h")).await.unwrap();
        let on_cold = on_run.handle(&mut on, batches[0]).await;
        let rss_mb = memory().0 - before;
        let index_mb = on.dedup_index_bytes() as f64 / (1024.0 * 1024.0);
        for batch in &batches[1..] {
            let t = off_run.handle(&mut off, batch).await;
            off_run.batch_times.push(t);
            let t = on_run.handle(&mut on, batch).await;
            on_run.batch_times.push(t);
        }
        in_table += off_run.rows;
        drop((off, on));
        assert_eq!((on_run.rows, on_run.duplicates), (RUN_EVENTS, RUN_EVENTS / 10), "dedup on: rows, copies dropped");
        assert_eq!(off_run.rows + off_run.duplicates, records.len(), "dedup off drops only copies within a batch");

        let measured = (records.len() - batches[0].len()) as f64;
        let (off_rate, on_rate) = (measured / off_run.seconds(), measured / on_run.seconds());
        println!(
            "{:>12} {:>12.0} {:>12.0} {:>9.2} {:>14.1} {:>14.1} {:>6.2}/{:.2} s {:>10.0} {:>8.0}",
            size,
            off_rate,
            on_rate,
            on_rate / off_rate,
            median(off_run.batch_times).as_secs_f64() * 1e3,
            median(on_run.batch_times).as_secs_f64() * 1e3,
            off_cold.as_secs_f64(),
            on_cold.as_secs_f64(),
            index_mb,
            rss_mb
        );
        largest = serde_json::json!({
            "dedup_on_vs_off_10m": on_rate / off_rate,
            "index_bytes_per_uuid": index_mb * 1024.0 * 1024.0 / size as f64,
            "rss_bytes_per_uuid": rss_mb * 1024.0 * 1024.0 / size as f64,
            "table_rows": size,
        });
    }
    let (rss, peak) = memory();
    println!("process memory at the end: {rss:.0} MB resident, {peak:.0} MB peak");
    if std::env::args().any(|a| a == "--json") {
        println!("{largest}");
    }
}
