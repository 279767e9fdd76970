//! Rollups: aggregates of a table per dimension key and time bucket (minute, hour, day), declared in
//! `tidelake.toml` and kept in Delta tables of their own, `<table>_minute`, `<table>_hour` and
//! `<table>_day`.
//!
//! Every measure is mergeable: a bucket's value can be computed from the values of its parts (the
//! partial minute rows of several batches, the minutes of an hour, the hours of a day). That is what
//! lets ingest write partial minute rows per batch and compaction merge them later without reading
//! raw events again. A measure that cannot be merged (an average, an exact distinct count, a median)
//! is refused when the config is read, with the mergeable alternative.
//!
//! ```toml
//! [tables.ad_events.rollup]
//! dimensions = ["ad_id", "campaign_id"]
//! grains = ["minute", "hour", "day"]     # the default
//! allowed_lateness = "5m"                # how long a minute stays open for late events
//! measures = [
//!   { name = "impressions", fn = "count", filter = "event_type = 'impression'" },
//!   { name = "clicks", fn = "count", filter = "event_type = 'click'" },
//!   { name = "spend", fn = "sum", column = "cost" },
//!   { name = "unique_users", fn = "approx_distinct", column = "user_id" },
//! ]
//! ```
//!
//! A rollup table holds the dimensions, the bucket start (`minute`, `hour` or `day`, a UTC timestamp),
//! the measures, and `event_date` (the bucket's day, the partition column). An `approx_distinct`
//! measure `m` is two columns: `m`, the estimate of that row, and `m_sketch`, the HyperLogLog sketch
//! that merges (see [`sketch`](crate::sketch)); estimates of several rows cannot be added up. The minute
//! table also has `partial`: true for the rows ingest appends per batch (several per key and minute),
//! false once compaction has merged a closed minute into one row. Until then, queries sum the rows.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, BooleanArray, Datum, Scalar, StringArray};
use arrow::compute::kernels::cmp;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;
use url::Url;

use crate::schema::{ColumnSpec, ColumnType};

/// Microseconds in a minute, an hour and a day.
const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// The time buckets a rollup keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grain {
    /// One row per key and UTC minute.
    Minute,
    /// One row per key and UTC hour.
    Hour,
    /// One row per key and UTC day.
    Day,
}

impl Grain {
    /// Every grain, finest first.
    pub const ALL: [Grain; 3] = [Grain::Minute, Grain::Hour, Grain::Day];

    /// The grain's name, also its bucket column and its table name suffix.
    pub fn name(self) -> &'static str {
        match self {
            Grain::Minute => "minute",
            Grain::Hour => "hour",
            Grain::Day => "day",
        }
    }

    /// Length of a bucket in microseconds.
    pub fn micros(self) -> i64 {
        match self {
            Grain::Minute => MICROS_PER_MINUTE,
            Grain::Hour => MICROS_PER_HOUR,
            Grain::Day => MICROS_PER_DAY,
        }
    }

    /// The start of the bucket holding `micros` (since the epoch).
    pub fn truncate(self, micros: i64) -> i64 {
        micros - micros.rem_euclid(self.micros())
    }

    /// The next finer grain this one is rolled up from (`None` for minutes, which come from events).
    pub fn source(self) -> Option<Grain> {
        match self {
            Grain::Minute => None,
            Grain::Hour => Some(Grain::Minute),
            Grain::Day => Some(Grain::Hour),
        }
    }

    fn parse(text: &str) -> Result<Grain, String> {
        Grain::ALL
            .into_iter()
            .find(|g| g.name() == text)
            .ok_or_else(|| format!("`{text}` is not a grain; use \"minute\", \"hour\" and \"day\""))
    }
}

/// What a measure computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasureFn {
    /// Rows (of the filter), or non-null values of `column`.
    Count,
    /// Sum of a numeric column.
    Sum,
    /// Smallest value of a column.
    Min,
    /// Largest value of a column.
    Max,
    /// Approximate number of distinct values of a column (HyperLogLog).
    ApproxDistinct,
}

