//! The rollup arithmetic: events into partial minute rows, and rollup rows merged into one row per
//! key and bucket of the same or a coarser grain.
//!
//! Both share one engine: rows are grouped by their dimension values and bucket (with Arrow's row
//! format, so every column type groups and nulls form their own group), then each measure folds its
//! input into one accumulator per group. From events, a count adds one per row that passes the
//! filter; when merging, it adds the counts of the rows. Min and max compare values in the row
//! format's byte order, which is the column's order for every type. Sketches take hashed values from
//! events and merge register by register from rollup rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    RecordBatch, TimestampMicrosecondArray, UInt32Array,
};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow::row::{RowConverter, Rows, SortField};

use crate::error::{Error, Result};
use crate::rollup::{Grain, Measure, MeasureFn, RollupSpec, MICROS_PER_DAY};
use crate::sketch::Sketch;

/// Partial minute rows of `rows` (rows of the raw table: at least the event time column and the
/// rollup's [input columns](RollupSpec::input_columns)), one per key and minute, flagged `partial`.
pub fn minute_partials(rollup: &RollupSpec, event_time: &str, rows: &RecordBatch) -> Result<RecordBatch> {
    let table = rollup.table_name(Grain::Minute);
    let times = column(rows, event_time, &table)?;
    let times = times
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| invalid(&table, format!("event time column `{event_time}` is not a timestamp")))?;
    let buckets = bucket(times, Grain::Minute);
    let mut engine = Engine::new(rollup, rows, buckets, &table)?;
    for (i, m) in rollup.measures.iter().enumerate() {
        let mask = match &m.filter {
            Some(f) => Some(
                f.mask(column(rows, &f.column, &table)?.as_ref())
                    .map_err(Error::arrow(format!("filtering `{}` of {table}", f.text)))?,
            ),
            None => None,
        };
        let values = m.column.as_ref().map(|c| column(rows, &c.name, &table)).transpose()?;
        engine.feed_events(i, m, values.as_ref(), mask.as_ref())?;
    }
    engine.finish(Grain::Minute, Some(true))
}

/// Merges rows of the `from` grain's table into one row per key and bucket of `to` (the same grain,
/// to finalize minutes, or a coarser one). Minute output is flagged `partial = false`.
pub fn merge(rollup: &RollupSpec, from: Grain, rows: &RecordBatch, to: Grain) -> Result<RecordBatch> {
    let table = rollup.table_name(to);
    let starts = column(rows, from.name(), &table)?;
    let starts = starts
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| invalid(&table, format!("bucket column `{}` is not a timestamp", from.name())))?;
    let buckets = bucket(starts, to);
    let mut engine = Engine::new(rollup, rows, buckets, &table)?;
    for (i, m) in rollup.measures.iter().enumerate() {
        let name = m.sketch_column().unwrap_or_else(|| m.name.clone());
        let values = column(rows, &name, &table)?;
        engine.feed_rollup(i, m, &values)?;
    }
    engine.finish(to, (to == Grain::Minute).then_some(false))
}

fn column(rows: &RecordBatch, name: &str, table: &str) -> Result<ArrayRef> {
    rows.column_by_name(name).cloned().ok_or_else(|| invalid(table, format!("the input rows have no column `{name}`")))
}

fn invalid(table: &str, reason: String) -> Error {
    Error::Rollup { table: table.to_string(), reason }
}

fn bucket(times: &TimestampMicrosecondArray, grain: Grain) -> TimestampMicrosecondArray {
    times.unary::<_, TimestampMicrosecondType>(|t| grain.truncate(t)).with_timezone("UTC")
}

/// One accumulator per group for one measure.
enum Acc {
    Count(Vec<i64>),
    SumInt(Vec<Option<i64>>),
    SumFloat(Vec<Option<f64>>),
    SumDecimal(Vec<Option<i128>>, DataType),
    /// Row index of the best value so far, compared in row-format bytes.
    Extreme {
        best: Vec<Option<u32>>,
        min: bool,
        values: Option<(ArrayRef, Rows)>,
    },
    Distinct(Vec<Sketch>),
}

