//! The status page and Prometheus metrics.
//!
//! ```text
//! GET /ui              one self-contained HTML page (nothing fetched from elsewhere)
//! GET /ui/status.json  what the page draws: tables, an hour of samples, queries, counters
//! GET /metrics         the same figures in Prometheus' text format
//! ```
//!
//! The tables' status is looked up when asked, at most once per [`FRESH_FOR`]; from the first ask
//! on, a sample is also taken every [`SAMPLE_EVERY`], so the page's plots cover the last hour.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::State;
use crate::status::TableStatus;

/// A lookup younger than this is answered again as it is.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// How often a sample is taken once the page or the metrics have been asked for.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Samples kept: an hour of them.
const SAMPLES: usize = 360;

/// Finished queries listed.
const FINISHED: usize = 50;

/// The page.
const PAGE: &str = include_str!("ui.html");

/// What the page and the metrics are drawn from.
#[derive(Debug, Default)]
pub(super) struct Book {
    latest: Option<(Instant, Arc<Vec<TableStatus>>)>,
    samples: VecDeque<Sample>,
    finished: VecDeque<FinishedQuery>,
    sampling: bool,
}

/// The figures of one moment, per table.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    at_ms: i64,
    tables: BTreeMap<String, Point>,
}

#[derive(Debug, Clone, Serialize)]
struct Point {
    rows: u64,
    lag: u64,
    event_age_s: Option<f64>,
    record_age_s: Option<f64>,
}

/// A query that is over, as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct FinishedQuery {
    pub id: String,
    pub user: String,
    pub sql: String,
    /// `FINISHED`, `FAILED`, `CANCELLED` or `ABANDONED`.
    pub state: &'static str,
    pub seconds: f64,
    pub ended_ms: i64,
}

/// Seconds from `ms` (milliseconds since the epoch) to `now_ms`.
fn age(ms: Option<i64>, now_ms: i64) -> Option<f64> {
    ms.map(|ms| (now_ms - ms) as f64 / 1000.0)
}

impl Book {
    fn record(&mut self, tables: Arc<Vec<TableStatus>>) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let points = tables
            .iter()
            .map(|t| {
                let point = Point {
                    rows: t.rows,
                    lag: t.lag_total(),
                    event_age_s: age(t.newest_event_ms, now_ms),
                    record_age_s: age(t.newest_record_ms, now_ms),
                };
                (t.table.clone(), point)
            })
            .collect();
        self.samples.push_back(Sample { at_ms: now_ms, tables: points });
        while self.samples.len() > SAMPLES {
            self.samples.pop_front();
        }
        self.latest = Some((Instant::now(), tables));
    }

    /// Lists a query that is over.
    pub(super) fn finished(&mut self, query: FinishedQuery) {
        self.finished.push_front(query);
        self.finished.truncate(FINISHED);
    }
}

/// The tables' status, looked up again when the last lookup is older than [`FRESH_FOR`]. The
/// first call starts the sampler.
async fn current(state: &Arc<State>) -> Arc<Vec<TableStatus>> {
    {
        let mut book = state.book.lock().expect("status book lock");
        if !book.sampling {
            book.sampling = true;
            tokio::spawn(sample(Arc::downgrade(state)));
        }
    }
    look(state).await
}

/// The status as of at most [`FRESH_FOR`] ago.
async fn look(state: &State) -> Arc<Vec<TableStatus>> {
    // One lookup at a time; whoever waited for it takes its answer.
    let _looking = state.looking.lock().await;
    if let Some((at, tables)) = &state.book.lock().expect("status book lock").latest {
        if at.elapsed() < FRESH_FOR {
            return tables.clone();
        }
    }
    let tables = Arc::new(state.connector.status().await);
    state.book.lock().expect("status book lock").record(tables.clone());
    tables
}

/// Takes a sample every [`SAMPLE_EVERY`] for as long as the server runs.
async fn sample(state: Weak<State>) {
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let Some(state) = state.upgrade() else { return };
        if state.stopped.load(Ordering::Relaxed) {
            return;
        }
        look(&state).await;
    }
}

/// `GET /ui`.
pub(super) fn page() -> &'static str {
    PAGE
}