/// Comparison of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

/// `column op literal`: which events a measure counts.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The column compared.
    pub column: String,
    /// The comparison.
    pub op: FilterOp,
    /// The literal, already in the column's type (one value).
    literal: ArrayRef,
    /// The filter as written.
    pub text: String,
}

impl Filter {
    /// Which rows pass; a null value never does.
    pub fn mask(&self, values: &dyn Array) -> Result<BooleanArray, arrow::error::ArrowError> {
        let literal = Scalar::new(self.literal.clone());
        let values: &dyn Datum = &values;
        let mask = match self.op {
            FilterOp::Eq => cmp::eq(values, &literal)?,
            FilterOp::NotEq => cmp::neq(values, &literal)?,
            FilterOp::Lt => cmp::lt(values, &literal)?,
            FilterOp::LtEq => cmp::lt_eq(values, &literal)?,
            FilterOp::Gt => cmp::gt(values, &literal)?,
            FilterOp::GtEq => cmp::gt_eq(values, &literal)?,
        };
        Ok(match mask.nulls() {
            Some(_) => arrow::compute::prep_null_mask_filter(&mask),
            None => mask,
        })
    }
}

/// One measure of a rollup.
#[derive(Debug, Clone)]
pub struct Measure {
    /// Output column name.
    pub name: String,
    /// What it computes.
    pub function: MeasureFn,
    /// The input column (`None` only for a row count).
    pub column: Option<ColumnSpec>,
    /// Which events it takes.
    pub filter: Option<Filter>,
}

impl Measure {
    /// The type of the measure's column in a rollup table.
    pub fn output_type(&self) -> DataType {
        let input = self.column.as_ref().map(|c| c.kind);
        match (self.function, input) {
            (MeasureFn::Count | MeasureFn::ApproxDistinct, _) => DataType::Int64,
            (MeasureFn::Sum, Some(ColumnType::Float32 | ColumnType::Float64)) => DataType::Float64,
            (MeasureFn::Sum, Some(ColumnType::Decimal(_, scale))) => DataType::Decimal128(38, scale),
            (MeasureFn::Sum, _) => DataType::Int64,
            (MeasureFn::Min | MeasureFn::Max, Some(kind)) => kind.arrow(),
            (MeasureFn::Min | MeasureFn::Max, None) => unreachable!("validated: min and max name a column"),
        }
    }

    /// The sketch column of an `approx_distinct` measure.
    pub fn sketch_column(&self) -> Option<String> {
        (self.function == MeasureFn::ApproxDistinct).then(|| format!("{}_sketch", self.name))
    }
}

/// A table's rollup: its dimensions, grains, measures and where each grain's table lives.
#[derive(Debug, Clone)]
pub struct RollupSpec {
    /// Name of the table rolled up.
    pub table: String,
    /// Dimension columns, as declared in the table.
    pub dimensions: Vec<ColumnSpec>,
    /// Grains kept, finest first; always starts with `minute`.
    pub grains: Vec<Grain>,
    /// How long after its end a minute still takes late events before compaction closes it.
    pub allowed_lateness: Duration,
    /// The measures.
    pub measures: Vec<Measure>,
    /// Location of each grain's table, in the order of `grains`.
    pub locations: Vec<Url>,
}

impl RollupSpec {
    /// The name of a grain's table: `<table>_<grain>`.
    pub fn table_name(&self, grain: Grain) -> String {
        format!("{}_{}", self.table, grain.name())
    }

    /// A grain's table location, if the rollup keeps that grain.
    pub fn location(&self, grain: Grain) -> Option<&Url> {
        self.grains.iter().position(|g| *g == grain).map(|i| &self.locations[i])
    }

    /// The rollup tables: grain, name and location, finest first.
    pub fn tables(&self) -> impl Iterator<Item = (Grain, String, &Url)> {
        self.grains.iter().zip(&self.locations).map(|(g, at)| (*g, self.table_name(*g), at))
    }

