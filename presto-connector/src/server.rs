//! The Trino client protocol over HTTP, so Trino and Presto clients, JDBC drivers and BI tools
//! query the lake as they would query Trino.
//!
//! ```text
//! POST   /v1/statement                      SQL in the body -> {id, infoUri, nextUri, stats}
//! GET    /v1/statement/executing/{id}/{n}   page n: {columns, data, nextUri?, stats} or {error, stats}
//! DELETE /v1/statement/executing/{id}/{n}   cancel (also DELETE /v1/query/{id}) -> 204
//! GET    /v1/info                           the node's version and uptime
//! ```
//!
//! A query runs as soon as it is posted; a GET waits up to a second for it, then answers with the
//! state it is in and the same `nextUri`. Rows are paged; the last page has no `nextUri`. Values
//! are in Trino's JSON forms (decimals as exact strings, timestamps as `YYYY-MM-DD HH:MM:SS.ffffff
//! UTC`, binary as base64), so the clients' type mappers turn them into the right types.
//!
//! Bound to a loopback address it needs no credentials; on any other address it refuses to start
//! without users or tokens, and then every request must carry HTTP basic credentials of a known
//! user or a known bearer token.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int16Type, Int32Type, Int64Type, Int8Type, SchemaRef, TimeUnit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};

use crate::error::Error;
use crate::Connector;

/// Rows per page of a result.
pub const PAGE_ROWS: usize = 4096;

/// Who may query a server.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Users and their salted password hashes (see [`hash_password`]).
    pub users: HashMap<String, String>,
    /// Bearer tokens.
    pub tokens: HashSet<String>,
}

impl Credentials {
    /// Reads a users file: one `name:sha256:<salt>:<hex digest>` per line, as [`hash_password`]
    /// writes them; `#` starts a comment.
    pub fn read_users(text: &str, file: &str) -> Result<HashMap<String, String>, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("{file}:{}: expected `name:sha256:salt:digest`", n + 1));
            };
            if hash.split(':').count() != 3 || !hash.starts_with("sha256:") {
                return Err(format!(
                    "{file}:{}: the password of `{user}` is not `sha256:salt:digest` (make one with `tidelake serve --hash-password`)",
                    n + 1
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(users)
    }

    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }

    /// The user a request authenticates as; `None` when its credentials are missing or wrong.
    fn authenticate(&self, header: Option<&str>, claimed_user: Option<&str>) -> Option<String> {
        let header = header?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            return self.tokens.contains(token.trim()).then(|| claimed_user.unwrap_or("token").to_string());
        }
        let decoded = STANDARD.decode(header.strip_prefix("Basic ")?.trim()).ok()?;
        let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        let stored = self.users.get(user)?;
        let (_, rest) = stored.split_once(':')?;
        let (salt, _) = rest.split_once(':')?;
        (hash_with_salt(password, salt) == *stored).then(|| user.to_string())
    }
}

/// The users-file form of a password: `sha256:<salt>:<hex of sha256(salt + password)>`.
pub fn hash_password(password: &str) -> String {
    hash_with_salt(password, &new_salt())
}

/// Eight bytes from the clock and the process id: not secret, only different per hash.
fn new_salt() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    hex(&Sha256::digest(format!("{nanos}-{}", std::process::id()).as_bytes())[..8])
}

fn hash_with_salt(password: &str, salt: &str) -> String {
    let digest = Sha256::digest(format!("{salt}{password}").as_bytes());
    format!("sha256:{salt}:{}", hex(&digest))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses to serve a non-loopback address without credentials.
pub fn check_exposure(addr: SocketAddr, credentials: &Credentials) -> Result<(), String> {
    if !addr.ip().is_loopback() && credentials.is_empty() {
        return Err(format!(
            "{addr} is reachable from other hosts: give users (--users FILE) or bearer tokens (--tokens FILE), or bind to 127.0.0.1"
        ));
    }
    Ok(())
}

/// What the server counts, for `GET /v1/metrics`.
#[derive(Debug, Default)]
struct Metrics {
    queries: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    abandoned: AtomicU64,
    refused: AtomicU64,
}

/// A posted query: its outcome once known.
#[derive(Debug)]
struct Query {
    outcome: watch::Receiver<Option<Arc<Outcome>>>,
    task: tokio::task::JoinHandle<()>,
    started: Instant,
    /// When the client last asked for it: a query nobody polls for [`State::abandon_after`] is
    /// dropped with its rows.
    polled: Instant,
}

#[derive(Debug)]
enum Outcome {
    Rows { schema: SchemaRef, rows: Vec<RecordBatch>, total: usize },
    Failed(Error),
}

struct State {
    connector: Arc<Connector>,
    credentials: Credentials,
    queries: Mutex<HashMap<String, Query>>,
    next_id: AtomicU64,
    metrics: Metrics,
    started: Instant,
    abandon_after: Duration,
}

/// How long a query is kept without a poll, as Trino's `query.client.timeout` defaults to.
pub const ABANDON_AFTER: Duration = Duration::from_secs(300);

/// Serves `connector` on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    connector: Arc<Connector>,
    credentials: Credentials,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_with(listener, connector, credentials, ABANDON_AFTER, shutdown).await
}

