//! [`Connector`]: one DataFusion session with the `tidelake` catalog, read-only.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::DataFrame;
use futures::{FutureExt, StreamExt};
use tidelake_lake::PipelineConfig;
use tokio::sync::mpsc;

use crate::cache::{self, CacheStats, ResultCache};
use crate::catalog::{KafkaSchema, LakeSchema, LiveSchema, Shared};
use crate::error::{Error, Result};
use crate::metadata;
use crate::session::{Change, Command, Session};
use crate::statement::{self, Limits};

/// The catalog every query sees; its schemas are `lake`, `kafka` and `live`.
pub const CATALOG: &str = "tidelake";

/// Stack of each thread that plans and runs queries: planning and evaluating an expression recurse
/// once per level of nesting, and [`Limits::max_depth`] levels must fit.
const QUERY_STACK_BYTES: usize = 64 << 20;

/// Batches a running query keeps ready for its reader before it waits for the reader to take one.
const READY_BATCHES: usize = 2;

/// Answers SQL over a pipeline's lake and Kafka tail.
///
/// ```
/// # async fn example() -> tidelake_presto::Result<()> {
/// let config = tidelake_lake::PipelineConfig::parse(
///     "[kafka]\nbrokers = \"localhost:9092\"\n[lake]\nroot = \"lake\"\n[tables.t]\ntopic = \"t\"\nevent_uuid = \"id\"\nevent_time = \"at\"\ncolumns = [{ name = \"id\", type = \"string\", nullable = false }, { name = \"at\", type = \"timestamp\", nullable = false }]\n",
///     std::path::Path::new("/tmp"),
/// )?;
/// let connector = tidelake_presto::Connector::new(config)?;
/// // The data table, its dead letters and its archive, before anything is written.
/// let (_, rows) = connector.query("SHOW TABLES FROM lake").await?;
/// assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
/// # Ok(())
/// # }
/// ```
pub struct Connector {
    ctx: SessionContext,
    shared: Arc<Shared>,
    cache: Option<Arc<ResultCache>>,
    limits: Limits,
    memory_limit: Option<usize>,
    udfs: Vec<ScalarUDF>,
    runtime: QueryRuntime,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("session", &self.ctx.session_id()).field("shared", &self.shared).finish()
    }
}

impl Connector {
    /// A session over `config`'s tables: `lake` and `live` are the default catalog's schemas, so
    /// `ad_events` alone means `lake.ad_events`.
    pub fn new(config: PipelineConfig) -> Result<Self> {
        let shared = Arc::new(Shared::new(config));
        let ctx = session(&shared, None, &[])?;
        let runtime = QueryRuntime::new()?;
        Ok(Connector {
            ctx,
            shared,
            cache: None,
            limits: Limits::default(),
            memory_limit: None,
            udfs: Vec::new(),
            runtime,
        })
    }

    /// Keeps whole answers of statements over unchanged lake tables and the per-day partial
    /// results of aggregates over closed days, up to `max_bytes` (see [`cache`](crate::cache));
    /// `0` keeps none.
    pub fn with_result_cache(mut self, max_bytes: usize) -> Self {
        self.cache = (max_bytes > 0).then(|| Arc::new(ResultCache::new(max_bytes)));
        self
    }

    /// Holds the memory that sorts, joins, aggregates and windows of all running queries take
    /// together to `bytes`; a query that needs more fails with [`Error::is_memory_exceeded`] and the
    /// others go on. Nothing spills to disk.
    pub fn with_memory_limit(mut self, bytes: usize) -> Result<Self> {
        self.ctx = session(&self.shared, Some(bytes), &self.udfs)?;
        self.memory_limit = Some(bytes);
        Ok(self)
    }

    /// Adds a scalar function to the SQL every query may use.
    pub fn with_udf(mut self, udf: ScalarUDF) -> Self {
        self.ctx.register_udf(udf.clone());
        self.udfs.push(udf);
        self
    }

    /// Reads no Kafka tail (`kafka.*`, `live.*`) of more than `records` records: a query that would
    /// is refused, saying how far ingest is behind (default [`MAX_TAIL_RECORDS`](crate::catalog::MAX_TAIL_RECORDS)).
    pub fn with_max_tail_records(self, records: u64) -> Self {
        self.shared.set_max_tail_records(records);
        self
    }