struct Engine<'a> {
    rollup: &'a RollupSpec,
    table: &'a str,
    rows: &'a RecordBatch,
    buckets: TimestampMicrosecondArray,
    group_of_row: Vec<u32>,
    first_rows: Vec<u32>,
    accs: Vec<Acc>,
}

impl<'a> Engine<'a> {
    fn new(
        rollup: &'a RollupSpec,
        rows: &'a RecordBatch,
        buckets: TimestampMicrosecondArray,
        table: &'a str,
    ) -> Result<Self> {
        let mut keys: Vec<ArrayRef> = Vec::with_capacity(rollup.dimensions.len() + 1);
        for d in &rollup.dimensions {
            keys.push(column(rows, &d.name, table)?);
        }
        keys.push(Arc::new(buckets.clone()));
        let fields = keys.iter().map(|k| SortField::new(k.data_type().clone())).collect();
        let converter = RowConverter::new(fields).map_err(Error::arrow(format!("grouping rows of {table}")))?;
        let key_rows = converter.convert_columns(&keys).map_err(Error::arrow(format!("grouping rows of {table}")))?;
        let mut groups: HashMap<&[u8], u32> = HashMap::new();
        let mut group_of_row = Vec::with_capacity(rows.num_rows());
        let mut first_rows = Vec::new();
        for (i, key) in key_rows.iter().enumerate() {
            let next = first_rows.len() as u32;
            let group = *groups.entry(key.data()).or_insert_with(|| {
                first_rows.push(i as u32);
                next
            });
            group_of_row.push(group);
        }
        drop(groups);
        let n = first_rows.len();
        let accs = rollup
            .measures
            .iter()
            .map(|m| match (m.function, m.output_type()) {
                (MeasureFn::Count, _) => Acc::Count(vec![0; n]),
                (MeasureFn::Sum, DataType::Float64) => Acc::SumFloat(vec![None; n]),
                (MeasureFn::Sum, t @ DataType::Decimal128(..)) => Acc::SumDecimal(vec![None; n], t),
                (MeasureFn::Sum, _) => Acc::SumInt(vec![None; n]),
                (MeasureFn::Min | MeasureFn::Max, _) => {
                    Acc::Extreme { best: vec![None; n], min: m.function == MeasureFn::Min, values: None }
                }
                (MeasureFn::ApproxDistinct, _) => Acc::Distinct(vec![Sketch::default(); n]),
            })
            .collect();
        // `key_rows` borrows nothing from the engine; the groups only needed it while grouping.
        drop(key_rows);
        Ok(Engine { rollup, table, rows, buckets, group_of_row, first_rows, accs })
    }

    /// Folds raw events into measure `i`: `values` is its input column (if any), `mask` its filter.
    fn feed_events(
        &mut self,
        i: usize,
        m: &Measure,
        values: Option<&ArrayRef>,
        mask: Option<&BooleanArray>,
    ) -> Result<()> {
        let n = self.rows.num_rows();
        let taken = |row: usize| mask.is_none_or(|f| f.value(row)) && values.is_none_or(|v| v.is_valid(row));
        let groups = &self.group_of_row;
        match &mut self.accs[i] {
            Acc::Count(counts) => {
                for row in (0..n).filter(|&r| taken(r)) {
                    counts[groups[row] as usize] += 1;
                }
            }
            Acc::Distinct(sketches) => {
                let values = values.expect("validated: approx_distinct names a column");
                let bytes: ArrayRef = match values.data_type() {
                    DataType::Binary => values.clone(),
                    _ => cast(values, &DataType::Binary)
                        .or_else(|_| cast(&cast(values, &DataType::Utf8)?, &DataType::Binary))
                        .map_err(Error::arrow(format!("hashing `{}` of {}", m.name, self.table)))?,
                };
                let bytes = bytes.as_binary::<i32>();
                for row in (0..n).filter(|&r| taken(r)) {
                    sketches[groups[row] as usize].insert(bytes.value(row));
                }
            }
            acc => {
                let values = values.expect("validated: sum, min and max name a column");
                fold_values(acc, values, groups, taken, &m.name, self.table)?;
            }
        }
        Ok(())
    }

