//! Requests to answers: who is asking, then submit, poll, cancel, info and metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rand::Rng;
use serde_json::{json, Value};

use super::auth::Refusal;
use super::query::{Page, Query};
use super::{ui, wire, Entry, State};
use crate::session::{self, Session};

/// How long a poll waits for rows before it answers with what it has.
const POLL_WAIT: Duration = Duration::from_secs(1);

/// Bytes of a statement a log line holds.
const LOGGED_SQL_BYTES: usize = 1024;

pub(super) async fn handle(state: &Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let claimed = header("x-trino-user").or_else(|| header("x-presto-user"));
    let user = match state.auth.is_open() {
        true => claimed.clone().unwrap_or_else(|| "anonymous".into()),
        false => match state.auth.authenticate(header("authorization").as_deref(), claimed.as_deref()).await {
            Ok(user) => user,
            Err(refusal) => {
                state.metrics.refused.fetch_add(1, Ordering::Relaxed);
                let message = match refusal {
                    Refusal::Unauthenticated => "unknown user or wrong password or token\n".to_string(),
                    Refusal::NotThatUser { authenticated, claimed } => {
                        format!("the credentials of `{authenticated}` may not act as `{claimed}`\n")
                    }
                };
                let mut response = text(StatusCode::UNAUTHORIZED, &message);
                response
                    .headers_mut()
                    .insert("www-authenticate", "Basic realm=\"tidelake\"".parse().expect("valid header"));
                return response;
            }
        },
    };
    let base = format!("{}://{}", state.scheme, header("host").unwrap_or_else(|| "localhost".into()));
    let session = client_session(request.headers());
    let path: Vec<String> = request.uri().path().trim_matches('/').split('/').map(str::to_string).collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match (request.method().clone(), path.as_slice()) {
        (Method::POST, ["v1", "statement"]) => {
            let limit = state.connector.limits().max_statement_bytes;
            let body = match Limited::new(request.into_body(), limit).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("the statement is longer than {limit} bytes (--max-statement-bytes)\n"),
                    )
                }
                Err(e) => return text(StatusCode::BAD_REQUEST, &format!("reading the statement: {e}\n")),
            };
            let Ok(sql) = String::from_utf8(body.to_vec()) else {
                return text(StatusCode::BAD_REQUEST, "the statement is not UTF-8\n");
            };
            submit(state, &base, sql, session, &user).await
        }
        (Method::GET, ["v1", "statement", "executing", id, token]) => match token.parse::<u64>() {
            Ok(token) => poll(state, &base, id, token, &user).await,
            Err(_) => text(StatusCode::NOT_FOUND, "a page token is a number\n"),
        },
        (Method::DELETE, ["v1", "statement", "executing", id, _]) | (Method::DELETE, ["v1", "query", id]) => {
            let mut queries = state.queries.lock().await;
            if queries.get(*id).is_some_and(|e| e.query.user == user) {
                if let Some(entry) = queries.remove(*id) {
                    state.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                    over(state, id, &entry, "CANCELLED");
                }
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
        (Method::GET, ["v1", "metrics"]) => {
            let running = state.queries.lock().await.len();
            json_response(counters(state, running))
        }
        (Method::GET, ["ui"]) => {
            let mut response = Response::new(Full::new(Bytes::from_static(ui::page().as_bytes())));
            let headers = response.headers_mut();
            headers.insert("content-type", "text/html; charset=utf-8".parse().expect("valid header"));
            // The page runs its own script and fetches only from this server.
            headers.insert(
                "content-security-policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"
                    .parse()
                    .expect("valid header"),
            );
            response
        }
        (Method::GET, ["ui", "status.json"]) => json_response(ui::status_json(state).await),
        (Method::GET, ["metrics"]) => {
            let mut response = Response::new(Full::new(Bytes::from(ui::prometheus(state).await)));
            response
                .headers_mut()
                .insert("content-type", "text/plain; version=0.0.4; charset=utf-8".parse().expect("valid header"));
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not a Trino client protocol endpoint (nor /ui or /metrics)\n"),
    }
}

async fn submit(
    state: &Arc<State>,
    base: &str,
    sql: String,
    session: crate::Result<Session>,
    user: &str,
) -> Response<Full<Bytes>> {
    let id = query_id(state);
    let info_uri = format!("{base}/v1/query/{id}");
    state.metrics.queries.fetch_add(1, Ordering::Relaxed);
    let mut queries = state.queries.lock().await;
    if queries.len() >= state.options.max_queries {
        drop(queries);
        state.metrics.queue_full.fetch_add(1, Ordering::Relaxed);
        let message = format!(
            "{} queries are running, as many as this server runs at once (--max-queries); try again when one has finished",
            state.options.max_queries
        );
        return json_response(json!({
            "id": id,
            "infoUri": info_uri,
            "stats": wire::stats("FAILED", 0, 0),
            "error": wire::error_json(wire::QUERY_QUEUE_FULL, &message),
            "warnings": [],
        }));
    }
    tracing::info!(query = %id, %user, sql = %logged(&sql), bytes = sql.len(), "query");
    let shown = logged(&sql).to_string();
    let connector = state.connector.clone();
    let start = tokio::spawn(async move { connector.stream(&sql, &session?).await });
    let query = Arc::new(Query::new(user, start));
    queries.insert(id.clone(), Entry { query, polled: Instant::now(), sql: shown });
    json_response(json!({
        "id": id,
        "infoUri": info_uri,
        "nextUri": format!("{base}/v1/statement/executing/{id}/0"),
        "stats": wire::stats("QUEUED", 0, 0),
    }))
}

async fn poll(state: &Arc<State>, base: &str, id: &str, token: u64, user: &str) -> Response<Full<Bytes>> {
    let query = match state.queries.lock().await.get_mut(id) {
        // Another user's query is not there for this one.
        Some(entry) if entry.query.user == user => {
            entry.polled = Instant::now();
            entry.query.clone()
        }
        _ => return text(StatusCode::NOT_FOUND, &format!("no query {id} (finished, cancelled or never posted)\n")),
    };
    let info_uri = format!("{base}/v1/query/{id}");
    let uri = |n: u64| format!("{base}/v1/statement/executing/{id}/{n}");
    match query.page(id, token, POLL_WAIT, &info_uri, uri).await {
        Page::WrongToken { next } => text(
            StatusCode::GONE,
            &format!("query {id} has no page {token} to give: the next page is {next}, and only the last one served is given again\n"),
        ),
        Page::Served(page, changes) => {
            if page.last {
                if let Some(entry) = state.queries.lock().await.remove(id) {
                    over(state, id, &entry, if page.failure.is_some() { "FAILED" } else { "FINISHED" });
                }
            }
            if let Some((code, message)) = &page.failure {
                state.metrics.failed.fetch_add(1, Ordering::Relaxed);
                if code.kind == "INTERNAL_ERROR" {
                    state.metrics.internal_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(query = %id, error = %message, "query failed inside the server");
                }
            }
            let mut response = json_text_response(page.body);
            for change in changes {
                let (name, value) = change.header();
                match HeaderValue::from_str(&value) {
                    Ok(value) => {
                        response.headers_mut().append(name, value);
                    }
                    Err(_) => tracing::warn!(query = %id, header = name, "a session change has no header form"),
                }
            }
            response
        }
    }
}

/// The session a Trino (or Presto) client sent in its request headers.
fn client_session(headers: &HeaderMap) -> crate::Result<Session> {
    let one = |trino: &str, presto: &str| {
        headers.get(trino).or_else(|| headers.get(presto)).and_then(|v| v.to_str().ok()).map(str::to_string)
    };
    let all = |trino: &str, presto: &str| -> Vec<&str> {
        headers.get_all(trino).iter().chain(headers.get_all(presto).iter()).filter_map(|v| v.to_str().ok()).collect()
    };
    Ok(Session {
        catalog: one("x-trino-catalog", "x-presto-catalog"),
        schema: one("x-trino-schema", "x-presto-schema"),
        time_zone: one("x-trino-time-zone", "x-presto-time-zone"),
        properties: session::pairs(&all("x-trino-session", "x-presto-session"))?.into_iter().collect(),
        prepared: session::pairs(&all("x-trino-prepared-statement", "x-presto-prepared-statement"))?
            .into_iter()
            .collect(),
    })
}

/// What the server has counted (`GET /v1/metrics`), with `running` queries.
pub(super) fn counters(state: &State, running: usize) -> Value {
    let count = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let m = &state.metrics;
    json!({
        "queries": count(&m.queries),
        "failed": count(&m.failed),
        "internal_errors": count(&m.internal_errors),
        "cancelled": count(&m.cancelled),
        "abandoned": count(&m.abandoned),
        "refused": count(&m.refused),
        "queue_full": count(&m.queue_full),
        "accept_errors": count(&m.accept_errors),
        "running": running,
        "kafka_poison_skipped": state.connector.poison_skipped(),
        "kafka_offsets_read": state.connector.tail_offsets_read(),
        "result_cache": state.connector.cache_stats(),
    })
}

/// Lists a query that is over on the status page.
fn over(state: &State, id: &str, entry: &Entry, how: &'static str) {
    let finished = ui::FinishedQuery {
        id: id.to_string(),
        user: entry.query.user.clone(),
        sql: entry.sql.clone(),
        state: how,
        seconds: entry.query.started.elapsed().as_secs_f64(),
        ended_ms: chrono::Utc::now().timestamp_millis(),
    };
    state.book.lock().expect("status book lock").finished(finished);
}

/// Drops the queries no client has polled for the server's `abandon_after`.
pub(super) async fn drop_abandoned(state: &State) {
    let mut queries = state.queries.lock().await;
    let limit = state.options.abandon_after;
    let gone: Vec<String> =
        queries.iter().filter(|(_, e)| e.polled.elapsed() > limit).map(|(id, _)| id.clone()).collect();
    for id in gone {
        if let Some(entry) = queries.remove(&id) {
            state.metrics.abandoned.fetch_add(1, Ordering::Relaxed);
            over(state, &id, &entry, "ABANDONED");
            tracing::info!(query = %id, idle_s = entry.polled.elapsed().as_secs(), "query abandoned by its client: dropped");
        }
    }
}

/// A query id in Trino's shape (`20261202_101500_00001_...`) whose tail is 80 random bits from a
/// CSPRNG: an id cannot be guessed from another.
fn query_id(state: &State) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let mut rng = rand::rng();
    let tail: String = (0..16).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{}_{n:05}_{tail}", chrono::Utc::now().format("%Y%m%d_%H%M%S"))
}

/// The first kilobyte of a statement, for a log line.
fn logged(sql: &str) -> &str {
    if sql.len() <= LOGGED_SQL_BYTES {
        return sql;
    }
    let mut end = LOGGED_SQL_BYTES;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    &sql[..end]
}

fn json_response(body: Value) -> Response<Full<Bytes>> {
    json_text_response(Bytes::from(body.to_string()))
}

fn json_text_response(body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
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
