//! A posted query, from `QUEUED` to its last page.
//!
//! The statement starts as soon as it is posted. Its rows are not kept: each poll takes the next
//! page from the running plan, so a result is held one page at a time however large it is, and a
//! result nobody polls stops the plan a couple of batches ahead (the connector's backpressure).
//! Page `n` answers the request for token `n`; asking for the page just served again gets it
//! again (a client retrying a lost response), any other token is refused.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use serde_json::json;
use tokio::task::JoinHandle;

use super::wire::{self, ErrorCode};
use crate::connector::Rows;
use crate::error::{Error, Result};
use crate::session::Change;

/// Rows per page of a result.
pub const PAGE_ROWS: usize = 4096;

/// One posted query.
#[derive(Debug)]
pub(crate) struct Query {
    /// The user that posted it: the only one who may poll or cancel it.
    pub user: String,
    pub started: Instant,
    pager: tokio::sync::Mutex<Pager>,
}

/// What a poll gets.
#[derive(Debug)]
pub(crate) enum Page {
    /// A page, and the changes the statement made to the client's session (sent as headers with
    /// each page once known).
    Served(Served, Vec<Change>),
    /// A token that is neither the next page nor the one just served.
    WrongToken { next: u64 },
}

/// A page as served: kept as it was sent, for a client that asks for it again.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    /// The response's JSON text.
    pub body: Bytes,
    /// Whether it is the last page (the query is then over).
    pub last: bool,
    /// The error it reports, when the query failed.
    pub failure: Option<(ErrorCode, String)>,
}

#[derive(Debug)]
struct Pager {
    stage: Stage,
    /// The token the next page answers.
    next: u64,
    /// The last page served, for a client that asks for it again.
    again: Option<(u64, Served)>,
    schema: Option<SchemaRef>,
    rows_served: u64,
    /// Trino's `updateType` of a statement that is not a query.
    update_type: Option<&'static str>,
    /// What the statement changed in the client's session.
    changes: Vec<Change>,
}

#[derive(Debug)]
enum Stage {
    /// Parsing, planning, reading Kafka tails: until the first rows can come.
    Starting(AbortOnDrop<Result<Rows>>),
    /// Rows coming; `pending` holds what a batch had beyond the last page.
    Streaming { rows: Rows, pending: Option<RecordBatch> },
    /// Over: finished or failed.
    Over,
}

/// A task stopped when its handle is dropped.
#[derive(Debug)]
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Query {
    /// A query whose rows `start` brings (it runs on its own from now on).
    pub fn new(user: &str, start: JoinHandle<Result<Rows>>) -> Query {
        let pager = Pager {
            stage: Stage::Starting(AbortOnDrop(start)),
            next: 0,
            again: None,
            schema: None,
            rows_served: 0,
            update_type: None,
            changes: Vec::new(),
        };
        Query { user: user.to_string(), started: Instant::now(), pager: tokio::sync::Mutex::new(pager) }
    }

    /// The page for `token`, waiting up to `wait` for rows; `uri(n)` is the `nextUri` of page `n`.
    pub async fn page(
        &self,
        id: &str,
        token: u64,
        wait: Duration,
        info_uri: &str,
        uri: impl Fn(u64) -> String,
    ) -> Page {
        let mut pager = self.pager.lock().await;
        if let Some((served, page)) = &pager.again {
            if *served == token {
                let changes = if page.failure.is_some() { Vec::new() } else { pager.changes.clone() };
                return Page::Served(page.clone(), changes);
            }
        }
        if token != pager.next {
            return Page::WrongToken { next: pager.next };
        }
        let deadline = tokio::time::Instant::now() + wait;
        let outcome = pager.fill(deadline).await;
        let elapsed = self.started.elapsed().as_millis() as u64;
        let mut body = json!({"id": id, "infoUri": info_uri, "warnings": []});
        if let Some(schema) = &pager.schema {
            body["columns"] = wire::columns_json(schema);
        }
        if let Some(update_type) = pager.update_type {
            body["updateType"] = json!(update_type);
        }
        let (last, failure, data) = match outcome {
            Filled::Rows(data, count, more) => {
                pager.rows_served += count as u64;
                let state = match (&pager.stage, more) {
                    (_, false) => "FINISHED",
                    (Stage::Starting(_), true) => "QUEUED",
                    _ => "RUNNING",
                };
                body["stats"] = wire::stats(state, elapsed, pager.rows_served);
                (!more, None, data)
            }
            Filled::Failed(code, message) => {
                body["stats"] = wire::stats("FAILED", elapsed, pager.rows_served);
                body["error"] = wire::error_json(code, &message);
                (true, Some((code, message)), Vec::new())
            }
        };
        if !last {
            body["nextUri"] = json!(uri(token + 1));
        }
        // The rows go in as the text they were written to, after the rest of the body.
        let mut text = serde_json::to_vec(&body).expect("a JSON value is written");
        if !data.is_empty() {
            text.pop();
            text.extend_from_slice(b",\"data\":[");
            text.extend_from_slice(&data);
            text.extend_from_slice(b"]}");
        }
        let page = Served { body: Bytes::from(text), last, failure };
        pager.next = token + 1;
        pager.again = Some((token, page.clone()));
        let changes = match page.failure {
            Some(_) => Vec::new(),
            None => pager.changes.clone(),
        };
        Page::Served(page, changes)
    }
}

