//! One Delta table at one snapshot as a DataFusion table: what the `lake` schema, the `live`
//! tables and the result cache all read.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use deltalake::DeltaTable;

use crate::error::Result;

/// The columns that place a row in a day: the `event_date` partition column, and the timestamp
/// column whose UTC day it is (the bucket column of a rollup table, the event time of a data table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayColumns {
    /// The `date` partition column.
    pub date: String,
    /// The timestamp column the date is the UTC day of, when it is not nullable.
    pub time: Option<String>,
}

/// One Delta table at one snapshot: deltalake's provider, with the table's object store made known
/// to the session that scans it.
#[derive(Debug)]
pub struct LakeTable {
    table: DeltaTable,
    inner: Arc<dyn TableProvider>,
    latest: bool,
    days: Option<DayColumns>,
}

impl LakeTable {
    /// The provider of `table` as loaded.
    pub async fn new(table: DeltaTable) -> Result<Self> {
        let inner = table.table_provider().await?;
        Ok(LakeTable { table, inner, latest: false, days: None })
    }

    /// Marks this as the table's latest snapshot, placed in days by `days` when it is partitioned
    /// by day.
    pub fn latest(self, days: Option<DayColumns>) -> Self {
        LakeTable { latest: true, days, ..self }
    }

    /// Whether this is the snapshot that was the table's latest when the query was planned (not a
    /// version read through time travel).
    pub fn is_latest(&self) -> bool {
        self.latest
    }

    /// The snapshot behind it.
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// The columns that place a row in a day, when this is the latest snapshot of a table
    /// partitioned by day: what lets the result cache split an aggregate per day.
    pub fn day_columns(&self) -> Option<&DayColumns> {
        self.days.as_ref()
    }
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.table.update_datafusion_session(state).map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.inner.scan(state, projection, filters, limit).await
    }
}