    /// The schema of a grain's table.
    pub fn schema(&self, grain: Grain) -> SchemaRef {
        let mut fields: Vec<Field> =
            self.dimensions.iter().map(|d| Field::new(&d.name, d.kind.arrow(), true)).collect();
        fields.push(Field::new(grain.name(), DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false));
        for m in &self.measures {
            let nullable = !matches!(m.function, MeasureFn::Count | MeasureFn::ApproxDistinct);
            fields.push(Field::new(&m.name, m.output_type(), nullable));
            if let Some(sketch) = m.sketch_column() {
                fields.push(Field::new(sketch, DataType::Binary, false));
            }
        }
        if grain == Grain::Minute {
            fields.push(Field::new(PARTIAL_COLUMN, DataType::Boolean, false));
        }
        fields.push(Field::new(DATE_COLUMN, DataType::Date32, false));
        Arc::new(Schema::new(fields))
    }

    /// The partition columns of every rollup table.
    pub fn partition_columns() -> Vec<String> {
        vec![DATE_COLUMN.to_string()]
    }

    /// Raw-table columns the rollup reads: event time, dimensions, measure and filter columns.
    pub fn input_columns(&self, event_time: &str) -> Vec<String> {
        let mut columns = vec![event_time.to_string()];
        let named =
            self.dimensions.iter().map(|d| d.name.clone()).chain(self.measures.iter().flat_map(|m| {
                m.column.iter().map(|c| c.name.clone()).chain(m.filter.iter().map(|f| f.column.clone()))
            }));
        for name in named {
            if !columns.contains(&name) {
                columns.push(name);
            }
        }
        columns
    }
}

/// The minute table property naming the data table version its partial rows start after: a minute
/// table created next to a data table that already holds rows does not aggregate that history.
pub const SOURCE_VERSION_PROPERTY: &str = "tidelake.rollup.sourceVersion";

/// The minute table's column telling partial rows from merged ones.
pub const PARTIAL_COLUMN: &str = "partial";
/// The partition column of every rollup table: the UTC day of the bucket.
pub const DATE_COLUMN: &str = "event_date";

/// `[tables.<name>.rollup]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRollup {
    dimensions: Vec<String>,
    grains: Option<Vec<String>>,
    allowed_lateness: Option<String>,
    measures: Vec<RawMeasure>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasure {
    name: String,
    #[serde(rename = "fn")]
    function: String,
    column: Option<String>,
    filter: Option<String>,
}

/// A config error: the key and what is wrong with it.
pub(crate) type Invalid = (String, String);

