//! The Trino client protocol over HTTP, so Trino and Presto clients, JDBC drivers and BI tools
//! query the lake as they would query Trino.
//!
//! ```text
//! POST   /v1/statement                      SQL in the body -> {id, infoUri, nextUri, stats}
//! GET    /v1/statement/executing/{id}/{n}   page n: {columns, data?, nextUri?, stats} or {error, stats}
//! DELETE /v1/statement/executing/{id}/{n}   cancel (also DELETE /v1/query/{id}) -> 204
//! GET    /v1/info                           the node's version and uptime
//! GET    /v1/metrics                        what the server has counted
//! GET    /ui, /ui/status.json, /metrics     the status page and Prometheus metrics (see `ui`)
//! ```
//!
//! A query starts as soon as it is posted; a GET waits up to a second for rows, then answers with
//! what it has and the next page's `nextUri`. Rows are paged as they come from the running plan;
//! the last page has no `nextUri`. Values are in Trino's JSON forms (decimals as exact strings,
//! timestamps as `YYYY-MM-DD HH:MM:SS.ffffff UTC`, binary as base64), so the clients' type mappers
//! turn them into the right types.
//!
//! Bound to a loopback address it needs no credentials; on any other address it refuses to start
//! without users or tokens and without TLS, and then every request must carry HTTP basic
//! credentials of a known user or a known bearer token. A query is visible, pollable and
//! cancellable only by the user that posted it.
//!
//! ## Layout
//!
//! - this file: [`run`], the accept loop and the limits a connection meets ([`Options`]).
//! - `routes`: requests to answers: submit, poll, cancel, info, metrics.
//! - `ui`: the status page (`ui.html`) and the Prometheus metrics.
//! - [`query`]: a posted query from `QUEUED` to its last page.
//! - [`auth`]: users, passwords and tokens.
//! - [`tls`]: the certificate and key of `https`.
//! - [`wire`]: the protocol's JSON: types, values, stats and errors.

pub mod auth;
pub mod query;
mod routes;
pub mod tls;
pub mod ui;
pub mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

pub use auth::{check_exposure, hash_password, Credentials};
pub use query::PAGE_ROWS;

use crate::Connector;

/// How long a query is kept without a poll, as Trino's `query.client.timeout` defaults to.
pub const ABANDON_AFTER: Duration = Duration::from_secs(300);

/// What a server allows, and whom.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who may query; empty lets anyone in (loopback addresses only).
    pub credentials: Credentials,
    /// A query no client has polled for this long is dropped, running or finished, with its rows.
    pub abandon_after: Duration,
    /// Queries running at once; one more is refused with `QUERY_QUEUE_FULL`.
    pub max_queries: usize,
    /// Time a client has to send a request's headers once it has connected or sent the last
    /// request (a connection that sends nothing is closed after it), and to finish a TLS handshake.
    pub header_timeout: Duration,
    /// Serve `https` with this certificate (see [`tls::config`]); plain `http` without.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            credentials: Credentials::default(),
            abandon_after: ABANDON_AFTER,
            max_queries: 32,
            header_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// What the server counts, for `GET /v1/metrics`.
#[derive(Debug, Default)]
struct Metrics {
    queries: AtomicU64,
    failed: AtomicU64,
    internal_errors: AtomicU64,
    cancelled: AtomicU64,
    abandoned: AtomicU64,
    refused: AtomicU64,
    queue_full: AtomicU64,
    accept_errors: AtomicU64,
}

struct State {
    connector: Arc<Connector>,
    options: Options,
    auth: auth::Authenticator,
    /// `http` or `https`, for the URIs the responses give.
    scheme: &'static str,
    queries: Mutex<HashMap<String, Entry>>,
    next_id: AtomicU64,
    metrics: Metrics,
    started: Instant,
    /// What the status page and the Prometheus metrics show.
    book: std::sync::Mutex<ui::Book>,
    /// Held while the tables' status is looked up: one lookup at a time.
    looking: Mutex<()>,
    /// Set when the server stops, so the status sampler stops too.
    stopped: std::sync::atomic::AtomicBool,
}

/// A query and when a client last asked for it.
struct Entry {
    query: Arc<query::Query>,
    polled: Instant,
    /// Its statement's first kilobyte, for the status page.
    sql: String,
}

/// Serves `connector` on `listener` until `shutdown` completes, letting `credentials` in.
pub async fn run(
    listener: TcpListener,
    connector: Arc<Connector>,
    credentials: Credentials,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_with(listener, connector, Options { credentials, ..Options::default() }, shutdown).await
}

/// Like [`run`], with every limit given.
pub async fn run_with(
    listener: TcpListener,
    connector: Arc<Connector>,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    check_exposure(addr, &options.credentials, options.tls.is_some())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
    let mut sweep = tokio::time::interval((options.abandon_after / 4).max(Duration::from_millis(100)));
    let header_timeout = options.header_timeout;
    let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let state = Arc::new(State {
        connector,
        auth: auth::Authenticator::new(options.credentials.clone()),
        scheme: if acceptor.is_some() { "https" } else { "http" },
        options,
        queries: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        metrics: Metrics::default(),
        started: Instant::now(),
        book: Default::default(),
        looking: Mutex::new(()),
        stopped: Default::default(),
    });
    tracing::info!(%addr, scheme = state.scheme, "serving the Trino client protocol");
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, a connection reset before it was accepted: the
                    // listener itself is fine, so the loop goes on after a breath.
                    state.metrics.accept_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(error = %e, "accepting a connection failed; still serving");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = sweep.tick() => {
                routes::drop_abandoned(&state).await;
                continue;
            }
            () = &mut shutdown => break,
        };
        let (state, acceptor) = (state.clone(), acceptor.clone());
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                return serve(state, TokioIo::new(stream), peer, header_timeout).await;
            };
            match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve(state, TokioIo::new(stream), peer, header_timeout).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    state.stopped.store(true, std::sync::atomic::Ordering::Relaxed);
    state.queries.lock().await.clear();
    Ok(())
}

/// Serves the requests of one connection.
async fn serve<I>(state: Arc<State>, io: I, peer: std::net::SocketAddr, header_timeout: Duration)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(routes::handle(&state, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(io, service);
    if let Err(e) = connection.await {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}