/// What a page holds.
enum Filled {
    /// Rows (maybe none yet) as a page's `data` text, how many, and whether more may come.
    Rows(Vec<u8>, usize, bool),
    /// The query failed.
    Failed(ErrorCode, String),
}

impl Pager {
    /// Takes up to [`PAGE_ROWS`] rows, waiting for them until `deadline`.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> Filled {
        if let Stage::Starting(start) = &mut self.stage {
            let started = match tokio::time::timeout_at(deadline, &mut start.0).await {
                Err(_) => return Filled::Rows(Vec::new(), 0, true),
                Ok(Ok(started)) => started,
                Ok(Err(e)) => Err(Error::Panicked(format!("the query's task ended: {e}"))),
            };
            match started {
                Ok(rows) => {
                    self.schema = Some(rows.schema());
                    self.update_type = rows.update_type();
                    self.changes = rows.changes().to_vec();
                    self.stage = Stage::Streaming { rows, pending: None };
                }
                Err(e) => return self.fail(&e),
            }
        }
        let Stage::Streaming { rows, pending } = &mut self.stage else {
            return Filled::Rows(Vec::new(), 0, false);
        };
        let (mut data, mut count) = (Vec::new(), 0);
        loop {
            let batch = match pending.take() {
                Some(batch) => batch,
                None if count > 0 && tokio::time::Instant::now() >= deadline => return Filled::Rows(data, count, true),
                None => match tokio::time::timeout_at(deadline, rows.next()).await {
                    Err(_) => return Filled::Rows(data, count, true),
                    Ok(None) => {
                        self.stage = Stage::Over;
                        return Filled::Rows(data, count, false);
                    }
                    Ok(Some(Err(e))) => return self.fail(&e),
                    Ok(Some(Ok(batch))) => batch,
                },
            };
            let room = PAGE_ROWS - count;
            let (take, rest) = match batch.num_rows() > room {
                true => (batch.slice(0, room), Some(batch.slice(room, batch.num_rows() - room))),
                false => (batch, None),
            };
            if let Err(e) = wire::write_rows(&take, &mut data) {
                let e = Error::Panicked(format!("a value has no Trino JSON form: {e}"));
                return self.fail(&e);
            }
            count += take.num_rows();
            *pending = rest;
            if count == PAGE_ROWS {
                return Filled::Rows(data, count, true);
            }
        }
    }

    fn fail(&mut self, e: &Error) -> Filled {
        self.stage = Stage::Over;
        Filled::Failed(wire::error_code(e), e.to_string())
    }
}
