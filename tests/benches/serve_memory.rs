//! Memory benchmark of `tidelake serve`: its resident memory while many clients page through large
//! results, and while one query needs more than the server gives queries.
//!
//! - Idle: the server's RSS after its first query (the baseline of this run).
//! - Paging: `TIDELAKE_BENCH_CLIENTS` clients (default 16) each page through a result of
//!   `TIDELAKE_BENCH_ROWS` rows (default 20,000,000) over the Trino protocol at once; the server's
//!   RSS is sampled every 50 ms.
//! - Over the pool: one client runs a group-by that needs more than `--memory-mb` (default 256); it
//!   must fail with `EXCEEDED_LOCAL_MEMORY_LIMIT`, and the server's RSS is sampled meanwhile.
//!
//! Prints each peak, its ratio to the idle RSS, and whether it stays under `--memory-mb` + 200 MiB.
//!
//! Run: `cargo bench -p tidelake-tests --bench serve_memory`

#[allow(dead_code)]
#[path = "../tests/it/helpers.rs"]
mod helpers;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use helpers::spawn_serve;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let number = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (clients, rows, memory_mb) = (
        number("TIDELAKE_BENCH_CLIENTS", 16),
        number("TIDELAKE_BENCH_ROWS", 20_000_000),
        number("TIDELAKE_BENCH_MEMORY_MB", 256),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tidelake.toml");
    let table = tidelake_lake::sample::AD_EVENTS_TABLE;
    std::fs::write(&config, format!("[kafka]\nbrokers = \"unused:9092\"\n[lake]\nroot = \"lake\"\n\n{table}")).unwrap();
    let (memory, queries) = (memory_mb.to_string(), (clients + 1).to_string());
    let (mut child, port, lines) = spawn_serve(&config, &["--memory-mb", &memory, "--max-queries", &queries], "warn");
    std::thread::spawn(move || lines.for_each(drop));
    let pid = child.id();

    let (rows_seen, _) = page_through(port, "SELECT 1 AS one").await;
    assert_eq!(rows_seen, 1);
    let idle = rss_mb(pid).0;
    println!("tidelake serve --memory-mb {memory_mb}: idle RSS {idle} MiB after one query");

    let sql = format!("SELECT value, value * 2 AS twice, 'row ' || CAST(value AS VARCHAR) AS label FROM range({rows})");
    let sampler = Sampler::start(pid);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let sql = sql.clone();
            tokio::spawn(async move { page_through(port, &sql).await })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        let (seen, error) = task.await.unwrap();
        assert!(error.is_none(), "a paging client failed: {error:?}");
        assert_eq!(seen, rows, "a client got {seen} rows of {rows}");
        total += seen;
    }
    let took = started.elapsed();
    let paging = sampler.stop();
    report(&format!("{clients} clients paging {rows} rows each"), paging, idle, memory_mb);
    println!("  {total} rows in {:.1} s: {:.0} rows/s", took.as_secs_f64(), total as f64 / took.as_secs_f64());

    let sampler = Sampler::start(pid);
    let heavy = "SELECT value % 100000000 AS k, count(*) AS n FROM range(100000000) GROUP BY 1 ORDER BY 2 DESC LIMIT 2";
    let (_, error) = page_through(port, heavy).await;
    let over = sampler.stop();
    let name = error.as_ref().and_then(|e| e["errorName"].as_str()).unwrap_or("answered");
    assert_eq!(name, "EXCEEDED_LOCAL_MEMORY_LIMIT", "{error:?}");
    report("one group-by over 100,000,000 rows, past the pool (EXCEEDED_LOCAL_MEMORY_LIMIT)", over, idle, memory_mb);
    let (after, hwm) = rss_mb(pid);
    println!("after both: RSS {after} MiB, peak (VmHWM) {hwm} MiB");
    let _ = child.kill();
    let _ = child.wait();
}

fn report(what: &str, peak: u64, idle: u64, memory_mb: u64) {
    let bound = memory_mb + 200;
    println!(
        "{what}: peak RSS {peak} MiB = {:.2}x idle, {} the bound {bound} MiB (--memory-mb + 200)",
        peak as f64 / idle as f64,
        if peak < bound { "under" } else { "OVER" }
    );
}

/// Samples a process's RSS until stopped; the highest sample.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (stopping, highest) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                highest.fetch_max(rss_mb(pid).0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Sampler { stop, peak, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

/// Resident memory now and at its peak (VmHWM), in MiB.
fn rss_mb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Posts `sql` and follows `nextUri` to the end on one keep-alive connection: the rows seen, and
/// the error object if the query failed.
async fn page_through(port: u16, sql: &str) -> (u64, Option<Value>) {
    let mut connection = Connection::open(port).await;
    let mut page = connection.request("POST", "/v1/statement", sql.as_bytes()).await;
    let mut rows = 0;
    loop {
        if let Some(error) = page.get("error") {
            return (rows, Some(error.clone()));
        }
        rows += page["data"].as_array().map_or(0, |d| d.len() as u64);
        let Some(next) = page["nextUri"].as_str() else { return (rows, None) };
        let path = format!("/{}", next.splitn(4, '/').nth(3).unwrap());
        page = connection.request("GET", &path, b"").await;
    }
}

/// One HTTP/1.1 connection, request after request.
struct Connection {
    stream: tokio::io::BufStream<tokio::net::TcpStream>,
}

impl Connection {
    async fn open(port: u16) -> Connection {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        Connection { stream: tokio::io::BufStream::new(stream) }
    }

    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Value {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trino-User: bench\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await.unwrap();
        self.stream.write_all(body).await.unwrap();
        self.stream.flush().await.unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.unwrap();
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
    }
}
