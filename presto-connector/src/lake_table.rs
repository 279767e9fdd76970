//! One Delta table at one snapshot as a DataFusion table: what the `lake` schema, the `live`
//! tables and the result cache all read.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Column, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{lit, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
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

    /// Deltalake's answer, except that a condition on the time column that keeps whole days is
    /// exact: [`scan`](Self::scan) applies it as the same condition on the date partition.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let mut answers = self.inner.supports_filters_pushdown(filters)?;
        if let Some(days) = &self.days {
            for (answer, filter) in answers.iter_mut().zip(filters) {
                if as_date_condition(filter, days).is_some() {
                    *answer = TableProviderFilterPushDown::Exact;
                }
            }
        }
        Ok(answers)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.table.update_datafusion_session(state).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let filters: Vec<Expr> = match &self.days {
            Some(days) => filters.iter().map(|f| as_date_condition(f, days).unwrap_or_else(|| f.clone())).collect(),
            None => filters.to_vec(),
        };
        self.inner.scan(state, projection, &filters, limit).await
    }
}

pub(crate) const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

/// `filter` as a condition on the date partition that keeps the same rows, when it compares the
/// time column with a midnight (UTC): `time >= <midnight of D>` is `date >= D`, `time <
/// <midnight of D>` is `date < D`, since the date is the time's UTC day. Deltalake then prunes
/// whole files by it, exactly, and the time column is not read for it.
fn as_date_condition(filter: &Expr, days: &DayColumns) -> Option<Expr> {
    let (column, op, value) = column_against_literal(filter)?;
    if days.time.as_deref() != Some(column.name.as_str()) || !matches!(op, Operator::GtEq | Operator::Lt) {
        return None;
    }
    let at = nanos(value)?;
    if at.rem_euclid(NANOS_PER_DAY) != 0 {
        return None;
    }
    let day = i32::try_from(at.div_euclid(NANOS_PER_DAY)).ok()?;
    let date = Expr::Column(Column::new(column.relation.clone(), &days.date));
    Some(Expr::BinaryExpr(BinaryExpr::new(Box::new(date), op, Box::new(lit(ScalarValue::Date32(Some(day)))))))
}

/// `filter` as `column op value` when it compares a column with a literal, either way round.
pub(crate) fn column_against_literal(filter: &Expr) -> Option<(&Column, Operator, &ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
        return None;
    };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) => Some((c, *op, v)),
        (Expr::Literal(v, _), Expr::Column(c)) => Some((c, op.swap()?, v)),
        _ => None,
    }
}

/// A timestamp literal in nanoseconds since the epoch.
pub(crate) fn nanos(value: &ScalarValue) -> Option<i128> {
    Some(match value {
        ScalarValue::TimestampSecond(Some(v), _) => *v as i128 * 1_000_000_000,
        ScalarValue::TimestampMillisecond(Some(v), _) => *v as i128 * 1_000_000,
        ScalarValue::TimestampMicrosecond(Some(v), _) => *v as i128 * 1_000,
        ScalarValue::TimestampNanosecond(Some(v), _) => *v as i128,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::col;

    use super::*;

    fn days() -> DayColumns {
        DayColumns { date: "event_date".into(), time: Some("minute".into()) }
    }

    fn micros(at: &str) -> Expr {
        let at = chrono::DateTime::parse_from_rfc3339(at).unwrap().timestamp_micros();
        lit(ScalarValue::TimestampMicrosecond(Some(at), Some("UTC".into())))
    }

    fn date(day: &str) -> Expr {
        let day = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let number = (day - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
        lit(ScalarValue::Date32(Some(number)))
    }

    #[test]
    fn a_time_bound_at_midnight_becomes_the_same_bound_on_the_date() {
        let since = col("minute").gt_eq(micros("2026-11-16T00:00:00Z"));
        assert_eq!(as_date_condition(&since, &days()), Some(col("event_date").gt_eq(date("2026-11-16"))));
        let before = col("minute").lt(micros("2026-11-23T00:00:00Z"));
        assert_eq!(as_date_condition(&before, &days()), Some(col("event_date").lt(date("2026-11-23"))));
        // Literal first: `<midnight> <= minute` is `minute >= <midnight>`.
        let flipped = micros("1969-12-31T00:00:00Z").lt_eq(col("minute"));
        assert_eq!(as_date_condition(&flipped, &days()), Some(col("event_date").gt_eq(date("1969-12-31"))));
        let qualified = Expr::Column(Column::new(Some("t"), "minute")).gt_eq(micros("2026-11-16T00:00:00Z"));
        let on_date = Expr::Column(Column::new(Some("t"), "event_date")).gt_eq(date("2026-11-16"));
        assert_eq!(as_date_condition(&qualified, &days()), Some(on_date));
    }

    #[test]
    fn a_time_bound_that_splits_a_day_or_keeps_its_midnight_apart_stays_on_the_time() {
        let cases = [
            col("minute").gt_eq(micros("2026-11-16T00:00:01Z")),
            col("minute").lt(micros("2026-11-16T23:59:59Z")),
            // `>` and `<=` a midnight keep part of a day (all of it but, or only, its first instant).
            col("minute").gt(micros("2026-11-16T00:00:00Z")),
            col("minute").lt_eq(micros("2026-11-16T00:00:00Z")),
            col("minute").eq(micros("2026-11-16T00:00:00Z")),
            // Another column, or a time table without day columns for it.
            col("hour").gt_eq(micros("2026-11-16T00:00:00Z")),
            col("minute").gt_eq(lit(5i64)),
            // A midnight whose day is past what a date holds.
            col("minute").gt_eq(lit(ScalarValue::TimestampSecond(Some(86_400 * (i64::MAX / 86_400)), None))),
            col("minute").lt(lit(ScalarValue::TimestampSecond(Some(-86_400 * (i64::MAX / 86_400)), None))),
        ];
        for filter in cases {
            assert_eq!(as_date_condition(&filter, &days()), None, "{filter}");
        }
        let nullable = DayColumns { date: "event_date".into(), time: None };
        assert_eq!(as_date_condition(&col("minute").gt_eq(micros("2026-11-16T00:00:00Z")), &nullable), None);
    }
}
