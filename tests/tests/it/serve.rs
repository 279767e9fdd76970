//! `tidelake serve` through the real Trino and Presto Python clients (`tests/trino_clients.py`):
//! rows and types across `lake`, `kafka` and `live`, paging, errors, and logins.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tidelake_lake::sample::{Kind, SampleRecord};
use tidelake_presto::server::{self, Credentials};
use tidelake_presto::Connector;

use crate::helpers::*;

/// A server on a free loopback port, stopped when dropped.
pub(crate) struct Served {
    pub(crate) port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Served {
    pub(crate) async fn start(config: tidelake_lake::PipelineConfig, credentials: Credentials) -> Served {
        Served::start_with(Connector::new(config).unwrap(), credentials).await
    }

    pub(crate) async fn start_with(connector: Connector, credentials: Credentials) -> Served {
        Served::start_with_options(connector, server::Options { credentials, ..Default::default() }).await
    }

    pub(crate) async fn start_with_options(connector: Connector, options: server::Options) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let connector = Arc::new(connector);
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            server::run_with(listener, connector, options, shutdown).await.expect("serve");
        });
        Served { port, stop: Some(stop) }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs the Python clients against the server and returns what they printed; `login` is a user,
/// their password, the server's certificate, and a token's user and token.
async fn clients(port: u16, topic: &str, login: Option<[&str; 5]>) -> Value {
    let mut args = vec!["127.0.0.1".to_string(), port.to_string(), topic.to_string()];
    args.extend(login.iter().flatten().map(|s| s.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(repo().join("tests/trino_clients.py"))
            .args(&args)
            .output()
            .expect("run trino_clients.py")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "trino_clients.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A lake of `ingested` events with, in Kafka above it, `fresh` new events and copies of the first
/// `copies` ingested ones.
pub(crate) async fn lake_with_tail(
    label: &str,
    ingested: usize,
    fresh: usize,
    copies: usize,
) -> (tempfile::TempDir, String, Vec<SampleRecord>) {
    let first = events(ingested, 0.0, 0.0, 61);
    let topic = filled_topic(label, 2, &first).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &topic, &unique("group"), 2_000);
    ingest_to_end(&path);
    let new = events(fresh, 0.0, 0.0, 62);
    let again: Vec<SampleRecord> =
        first.iter().take(copies).map(|r| SampleRecord { kind: Kind::Duplicate, ..r.clone() }).collect();
    produce(&producer(), &topic, &new).await;
    produce(&producer(), &topic, &again).await;
    let distinct = first.into_iter().chain(new).filter(|r| r.kind == Kind::Event).collect();
    (dir, topic, distinct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trino_and_presto_clients_get_rows_types_and_errors() {
    let (dir, topic, distinct) = lake_with_tail("serve", 5_000, 200, 3).await;
    let config = load_config(&dir.path().join("tidelake.toml"));
    let connector = Connector::new(config).unwrap().with_result_cache(16 << 20);
    let served = Served::start_with(connector, Credentials::default()).await;
    let out = clients(served.port, &topic, None).await;

    let sum = format!("Decimal:{}", cost_sum(&distinct));
    assert_eq!(out["live_totals"]["rows"], json!([["int:5200", "int:5200", sum]]), "{}", out["live_totals"]);
    assert_eq!(out["lake_count"]["rows"], json!([["int:5000"]]));
    assert_eq!(out["kafka_count"]["rows"], json!([["int:203"]]));
    assert_eq!(out["joined"]["rows"], json!([["int:3"]]));
    // The clients' type mappers got Trino's JSON forms.
    let types: Vec<String> = out["types"]["rows"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(types, ["str", "datetime", "Decimal", "int", "bool", "date"], "{}", out["types"]);
    assert!(out["types"]["rows"][0][1].as_str().unwrap().ends_with("+00:00"), "{}", out["types"]);
    // More rows than one page: every one arrives once.
    let ids: Vec<&str> = out["all_rows"]["rows"].as_array().unwrap().iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5_200);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 5_200);

    assert_eq!(out["bad_syntax"]["error"], "TrinoUserError", "{}", out["bad_syntax"]);
    assert_eq!(out["bad_syntax"]["name"], "SYNTAX_ERROR");
    assert_eq!(out["unknown_table"]["error"], "TrinoUserError", "{}", out["unknown_table"]);
    assert!(out["unknown_table"]["message"].as_str().unwrap().contains("nothing_here"));
    assert_eq!(out["write_refused"]["error"], "TrinoUserError", "{}", out["write_refused"]);
    assert_eq!(out["write_refused"]["name"], "NOT_SUPPORTED");
    // `SHOW` and `DESCRIBE` in Trino's shapes, in the session's schema.
    assert_eq!(out["show_tables"]["columns"], json!(["Table"]), "{}", out["show_tables"]);
    assert_eq!(out["show_tables"]["rows"], json!([["str:ad_events"]]), "{}", out["show_tables"]);
    assert_eq!(out["describe"]["columns"], json!(["Column", "Type", "Extra", "Comment"]), "{}", out["describe"]);
    let described: Vec<(&str, &str)> = out["describe"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap(), r[1].as_str().unwrap()))
        .collect();
    assert!(described.contains(&("str:cost", "str:decimal(18,6)")), "{}", out["describe"]);
    assert!(described.contains(&("str:event_time", "str:timestamp(6) with time zone")), "{}", out["describe"]);

    // The Presto client does no type mapping: values come as Trino's JSON forms.
    let presto_sum = format!("str:{}", cost_sum(&distinct));
    assert_eq!(out["presto_live_totals"]["rows"], json!([["int:5200", "int:5200", presto_sum]]));
    assert_eq!(out["presto_bad_syntax"]["error"], "PrestoUserError", "{}", out["presto_bad_syntax"]);

    // The dashboard query's second run came whole from the result cache, with the same rows; the
    // server's metrics say so.
    let first = &out["dashboard_first"]["rows"];
    assert_eq!(first.as_array().map(|r| r.len()), Some(2), "{}", out["dashboard_first"]);
    assert_eq!(out["dashboard_again"]["rows"], *first);
    let cache = &out["metrics"]["result_cache"];
    assert!(cache["statement_hits"].as_u64().unwrap() >= 1, "{}", out["metrics"]);
    assert!(cache["hit_rate"].as_f64().unwrap() > 0.0, "{}", out["metrics"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_over_tls_are_checked_and_each_user_sees_only_their_queries() {
    let open = Credentials::default();
    let everywhere = "0.0.0.0:8443".parse().unwrap();
    assert!(server::check_exposure(everywhere, &open, true).unwrap_err().contains("--users"));
    let (dir, topic, distinct) = lake_with_tail("login", 300, 20, 0).await;
    let token = "tok-7f3a9c1e5b2d4f60";
    let credentials = Credentials {
        users: Credentials::read_users(&format!("alice:{}", server::hash_password("s3cret")), "users").unwrap(),
        tokens: Credentials::read_tokens(&format!("carol:{token}"), "tokens").unwrap(),
    };
    assert!(server::check_exposure(everywhere, &credentials, false).unwrap_err().contains("--tls-cert"));
    assert!(server::check_exposure(everywhere, &credentials, true).is_ok());

    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new(python()).arg(repo().join("tests/make_cert.py")).args([&cert, &key]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let tls = Some(server::tls::config(&cert, &key).unwrap());
    assert!(server::tls::config(&key, &cert).unwrap_err().contains("key.pem"));
    let connector = Connector::new(load_config(&dir.path().join("tidelake.toml"))).unwrap();
    let served =
        Served::start_with_options(connector, server::Options { credentials, tls, ..Default::default() }).await;
    let login = ["alice", "s3cret", cert.to_str().unwrap(), "carol", token];
    let out = clients(served.port, &topic, Some(login)).await;
    assert_eq!(out["live_totals"]["rows"][0][0], "int:320", "{}", out["live_totals"]);
    assert_eq!(distinct.len(), 320);
    for refused in ["wrong_password", "unknown_user", "no_credentials", "token_as_other"] {
        assert_eq!(out[refused]["error"], "HttpError", "{refused}: {}", out[refused]);
        assert!(out[refused]["message"].as_str().unwrap().contains("401"), "{refused}: {}", out[refused]);
    }
    assert_eq!(out["token"]["rows"], json!([["int:300"]]), "{}", out["token"]);
    // Another user's query is not there for carol, to poll or to cancel; alice gets its rows.
    let seen = &out["others_query"];
    assert_eq!((seen["other_poll"].as_u64(), seen["other_cancel"].as_u64()), (Some(404), Some(204)), "{seen}");
    assert_eq!((seen["owner_poll"].as_u64(), &seen["owner_rows"]), (Some(200), &json!([[7]])), "{seen}");
    assert_eq!(seen["next_uri_scheme"], "https");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_no_client_polls_is_dropped_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "unused", "unused", 100);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connector = Arc::new(Connector::new(load_config(&path)).unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        let abandon = Duration::from_millis(600);
        let options = server::Options { abandon_after: abandon, ..Default::default() };
        server::run_with(listener, connector, options, shutdown).await.expect("serve");
    });
    let next = |body: &str| {
        let posted: Value = serde_json::from_str(body).unwrap();
        let uri = posted["nextUri"].as_str().unwrap().to_string();
        uri.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap()
    };
    // Polled within the time: the rows come.
    let (status, body) = http(port, "POST", "/v1/statement", "SELECT 42 AS answer").await;
    assert_eq!(status, 200, "{body}");
    let (status, page) = http(port, "GET", &next(&body), "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("[[42]]"), "{page}");
    // Left alone: gone once the time has passed, and counted.
    let (_, body) = http(port, "POST", "/v1/statement", "SELECT 43 AS answer").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, page) = http(port, "GET", &next(&body), "").await;
    assert_eq!(status, 404, "{page}");
    let (_, metrics) = http(port, "GET", "/v1/metrics", "").await;
    let metrics: Value = serde_json::from_str(&metrics).unwrap();
    assert_eq!(metrics["abandoned"], 1, "{metrics}");
    assert_eq!(metrics["running"], 0, "{metrics}");
}

/// The status page and `/metrics` show each table as it stands: rows, how far the lake is behind
/// Kafka per partition, dead letters by kind, the recent commits, and the queries that ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_page_and_prometheus_metrics_show_each_table_as_it_stands() {
    let first = events(2_000, 0.0, 0.02, 64);
    let topic = filled_topic("status", 2, &first).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &topic, &unique("group"), 1_000);
    ingest_to_end(&path);
    audit_passes(&path);
    produce(&producer(), &topic, &events(120, 0.0, 0.0, 65)).await;
    let rows = first.iter().filter(|r| r.kind == Kind::Event).count() as u64;
    let poison = first.iter().filter(|r| r.kind == Kind::Poison).count() as u64;
    assert!(poison > 0);
    let served = Served::start(load_config(&path), Credentials::default()).await;
    let counted = crate::hostile::query(served.port, "SELECT count(*) FROM lake.ad_events").await.unwrap();
    assert_eq!(counted, vec![json!([rows])]);

    // One page, nothing fetched from elsewhere.
    let (code, page) = http(served.port, "GET", "/ui", "").await;
    assert_eq!(code, 200);
    assert!(page.contains("<title>tidelake status</title>"));
    assert!(!page.contains(" src=") && !page.contains(" href=") && !page.contains("@import"), "the page loads nothing");

    let (code, body) = http(served.port, "GET", "/ui/status.json", "").await;
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    let table = &status["tables"][0];
    assert_eq!(table["table"], "ad_events", "{table}");
    assert_eq!(table["problems"], json!([]), "{table}");
    assert_eq!(table["rows"], rows, "{table}");
    let lag: u64 = table["lag"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(lag, 120, "{table}");
    assert_eq!(table["dead_letters"], poison, "{table}");
    let by_kind: u64 =
        table["dead_letter_reasons"].as_array().unwrap().iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(by_kind, poison, "{table}");
    let commits = table["commits"].as_array().unwrap();
    let ingested: u64 =
        commits.iter().filter(|c| c["kind"] == "ingest").map(|c| c["rows_added"].as_u64().unwrap()).sum();
    assert_eq!(ingested, rows, "every ingest commit is among the recent ones: {table}");
    // The sample's events end at a fixed time; the records were produced just now.
    let end_ms = 1_795_435_200_000i64;
    let newest_event = table["newest_event_ms"].as_i64().unwrap();
    assert!((end_ms - 3_600_000..=end_ms).contains(&newest_event), "{table}");
    let newest_record = table["newest_record_ms"].as_i64().unwrap();
    assert!((chrono::Utc::now().timestamp_millis() - newest_record) < 120_000, "{table}");
    let finished = &status["queries"]["finished"];
    assert_eq!(finished[0]["state"], "FINISHED", "{finished}");
    assert_eq!(finished[0]["sql"], "SELECT count(*) FROM lake.ad_events", "{finished}");
    assert_eq!(status["samples"].as_array().unwrap().len(), 1);
    let audit = &table["last_audit"];
    assert_eq!(audit["passed"], true, "{table}");
    assert_eq!(audit["kafka_checked"], true, "{table}");
    assert_eq!(audit["version"], table["version"], "the audit saw every commit: {table}");
    assert_eq!(audit["rows_committed"], rows, "{table}");

    let (code, metrics) = http(served.port, "GET", "/metrics", "").await;
    assert_eq!(code, 200);
    let value = |line_start: &str| -> f64 {
        let line =
            metrics.lines().find(|l| l.starts_with(line_start)).unwrap_or_else(|| panic!("{line_start}:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("tidelake_table_rows{table=\"ad_events\"}"), rows as f64);
    assert_eq!(value("tidelake_dead_letters{table=\"ad_events\"}"), poison as f64);
    let lag_lines: f64 = (0..2)
        .map(|p| {
            value(&format!("tidelake_kafka_lag_records{{table=\"ad_events\",topic=\"{topic}\",partition=\"{p}\"}}"))
        })
        .sum();
    assert_eq!(lag_lines, 120.0);
    assert!(value("tidelake_queries_total") >= 1.0);
    assert_eq!(value("tidelake_last_audit_passed{table=\"ad_events\"}"), 1.0);
    assert_eq!(metrics.matches("# TYPE tidelake_table_rows gauge").count(), 1, "{metrics}");

    // What Prometheus itself would scrape: its reference parser reads every line.
    let samples = parse_metrics(&metrics);
    let sample = |name: &str| samples.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("{name}: {metrics}"));
    assert_eq!(sample("tidelake_table_rows")["value"], rows as f64);
    assert_eq!(sample("tidelake_table_rows")["type"], "gauge");
    assert_eq!(sample("tidelake_queries_total")["type"], "counter");
    let lag: f64 = samples
        .iter()
        .filter(|s| s["name"] == "tidelake_kafka_lag_records")
        .map(|s| s["value"].as_f64().unwrap())
        .sum();
    assert_eq!(lag, 120.0);

    // The page as a browser shows it once its script ran: the same figures as the lake's.
    let png = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let dom = render_in_chromium(&format!("http://127.0.0.1:{}/ui", served.port), &png);
    assert_eq!(figure_on_page(&dom, "rows"), rows, "{dom}");
    assert_eq!(figure_on_page(&dom, "dead letters"), poison, "{dom}");
    assert_eq!(figure_on_page(&dom, "behind Kafka"), 120, "{dom}");
    assert!(dom.contains("<span class=\"ok\">passed</span>"), "the last audit: {dom}");
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000, "a screenshot of the page at {}", png.display());
}

/// The samples of Prometheus text `metrics` as `prometheus_client`'s parser reads them
/// (`tests/metrics_parse.py`): `family`, `type`, `name`, `labels` and `value` each.
fn parse_metrics(metrics: &str) -> Vec<Value> {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(repo().join("tests/metrics_parse.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused /metrics: {}\n{metrics}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The page at `url` as headless Chromium (Debian's `chromium`) renders it once its script has
/// fetched and drawn the status, as HTML; a screenshot of it is written to `png`.
fn render_in_chromium(url: &str, png: &std::path::Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let chromium = |extra: &[&str]| {
        let out = Command::new("chromium")
            // No sandbox (tests may run as root); nothing fetched from anywhere but the page's server.
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
            .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--virtual-time-budget=10000", "--window-size=1280,1100", "--hide-scrollbars"])
            .args(extra)
            .arg(url)
            .output()
            .expect("chromium runs (the README lists it for the tests)");
        assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    chromium(&[&format!("--screenshot={}", png.display())]);
    String::from_utf8(chromium(&["--dump-dom"]).stdout).unwrap()
}

/// The number a figure of the status page shows under `label`, its digit groups joined.
fn figure_on_page(dom: &str, label: &str) -> u64 {
    let at = dom.find(&format!("data-label=\"{label}\"")).unwrap_or_else(|| panic!("no figure `{label}`: {dom}"));
    let rest = &dom[at..];
    let start = rest.find("<b>").unwrap() + 3;
    let end = start + rest[start..].find("</b>").unwrap();
    let digits: String = rest[start..end].chars().filter(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("figure `{label}` shows `{}`", &rest[start..end]))
}

/// `tidelake quickstart --serve`: after its first load it keeps producing and ingesting on the
/// embedded cluster while it answers `live` queries, its status page and its metrics, and stops on
/// SIGINT.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quickstart_serve_keeps_producing_ingesting_and_answering_until_interrupted() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_tidelake-under-test"))
        .args(["quickstart", "--serve", "--events", "2000", "--rate", "100", "--compact-every", "2s"])
        .args(["--listen", "127.0.0.1:0", "--dir", dir.path().join("qs").to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("the demo printed where to look").unwrap();
        if let Some(rest) = line.strip_prefix("Look at it: http://127.0.0.1:") {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    let count = || async {
        let rows = crate::hostile::query(port, "SELECT count(*) FROM live.ad_events").await.unwrap();
        rows[0][0].as_u64().unwrap()
    };
    let first = count().await;
    assert!(first >= 2_000, "{first}");
    // Events keep coming, and the lake takes them in.
    let started = std::time::Instant::now();
    let lake_rows = loop {
        let (code, body) = http(port, "GET", "/ui/status.json", "").await;
        assert_eq!(code, 200, "{body}");
        let status: Value = serde_json::from_str(&body).unwrap();
        let rows = status["tables"][0]["rows"].as_u64().unwrap();
        if rows > 2_000 {
            break rows;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the lake stayed at {rows} rows: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(count().await >= lake_rows);
    let (code, metrics) = http(port, "GET", "/metrics", "").await;
    assert_eq!(code, 200);
    assert!(metrics.contains("tidelake_table_rows{table=\"ad_events\"}"), "{metrics}");

    let interrupted = Command::new("kill").args(["-INT", &demo.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let out = tokio::task::spawn_blocking(move || demo.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
