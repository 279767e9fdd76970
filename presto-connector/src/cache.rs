//! The result cache: a statement asked again over unchanged lake tables is answered from memory,
//! and an aggregate over a long range of a lake table computes each closed day once.
//!
//! Whole statements: the rows of a query that reads only the latest snapshots of `lake` tables,
//! with no function whose answer can change between two runs (`now()`, `current_date`,
//! `random()`), are kept under its text, its parameters and the session settings that shape
//! results (catalog, schema, time zone, properties). They are given again, without planning, while
//! each of those tables' last commit is still the one the rows were computed from: one storage
//! `HEAD` of that commit (the same file, not a table made again at the place) and one of the next
//! version (not there). `kafka` and `live` tables, time travel, `system` and metadata tables are
//! never kept whole. A result larger than a quarter of the budget is not kept.
//!
//! Closed days: //! a query whose plan aggregates one `lake` table partitioned by `event_date` (every rollup table,
//! and data tables partitioned by date) with mergeable functions only (`count`, `sum`, `min`,
//! `max`, without `DISTINCT` or `FILTER`) is split per day: the aggregate runs once per
//! `event_date` partition with the query's own filters, each closed day's partial result is kept,
//! and the partials are merged per group before the rest of the plan (`HAVING`, `ORDER BY`,
//! `LIMIT`, joins) runs on them.
//!
//! - Signature: the day's sub-plan as the optimizer leaves it (table, projected columns, filters,
//!   grouping and aggregate expressions), with the conditions that every row of the day meets
//!   taken out. A dashboard's `hour >= '2026-11-01'` and a wider `hour >= '2026-10-25'` share the
//!   entry of 2026-11-03; `LIMIT` and ordering apply after the merge, so they share it too.
//! - Validity: an entry holds the fingerprint of its day's data files (paths and sizes in the
//!   snapshot). A commit that adds or removes a file of that day (a late event, compaction, a
//!   reprocess) makes the next lookup recompute the day; other days stay cached.
//! - Closed days: the days before today (UTC). Today is computed at every query and never kept.
//! - Size: entries are dropped least recently used first above the configured byte budget.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::catalog::MemTable;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DataFusionError, ScalarValue};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::execution::SessionState;
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    cast, lit, Aggregate, Between, BinaryExpr, Expr, Filter, LogicalPlan, LogicalPlanBuilder, Operator, Projection,
    TableScan, TableScanBuilder, Volatility,
};
use datafusion::object_store::ObjectStoreExt;
use datafusion::optimizer::optimize_projections::OptimizeProjections;
use datafusion::optimizer::{OptimizerContext, OptimizerRule};
use deltalake::{ObjectMeta, ObjectStore, ObjectStoreError, Path};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::lake_table::{column_against_literal, nanos, DayColumns, LakeTable, NANOS_PER_DAY};

/// Days computed at once when a query is split.
const PARALLEL_DAYS: usize = 4;

/// A whole statement's rows are kept when they take at most this share of the budget.
const ANSWER_SHARE: usize = 4;

/// Partial aggregates per closed day, shared by every query of a [`Connector`](crate::Connector).
#[derive(Debug)]
pub struct ResultCache {
    max_bytes: usize,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
    open_days: AtomicU64,
    split_queries: AtomicU64,
    statement_hits: AtomicU64,
    statement_misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    bytes: usize,
    clock: u64,
}

/// What an entry answers: a closed day of an aggregate (by its sub-plan's signature), or a whole
/// statement (by [`statement_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Day(String),
    Statement(String),
}

#[derive(Debug)]
struct Entry {
    valid: Valid,
    batches: Vec<RecordBatch>,
    bytes: usize,
    used: u64,
}

/// When an entry still holds.
#[derive(Debug, Clone)]
enum Valid {
    /// While the day's data files are those of this fingerprint.
    Files([u8; 32]),
    /// While each table's last commit is the one the rows were computed from.
    Tables { tables: Vec<TableAt>, schema: SchemaRef },
}

/// The latest snapshot of a lake table a statement read: its log's store, version and the
/// stamp of that version's commit file.
#[derive(Debug, Clone)]
struct TableAt {
    store: Arc<dyn ObjectStore>,
    version: u64,
    stamp: Stamp,
}