/// Like [`run`], dropping a query (running or finished, with its rows) that no client has polled
/// for `abandon_after`.
pub async fn run_with(
    listener: TcpListener,
    connector: Arc<Connector>,
    credentials: Credentials,
    abandon_after: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    check_exposure(addr, &credentials).map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
    let state = Arc::new(State {
        connector,
        credentials,
        queries: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        metrics: Metrics::default(),
        started: Instant::now(),
        abandon_after,
    });
    let mut sweep = tokio::time::interval((abandon_after / 4).max(Duration::from_millis(100)));
    tracing::info!(%addr, "serving the Trino client protocol");
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = sweep.tick() => {
                drop_abandoned(&state).await;
                continue;
            }
            () = &mut shutdown => break,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, request).await) }
            });
            if let Err(e) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
    for (_, query) in state.queries.lock().await.drain() {
        query.task.abort();
    }
    Ok(())
}

/// Drops the queries no client has polled for the server's `abandon_after`.
async fn drop_abandoned(state: &State) {
    let mut queries = state.queries.lock().await;
    let gone: Vec<String> =
        queries.iter().filter(|(_, q)| q.polled.elapsed() > state.abandon_after).map(|(id, _)| id.clone()).collect();
    for id in gone {
        if let Some(query) = queries.remove(&id) {
            query.task.abort();
            state.metrics.abandoned.fetch_add(1, Ordering::Relaxed);
            tracing::info!(query = %id, idle_s = query.polled.elapsed().as_secs(), "query abandoned by its client: dropped");
        }
    }
}

async fn handle(state: &Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let claimed = header("x-trino-user").or_else(|| header("x-presto-user"));
    let user = match state.credentials.is_empty() {
        true => claimed.clone().unwrap_or_else(|| "anonymous".into()),
        false => match state.credentials.authenticate(header("authorization").as_deref(), claimed.as_deref()) {
            Some(user) => user,
            None => {
                state.metrics.refused.fetch_add(1, Ordering::Relaxed);
                let mut response = text(StatusCode::UNAUTHORIZED, "unknown user or wrong password or token\n");
                response
                    .headers_mut()
                    .insert("www-authenticate", "Basic realm=\"tidelake\"".parse().expect("valid header"));
                return response;
            }
        },
    };
    let base = format!("http://{}", header("host").unwrap_or_else(|| "localhost".into()));
    let schema = header("x-trino-schema").or_else(|| header("x-presto-schema"));
    let path: Vec<String> = request.uri().path().trim_matches('/').split('/').map(str::to_string).collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match (request.method().clone(), path.as_slice()) {
        (Method::POST, ["v1", "statement"]) => {
            let body = match request.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => return text(StatusCode::BAD_REQUEST, &format!("reading the statement: {e}\n")),
            };
            let Ok(sql) = String::from_utf8(body.to_vec()) else {
                return text(StatusCode::BAD_REQUEST, "the statement is not UTF-8\n");
            };
            submit(state, &base, sql, schema, &user).await
        }
        (Method::GET, ["v1", "statement", "executing", id, page]) => match page.parse::<usize>() {
            Ok(page) => poll(state, &base, id, page).await,
            Err(_) => text(StatusCode::NOT_FOUND, "no such page\n"),
        },
        (Method::DELETE, ["v1", "statement", "executing", id, _]) | (Method::DELETE, ["v1", "query", id]) => {
            if let Some(query) = state.queries.lock().await.remove(*id) {
                query.task.abort();
                state.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            empty(StatusCode::NO_CONTENT)
        }
        (Method::GET, ["v1", "info"]) => json_response(json!({
            "nodeVersion": {"version": env!("CARGO_PKG_VERSION")},
            "environment": "tidelake",
            "coordinator": true,
            "starting": false,
            "uptime": format!("{:.2}s", state.started.elapsed().as_secs_f64()),
        })),
        (Method::GET, ["v1", "metrics"]) => json_response(json!({
            "queries": state.metrics.queries.load(Ordering::Relaxed),
            "failed": state.metrics.failed.load(Ordering::Relaxed),
            "cancelled": state.metrics.cancelled.load(Ordering::Relaxed),
            "abandoned": state.metrics.abandoned.load(Ordering::Relaxed),
            "refused": state.metrics.refused.load(Ordering::Relaxed),
            "running": state.queries.lock().await.len(),
            "kafka_poison_skipped": state.connector.poison_skipped(),
            "result_cache": state.connector.cache_stats(),
        })),
        _ => text(StatusCode::NOT_FOUND, "not a Trino client protocol endpoint\n"),
    }
}

