//! A live table: one snapshot of a data table united with the Kafka tail above the offsets that
//! snapshot holds.
//!
//! The boundary is exact per partition (see [`tail`](crate::tail)). What ingest would not write is
//! left out of the tail the same way: records that are not rows (dead letters), and copies of an
//! event UUID, within the tail and against the table's rows in the dedup window, with the same
//! index and selection ingest uses ([`tidelake_lake::dedup`]). So `count(*)` over a live table is
//! what the table will hold once ingest has caught up.
//!
//! A rollup's minute table is live the same way: its rows, and the partial minute rows of the
//! records above the offsets it holds, aggregated as ingest will aggregate them (see
//! [`LiveSchema`](crate::catalog::LiveSchema)). Rows of one key and minute add up, as they do in
//! the lake table before compaction merges them.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use tidelake_lake::dedup::{self, UuidIndex};
use tidelake_lake::TableSpec;

use crate::error::Result;
use crate::lake_table::LakeTable;
use crate::tail::Tail;

/// The lake snapshot (when the table exists) and the new rows of its tail.
#[derive(Debug)]
pub struct LiveTable {
    schema: SchemaRef,
    lake: Option<LakeTable>,
    tail: RecordBatch,
    /// Tail records dropped as copies of an event UUID.
    pub duplicates: usize,
}

impl LiveTable {
    /// Puts `lake` and `tail` together, checking the tail's event UUIDs against the lake snapshot
    /// with `index` (brought up to that snapshot here).
    pub async fn new(spec: &TableSpec, lake: Option<LakeTable>, tail: &Tail, index: &mut UuidIndex) -> Result<Self> {
        let rows = &tail.rows;
        let range = dedup::window(spec, rows, |_| true);
        if let (Some(range), Some(lake)) = (range, &lake) {
            index.prepare(lake.table(), spec, range).await?;
        }
        let dedup::Selection { keep, counts, .. } = dedup::select(spec, rows, |_| true, range, index);
        let new_rows = filter_record_batch(rows, &keep).map_err(DataFusionError::from)?;
        let schema = match &lake {
            Some(lake) => lake.schema(),
            None => new_rows.schema(),
        };
        let tail = conform(&new_rows, &schema)?;
        Ok(LiveTable { schema, lake, tail, duplicates: counts.dropped() })
    }

    /// A rollup table's minute rows (when the table exists) united with `partials`, the partial
    /// minute rows of the records it does not hold yet.
    pub fn of_rollup(minute: Option<LakeTable>, partials: RecordBatch) -> Result<Self> {
        let schema = match &minute {
            Some(minute) => minute.schema(),
            None => partials.schema(),
        };
        let tail = conform(&partials, &schema)?;
        Ok(LiveTable { schema, lake: minute, tail, duplicates: 0 })
    }

    /// The tail's rows that are new to the lake: what ingest will write for it.
    pub fn new_rows(&self) -> &RecordBatch {
        &self.tail
    }
}

/// `rows` with the columns and types of `schema`: the tail's rows as the lake's scan types them
/// (partition columns and strings may come out of the Delta scan typed differently than the decoder
/// builds them), or back. A nullable column the table gained after this config was read is null in
/// the tail's rows, as ingest on this config would write them.
pub(crate) fn conform(rows: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| -> Result<arrow::array::ArrayRef> {
            let Some(column) = rows.column_by_name(field.name()) else {
                return match field.is_nullable() {
                    true => Ok(arrow::array::new_null_array(field.data_type(), rows.num_rows())),
                    false => {
                        Err(DataFusionError::Internal(format!("the Kafka tail has no column {}", field.name())).into())
                    }
                };
            };
            Ok(cast(column, field.data_type()).map_err(DataFusionError::from)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns).map_err(DataFusionError::from)?)
}

#[async_trait]
impl TableProvider for LiveTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    /// The lake's scan prunes files with the filters; the tail is filtered above the union.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if let Some(lake) = &self.lake {
            inputs.push(lake.scan(state, projection, filters, limit).await?);
        }
        inputs.push(MemorySourceConfig::try_new_exec(
            &[vec![self.tail.clone()]],
            self.schema.clone(),
            projection.cloned(),
        )?);
        UnionExec::try_new(inputs)
    }
}
