//! Faults ingest rides out without a restart: the S3 endpoint answering 503 and dropping
//! connections for a while, through a proxy the test steers, and its broker (one of the test's own)
//! stopped for 15 s. Each case ends with exact counts and a passing audit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::*;

/// No panic but object_store's: its buffered writer panics on a worker thread when written to after
/// its upload failed (the task dies, the process goes on); the batch is retried.
fn assert_no_panic_of_ours(stderr: &str) {
    for line in stderr.lines().filter(|l| l.contains("panicked at")) {
        assert!(line.contains("object_store"), "a panic: {line}\n{stderr}");
    }
}

/// A TCP proxy to an HTTP endpoint that, while failing, answers every new request with 503 and
/// cuts the connections it was carrying.
struct FaultProxy {
    url: String,
    failing: watch::Sender<bool>,
    requests_refused: Arc<std::sync::atomic::AtomicU64>,
}

impl FaultProxy {
    async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (failing, watching) = watch::channel(false);
        let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = refused.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                let (upstream, mut watching, counter) = (upstream.clone(), watching.clone(), counter.clone());
                tokio::spawn(async move {
                    if *watching.borrow() {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let mut head = [0u8; 4096];
                        let _ = tokio::time::timeout(Duration::from_millis(200), client.read(&mut head)).await;
                        let answer =
                            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                        let _ = client.write_all(answer.as_bytes()).await;
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // Failing from now on: the connection drops mid-way.
                        _ = watching.wait_for(|failing| *failing) => {}
                    }
                });
            }
        });
        FaultProxy { url, failing, requests_refused: refused }
    }

    fn fail(&self, failing: bool) {
        self.failing.send_replace(failing);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_rides_out_a_stretch_of_s3_errors_and_dropped_connections() {
    let records = events(12_000, 0.02, 0.005, 91);
    let topic = filled_topic("s3faults", 2, &records).await;
    let bucket = format!("faults-{}", &topic[topic.len() - 12..]);
    let proxy = FaultProxy::start(s3()).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = s3_lake(&bucket).replace(s3(), &proxy.url);
    let config = write_config_with_lake(dir.path(), &topic, &unique("group"), 300, &lake);

    let mut ingest = spawn_ingest(&config);
    // Once some batches are in, storage fails for a minute, then comes back.
    wait_for_commits(&config, &mut ingest).await;
    proxy.fail(true);
    assert_running(&mut ingest, "before the fault");
    tokio::time::sleep(Duration::from_secs(60)).await;
    proxy.fail(false);
    let out = tokio::task::spawn_blocking(move || ingest.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ingest gave up: {stderr}");
    assert!(proxy.requests_refused.load(Ordering::Relaxed) > 0, "the fault bit");
    assert_no_panic_of_ours(&stderr);

    // The lake first (each UUID once, every offset archived once, the audit), then the report.
    crate::ingest::assert_exact(&config, &topic, 2, &records).await;
    let distinct = records.iter().filter(|r| r.kind == tidelake_lake::sample::Kind::Event).count();
    // A commit that landed while its response was lost is found done when the batch is tried
    // again, and the report does not count its rows: the report may fall short, never over.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let written = report["rows_written"].as_u64().unwrap() as usize;
    assert!(written > 0 && written <= distinct, "{report}");
}

/// A broker of the test's own, on its own port and in its own folder, that it can stop and start.
struct OwnBroker {
    env: Vec<(String, String)>,
    bootstrap: String,
}

impl OwnBroker {
    fn start(port: u16, dir: &std::path::Path) -> OwnBroker {
        let env = vec![
            ("TIDELAKE_KAFKA_PORT".to_string(), port.to_string()),
            ("TIDELAKE_KAFKA_DIR".to_string(), dir.to_str().unwrap().to_string()),
        ];
        let mut broker = OwnBroker { env, bootstrap: String::new() };
        broker.bootstrap = broker.run("start");
        broker
    }

    fn run(&self, command: &str) -> String {
        let out = std::process::Command::new(repo().join("infra/kafka.sh"))
            .arg(command)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert!(out.status.success(), "kafka.sh {command}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.run("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_rides_out_its_broker_stopped_for_fifteen_seconds() {
    let state = tempfile::tempdir().unwrap();
    let broker = OwnBroker::start(19_192, state.path());
    let records = events(8_000, 0.02, 0.005, 92);
    let topic = unique("brokerfault");
    let producer: rdkafka::producer::FutureProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    produce(&producer, &topic, &records).await;
    drop(producer);

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &unique("group"), 200);
    let text = std::fs::read_to_string(&config).unwrap().replace(kafka(), &broker.bootstrap);
    std::fs::write(&config, text).unwrap();
    // A broker that does not come back fails the test in minutes, not after the default 15.
    let mut ingest = spawn_ingest_with(&config, &["--max-retry-time", "3m"]);
    wait_for_commits(&config, &mut ingest).await;
    // The broker goes away mid-ingest for 15 s, then comes back with its data.
    broker.run("stop");
    tokio::time::sleep(Duration::from_secs(15)).await;
    broker.run("start");
    let out = tokio::task::spawn_blocking(move || ingest.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ingest gave up: {stderr}");
    // The topic is on the test's own broker, which `assert_exact` does not know: the audit then.
    let distinct = records.iter().filter(|r| r.kind == tidelake_lake::sample::Kind::Event).count();
    let audit = audit_passes(&config);
    assert_eq!(audit_sum(&audit, "rows") as usize, distinct, "{}", audit["partitions"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rows_written"].as_u64().unwrap() as usize, distinct, "{report}");
}

/// `tidelake ingest --stop-at-end` on the config at `config`, its output captured.
pub(crate) fn spawn_ingest(config: &std::path::Path) -> std::process::Child {
    spawn_ingest_with(config, &[])
}

/// [`spawn_ingest`] with `extra` flags.
fn spawn_ingest_with(config: &std::path::Path, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_tidelake-under-test"))
        .args(["ingest", "--config", config.to_str().unwrap(), "--stop-at-end", "--json"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the data table of the config at `config` has three commits: ingest is under way.
/// An ingest that exits first fails the test with what it said.
async fn wait_for_commits(config: &std::path::Path, ingest: &mut std::process::Child) {
    let config = load_config(config);
    let (location, options) = (&config.tables[0].location, &config.storage_options);
    let started = Instant::now();
    loop {
        let table = tidelake_lake::delta::open_existing("t", location, options, None).await.ok().flatten();
        if table.and_then(|t| t.version()).is_some_and(|v| v >= 3) {
            return;
        }
        assert_running(ingest, "before three commits landed");
        // Slow on a loaded machine, but not stuck.
        assert!(started.elapsed() < Duration::from_secs(240), "ingest made no three commits in 4 min");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails the test, with what ingest said, when it has exited already (`when`).
fn assert_running(ingest: &mut std::process::Child, when: &str) {
    if ingest.try_wait().unwrap().is_some() {
        let mut stderr = String::new();
        if let Some(mut pipe) = ingest.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
        }
        panic!("ingest exited {when}:\n{stderr}");
    }
}

/// A small tmpfs the test mounts for its lake, so it can fill it and make it read-only; unmounted
/// on drop. `None` where the machine does not allow mounts.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &std::path::Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256m", "tidelake-test", path.to_str().unwrap()])
            .output()
            .is_ok_and(|out| out.status.success());
        mounted.then(|| SmallDisk { path: path.to_path_buf() })
    }

    /// Remounts with `options` (`ro`, `rw`, `size=...`).
    fn remount(&self, options: &str) {
        assert!(self.try_remount(options), "remount {options}");
    }

    fn try_remount(&self, options: &str) -> bool {
        std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}"), self.path.to_str().unwrap()])
            .output()
            .is_ok_and(|out| out.status.success())
    }

    /// Leaves no room: the size is what is in use (ingest may write meanwhile, so it tries again).
    fn fill(&self) {
        let filled = (0..20).any(|_| self.try_remount(&format!("size={}k", self.used_kib() + 4)));
        assert!(filled, "could not shrink the disk to what it holds");
    }

    /// Bytes in use, rounded up to whole KiB.
    fn used_kib(&self) -> u64 {
        let out = std::process::Command::new("df")
            .args(["-k", "--output=used", self.path.to_str().unwrap()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_rides_out_a_full_disk_and_a_read_only_one() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("lake")) else {
        eprintln!("skipped: this machine does not allow a test to mount a tmpfs");
        return;
    };
    let records = events(8_000, 0.02, 0.005, 93);
    let topic = filled_topic("diskfault", 2, &records).await;
    let root = format!("[lake]\nroot = \"{}\"\n", disk.path.display());
    let config = write_config_with_lake(dir.path(), &topic, &unique("group"), 200, &root);
    let mut ingest = spawn_ingest(&config);
    wait_for_commits(&config, &mut ingest).await;
    // Full: no byte left for 8 s. Then read-only for 8 s. Then writable again.
    disk.fill();
    tokio::time::sleep(Duration::from_secs(8)).await;
    disk.remount("size=256m,ro");
    tokio::time::sleep(Duration::from_secs(8)).await;
    disk.remount("rw");
    let out = tokio::task::spawn_blocking(move || ingest.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ingest gave up: {stderr}");
    assert!(stderr.contains("retrying"), "the faults bit: {stderr}");
    assert_no_panic_of_ours(&stderr);
    // The lake first (each UUID once, every offset archived once, the audit), then the report.
    crate::ingest::assert_exact(&config, &topic, 2, &records).await;
    let distinct = records.iter().filter(|r| r.kind == tidelake_lake::sample::Kind::Event).count();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rows_written"].as_u64().unwrap() as usize, distinct, "{report}");
}