async fn submit(
    state: &Arc<State>,
    base: &str,
    sql: String,
    schema: Option<String>,
    user: &str,
) -> Response<Full<Bytes>> {
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}_{n:05}_tidelake", chrono::Utc::now().format("%Y%m%d_%H%M%S"));
    tracing::info!(query = %id, %user, sql = %sql, "query");
    state.metrics.queries.fetch_add(1, Ordering::Relaxed);
    let (sender, outcome) = watch::channel(None);
    let connector = state.connector.clone();
    let task = tokio::spawn(async move {
        let result = connector.query_in(&sql, schema.as_deref()).await;
        let outcome = match result {
            Ok((schema, rows)) => {
                let total = rows.iter().map(RecordBatch::num_rows).sum();
                Outcome::Rows { schema, rows, total }
            }
            Err(e) => Outcome::Failed(e),
        };
        let _ = sender.send(Some(Arc::new(outcome)));
    });
    let now = Instant::now();
    state.queries.lock().await.insert(id.clone(), Query { outcome, task, started: now, polled: now });
    json_response(json!({
        "id": id,
        "infoUri": format!("{base}/v1/query/{id}"),
        "nextUri": format!("{base}/v1/statement/executing/{id}/0"),
        "stats": stats("QUEUED", 0, 0),
    }))
}

async fn poll(state: &Arc<State>, base: &str, id: &str, page: usize) -> Response<Full<Bytes>> {
    let (mut outcome, started) = match state.queries.lock().await.get_mut(id) {
        Some(query) => {
            query.polled = Instant::now();
            (query.outcome.clone(), query.started)
        }
        None => return text(StatusCode::NOT_FOUND, &format!("no query {id} (finished, cancelled or never posted)\n")),
    };
    let done = tokio::time::timeout(Duration::from_secs(1), outcome.wait_for(Option::is_some))
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|outcome| outcome.clone());
    let elapsed = started.elapsed().as_millis() as u64;
    let info_uri = format!("{base}/v1/query/{id}");
    let outcome = match done {
        Some(outcome) => outcome,
        None => {
            return json_response(json!({
                "id": id,
                "infoUri": info_uri,
                "nextUri": format!("{base}/v1/statement/executing/{id}/{page}"),
                "stats": stats("RUNNING", elapsed, 0),
            }))
        }
    };
    match outcome.as_ref() {
        Outcome::Failed(e) => {
            state.queries.lock().await.remove(id);
            state.metrics.failed.fetch_add(1, Ordering::Relaxed);
            json_response(json!({
                "id": id,
                "infoUri": info_uri,
                "stats": stats("FAILED", elapsed, 0),
                "error": error_json(e),
                "warnings": [],
            }))
        }
        Outcome::Rows { schema, rows, total } => {
            let from = page * PAGE_ROWS;
            let to = (from + PAGE_ROWS).min(*total);
            let data = match page_rows(rows, from, to) {
                Ok(data) => data,
                Err(e) => {
                    state.queries.lock().await.remove(id);
                    return json_response(json!({
                        "id": id, "infoUri": info_uri, "stats": stats("FAILED", elapsed, 0),
                        "error": {"message": e, "errorCode": 65536, "errorName": "GENERIC_INTERNAL_ERROR", "errorType": "INTERNAL_ERROR"},
                    }));
                }
            };
            let mut body = json!({
                "id": id,
                "infoUri": info_uri,
                "columns": columns_json(schema),
                "data": data,
                "stats": stats(if to < *total { "RUNNING" } else { "FINISHED" }, elapsed, *total),
                "warnings": [],
            });
            if to < *total {
                body["nextUri"] = json!(format!("{base}/v1/statement/executing/{id}/{}", page + 1));
            } else {
                state.queries.lock().await.remove(id);
            }
            json_response(body)
        }
    }
}