    /// Folds rollup rows' values of measure `i` (its sketch column for `approx_distinct`).
    fn feed_rollup(&mut self, i: usize, m: &Measure, values: &ArrayRef) -> Result<()> {
        let groups = &self.group_of_row;
        let table = self.table;
        match &mut self.accs[i] {
            Acc::Count(counts) => {
                let values = values
                    .as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| invalid(table, format!("count column `{}` is not int64", m.name)))?;
                for (row, v) in values.iter().enumerate() {
                    counts[groups[row] as usize] += v.unwrap_or(0);
                }
            }
            Acc::Distinct(sketches) => {
                let values = values
                    .as_binary_opt::<i32>()
                    .ok_or_else(|| invalid(table, format!("sketch column of `{}` is not binary", m.name)))?;
                for (row, bytes) in values.iter().enumerate() {
                    let Some(bytes) = bytes else { continue };
                    let sketch = Sketch::from_bytes(bytes)
                        .map_err(|reason| invalid(table, format!("row {row} of `{}`: {reason}", m.name)))?;
                    sketches[groups[row] as usize].merge(&sketch);
                }
            }
            acc => fold_values(acc, values, groups, |r| values.is_valid(r), &m.name, table)?,
        }
        Ok(())
    }

    fn finish(self, grain: Grain, partial: Option<bool>) -> Result<RecordBatch> {
        let schema = self.rollup.schema(grain);
        let context = || format!("building rows of {}", self.table);
        let first = UInt32Array::from(self.first_rows.clone());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for d in &self.rollup.dimensions {
            let values = column(self.rows, &d.name, self.table)?;
            columns.push(take(&values, &first, None).map_err(Error::arrow(context()))?);
        }
        let starts = take(&self.buckets, &first, None).map_err(Error::arrow(context()))?;
        columns.push(starts.clone());
        for (m, acc) in self.rollup.measures.iter().zip(self.accs) {
            match acc {
                Acc::Count(counts) => columns.push(Arc::new(Int64Array::from(counts))),
                Acc::SumInt(sums) => columns.push(Arc::new(Int64Array::from(sums))),
                Acc::SumFloat(sums) => columns.push(Arc::new(Float64Array::from(sums))),
                Acc::SumDecimal(sums, t) => columns.push(Arc::new(Decimal128Array::from(sums).with_data_type(t))),
                Acc::Extreme { best, values, .. } => {
                    let indices = UInt32Array::from(best);
                    let out = match values {
                        Some((values, _)) => take(&values, &indices, None).map_err(Error::arrow(context()))?,
                        None => arrow::array::new_null_array(&m.output_type(), indices.len()),
                    };
                    columns.push(out);
                }
                Acc::Distinct(sketches) => {
                    columns.push(Arc::new(Int64Array::from_iter_values(sketches.iter().map(|s| s.estimate() as i64))));
                    let bytes: Vec<Vec<u8>> = sketches.iter().map(Sketch::to_bytes).collect();
                    columns.push(Arc::new(BinaryArray::from_iter_values(bytes)));
                }
            }
        }
        if let Some(partial) = partial {
            columns.push(Arc::new(BooleanArray::from(vec![partial; first.len()])));
        }
        let starts = starts.as_primitive::<TimestampMicrosecondType>();
        columns.push(Arc::new(Date32Array::from_iter_values(
            starts.values().iter().map(|t| t.div_euclid(MICROS_PER_DAY) as i32),
        )));
        RecordBatch::try_new(schema, columns).map_err(Error::arrow(context()))
    }
}