impl RawRollup {
    /// Validates the rollup of table `table` (key `key`, columns `columns`); `locate` gives a grain's
    /// table location.
    pub(crate) fn validate(
        self,
        key: &str,
        table: &str,
        columns: &[ColumnSpec],
        locate: impl Fn(Grain) -> Result<Url, Invalid>,
    ) -> Result<RollupSpec, Invalid> {
        let key = format!("{key}.rollup");
        let column = |field: String, name: &str| -> Result<ColumnSpec, Invalid> {
            columns
                .iter()
                .find(|c| c.name == name)
                .cloned()
                .ok_or_else(|| (field, format!("names column `{name}`, which is not in the table's `columns`")))
        };
        let mut reserved: Vec<String> =
            [Grain::Minute, Grain::Hour, Grain::Day].iter().map(|g| g.name().to_string()).collect();
        reserved.extend([PARTIAL_COLUMN.to_string(), DATE_COLUMN.to_string()]);
        let mut names: Vec<String> = Vec::new();
        let mut claim = |field: String, name: &str| -> Result<(), Invalid> {
            if reserved.iter().any(|r| r == name) {
                return Err((field, format!("`{name}` is a column every rollup table has already; rename it")));
            }
            if names.iter().any(|n| n == name) {
                return Err((field, format!("`{name}` names two columns of the rollup")));
            }
            names.push(name.to_string());
            Ok(())
        };

        let mut dimensions = Vec::new();
        for (i, name) in self.dimensions.iter().enumerate() {
            let field = format!("{key}.dimensions[{i}]");
            let spec = column(field.clone(), name)?;
            if matches!(spec.kind, ColumnType::Float32 | ColumnType::Float64) {
                return Err((
                    field,
                    format!(
                        "`{name}` is a float; a dimension must compare exactly (use an integer, string or decimal)"
                    ),
                ));
            }
            claim(field, name)?;
            dimensions.push(spec);
        }

        let grains = match self.grains {
            None => Grain::ALL.to_vec(),
            Some(list) => {
                let mut grains = Vec::new();
                for (i, text) in list.iter().enumerate() {
                    grains.push(Grain::parse(text).map_err(|reason| (format!("{key}.grains[{i}]"), reason))?);
                }
                grains.sort();
                grains.dedup();
                if grains.len() != list.len() {
                    return Err((format!("{key}.grains"), "lists a grain twice".into()));
                }
                for g in &grains {
                    if let Some(source) = g.source().filter(|s| !grains.contains(s)) {
                        return Err((
                            format!("{key}.grains"),
                            format!("`{}` is rolled up from `{}`, which is not listed", g.name(), source.name()),
                        ));
                    }
                }
                if grains.first() != Some(&Grain::Minute) {
                    return Err((format!("{key}.grains"), "must start with \"minute\"".into()));
                }
                grains
            }
        };

        let lateness_text = self.allowed_lateness.unwrap_or_else(|| "5m".into());
        let allowed_lateness = humantime::parse_duration(&lateness_text).map_err(|e| {
            (format!("{key}.allowed_lateness"), format!("`{lateness_text}` is not a duration like \"5m\": {e}"))
        })?;

        if self.measures.is_empty() {
            return Err((
                format!("{key}.measures"),
                "must declare at least one measure, like { name = \"events\", fn = \"count\" }".into(),
            ));
        }
        let mut measures = Vec::new();
        for (i, raw) in self.measures.into_iter().enumerate() {
            let mkey = format!("{key}.measures[{i}]");
            if raw.name.is_empty() || !raw.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err((format!("{mkey}.name"), format!("`{}` may hold only letters, digits and `_`", raw.name)));
            }
            let function = measure_fn(&raw.function).map_err(|reason| (format!("{mkey}.fn"), reason))?;
            let input = match &raw.column {
                Some(name) => Some(column(format!("{mkey}.column"), name)?),
                None if function == MeasureFn::Count => None,
                None => return Err((format!("{mkey}.column"), format!("`{}` needs a column", raw.function))),
            };
            if let Some(input) = &input {
                check_input(function, input).map_err(|reason| (format!("{mkey}.column"), reason))?;
            }
            let filter = match &raw.filter {
                Some(text) => Some(parse_filter(text, columns).map_err(|reason| (format!("{mkey}.filter"), reason))?),
                None => None,
            };
            claim(format!("{mkey}.name"), &raw.name)?;
            if function == MeasureFn::ApproxDistinct {
                claim(format!("{mkey}.name"), &format!("{}_sketch", raw.name))?;
            }
            measures.push(Measure { name: raw.name, function, column: input, filter });
        }

        let locations = grains.iter().map(|g| locate(*g)).collect::<Result<Vec<_>, _>>()?;
        Ok(RollupSpec { table: table.to_string(), dimensions, grains, allowed_lateness, measures, locations })
    }
}

fn measure_fn(text: &str) -> Result<MeasureFn, String> {
    Ok(match text.trim().to_ascii_lowercase().as_str() {
        "count" => MeasureFn::Count,
        "sum" => MeasureFn::Sum,
        "min" => MeasureFn::Min,
        "max" => MeasureFn::Max,
        "approx_distinct" | "approx_count_distinct" | "hll" => MeasureFn::ApproxDistinct,
        "avg" | "mean" | "average" => {
            return Err(format!(
                "`{text}` cannot be merged: an average of averages is wrong; declare a `sum` and a `count` and divide them at query time"
            ))
        }
        "count_distinct" | "distinct" | "distinct_count" | "uniq" => {
            return Err(format!(
                "`{text}` cannot be merged: exact distinct counts of two minutes do not add up to the hour's; use `approx_distinct` (HyperLogLog), which merges"
            ))
        }
        "median" | "percentile" | "quantile" | "stddev" | "variance" | "mode" => {
            return Err(format!(
                "`{text}` cannot be merged from the values of minutes into hours and days; keep it out of the rollup and compute it over the raw table"
            ))
        }
        _ => return Err(format!("`{text}` is not a measure; use count, sum, min, max or approx_distinct")),
    })
}