    /// Answers `kafka.*` and `live.*` queries whose tail lost offsets to Kafka's retention without
    /// them, logging a warning, instead of refusing them with what was lost.
    pub fn with_allow_lost_tail(self, allow: bool) -> Self {
        self.shared.set_allow_lost_tail(allow);
        self
    }

    /// Refuses statements larger or deeper than `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits statements are held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What the result cache has done, when there is one.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// Plans one read-only statement (a query, `EXPLAIN`, `SHOW ...`): statements that would create,
    /// change or write anything are refused.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        self.sql_in(sql, None).await
    }

    /// Like [`sql`](Self::sql), with unqualified table names looked up in `schema` (`lake`, `kafka`
    /// or `live`) instead of `lake`.
    pub async fn sql_in(&self, sql: &str, schema: Option<&str>) -> Result<DataFrame> {
        let session = Session::in_schema(schema);
        let command = Command::Run { sql: sql.to_string(), params: Vec::new() };
        plan(&self.ctx, &self.limits, &command, &session).await.map_err(Error::unwrapped)
    }

    /// Runs one statement and collects its rows.
    pub async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.query_in(sql, None).await
    }

    /// Like [`query`](Self::query), with unqualified table names looked up in `schema`.
    pub async fn query_in(&self, sql: &str, schema: Option<&str>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let mut rows = self.stream_in(sql, schema).await?;
        let mut batches = Vec::new();
        while let Some(batch) = rows.next().await {
            batches.push(batch?);
        }
        Ok((rows.schema(), batches))
    }

    /// Starts one statement on the connector's query threads and hands its rows over as they come:
    /// the query runs ahead of its reader by a couple of batches at most, so a result nobody reads
    /// holds no memory. A panic while planning or running ends the rows with an internal error.
    pub async fn stream_in(&self, sql: &str, schema: Option<&str>) -> Result<Rows> {
        self.stream(sql, &Session::in_schema(schema)).await
    }

    /// Like [`stream_in`](Self::stream_in), in a client's `session`: its schema, time zone,
    /// properties and prepared statements. A statement that changes the session (`PREPARE`,
    /// `USE`, `SET SESSION`, ...) runs nothing: its rows are Trino's one `result` of `true`, and
    /// [`Rows::changes`] says what the client is to apply.
    pub async fn stream(&self, sql: &str, session: &Session) -> Result<Rows> {
        statement::check_size(sql, &self.limits)?;
        session.check()?;
        let command = crate::session::command(sql, session)?;
        if let Command::Changed { update_type, changes } = command {
            return Ok(Rows::done(update_type, changes));
        }
        let key = match (&self.cache, &command) {
            (Some(cache), Command::Run { sql, params }) => {
                let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
                let key = cache::statement_key(sql, &params, session);
                if let Some((schema, batches)) = cache.answer(&key).await {
                    return Ok(Rows::kept(schema, batches));
                }
                Some(key)
            }
            _ => None,
        };
        let (sender, mut receiver) = mpsc::channel(READY_BATCHES);
        let (ctx, limits, cache, memory_limit) = (self.ctx.clone(), self.limits, self.cache.clone(), self.memory_limit);
        let session = session.clone();
        let to_reader = sender.clone();
        let time_limit = session.time_limit();
        let run = async move {
            let frame = plan(&ctx, &limits, &command, &session).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let mut answer = match (&cache, key) {
                (Some(cache), Some(key)) => cache.gather(key, frame.logical_plan()),
                _ => None,
            };
            let frame = match &cache {
                Some(cache) => {
                    let (state, plan) = frame.into_parts();
                    let optimized = state.optimize(&plan)?;
                    match cache.rewrite(&state, &optimized).await? {
                        Some(split) => DataFrame::new(state, split),
                        None => DataFrame::new(state, plan),
                    }
                }
                None => frame,
            };
            if to_reader.send(Ready::Schema(schema.clone())).await.is_err() {
                return Ok(());
            }
            let mut stream = frame.execute_stream().await?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                if answer.as_mut().is_some_and(|a| !a.add(&batch)) {
                    answer = None;
                }
                if to_reader.send(Ready::Batch(batch)).await.is_err() {
                    return Ok(());
                }
            }
            if let (Some(cache), Some(answer)) = (cache, answer) {
                cache.keep(answer, schema).await;
            }
            Ok(())
        };
        let run = async move {
            match time_limit {
                Some(limit) => match tokio::time::timeout(limit, run).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(Error::TimeLimit(format!("{:.2}s", limit.as_secs_f64()))),
                },
                None => run.await,
            }
        };
        let task = self.runtime.handle().spawn(async move {
            let failure = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => match (Error::unwrapped(e), memory_limit) {
                    (Error::Query(source), Some(bytes))
                        if matches!(source.find_root(), DataFusionError::ResourcesExhausted(_)) =>
                    {
                        Error::MemoryExceeded { limit_mb: bytes >> 20, source }
                    }
                    (e, _) => e,
                },
                Err(panic) => Error::Panicked(panic_message(panic.as_ref())),
            };
            let _ = sender.send(Ready::Failed(failure)).await;
        });
        let task = Task(task);
        match receiver.recv().await {
            Some(Ready::Schema(schema)) => {
                Ok(Rows { schema, receiver, _task: Some(task), update_type: None, changes: Vec::new() })
            }
            Some(Ready::Failed(e)) => Err(e),
            Some(Ready::Batch(_)) | None => Err(Error::Panicked("the query ended before its schema was known".into())),
        }
    }

    /// How each table of the config stands: freshness, lag per partition, files, dead letters by
    /// kind and recent commits (what `tidelake serve` shows at `/ui` and `/metrics`).
    pub async fn status(&self) -> Vec<crate::status::TableStatus> {
        crate::status::collect(self, &self.shared).await
    }

    /// Records of Kafka tails skipped since start because they are not rows of their table.
    pub fn poison_skipped(&self) -> u64 {
        self.shared.poison_skipped()
    }

    /// Offsets of Kafka tails read since start: what `LIMIT` and position filters save.
    pub fn tail_offsets_read(&self) -> u64 {
        self.shared.tail_offsets_read()
    }
}

