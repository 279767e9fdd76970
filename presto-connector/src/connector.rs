//! [`Connector`]: one DataFusion session with the `tidelake` catalog, read-only.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::config::Dialect;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::prelude::DataFrame;
use tidelake_lake::PipelineConfig;

use crate::cache::{CacheStats, ResultCache};
use crate::catalog::{KafkaSchema, LakeSchema, LiveSchema, Shared};
use crate::error::{Error, Result};
use crate::version::rewrite_time_travel;

/// The catalog every query sees; its schemas are `lake`, `kafka` and `live`.
pub const CATALOG: &str = "tidelake";

/// Answers SQL over a pipeline's lake and Kafka tail.
///
/// ```
/// # async fn example() -> tidelake_presto::Result<()> {
/// let config = tidelake_lake::PipelineConfig::parse(
///     "[kafka]\nbrokers = \"localhost:9092\"\n[lake]\nroot = \"lake\"\n[tables.t]\ntopic = \"t\"\nevent_uuid = \"id\"\nevent_time = \"at\"\ncolumns = [{ name = \"id\", type = \"string\", nullable = false }, { name = \"at\", type = \"timestamp\", nullable = false }]\n",
///     std::path::Path::new("/tmp"),
/// )?;
/// let connector = tidelake_presto::Connector::new(config)?;
/// let (_, rows) = connector.query("SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = 'tidelake' ORDER BY 1, 2").await?;
/// assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
/// # Ok(())
/// # }
/// ```
pub struct Connector {
    ctx: SessionContext,
    shared: Arc<Shared>,
    cache: Option<ResultCache>,
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
        let session =
            SessionConfig::new().with_default_catalog_and_schema(CATALOG, "lake").with_information_schema(true);
        let ctx = SessionContext::new_with_config(session);
        let shared = Arc::new(Shared::new(config));
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema("lake", Arc::new(LakeSchema(shared.clone())))?;
        catalog.register_schema("kafka", Arc::new(KafkaSchema(shared.clone())))?;
        catalog.register_schema("live", Arc::new(LiveSchema(shared.clone())))?;
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        ctx.register_udaf(crate::functions::sketch_distinct());
        Ok(Connector { ctx, shared, cache: None })
    }

    /// Keeps the per-day partial results of aggregates over closed days, up to `max_bytes` (see
    /// [`cache`](crate::cache)); `0` keeps none.
    pub fn with_result_cache(mut self, max_bytes: usize) -> Self {
        self.cache = (max_bytes > 0).then(|| ResultCache::new(max_bytes));
        self
    }

    /// What the result cache has done, when there is one.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(ResultCache::stats)
    }

    /// Plans one read-only statement (a query, `EXPLAIN`, `SHOW ...`): statements that would create,
    /// change or write anything are refused.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        self.sql_in(sql, None).await
    }

    /// Like [`sql`](Self::sql), with unqualified table names looked up in `schema` (`lake`, `kafka`
    /// or `live`) instead of `lake`.
    pub async fn sql_in(&self, sql: &str, schema: Option<&str>) -> Result<DataFrame> {
        let sql = rewrite_time_travel(sql)?;
        let mut state = self.ctx.state();
        if let Some(schema) = schema {
            state.config_mut().options_mut().catalog.default_schema = schema.to_string();
        }
        let statement =
            state.sql_to_statement(&sql, &Dialect::Generic).map_err(|e| Error::Syntax(e.strip_backtrace()))?;
        let plan = state.statement_to_plan(statement).await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)?;
        Ok(DataFrame::new(state, plan))
    }

    /// Runs one statement and collects its rows.
    pub async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.query_in(sql, None).await
    }

    /// Like [`query`](Self::query), with unqualified table names looked up in `schema`.
    pub async fn query_in(&self, sql: &str, schema: Option<&str>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let mut frame = self.sql_in(sql, schema).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        if let Some(cache) = &self.cache {
            let (state, plan) = frame.into_parts();
            let optimized = state.optimize(&plan)?;
            frame = match cache.rewrite(&state, &optimized).await? {
                Some(split) => DataFrame::new(state, split),
                None => DataFrame::new(state, plan),
            };
        }
        Ok((schema, frame.collect().await?))
    }

    /// Records of Kafka tails skipped since start because they are not rows of their table.
    pub fn poison_skipped(&self) -> u64 {
        self.shared.poison_skipped()
    }
}