/// Folds `values` (rows where `taken` holds) into a sum or extreme accumulator.
fn fold_values(
    acc: &mut Acc,
    values: &ArrayRef,
    groups: &[u32],
    taken: impl Fn(usize) -> bool,
    measure: &str,
    table: &str,
) -> Result<()> {
    let n = values.len();
    let overflow = || invalid(table, format!("the sum `{measure}` overflows its type"));
    let context = || format!("reading `{measure}` of {table}");
    match acc {
        Acc::SumInt(sums) => {
            let values = cast(values, &DataType::Int64).map_err(Error::arrow(context()))?;
            let values = values.as_primitive::<Int64Type>();
            for row in (0..n).filter(|&r| taken(r)) {
                let slot = &mut sums[groups[row] as usize];
                *slot = Some(slot.unwrap_or(0).checked_add(values.value(row)).ok_or_else(overflow)?);
            }
        }
        Acc::SumFloat(sums) => {
            let values = cast(values, &DataType::Float64).map_err(Error::arrow(context()))?;
            let values = values.as_primitive::<Float64Type>();
            for row in (0..n).filter(|&r| taken(r)) {
                let slot = &mut sums[groups[row] as usize];
                *slot = Some(slot.unwrap_or(0.0) + values.value(row));
            }
        }
        Acc::SumDecimal(sums, t) => {
            let values = cast(values, t).map_err(Error::arrow(context()))?;
            let values = values.as_primitive::<Decimal128Type>();
            for row in (0..n).filter(|&r| taken(r)) {
                let slot = &mut sums[groups[row] as usize];
                *slot = Some(slot.unwrap_or(0).checked_add(values.value(row)).ok_or_else(overflow)?);
            }
        }
        Acc::Extreme { best, min, values: kept } => {
            let converter =
                RowConverter::new(vec![SortField::new(values.data_type().clone())]).map_err(Error::arrow(context()))?;
            let rows = converter.convert_columns(std::slice::from_ref(values)).map_err(Error::arrow(context()))?;
            for row in (0..n).filter(|&r| taken(r)) {
                let slot = &mut best[groups[row] as usize];
                let better = match slot {
                    None => true,
                    Some(b) => {
                        let (new, old) = (rows.row(row), rows.row(*b as usize));
                        if *min {
                            new < old
                        } else {
                            new > old
                        }
                    }
                };
                if better {
                    *slot = Some(row as u32);
                }
            }
            *kept = Some((values.clone(), rows));
        }
        Acc::Count(_) | Acc::Distinct(_) => unreachable!("counts and sketches fold in the engine"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;
    use arrow::array::{Int32Array, StringArray};

    fn spec() -> RollupSpec {
        let config = PipelineConfig::parse(
            r#"
            [kafka]
            brokers = "k:9092"
            [lake]
            root = "/lake"
            [tables.ads]
            topic = "ads"
            event_uuid = "id"
            event_time = "at"
            columns = [
              { name = "id", type = "string", nullable = false },
              { name = "at", type = "timestamp", nullable = false },
              { name = "ad", type = "int32" },
              { name = "kind", type = "string" },
              { name = "cost", type = "decimal(10, 2)" },
              { name = "user", type = "string" },
            ]
            [tables.ads.rollup]
            dimensions = ["ad"]
            measures = [
              { name = "events", fn = "count" },
              { name = "clicks", fn = "count", filter = "kind = 'click'" },
              { name = "spend", fn = "sum", column = "cost" },
              { name = "first_user", fn = "min", column = "user" },
              { name = "users", fn = "approx_distinct", column = "user" },
            ]
            "#,
            std::path::Path::new("/"),
        )
        .unwrap();
        config.tables[0].rollup.clone().unwrap()
    }

    const MINUTE: i64 = 60_000_000;

    fn events(rows: &[(i64, Option<i32>, &str, i128, &str)]) -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "at",
                Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.0)).with_timezone("UTC"))
                    as ArrayRef,
            ),
            ("ad", Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.1)))),
            ("kind", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2)))),
            (
                "cost",
                Arc::new(
                    Decimal128Array::from_iter_values(rows.iter().map(|r| r.3))
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            ("user", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.4)))),
        ])
        .unwrap()
    }

    fn sorted(batch: &RecordBatch, columns: &[&str]) -> Vec<String> {
        let mut lines: Vec<String> = (0..batch.num_rows())
            .map(|row| {
                columns
                    .iter()
                    .map(|c| {
                        arrow::util::display::array_value_to_string(batch.column_by_name(c).unwrap(), row).unwrap()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn events_group_by_key_and_minute_with_filters_and_null_keys() {
        let rollup = spec();
        let rows = events(&[
            (10, Some(1), "view", 100, "u1"),
            (20, Some(1), "click", 250, "u2"),
            (MINUTE + 5, Some(1), "click", 1, "u1"),
            (30, None, "view", 7, "u3"),
            (40, Some(2), "view", 0, "u9"),
            (50, Some(1), "view", 5, "u1"),
        ]);
        let minutes = minute_partials(&rollup, "at", &rows).unwrap();
        assert_eq!(
            sorted(&minutes, &["ad", "minute", "events", "clicks", "spend", "first_user", "users", "partial"]),
            [
                " 1970-01-01T00:00:00Z 1 0 0.07 u3 1 true",
                "1 1970-01-01T00:00:00Z 3 1 3.55 u1 2 true",
                "1 1970-01-01T00:01:00Z 1 1 0.01 u1 1 true",
                "2 1970-01-01T00:00:00Z 1 0 0.00 u9 1 true",
            ]
        );
    }

    #[test]
    fn merging_partials_equals_aggregating_all_events_at_once() {
        let rollup = spec();
        let all = events(&[
            (10, Some(1), "view", 100, "u1"),
            (20, Some(1), "click", 250, "u2"),
            (3 * MINUTE, Some(1), "click", 1, "u1"),
            (61 * MINUTE, Some(1), "view", 7, "u3"),
            (62 * MINUTE, Some(2), "click", 3, "u2"),
        ]);
        let (a, b) = (all.slice(0, 2), all.slice(2, 3));
        let partials = arrow::compute::concat_batches(
            &rollup.schema(Grain::Minute),
            &[minute_partials(&rollup, "at", &a).unwrap(), minute_partials(&rollup, "at", &b).unwrap()],
        )
        .unwrap();
        let hours_from_partials = merge(&rollup, Grain::Minute, &partials, Grain::Hour).unwrap();
        let minutes_at_once = minute_partials(&rollup, "at", &all).unwrap();
        let hours_at_once = merge(&rollup, Grain::Minute, &minutes_at_once, Grain::Hour).unwrap();
        let columns = ["ad", "hour", "events", "clicks", "spend", "first_user", "users", "users_sketch", "event_date"];
        assert_eq!(sorted(&hours_from_partials, &columns), sorted(&hours_at_once, &columns));
        assert_eq!(
            sorted(&hours_at_once, &["ad", "hour", "events", "clicks", "spend", "users"]),
            [
                "1 1970-01-01T00:00:00Z 3 2 3.51 2",
                "1 1970-01-01T01:00:00Z 1 0 0.07 1",
                "2 1970-01-01T01:00:00Z 1 1 0.03 1"
            ]
        );
        let days = merge(&rollup, Grain::Hour, &hours_at_once, Grain::Day).unwrap();
        assert_eq!(
            sorted(&days, &["ad", "day", "events", "users"]),
            ["1 1970-01-01T00:00:00Z 4 3", "2 1970-01-01T00:00:00Z 1 1"]
        );
        let finalized = merge(&rollup, Grain::Minute, &partials, Grain::Minute).unwrap();
        assert_eq!(finalized.num_rows(), minutes_at_once.num_rows());
        assert!(sorted(&finalized, &["partial"]).iter().all(|p| p == "false"));
    }

    #[test]
    fn a_missing_column_is_named() {
        let rows = events(&[(10, Some(1), "view", 1, "u1")]).project(&[0, 1, 2, 3]).unwrap();
        let err = minute_partials(&spec(), "at", &rows).unwrap_err().to_string();
        assert!(err.contains("ads_minute") && err.contains("`user`"), "{err}");
    }
}