/// The rows of a running statement, in the order the plan gives them.
#[derive(Debug)]
pub struct Rows {
    schema: SchemaRef,
    receiver: mpsc::Receiver<Ready>,
    _task: Option<Task>,
    update_type: Option<&'static str>,
    changes: Vec<Change>,
}

impl Rows {
    /// The answer of a statement that only changed the session: as Trino gives it, one column
    /// `result` holding `true`.
    fn done(update_type: &'static str, changes: Vec<Change>) -> Rows {
        let schema = Arc::new(Schema::new(vec![Field::new("result", DataType::Boolean, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(BooleanArray::from(vec![true]))])
            .expect("one boolean column");
        let (sender, receiver) = mpsc::channel(1);
        sender.try_send(Ready::Batch(batch)).expect("room for one batch");
        Rows { schema, receiver, _task: None, update_type: Some(update_type), changes }
    }

    /// Rows already at hand: a statement's answer from the result cache.
    fn kept(schema: SchemaRef, batches: Vec<RecordBatch>) -> Rows {
        let (sender, receiver) = mpsc::channel(batches.len().max(1));
        for batch in batches {
            sender.try_send(Ready::Batch(batch)).expect("room for every batch");
        }
        Rows { schema, receiver, _task: None, update_type: None, changes: Vec::new() }
    }

    /// Trino's `updateType` of a statement that is not a query (`PREPARE`, `USE`, ...).
    pub fn update_type(&self) -> Option<&'static str> {
        self.update_type
    }

    /// What the client is to apply to its session.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The columns of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The next batch; `None` once the statement has given all its rows. A failure ends the rows.
    pub async fn next(&mut self) -> Option<Result<RecordBatch>> {
        match self.receiver.recv().await? {
            Ready::Batch(batch) => Some(Ok(batch)),
            Ready::Failed(e) => Some(Err(e)),
            Ready::Schema(_) => Some(Err(Error::Panicked("a second schema in one result".into()))),
        }
    }
}

#[derive(Debug)]
enum Ready {
    Schema(SchemaRef),
    Batch(RecordBatch),
    Failed(Error),
}

/// The running statement: stopped when its rows are dropped.
#[derive(Debug)]
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The threads queries are planned and run on, apart from whatever serves their clients: their
/// stacks are deep enough for [`Limits::max_depth`], and a query that keeps its threads busy
/// leaves the caller's threads free.
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn new() -> Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("tidelake-query")
            .thread_stack_size(QUERY_STACK_BYTES)
            .enable_all()
            .build()
            .map_err(|e| Error::Panicked(format!("starting the query threads: {e}")))?;
        Ok(QueryRuntime(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("the runtime lives until drop").handle()
    }
}

impl Drop for QueryRuntime {
    /// Stops the query threads without waiting for them, so a connector may be dropped anywhere,
    /// also inside an async task.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The session every query plans in: the catalog, `sketch_distinct` and `udfs`, checked integer
/// arithmetic, and the memory pool.
fn session(shared: &Arc<Shared>, memory_limit: Option<usize>, udfs: &[ScalarUDF]) -> Result<SessionContext> {
    // `information_schema` is Trino's (see `metadata`), not DataFusion's own.
    let config = SessionConfig::new().with_default_catalog_and_schema(CATALOG, "lake").with_information_schema(false);
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(bytes) = memory_limit {
        runtime = runtime
            .with_memory_limit(bytes, 1.0)
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled));
    }
    let ctx = SessionContext::new_with_config_rt(config, runtime.build_arc()?);
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema("lake", Arc::new(LakeSchema(shared.clone())))?;
    catalog.register_schema("kafka", Arc::new(KafkaSchema(shared.clone())))?;
    catalog.register_schema("live", Arc::new(LiveSchema(shared.clone())))?;
    catalog.register_schema(metadata::INFORMATION_SCHEMA, Arc::new(metadata::InformationSchema(shared.clone())))?;
    ctx.register_catalog(CATALOG, Arc::new(catalog));
    let system = MemoryCatalogProvider::new();
    system.register_schema("jdbc", Arc::new(crate::system::JdbcSchema(shared.clone())))?;
    system.register_schema("metadata", Arc::new(crate::system::MetadataSchema(shared.clone())))?;
    ctx.register_catalog(crate::system::SYSTEM_CATALOG, Arc::new(system));
    ctx.register_udaf(crate::functions::sketch_distinct());
    for udf in crate::trino_functions::all() {
        ctx.register_udf(udf);
    }
    for udaf in crate::trino_functions::aggregates() {
        ctx.register_udaf(udaf);
    }
    for udf in udfs {
        ctx.register_udf(udf.clone());
    }
    ctx.add_analyzer_rule(Arc::new(crate::overflow::CheckedArithmetic));
    Ok(ctx)
}