fn stats(state: &str, elapsed_ms: u64, rows: usize) -> Value {
    json!({
        "state": state,
        "queued": state == "QUEUED",
        "scheduled": state != "QUEUED",
        "nodes": 1,
        "totalSplits": 1,
        "queuedSplits": 0,
        "runningSplits": 0,
        "completedSplits": if state == "FINISHED" { 1 } else { 0 },
        "cpuTimeMillis": elapsed_ms,
        "wallTimeMillis": elapsed_ms,
        "elapsedTimeMillis": elapsed_ms,
        "queuedTimeMillis": 0,
        "processedRows": rows,
        "processedBytes": 0,
        "peakMemoryBytes": 0,
    })
}

/// Trino's error object: `errorType` tells clients a query at fault from a failing server.
fn error_json(e: &Error) -> Value {
    let (name, code) = match e {
        Error::Syntax(_) => ("SYNTAX_ERROR", 1),
        Error::Version { .. } => ("INVALID_ARGUMENTS", 7),
        _ if e.to_string().contains("not supported") => ("NOT_SUPPORTED", 13),
        _ if e.is_user_error() => ("GENERIC_USER_ERROR", 0),
        _ => ("GENERIC_INTERNAL_ERROR", 65536),
    };
    let kind = if e.is_user_error() { "USER_ERROR" } else { "INTERNAL_ERROR" };
    json!({
        "message": e.to_string(),
        "errorCode": code,
        "errorName": name,
        "errorType": kind,
        "failureInfo": {"type": "io.tidelake.QueryError", "message": e.to_string(), "suppressed": [], "stack": []},
    })
}

/// The Trino type of an Arrow column: its name and type signature.
fn trino_type(data_type: &DataType) -> (String, Value) {
    let simple = |name: &str| (name.to_string(), json!({"rawType": name, "arguments": []}));
    let long = |n: i64| json!({"kind": "LONG", "value": n});
    match data_type {
        DataType::Boolean => simple("boolean"),
        DataType::Int8 => simple("tinyint"),
        DataType::Int16 | DataType::UInt8 => simple("smallint"),
        DataType::Int32 | DataType::UInt16 => simple("integer"),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => simple("bigint"),
        DataType::Float32 | DataType::Float16 => simple("real"),
        DataType::Float64 => simple("double"),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => (
            format!("decimal({p},{s})"),
            json!({"rawType": "decimal", "arguments": [long(i64::from(*p)), long(i64::from(*s))]}),
        ),
        DataType::Date32 | DataType::Date64 => simple("date"),
        DataType::Timestamp(_, Some(_)) => (
            "timestamp(6) with time zone".into(),
            json!({"rawType": "timestamp with time zone", "arguments": [long(6)]}),
        ),
        DataType::Timestamp(_, None) => {
            ("timestamp(6)".into(), json!({"rawType": "timestamp", "arguments": [long(6)]}))
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            simple("varbinary")
        }
        DataType::Dictionary(_, value) => trino_type(value),
        _ => ("varchar".into(), json!({"rawType": "varchar", "arguments": [long(2147483647)]})),
    }
}

fn columns_json(schema: &SchemaRef) -> Value {
    Value::Array(
        schema
            .fields()
            .iter()
            .map(|f| {
                let (name, signature) = trino_type(f.data_type());
                json!({"name": f.name(), "type": name, "typeSignature": signature})
            })
            .collect(),
    )
}

/// Rows `from..to` of the result as Trino JSON rows.
fn page_rows(batches: &[RecordBatch], from: usize, to: usize) -> Result<Value, String> {
    let mut out = Vec::with_capacity(to - from);
    let mut start = 0;
    for batch in batches {
        let end = start + batch.num_rows();
        if end > from && start < to {
            let columns: Vec<ArrayRef> = batch.columns().iter().map(plain).collect::<Result<_, _>>()?;
            for row in from.max(start) - start..to.min(end) - start {
                out.push(Value::Array(columns.iter().map(|c| value(c, row)).collect::<Result<_, _>>()?));
            }
        }
        start = end;
    }
    Ok(Value::Array(out))
}