/// `GET /ui/status.json`.
pub(super) async fn status_json(state: &Arc<State>) -> Value {
    let tables = current(state).await;
    let running: Vec<Value> = state
        .queries
        .lock()
        .await
        .iter()
        .map(|(id, entry)| {
            json!({
                "id": id,
                "user": entry.query.user,
                "sql": entry.sql,
                "seconds": entry.query.started.elapsed().as_secs_f64(),
            })
        })
        .collect();
    let book = state.book.lock().expect("status book lock");
    json!({
        "now_ms": chrono::Utc::now().timestamp_millis(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs_f64(),
        "tables": *tables,
        "samples": book.samples,
        "sample_every_s": SAMPLE_EVERY.as_secs(),
        "queries": { "running": running, "finished": book.finished },
        "counters": super::routes::counters(state, running.len()),
    })
}

/// `GET /metrics`: Prometheus' text format, version 0.0.4.
pub(super) async fn prometheus(state: &Arc<State>) -> String {
    let tables = current(state).await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let running = state.queries.lock().await.len();
    let mut out = Metrics::default();
    for t in tables.iter() {
        let table = [("table", t.table.as_str())];
        out.gauge("tidelake_table_rows", "Rows in the latest version of the data table.", &table, t.rows as f64);
        out.gauge(
            "tidelake_table_files",
            "Data files in the latest version of the data table.",
            &table,
            t.files as f64,
        );
        out.gauge("tidelake_table_bytes", "Bytes of those files.", &table, t.bytes as f64);
        if let Some(version) = t.version {
            out.gauge("tidelake_table_version", "Latest Delta version of the data table.", &table, version as f64);
        }
        if let Some(age) = age(t.newest_event_ms, now_ms) {
            out.gauge("tidelake_newest_event_age_seconds", "Age of the newest event time the lake holds.", &table, age);
        }
        if let Some(age) = age(t.newest_record_ms, now_ms) {
            out.gauge(
                "tidelake_newest_record_age_seconds",
                "Age of the newest record of the table's Kafka topic.",
                &table,
                age,
            );
        }
        for (partition, lag) in &t.lag {
            let partition = partition.to_string();
            let labels = [("table", t.table.as_str()), ("topic", t.topic.as_str()), ("partition", partition.as_str())];
            out.gauge(
                "tidelake_kafka_lag_records",
                "Records of a partition above the offsets the lake holds.",
                &labels,
                *lag as f64,
            );
        }
        out.gauge("tidelake_dead_letters", "Rows of the table's dead-letter table.", &table, t.dead_letters as f64);
        for reason in &t.dead_letter_reasons {
            let labels = [("table", t.table.as_str()), ("reason", reason.reason.as_str())];
            out.gauge(
                "tidelake_dead_letters_by_reason",
                "Dead letters of one kind (the most frequent kinds).",
                &labels,
                reason.count as f64,
            );
        }
        if let Some(audit) = &t.last_audit {
            out.gauge(
                "tidelake_last_audit_passed",
                "1 when the table's last `tidelake audit` found nothing wrong, 0 when it found a problem.",
                &table,
                if audit.passed { 1.0 } else { 0.0 },
            );
            out.gauge(
                "tidelake_last_audit_timestamp_seconds",
                "When the table's last audit ran, seconds since the epoch.",
                &table,
                audit.at_ms as f64 / 1000.0,
            );
        }
        out.gauge(
            "tidelake_status_problems",
            "Figures of the table that could not be looked up (see /ui).",
            &table,
            t.problems.len() as f64,
        );
    }
    let count = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed) as f64;
    let m = &state.metrics;
    out.counter("tidelake_queries_total", "Queries posted.", count(&m.queries));
    out.counter("tidelake_queries_failed_total", "Queries that failed.", count(&m.failed));
    out.counter("tidelake_queries_cancelled_total", "Queries cancelled by their client.", count(&m.cancelled));
    out.counter(
        "tidelake_queries_abandoned_total",
        "Queries dropped because no client polled them.",
        count(&m.abandoned),
    );
    out.counter("tidelake_queries_refused_total", "Requests refused for want of valid credentials.", count(&m.refused));
    out.counter(
        "tidelake_queries_queue_full_total",
        "Queries refused because --max-queries were running.",
        count(&m.queue_full),
    );
    out.gauge("tidelake_queries_running", "Queries running now.", &[], running as f64);
    out.counter(
        "tidelake_kafka_offsets_read_total",
        "Kafka offsets read by kafka.* and live.* queries.",
        state.connector.tail_offsets_read() as f64,
    );
    if let Some(cache) = state.connector.cache_stats() {
        out.counter("tidelake_result_cache_hits_total", "Closed days served from the result cache.", cache.hits as f64);
        out.counter("tidelake_result_cache_misses_total", "Closed days computed and kept.", cache.misses as f64);
        out.counter(
            "tidelake_result_cache_statement_hits_total",
            "Whole statements answered from the result cache.",
            cache.statement_hits as f64,
        );
        out.counter(
            "tidelake_result_cache_statement_misses_total",
            "Whole statements computed and kept.",
            cache.statement_misses as f64,
        );
    }
    out.text
}

/// Prometheus text, each metric's `HELP` and `TYPE` written once, before its first sample.
#[derive(Default)]
struct Metrics {
    text: String,
    declared: std::collections::HashSet<&'static str>,
}

impl Metrics {
    fn gauge(&mut self, name: &'static str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.sample(name, "gauge", help, labels, value);
    }

    fn counter(&mut self, name: &'static str, help: &str, value: f64) {
        self.sample(name, "counter", help, &[], value);
    }

    fn sample(&mut self, name: &'static str, kind: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        if self.declared.insert(name) {
            let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        self.text.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = write!(self.text, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as Prometheus' text format writes it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_declared_once_and_labels_escaped() {
        let mut m = Metrics::default();
        m.gauge("x_rows", "Rows.", &[("table", "a")], 3.0);
        m.gauge("x_rows", "Rows.", &[("table", "b\"\\\n")], 4.5);
        m.counter("x_total", "All.", 7.0);
        assert_eq!(
            m.text,
            "# HELP x_rows Rows.\n# TYPE x_rows gauge\nx_rows{table=\"a\"} 3\nx_rows{table=\"b\\\"\\\\\\n\"} 4.5\n# HELP x_total All.\n# TYPE x_total counter\nx_total 7\n"
        );
    }
}
