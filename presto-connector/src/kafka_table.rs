//! `kafka.<topic>`: the records of a topic above the offsets its data table holds, read when the
//! query runs, as little of them as the query needs.
//!
//! Planning reads no record, only where the tail lies (the lake's offsets and the partitions'
//! watermarks). The scan narrows that to what the query's filters on `_partition`, `_offset` and
//! `_timestamp` allow (a lower bound on `_timestamp` through Kafka's time index: no record before
//! the offset it gives is that late) and reads it in chunks of [`CHUNK_RECORDS`] offsets, one
//! Kafka partition per DataFusion partition, decoding each chunk as it comes. So a `LIMIT` stops
//! the reading, and memory holds one chunk per partition whatever the tail's length.
//!
//! The filters stay above the scan as well (they are inexact here): a filter the scan does not
//! understand costs reading, never a wrong row.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::{Cast, InList, TryCast};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;
use tidelake_lake::decode::decode;
use tidelake_lake::{KafkaRecord, TableSpec};

use crate::catalog::Shared;
use crate::error::{Error, Result};
use crate::tail::{self, Bounds};

/// The Kafka partition of a record.
pub const PARTITION: &str = "_partition";
/// Its offset in the partition.
pub const OFFSET: &str = "_offset";
/// Its timestamp (producer create time or broker log-append time, as the topic is set).
pub const TIMESTAMP: &str = "_timestamp";

/// Offsets of one partition read and decoded at a time.
pub const CHUNK_RECORDS: i64 = 8_192;

/// The tail of one table's topic as of one snapshot of its data table.
#[derive(Debug)]
pub struct KafkaTable {
    shared: Arc<Shared>,
    spec: TableSpec,
    bounds: Bounds,
    schema: SchemaRef,
}

impl KafkaTable {
    /// The tail of `spec`'s topic within `bounds`.
    pub fn new(shared: Arc<Shared>, spec: TableSpec, bounds: Bounds) -> Result<Self> {
        let schema = Self::columns(&spec)?;
        Ok(KafkaTable { shared, spec, bounds, schema })
    }

    /// The columns of `spec`'s topic as a table: its rows' columns, then `_partition`, `_offset`
    /// and `_timestamp`.
    pub fn columns(spec: &TableSpec) -> Result<SchemaRef> {
        let rows = decode(spec, &[])?.rows;
        let mut fields: Vec<Field> = rows.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(PARTITION, DataType::Int32, false));
        fields.push(Field::new(OFFSET, DataType::Int64, false));
        fields.push(Field::new(TIMESTAMP, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true));
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The offsets the scan reads: the bounds, narrowed per partition by `positions`.
    async fn ranges(&self, positions: &Positions) -> Result<BTreeMap<i32, (i64, i64)>> {
        let mut ranges = BTreeMap::new();
        let mut since: BTreeMap<i64, Vec<i32>> = BTreeMap::new();
        for (p, (start, end)) in &self.bounds.ranges {
            let Some(allowed) = positions.allows(i64::from(*p)) else { continue };
            let range = ((*start).max(allowed.offsets.low), (*end).min(allowed.offsets.high));
            if range.0 < range.1 {
                ranges.insert(*p, range);
                if let Some(ms) = allowed.since_ms {
                    since.entry(ms).or_default().push(*p);
                }
            }
        }
        // A lower bound on the time starts a partition at Kafka's first record that late.
        for (ms, partitions) in since {
            let firsts = self.shared.offsets_for_time(&self.spec.topic, partitions.clone(), ms).await?;
            for p in partitions {
                let range = ranges.get_mut(&p).expect("a partition with a range");
                // No record that late in the partition: nothing of it to read.
                range.0 = range.0.max(firsts.get(&p).copied().flatten().unwrap_or(range.1));
            }
        }
        ranges.retain(|_, (start, end)| start < end);
        Ok(ranges)
    }
}