/// Plans `command` read-only in `session` (unqualified names in its schema), `sql` parsed within
/// `limits`.
async fn plan(ctx: &SessionContext, limits: &Limits, command: &Command, session: &Session) -> Result<DataFrame> {
    let mut state = ctx.state();
    let options = state.config_mut().options_mut();
    if let Some(schema) = &session.schema {
        options.catalog.default_schema = schema.clone();
    }
    if let Some(catalog) = &session.catalog {
        options.catalog.default_catalog = catalog.clone();
    }
    if let Some(zone) = &session.time_zone {
        options.execution.time_zone = Some(zone.clone());
    }
    match command {
        Command::Run { sql, params } => {
            let statement = statement::parse(sql, limits)?;
            let schema = session.schema.as_deref().unwrap_or("lake");
            if let Some(frame) = metadata::show(ctx, &statement, schema).await? {
                return match params.is_empty() {
                    true => Ok(frame),
                    false => Err(Error::Session("a SHOW or DESCRIBE statement takes no parameters".into())),
                };
            }
            let plan = state.statement_to_plan(statement).await?;
            SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false)
                .verify_plan(&plan)?;
            let plan = crate::prepared::bind(&state, plan, params)?;
            Ok(DataFrame::new(state, plan))
        }
        Command::DescribeInput(name) | Command::DescribeOutput(name) => {
            let sql = crate::session::prepared(session, name)?;
            let statement = statement::parse(sql, limits)?;
            let plan = state.statement_to_plan(statement).await?;
            let rows = match command {
                Command::DescribeInput(_) => crate::prepared::describe_input(&plan)?,
                _ => crate::prepared::describe_output(&plan),
            };
            Ok(ctx.read_batch(rows)?)
        }
        Command::ShowSession => Ok(ctx.read_batch(crate::session::show(session))?),
        Command::Changed { .. } => Err(Error::Panicked("a session change reached the planner".into())),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => text.to_string(),
        (_, Some(text)) => text.clone(),
        _ => "a panic without a message".into(),
    }
}