fn check_input(function: MeasureFn, input: &ColumnSpec) -> Result<(), String> {
    let kind = input.kind;
    let numeric = matches!(
        kind,
        ColumnType::Int32 | ColumnType::Int64 | ColumnType::Float32 | ColumnType::Float64 | ColumnType::Decimal(..)
    );
    match function {
        MeasureFn::Sum if !numeric => Err(format!("`sum` needs a numeric column; `{}` is {kind:?}", input.name)),
        MeasureFn::Min | MeasureFn::Max if kind == ColumnType::Binary => {
            Err(format!("`min` and `max` do not order binary column `{}`", input.name))
        }
        MeasureFn::ApproxDistinct
            if matches!(kind, ColumnType::Float32 | ColumnType::Float64 | ColumnType::Boolean) =>
        {
            Err(format!(
                "`approx_distinct` counts ids; `{}` is {kind:?} (use a string, integer or binary column)",
                input.name
            ))
        }
        _ => Ok(()),
    }
}

/// Parses `column op literal`, the literal quoted (`'click'`) or bare (`3`, `true`).
fn parse_filter(text: &str, columns: &[ColumnSpec]) -> Result<Filter, String> {
    let usage = "write it as `column op value` with op one of = != <> < <= > >=, like \"event_type = 'click'\"";
    let trimmed = text.trim();
    let name_end = trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(trimmed.len());
    let (name, rest) = trimmed.split_at(name_end);
    let rest = rest.trim_start();
    let (op, literal) = [
        ("!=", FilterOp::NotEq),
        ("<>", FilterOp::NotEq),
        ("<=", FilterOp::LtEq),
        (">=", FilterOp::GtEq),
        ("=", FilterOp::Eq),
        ("<", FilterOp::Lt),
        (">", FilterOp::Gt),
    ]
    .into_iter()
    .find_map(|(token, op)| rest.strip_prefix(token).map(|l| (op, l.trim())))
    .ok_or_else(|| format!("`{text}`: {usage}"))?;
    if name.is_empty() || literal.is_empty() {
        return Err(format!("`{text}`: {usage}"));
    }
    let column = columns
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("`{text}` compares column `{name}`, which is not in the table's `columns`"))?;
    let value = match literal.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')) {
        Some(quoted) => quoted.replace("''", "'"),
        None => literal.to_string(),
    };
    let text_value: ArrayRef = Arc::new(StringArray::from(vec![value.clone()]));
    let typed = arrow::compute::cast(&text_value, &column.kind.arrow())
        .ok()
        .filter(|a| a.is_valid(0))
        .ok_or_else(|| format!("`{text}`: `{value}` is not a value of column `{name}` ({:?})", column.kind))?;
    Ok(Filter { column: name.to_string(), op, literal: typed, text: trimmed.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn columns() -> Vec<ColumnSpec> {
        let c = |name: &str, kind| ColumnSpec::new(name, kind, true);
        vec![
            c("event_id", ColumnType::String),
            c("event_type", ColumnType::String),
            c("ad_id", ColumnType::Int64),
            c("cost", ColumnType::Decimal(18, 6)),
            c("score", ColumnType::Float64),
            c("user_id", ColumnType::String),
        ]
    }

    fn validate(text: &str) -> Result<RollupSpec, Invalid> {
        let raw: RawRollup = toml::from_str(text).unwrap();
        raw.validate("tables.ads", "ads", &columns(), |g| {
            Ok(Url::parse(&format!("file:///lake/ads_{}", g.name())).unwrap())
        })
    }

    const GOOD: &str = r#"
        dimensions = ["ad_id"]
        measures = [
          { name = "clicks", fn = "count", filter = "event_type = 'click'" },
          { name = "spend", fn = "sum", column = "cost" },
          { name = "users", fn = "approx_distinct", column = "user_id" },
        ]
    "#;

    #[test]
    fn a_good_rollup_has_three_grains_and_typed_columns() {
        let spec = validate(GOOD).unwrap();
        assert_eq!(spec.grains, Grain::ALL.to_vec());
        assert_eq!(spec.allowed_lateness, Duration::from_secs(300));
        assert_eq!(spec.location(Grain::Hour).unwrap().as_str(), "file:///lake/ads_hour");
        let schema = spec.schema(Grain::Minute);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["ad_id", "minute", "clicks", "spend", "users", "users_sketch", "partial", "event_date"]);
        assert_eq!(schema.field(3).data_type(), &DataType::Decimal128(38, 6));
        assert_eq!(spec.input_columns("event_time"), ["event_time", "ad_id", "event_type", "cost", "user_id"]);
    }

    #[test]
    fn unmergeable_measures_are_refused_with_the_alternative() {
        let refused =
            |measure: &str| validate(&GOOD.replace("fn = \"sum\"", &format!("fn = \"{measure}\""))).unwrap_err();
        let (key, reason) = refused("avg");
        assert_eq!(key, "tables.ads.rollup.measures[1].fn");
        assert!(reason.contains("sum") && reason.contains("count"), "{reason}");
        assert!(refused("count_distinct").1.contains("approx_distinct"));
        assert!(refused("median").1.contains("cannot be merged"));
        let (key, reason) = validate(&GOOD.replace("column = \"cost\"", "column = \"event_type\"")).unwrap_err();
        assert_eq!(key, "tables.ads.rollup.measures[1].column");
        assert!(reason.contains("numeric"), "{reason}");
    }

    #[test]
    fn bad_grains_dimensions_and_filters_name_their_key() {
        assert_eq!(
            validate(&format!("grains = [\"minute\", \"day\"]\n{GOOD}")).unwrap_err().0,
            "tables.ads.rollup.grains"
        );
        assert_eq!(
            validate(&GOOD.replace("[\"ad_id\"]", "[\"score\"]")).unwrap_err().0,
            "tables.ads.rollup.dimensions[0]"
        );
        assert_eq!(
            validate(&GOOD.replace("[\"ad_id\"]", "[\"campaign\"]")).unwrap_err().0,
            "tables.ads.rollup.dimensions[0]"
        );
        let (key, reason) = validate(&GOOD.replace("event_type = 'click'", "ad_id = 'x'")).unwrap_err();
        assert_eq!(key, "tables.ads.rollup.measures[0].filter");
        assert!(reason.contains("not a value"), "{reason}");
        assert!(validate(&GOOD.replace("event_type = 'click'", "event_type ~ 'c'")).unwrap_err().1.contains("op"));
        assert!(validate(&GOOD.replace("\"spend\"", "\"clicks\"")).unwrap_err().1.contains("two columns"));
    }

    #[test]
    fn filters_compare_in_the_column_type_and_nulls_never_pass() {
        let filter = parse_filter("ad_id >= 3", &columns()).unwrap();
        let values = Int64Array::from(vec![Some(1), Some(3), None, Some(7)]);
        assert_eq!(filter.mask(&values).unwrap(), BooleanArray::from(vec![false, true, false, true]));
    }

    #[test]
    fn buckets_start_on_the_grain() {
        let t = 1_763_900_000_123_456; // 2025-11-23T12:13:20.123456Z
        assert_eq!(Grain::Minute.truncate(t), 1_763_899_980_000_000);
        assert_eq!(Grain::Hour.truncate(t), 1_763_899_200_000_000);
        assert_eq!(Grain::Day.truncate(t), 1_763_856_000_000_000);
        assert_eq!(Grain::Minute.truncate(-1), -60_000_000);
    }
}