/// What tells one commit file from another written at the same place later.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: DateTime<Utc>,
    size: u64,
    e_tag: Option<String>,
}

impl Stamp {
    fn of(meta: ObjectMeta) -> Stamp {
        Stamp { modified: meta.last_modified, size: meta.size, e_tag: meta.e_tag }
    }
}

/// A statement's rows being gathered to be kept, with the tables they come from.
#[derive(Debug)]
pub(crate) struct Answer {
    key: String,
    tables: tokio::task::JoinHandle<Option<Vec<TableAt>>>,
    batches: Vec<RecordBatch>,
    bytes: usize,
    room: usize,
}

/// What the cache has done since start, for the server's metrics.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CacheStats {
    /// Closed days served from the cache.
    pub hits: u64,
    /// Closed days computed (first seen, or their files changed) and kept.
    pub misses: u64,
    /// Open days (today) computed, never kept.
    pub open_days: u64,
    /// Queries split per day.
    pub split_queries: u64,
    /// Whole statements answered from the cache.
    pub statement_hits: u64,
    /// Whole statements computed and kept (first seen, or a table they read has changed).
    pub statement_misses: u64,
    /// The share of lookups, whole statements and closed days, answered from the cache:
    /// `(statement_hits + hits) / (statement_hits + statement_misses + hits + misses)`, 0 before
    /// any lookup.
    pub hit_rate: f64,
    /// Entries held.
    pub entries: usize,
    /// Bytes held (Arrow buffers).
    pub bytes: usize,
}

/// One aggregate of the plan that can be split, with what is needed to split it.
struct Candidate {
    aggregate: LogicalPlan,
    table: Arc<LakeTable>,
}

/// How much of one day a condition keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cover {
    All,
    Some,
    None,
}

impl ResultCache {
    /// A cache holding at most `max_bytes` of partial results.
    pub fn new(max_bytes: usize) -> Self {
        ResultCache {
            max_bytes,
            entries: Mutex::new(Entries::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            open_days: AtomicU64::new(0),
            split_queries: AtomicU64::new(0),
            statement_hits: AtomicU64::new(0),
            statement_misses: AtomicU64::new(0),
        }
    }

    /// The counters and size.
    pub fn stats(&self) -> CacheStats {
        let (hits, misses) = (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed));
        let statement_hits = self.statement_hits.load(Ordering::Relaxed);
        let statement_misses = self.statement_misses.load(Ordering::Relaxed);
        let (found, lookups) = (hits + statement_hits, hits + misses + statement_hits + statement_misses);
        let entries = self.entries.lock().expect("cache lock");
        CacheStats {
            hits,
            misses,
            open_days: self.open_days.load(Ordering::Relaxed),
            split_queries: self.split_queries.load(Ordering::Relaxed),
            statement_hits,
            statement_misses,
            hit_rate: if lookups == 0 { 0.0 } else { found as f64 / lookups as f64 },
            entries: entries.map.len(),
            bytes: entries.bytes,
        }
    }