#[async_trait]
impl TableProvider for KafkaTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters on the positions narrow what is read; every filter is still applied to the rows.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let positions = Positions::from_filters(filters);
        let ranges = self.ranges(&positions).await?;
        let (reads, max) = (tail::count(&ranges), self.shared.max_tail_records());
        // A LIMIT within the cap stops the reading once it has its rows.
        if reads > max && limit.is_none_or(|rows| rows as u64 > max) {
            return Err(Error::TailTooLarge {
                table: self.spec.name.clone(),
                topic: self.spec.topic.clone(),
                reads,
                behind: self.bounds.behind(),
                max,
            }
            .into());
        }
        let mut partitions: Vec<Arc<dyn PartitionStream>> = ranges
            .into_iter()
            .map(|(partition, (start, end))| {
                Arc::new(Chunks {
                    shared: self.shared.clone(),
                    spec: self.spec.clone(),
                    schema: self.schema.clone(),
                    partition,
                    start,
                    end,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        if partitions.is_empty() {
            let schema = self.schema.clone();
            let (spec, shared) = (self.spec.clone(), self.shared.clone());
            partitions.push(Arc::new(Chunks { shared, spec, schema, partition: 0, start: 0, end: 0 }));
        }
        Ok(Arc::new(StreamingTableExec::try_new(self.schema.clone(), partitions, projection, [], false, limit)?))
    }
}

/// Offsets `[start, end)` of one Kafka partition, read a chunk at a time.
#[derive(Debug)]
struct Chunks {
    shared: Arc<Shared>,
    spec: TableSpec,
    schema: SchemaRef,
    partition: i32,
    start: i64,
    end: i64,
}

impl PartitionStream for Chunks {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (shared, spec, schema) = (self.shared.clone(), self.spec.clone(), self.schema.clone());
        let (partition, end) = (self.partition, self.end);
        let batches = futures::stream::try_unfold(Some(self.start), move |next| {
            let (shared, spec, schema) = (shared.clone(), spec.clone(), schema.clone());
            async move {
                let Some(start) = next.filter(|start| *start < end) else { return Ok(None) };
                let chunk_end = end.min(start.saturating_add(CHUNK_RECORDS));
                let (records, ended) = shared.read_chunk(&spec.topic, partition, (start, chunk_end)).await?;
                let decoded = tail::decode_logged(&spec, &records).await?;
                shared.count_poison(decoded.rejected.len());
                let rows = with_positions(&schema, &decoded.rows, &records, &decoded.row_sources)?;
                // The partition ended before the chunk did (its last offsets were transaction
                // markers or beyond the last stable offset): nothing more to read.
                Ok(Some((rows, (!ended).then_some(chunk_end))))
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

/// `rows` with the Kafka position of each (`records[sources[i]]` for row `i`), in `schema`.
fn with_positions(
    schema: &SchemaRef,
    rows: &RecordBatch,
    records: &[KafkaRecord],
    sources: &[usize],
) -> DfResult<RecordBatch> {
    let of_rows = || sources.iter().map(|i| &records[*i]);
    let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
    columns.push(Arc::new(Int32Array::from_iter_values(of_rows().map(|r| r.partition))));
    columns.push(Arc::new(Int64Array::from_iter_values(of_rows().map(|r| r.offset))));
    columns
        .push(Arc::new(TimestampMillisecondArray::from_iter(of_rows().map(|r| r.timestamp_ms)).with_timezone("UTC")));
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// What a scan's filters say about the positions of the rows it must return: a tree of `AND`s
/// and `OR`s over bounds on a position column against a literal. Anything else leaves the
/// positions open, so the read is a superset of what the filters keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Positions {
    /// Nothing known.
    Open,
    /// `_partition` within a span.
    Partitions(Span),
    /// `_partition` one of these.
    Listed(BTreeSet<i64>),
    /// `_offset` within a span.
    Offsets(Span),
    /// `_timestamp` at or after this many epoch milliseconds.
    Since(i64),
    /// Every one holds.
    All(Vec<Positions>),
    /// At least one holds.
    Any(Vec<Positions>),
}

/// What [`Positions`] allow of one partition: offsets within a span, from a time on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowed {
    offsets: Span,
    since_ms: Option<i64>,
}

/// Integers `[low, high)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    low: i64,
    high: i64,
}

impl Span {
    const ALL: Span = Span { low: i64::MIN, high: i64::MAX };

    /// The values `column op value` keeps, for an integer column.
    fn of(op: Operator, value: i64) -> Option<Span> {
        let (low, high) = match op {
            Operator::Eq => (value, value.saturating_add(1)),
            Operator::Gt => (value.saturating_add(1), i64::MAX),
            Operator::GtEq => (value, i64::MAX),
            Operator::Lt => (i64::MIN, value),
            Operator::LtEq => (i64::MIN, value.saturating_add(1)),
            _ => return None,
        };
        Some(Span { low, high })
    }

    fn holds(&self, value: i64) -> bool {
        self.low <= value && value < self.high
    }
}

impl Positions {
    pub(crate) fn from_filters(filters: &[Expr]) -> Self {
        Positions::All(filters.iter().map(Positions::of).collect())
    }

    /// What `partition` may hold (`None`: nothing of it).
    pub(crate) fn allows(&self, partition: i64) -> Option<Allowed> {
        let open = Allowed { offsets: Span::ALL, since_ms: None };
        match self {
            Positions::Open => Some(open),
            Positions::Partitions(span) => span.holds(partition).then_some(open),
            Positions::Listed(set) => set.contains(&partition).then_some(open),
            Positions::Offsets(span) => Some(Allowed { offsets: *span, ..open }),
            Positions::Since(ms) => Some(Allowed { since_ms: Some(*ms), ..open }),
            Positions::All(all) => all.iter().try_fold(open, |acc, p| {
                let one = p.allows(partition)?;
                let offsets =
                    Span { low: acc.offsets.low.max(one.offsets.low), high: acc.offsets.high.min(one.offsets.high) };
                let since_ms = acc.since_ms.max(one.since_ms);
                Some(Allowed { offsets, since_ms })
            }),
            Positions::Any(any) => {
                let each: Vec<Allowed> = any.iter().filter_map(|p| p.allows(partition)).collect();
                let low = each.iter().map(|a| a.offsets.low).min()?;
                let high = each.iter().map(|a| a.offsets.high).max()?;
                // The earliest bound of the alternatives, none if one has none.
                let since_ms =
                    each.iter().map(|a| a.since_ms).collect::<Option<Vec<i64>>>().and_then(|s| s.into_iter().min());
                Some(Allowed { offsets: Span { low, high }, since_ms })
            }
        }
    }

    fn of(filter: &Expr) -> Positions {
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
                Positions::All(vec![Positions::of(left), Positions::of(right)])
            }
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
                Positions::Any(vec![Positions::of(left), Positions::of(right)])
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                match (position_column(left), literal(right), position_column(right), literal(left)) {
                    (Some(column), Some(value), _, _) => Positions::bound(column, *op, value),
                    (_, _, Some(column), Some(value)) => match op.swap() {
                        Some(op) => Positions::bound(column, op, value),
                        None => Positions::Open,
                    },
                    _ => Positions::Open,
                }
            }
            Expr::Between(Between { expr, negated: false, low, high }) => {
                match (position_column(expr), literal(low), literal(high)) {
                    (Some(column), Some(low), Some(high)) => Positions::All(vec![
                        Positions::bound(column, Operator::GtEq, low),
                        Positions::bound(column, Operator::LtEq, high),
                    ]),
                    _ => Positions::Open,
                }
            }
            Expr::InList(InList { expr, list, negated: false }) => {
                let Some(column) = position_column(expr) else { return Positions::Open };
                let Some(values) = list.iter().map(literal).collect::<Option<BTreeSet<i64>>>() else {
                    return Positions::Open;
                };
                match column {
                    PARTITION => Positions::Listed(values),
                    _ => {
                        Positions::Any(values.into_iter().map(|v| Positions::bound(column, Operator::Eq, v)).collect())
                    }
                }
            }
            _ => Positions::Open,
        }
    }

    fn bound(column: &str, op: Operator, value: i64) -> Positions {
        match (column, Span::of(op, value)) {
            (PARTITION, Some(span)) => Positions::Partitions(span),
            (OFFSET, Some(span)) => Positions::Offsets(span),
            // Only a lower bound narrows a read by time (timestamps need not grow with offsets), and
            // a value rounded down to milliseconds keeps every row the filter keeps.
            (TIMESTAMP, _) if matches!(op, Operator::Eq | Operator::Gt | Operator::GtEq) => Positions::Since(value),
            _ => Positions::Open,
        }
    }
}

/// The position column `expr` is, when it is one, also as the planner casts it to compare it with
/// a literal: a timestamp to another timestamp type (a value compared in seconds bounds the
/// milliseconds from below all the same), an integer to a bigint.
fn position_column(expr: &Expr) -> Option<&'static str> {
    match expr {
        Expr::Column(column) => [PARTITION, OFFSET, TIMESTAMP].into_iter().find(|name| *name == column.name),
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            let column = position_column(expr)?;
            match (column, field.data_type()) {
                (TIMESTAMP, DataType::Timestamp(..)) | (PARTITION | OFFSET, DataType::Int64) => Some(column),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An integer literal, or a timestamp literal in epoch milliseconds (rounded down).
fn literal(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else { return None };
    match value {
        ScalarValue::Int8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Some(*v),
        ScalarValue::UInt8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(v.div_euclid(1_000)),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000_000)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{cast, col, lit};

    use super::*;

    fn positions(filters: Vec<Expr>) -> Positions {
        Positions::from_filters(&filters)
    }

    /// The offsets of `partition` a filter allows, `None` for none.
    fn offsets(p: &Positions, partition: i64) -> Option<(i64, i64)> {
        p.allows(partition).map(|a| (a.offsets.low, a.offsets.high))
    }

    #[test]
    fn position_filters_narrow_the_read_and_others_leave_it_open() {
        let p = positions(vec![col("_partition").eq(lit(2i32)), col("_offset").gt_eq(lit(100i64))]);
        assert_eq!((offsets(&p, 2), offsets(&p, 1), offsets(&p, 3)), (Some((100, i64::MAX)), None, None));

        let p = positions(vec![lit(10i64).gt(col("_offset")).and(col("_offset").gt(lit(3i64)))]);
        assert_eq!(offsets(&p, 0), Some((4, 10)));

        let p = positions(vec![col("_partition").in_list(vec![lit(0i32), lit(5i32)], false)]);
        assert!(offsets(&p, 0).is_some() && offsets(&p, 5).is_some() && offsets(&p, 1).is_none());

        let p = positions(vec![col("_offset").between(lit(7i64), lit(9i64))]);
        assert_eq!(offsets(&p, 0), Some((7, 10)));

        // An OR per partition: partition 1 from 50 on, partition 2 below 10; no other.
        let either = col("_partition").eq(lit(1i32)).and(col("_offset").gt_eq(lit(50i64)));
        let or = col("_partition").eq(lit(2i32)).and(col("_offset").lt(lit(10i64)));
        let p = positions(vec![either.or(or)]);
        assert_eq!(
            (offsets(&p, 1), offsets(&p, 2), offsets(&p, 0)),
            (Some((50, i64::MAX)), Some((i64::MIN, 10)), None)
        );

        let nanos = ScalarValue::TimestampNanosecond(Some(1_500_999_999), Some("UTC".into()));
        let p = positions(vec![col("_timestamp").gt(lit(nanos)), col("_timestamp").lt(lit(5i64))]);
        assert_eq!(p.allows(0).unwrap().since_ms, Some(1_500));
        let seconds = ScalarValue::TimestampSecond(Some(7), None);
        let as_seconds = cast(col("_timestamp"), DataType::Timestamp(TimeUnit::Second, None));
        assert_eq!(positions(vec![as_seconds.gt_eq(lit(seconds))]).allows(0).unwrap().since_ms, Some(7_000));
        let p = positions(vec![cast(col("_partition"), DataType::Int64).eq(lit(3i64))]);
        assert!(offsets(&p, 3).is_some() && offsets(&p, 2).is_none());

        // A negation, another column, a non-literal, an OR with an open side leave the read whole.
        let open = positions(vec![
            col("_partition").eq(lit(1i32)).or(col("ad_id").eq(lit(2i64))),
            col("_partition").in_list(vec![lit(1i32)], true),
            col("ad_id").eq(lit(1i64)),
            col("_offset").gt(col("ad_id")),
            col("_offset").not_eq(lit(5i64)),
            cast(col("_offset"), DataType::Int32).eq(lit(5i32)),
        ]);
        for partition in [i64::from(i32::MIN), 0, 7, i64::from(i32::MAX)] {
            assert_eq!(open.allows(partition), Some(Allowed { offsets: Span::ALL, since_ms: None }));
        }
    }

    #[test]
    fn bounds_at_the_ends_of_the_integers_do_not_overflow() {
        let p = positions(vec![col("_offset").gt(lit(i64::MAX)), col("_offset").lt_eq(lit(i64::MAX))]);
        let (low, high) = offsets(&p, 0).unwrap();
        assert!(low >= high || low == i64::MAX);
        let p = positions(vec![col("_offset").lt(lit(i64::MIN))]);
        assert!(!p.allows(0).unwrap().offsets.holds(i64::MIN));
        let p = positions(vec![col("_timestamp").gt_eq(lit(ScalarValue::TimestampSecond(Some(i64::MAX), None)))]);
        assert_eq!(p.allows(0).unwrap().since_ms, None);
    }
}