/// A dictionary column as its values; others as they are.
fn plain(column: &ArrayRef) -> Result<ArrayRef, String> {
    match column.data_type() {
        DataType::Dictionary(_, value) => cast(column, value).map_err(|e| e.to_string()),
        DataType::Utf8View | DataType::LargeUtf8 => cast(column, &DataType::Utf8).map_err(|e| e.to_string()),
        DataType::BinaryView | DataType::LargeBinary => cast(column, &DataType::Binary).map_err(|e| e.to_string()),
        _ => Ok(column.clone()),
    }
}

fn value(column: &ArrayRef, row: usize) -> Result<Value, String> {
    if column.is_null(row) {
        return Ok(Value::Null);
    }
    let shown = || arrow::util::display::array_value_to_string(column, row).map_err(|e| e.to_string());
    Ok(match column.data_type() {
        DataType::Boolean => json!(column.as_boolean().value(row)),
        DataType::Int8 => json!(column.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => json!(column.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => json!(column.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(column.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            json!(shown()?.parse::<u64>().map_err(|e| e.to_string())?)
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let x: f64 = shown()?.parse().map_err(|e: std::num::ParseFloatError| e.to_string())?;
            if x.is_finite() {
                json!(x)
            } else if x.is_nan() {
                json!("NaN")
            } else if x > 0.0 {
                json!("Infinity")
            } else {
                json!("-Infinity")
            }
        }
        DataType::Timestamp(unit, zone) => {
            let micros = timestamp_micros(column, *unit, row);
            let t = chrono::DateTime::from_timestamp_micros(micros).ok_or("timestamp out of range")?;
            let text = t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            match zone {
                Some(_) => json!(format!("{text} UTC")),
                None => json!(text),
            }
        }
        DataType::Binary => json!(STANDARD.encode(column.as_binary::<i32>().value(row))),
        DataType::FixedSizeBinary(_) => json!(STANDARD.encode(column.as_fixed_size_binary().value(row))),
        _ => json!(shown()?),
    })
}

fn timestamp_micros(column: &ArrayRef, unit: TimeUnit, row: usize) -> i64 {
    use arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };
    match unit {
        TimeUnit::Second => column.as_primitive::<TimestampSecondType>().value(row) * 1_000_000,
        TimeUnit::Millisecond => column.as_primitive::<TimestampMillisecondType>().value(row) * 1_000,
        TimeUnit::Microsecond => column.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => column.as_primitive::<TimestampNanosecondType>().value(row) / 1_000,
    }
}

fn json_response(body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response.headers_mut().insert("content-type", "application/json".parse().expect("valid header"));
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", "text/plain; charset=utf-8".parse().expect("valid header"));
    response
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_authenticates_only_its_user() {
        let line = format!("alice:{}", hash_password("s3cret"));
        let credentials =
            Credentials { users: Credentials::read_users(&line, "users").unwrap(), tokens: HashSet::new() };
        let basic = |u: &str, p: &str| format!("Basic {}", STANDARD.encode(format!("{u}:{p}")));
        assert_eq!(credentials.authenticate(Some(&basic("alice", "s3cret")), None).as_deref(), Some("alice"));
        assert_eq!(credentials.authenticate(Some(&basic("alice", "wrong")), None), None);
        assert_eq!(credentials.authenticate(Some(&basic("bob", "s3cret")), None), None);
        assert_eq!(credentials.authenticate(None, Some("alice")), None);
        assert!(Credentials::read_users("alice:plain", "users").unwrap_err().contains("users:1"));
    }

    #[test]
    fn values_take_trino_json_forms() {
        use arrow::array::{Decimal128Array, TimestampMicrosecondArray};
        let cost: ArrayRef =
            Arc::new(Decimal128Array::from(vec![Some(12_500_000)]).with_precision_and_scale(18, 6).unwrap());
        assert_eq!(value(&cost, 0).unwrap(), json!("12.500000"));
        assert_eq!(trino_type(cost.data_type()).0, "decimal(18,6)");
        let at: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_795_435_200_000_001]).with_timezone("UTC"));
        assert_eq!(value(&at, 0).unwrap(), json!("2026-11-23 12:00:00.000001 UTC"));
    }
}