    /// `plan` (optimized) with each splittable aggregate replaced by the merge of its days, or
    /// `None` when nothing in it can be split.
    pub(crate) async fn rewrite(&self, state: &SessionState, plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
        if matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)) {
            return Ok(None);
        }
        let candidates = candidates(plan)?;
        let today = Utc::now().date_naive();
        let mut replacements = Vec::new();
        for candidate in candidates {
            let days = day_files(&candidate.table)?;
            if !days.keys().any(|d| *d < today) {
                continue;
            }
            let merged = self.merge_days(state, &candidate, &days, today).await?;
            replacements.push((candidate.aggregate, merged));
        }
        if replacements.is_empty() {
            return Ok(None);
        }
        self.split_queries.fetch_add(1, Ordering::Relaxed);
        let rewritten = plan.clone().transform_up(|node| {
            match replacements.iter().position(|(aggregate, _)| *aggregate == node) {
                Some(i) => Ok(Transformed::yes(replacements[i].1.clone())),
                None => Ok(Transformed::no(node)),
            }
        })?;
        Ok(Some(rewritten.data))
    }

    /// The aggregate's result from its per-day partials: a plan with the aggregate's own schema.
    async fn merge_days(
        &self,
        state: &SessionState,
        candidate: &Candidate,
        days: &BTreeMap<NaiveDate, [u8; 32]>,
        today: NaiveDate,
    ) -> Result<LogicalPlan> {
        let LogicalPlan::Aggregate(aggregate) = &candidate.aggregate else { unreachable!("candidates are aggregates") };
        let columns = candidate.table.day_columns().expect("candidates have day columns");
        let per_day: Vec<_> = days
            .iter()
            .map(|(day, fingerprint)| self.day(state, aggregate, columns, *day, fingerprint, today))
            .collect();
        let partials: Vec<Vec<RecordBatch>> =
            futures::stream::iter(per_day).buffered(PARALLEL_DAYS).try_collect().await?;
        let partial_schema = Arc::new(Schema::new(
            aggregate
                .schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batches = partials
            .into_iter()
            .flatten()
            .map(|b| RecordBatch::try_new(partial_schema.clone(), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(DataFusionError::from)?;
        merge_plan(aggregate, partial_schema, batches)
    }

    /// One day's partial aggregate: from the cache when the day is closed and its files are those
    /// it was computed from; otherwise computed (and kept when closed). No rows when the query's
    /// conditions exclude the whole day.
    async fn day(
        &self,
        state: &SessionState,
        aggregate: &Aggregate,
        columns: &DayColumns,
        day: NaiveDate,
        fingerprint: &[u8; 32],
        today: NaiveDate,
    ) -> Result<Vec<RecordBatch>> {
        let Some(input) = restrict(&aggregate.input, columns, day)? else {
            return Ok(Vec::new());
        };
        let plan = LogicalPlan::Aggregate(Aggregate::try_new(
            Arc::new(input),
            aggregate.group_expr.clone(),
            aggregate.aggr_expr.clone(),
        )?);
        // Only the columns the day's plan uses: a condition the whole day meets, dropped above,
        // may have been the only reader of a column, and whether the table applied it (a
        // midnight bound on the time column) or a filter did, the day's plan is the same.
        let plan = OptimizeProjections::new().rewrite(plan, &OptimizerContext::new())?.data;
        let closed = day < today;
        let signature = plan.display_indent().to_string();
        if closed {
            if let Some(batches) = self.lookup(&Key::Day(signature.clone()), fingerprint) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(batches);
            }
        }
        let physical = state.create_physical_plan(&plan).await?;
        let batches = datafusion::physical_plan::collect(physical, state.task_ctx()).await?;
        if closed {
            self.misses.fetch_add(1, Ordering::Relaxed);
            self.insert(Key::Day(signature), Valid::Files(*fingerprint), batches.clone());
        } else {
            self.open_days.fetch_add(1, Ordering::Relaxed);
        }
        Ok(batches)
    }

    fn lookup(&self, key: &Key, fingerprint: &[u8; 32]) -> Option<Vec<RecordBatch>> {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.clock += 1;
        let clock = entries.clock;
        let entry = entries.map.get_mut(key).filter(|e| matches!(e.valid, Valid::Files(f) if f == *fingerprint))?;
        entry.used = clock;
        Some(entry.batches.clone())
    }

    /// The rows kept for the statement of `key` (see [`statement_key`]) with their columns, when
    /// every table they were computed from is still at that commit.
    pub(crate) async fn answer(&self, key: &str) -> Option<(SchemaRef, Vec<RecordBatch>)> {
        let key = Key::Statement(key.to_string());
        let (tables, schema, batches) = {
            let entries = self.entries.lock().expect("cache lock");
            match entries.map.get(&key) {
                Some(Entry { valid: Valid::Tables { tables, schema }, batches, .. }) => {
                    (tables.clone(), schema.clone(), batches.clone())
                }
                _ => return None,
            }
        };
        let current = futures::future::join_all(tables.iter().map(is_current)).await;
        let mut entries = self.entries.lock().expect("cache lock");
        if !current.iter().all(|c| *c) {
            if let Some(gone) = entries.map.remove(&key) {
                entries.bytes -= gone.bytes;
            }
            return None;
        }
        entries.clock += 1;
        let clock = entries.clock;
        if let Some(entry) = entries.map.get_mut(&key) {
            entry.used = clock;
        }
        self.statement_hits.fetch_add(1, Ordering::Relaxed);
        Some((schema, batches))
    }

    /// Starts gathering the rows of the statement of `key`, planned as `plan`: `None` when its
    /// rows cannot be kept whole (see the module's documentation).
    /// The commit files of the tables are looked up while the statement runs.
    pub(crate) fn gather(&self, key: String, plan: &LogicalPlan) -> Option<Answer> {
        let tables = latest_tables_read(plan)?;
        let tables = tokio::spawn(async move {
            let stamps = futures::future::join_all(tables.iter().map(|t| table_at(t.table()))).await;
            stamps.into_iter().collect::<Option<Vec<_>>>()
        });
        Some(Answer { key, tables, batches: Vec::new(), bytes: 0, room: self.max_bytes / ANSWER_SHARE })
    }

    /// Keeps `answer`'s rows under its statement's key.
    pub(crate) async fn keep(&self, answer: Answer, schema: SchemaRef) {
        let Ok(Some(tables)) = answer.tables.await else { return };
        self.statement_misses.fetch_add(1, Ordering::Relaxed);
        self.insert(Key::Statement(answer.key), Valid::Tables { tables, schema }, answer.batches);
    }

    fn insert(&self, key: Key, valid: Valid, batches: Vec<RecordBatch>) {
        let named = match &key {
            Key::Day(text) | Key::Statement(text) => text.len(),
        };
        let bytes = named + batches.iter().map(|b| b.get_array_memory_size()).sum::<usize>();
        if bytes > self.max_bytes {
            return;
        }
        let mut entries = self.entries.lock().expect("cache lock");
        entries.clock += 1;
        let used = entries.clock;
        if let Some(old) = entries.map.insert(key, Entry { valid, batches, bytes, used }) {
            entries.bytes -= old.bytes;
        }
        entries.bytes += bytes;
        while entries.bytes > self.max_bytes {
            let Some(oldest) = entries.map.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else {
                break;
            };
            let gone = entries.map.remove(&oldest).expect("the key was just found");
            entries.bytes -= gone.bytes;
        }
    }
}

impl Answer {
    /// Adds a batch of the statement's rows; `false` once they are more than may be kept, and
    /// nothing is kept.
    pub(crate) fn add(&mut self, batch: &RecordBatch) -> bool {
        self.bytes += batch.get_array_memory_size();
        if self.bytes > self.room {
            self.batches = Vec::new();
            return false;
        }
        self.batches.push(batch.clone());
        true
    }
}

/// The key of a statement's whole answer: its text, its parameters and the session settings that
/// shape its rows.
pub(crate) fn statement_key(sql: &str, params: &[String], session: &crate::session::Session) -> String {
    format!("{:?}", (&session.catalog, &session.schema, &session.time_zone, &session.properties, params, sql))
}

/// The lake tables `plan` reads, each at its latest snapshot, when that is all it reads and
/// nothing in it can answer differently over the same data; `None` otherwise.
fn latest_tables_read(plan: &LogicalPlan) -> Option<Vec<Arc<LakeTable>>> {
    let mut tables: Vec<Arc<LakeTable>> = Vec::new();
    let mut keep = true;
    let outcome = plan.apply_with_subqueries(|node| {
        let fixed = match node {
            LogicalPlan::TableScan(scan) => match lake_table(scan) {
                Some(table) if table.is_latest() => {
                    tables.push(table);
                    true
                }
                _ => false,
            },
            LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::Extension(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::DescribeTable(_) => false,
            _ => node.expressions().iter().all(immutable),
        };
        keep &= fixed;
        Ok(if fixed { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    });
    (outcome.is_ok() && keep && !tables.is_empty()).then_some(tables)
}

/// Whether `expr` gives the same value for the same input at any time: no function in it is
/// stable (`now()`, `current_date`) or volatile (`random()`), and no parameter is left unbound.
fn immutable(expr: &Expr) -> bool {
    let mut fixed = true;
    let _ = expr.apply(|e| {
        let volatility = match e {
            Expr::ScalarFunction(f) => f.func.signature().volatility,
            Expr::AggregateFunction(f) => f.func.signature().volatility,
            Expr::Placeholder(_) => Volatility::Volatile,
            _ => Volatility::Immutable,
        };
        fixed &= volatility == Volatility::Immutable;
        Ok(if fixed { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    });
    fixed
}

/// The commit file of `table`'s loaded version: `None` when it cannot be read.
async fn table_at(table: &deltalake::DeltaTable) -> Option<TableAt> {
    let version = table.version()?;
    let store = table.log_store().object_store(None);
    let stamp = Stamp::of(store.head(&commit_path(version)).await.ok()?);
    Some(TableAt { store, version, stamp })
}

/// Whether `table`'s version is still its last commit, in the same commit file.
async fn is_current(table: &TableAt) -> bool {
    let (this, next) = (commit_path(table.version), commit_path(table.version + 1));
    let (this, next) = futures::join!(table.store.head(&this), table.store.head(&next));
    let same = this.is_ok_and(|m| Stamp::of(m) == table.stamp);
    same && matches!(next, Err(ObjectStoreError::NotFound { .. }))
}

/// Where commit `version` of a table lies in its log.
fn commit_path(version: u64) -> Path {
    Path::from(format!("_delta_log/{version:020}.json"))
}

/// The lake table `scan` reads, when it reads one.
fn lake_table(scan: &TableScan) -> Option<Arc<LakeTable>> {
    let provider = source_as_provider(&scan.source).ok()?;
    Arc::downcast::<LakeTable>(provider as Arc<dyn std::any::Any + Send + Sync>).ok()
}

/// The aggregates of `plan` that read one day-partitioned lake table through projections, filters
/// and aliases only, with mergeable aggregate functions and nothing volatile.
fn candidates(plan: &LogicalPlan) -> Result<Vec<Candidate>> {
    let mut found = Vec::new();
    plan.apply(|node| {
        if let LogicalPlan::Aggregate(aggregate) = node {
            if let Some(table) = splittable(aggregate) {
                found.push(Candidate { aggregate: node.clone(), table });
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

fn splittable(aggregate: &Aggregate) -> Option<Arc<LakeTable>> {
    let fields = aggregate.group_expr.len() + aggregate.aggr_expr.len();
    if aggregate.schema.fields().len() != fields
        || aggregate.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_)) || e.is_volatile())
        || !aggregate.aggr_expr.iter().all(|e| merge_function(e).is_some() && !e.is_volatile())
    {
        return None;
    }
    let mut node = aggregate.input.as_ref();
    loop {
        if node.expressions().iter().any(|e| e.is_volatile()) {
            return None;
        }
        node = match node {
            LogicalPlan::Projection(p) => &p.input,
            LogicalPlan::Filter(f) => &f.input,
            LogicalPlan::SubqueryAlias(a) => &a.input,
            LogicalPlan::TableScan(scan) if scan.fetch.is_none() => {
                let table = lake_table(scan)?;
                return table.day_columns().is_some().then_some(table);
            }
            _ => return None,
        };
    }
}

/// How a partial of this aggregate expression is merged: the function's name.
fn merge_function(expr: &Expr) -> Option<&'static str> {
    let expr = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
        return None;
    };
    if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
        return None;
    }
    match func.name() {
        "count" => Some("count"),
        "sum" => Some("sum"),
        "min" => Some("min"),
        "max" => Some("max"),
        _ => None,
    }
}

/// The merge of the partial rows into the aggregate's result, under the aggregate's own column
/// names and types, so the plan above it reads it unchanged.
fn merge_plan(aggregate: &Aggregate, partial_schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<LogicalPlan> {
    let groups = aggregate.group_expr.len();
    let table = MemTable::try_new(partial_schema.clone(), vec![batches])?;
    let scan = LogicalPlanBuilder::scan("tidelake_day_partials", provider_as_source(Arc::new(table)), None)?;
    let group_by: Vec<Expr> = (0..groups).map(|i| Expr::Column(Column::new_unqualified(format!("c{i}")))).collect();
    let merges: Vec<Expr> = aggregate
        .aggr_expr
        .iter()
        .enumerate()
        .map(|(j, e)| {
            let partial = Expr::Column(Column::new_unqualified(format!("c{}", groups + j)));
            match merge_function(e).expect("checked when the candidate was found") {
                "count" => sum(partial),
                "sum" => sum(partial),
                "min" => min(partial),
                _ => max(partial),
            }
        })
        .collect();
    let merged = scan.aggregate(group_by, merges)?.build()?;
    let restored: Vec<Expr> = aggregate
        .schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let (q, f) = merged.schema().qualified_field(i);
            let mut value = Expr::Column(Column::new(q.cloned(), f.name()));
            let is_count = i >= groups && merge_function(&aggregate.aggr_expr[i - groups]) == Some("count");
            if is_count {
                value = coalesce(vec![value, lit(0i64)]);
            }
            if f.data_type() != field.data_type() || is_count {
                value = cast(value, field.data_type().clone());
            }
            value.alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(restored, Arc::new(merged))?))
}

/// `input` narrowed to one day: conditions that keep the whole day dropped, `None` when one keeps
/// none of it, and `date = day` on the scan.
fn restrict(input: &LogicalPlan, columns: &DayColumns, day: NaiveDate) -> Result<Option<LogicalPlan>> {
    let narrowed = match input {
        LogicalPlan::Filter(filter) => {
            let Some(kept) = kept_conditions(&filter.predicate, columns, day) else {
                return Ok(None);
            };
            let Some(below) = restrict(&filter.input, columns, day)? else {
                return Ok(None);
            };
            match conjunction(kept) {
                Some(predicate) => LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(below))?),
                None => below,
            }
        }
        LogicalPlan::TableScan(scan) => return scan_of_day(scan, columns, day),
        other => {
            let Some(below) = restrict(other.inputs()[0], columns, day)? else {
                return Ok(None);
            };
            other.with_new_exprs(other.expressions(), vec![below])?
        }
    };
    Ok(Some(narrowed))
}

/// The scan with its day-wide conditions dropped and `date = day` applied above it, projected back
/// to the scan's own columns.
fn scan_of_day(scan: &TableScan, columns: &DayColumns, day: NaiveDate) -> Result<Option<LogicalPlan>> {
    let mut filters = Vec::new();
    for filter in &scan.filters {
        match kept_conditions(filter, columns, day) {
            None => return Ok(None),
            Some(kept) => filters.extend(conjunction(kept)),
        }
    }
    let schema = scan.source.schema();
    let date_index = schema.index_of(&columns.date).map_err(DataFusionError::from)?;
    let mut projection = scan.projection.clone().unwrap_or_else(|| (0..schema.fields().len()).collect());
    if !projection.contains(&date_index) {
        projection.push(date_index);
    }
    let widened = TableScanBuilder::new(scan.table_name.clone(), scan.source.clone())
        .with_projection(Some(projection))
        .with_filters(filters)
        .build()?;
    let date = Expr::Column(Column::new(Some(scan.table_name.clone()), &columns.date));
    let same_day = date.eq(lit(ScalarValue::Date32(Some(day_number(day)))));
    let filtered = Filter::try_new(same_day, Arc::new(LogicalPlan::TableScan(widened)))?;
    let columns: Vec<Expr> = scan.projected_schema.columns().into_iter().map(Expr::Column).collect();
    Ok(Some(LogicalPlan::Projection(Projection::try_new(columns, Arc::new(LogicalPlan::Filter(filtered)))?)))
}

/// The conjuncts of `predicate` that do not keep all of `day`, or `None` when one keeps none of it.
fn kept_conditions(predicate: &Expr, columns: &DayColumns, day: NaiveDate) -> Option<Vec<Expr>> {
    let mut kept = Vec::new();
    for condition in split_conjunction(predicate) {
        match cover(condition, columns, day) {
            Cover::All => {}
            Cover::Some => kept.push(condition.clone()),
            Cover::None => return None,
        }
    }
    Some(kept)
}

/// How much of `day` one condition keeps: only comparisons of the date or time column with a
/// literal are judged; anything else may keep some of it.
fn cover(condition: &Expr, columns: &DayColumns, day: NaiveDate) -> Cover {
    match condition {
        Expr::BinaryExpr(_) => {
            let Some((column, op, value)) = column_against_literal(condition) else {
                return Cover::Some;
            };
            if column.name == columns.date {
                match value {
                    ScalarValue::Date32(Some(v)) => {
                        compare(op, day_number(day) as i128, day_number(day) as i128, *v as i128)
                    }
                    _ => Cover::Some,
                }
            } else if columns.time.as_deref() == Some(column.name.as_str()) {
                match nanos(value) {
                    Some(v) => {
                        let start = day_number(day) as i128 * NANOS_PER_DAY;
                        compare(op, start, start + NANOS_PER_DAY - 1, v)
                    }
                    None => Cover::Some,
                }
            } else {
                Cover::Some
            }
        }
        Expr::Between(Between { expr, negated: false, low, high }) => {
            let low = Expr::BinaryExpr(BinaryExpr::new(expr.clone(), Operator::GtEq, low.clone()));
            let high = Expr::BinaryExpr(BinaryExpr::new(expr.clone(), Operator::LtEq, high.clone()));
            match (cover(&low, columns, day), cover(&high, columns, day)) {
                (Cover::None, _) | (_, Cover::None) => Cover::None,
                (Cover::All, Cover::All) => Cover::All,
                _ => Cover::Some,
            }
        }
        _ => Cover::Some,
    }
}

/// How `x op v` holds over the values `first..=last`.
fn compare(op: Operator, first: i128, last: i128, v: i128) -> Cover {
    let (all, none) = match op {
        Operator::GtEq => (first >= v, last < v),
        Operator::Gt => (first > v, last <= v),
        Operator::Lt => (last < v, first >= v),
        Operator::LtEq => (last <= v, first > v),
        Operator::Eq => (first == last && first == v, v < first || v > last),
        Operator::NotEq => (v < first || v > last, first == last && first == v),
        _ => (false, false),
    };
    match (all, none) {
        (true, _) => Cover::All,
        (_, true) => Cover::None,
        _ => Cover::Some,
    }
}

fn day_number(day: NaiveDate) -> i32 {
    (day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days() as i32
}

/// Each day of the table's snapshot with the fingerprint of its data files.
fn day_files(table: &LakeTable) -> Result<BTreeMap<NaiveDate, [u8; 32]>> {
    let columns = table.day_columns().expect("candidates have day columns");
    let snapshot = table.table().snapshot().map_err(crate::error::Error::delta(&columns.date))?;
    let mut files: BTreeMap<NaiveDate, Vec<(String, i64)>> = BTreeMap::new();
    for file in snapshot.log_data().iter() {
        let date = file.partition_values_map().get(&columns.date).cloned().flatten();
        if let Some(day) = date.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()) {
            files.entry(day).or_default().push((file.path().to_string(), file.size()));
        }
    }
    Ok(files
        .into_iter()
        .map(|(day, mut list)| {
            list.sort();
            let mut hash = Sha256::new();
            for (path, size) in list {
                hash.update(path.as_bytes());
                hash.update(size.to_le_bytes());
            }
            (day, hash.finalize().into())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::col;

    use super::*;

    fn columns() -> DayColumns {
        DayColumns { date: "event_date".into(), time: Some("hour".into()) }
    }

    fn hour_at(text: &str) -> Expr {
        let micros = DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros();
        lit(ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into())))
    }

    #[test]
    fn conditions_on_the_time_column_are_judged_per_day() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        let judge = |e: Expr| cover(&e, &columns(), day);
        assert_eq!(judge(col("hour").gt_eq(hour_at("2026-11-01T00:00:00Z"))), Cover::All);
        assert_eq!(judge(col("hour").gt_eq(hour_at("2026-11-03T00:00:00Z"))), Cover::All);
        assert_eq!(judge(col("hour").gt(hour_at("2026-11-03T00:00:00Z"))), Cover::Some);
        assert_eq!(judge(col("hour").lt(hour_at("2026-11-03T00:00:00Z"))), Cover::None);
        assert_eq!(judge(col("hour").lt(hour_at("2026-11-04T00:00:00Z"))), Cover::All);
        assert_eq!(judge(col("hour").lt_eq(hour_at("2026-11-03T12:00:00Z"))), Cover::Some);
        assert_eq!(judge(hour_at("2026-11-05T00:00:00Z").gt(col("hour"))), Cover::All);
        assert_eq!(judge(col("campaign_id").eq(lit(7))), Cover::Some);
        let date = |d: NaiveDate| lit(ScalarValue::Date32(Some(day_number(d))));
        assert_eq!(judge(col("event_date").eq(date(day))), Cover::All);
        assert_eq!(judge(col("event_date").not_eq(date(day))), Cover::None);
        assert_eq!(judge(col("event_date").between(date(day.pred_opt().unwrap()), date(day))), Cover::All);
        assert_eq!(judge(col("event_date").between(date(day.succ_opt().unwrap()), date(day))), Cover::None);
    }
}
