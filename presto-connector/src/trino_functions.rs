//! Trino's date and time functions that dashboards use most, where DataFusion lacks them or
//! answers differently (Trino's answer wins):
//!
//! | function | Trino's answer |
//! |---|---|
//! | `format_datetime(ts, 'yyyy-MM-dd HH:mm')` | the time formatted with a Joda-Time pattern, in the value's zone |
//! | `date_format(ts, '%Y-%m-%d %H:%i')` | the time formatted with MySQL's specifiers |
//! | `from_unixtime(seconds [, zone])` | `timestamp(3) with time zone`, fractions of a second kept |
//! | `to_unixtime(ts)` | `double` seconds, fractions kept |
//! | `date_trunc(unit, date)` | a `date` (DataFusion's answers a timestamp); timestamps as DataFusion |
//! | `to_hex(varbinary)` | the bytes in upper-case hex (DataFusion's takes integers only; those still work) |
//!
//! `approx_percentile(x, p)` is DataFusion's t-digest answering in `x`'s type, as Trino's does
//! (DataFusion's `approx_percentile_cont` answers a double); `CAST(x AS VARBINARY)` is rewritten to
//! DataFusion's form when a statement is parsed (see [`statement`](crate::statement)).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Float64Array, StringArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::functions_aggregate::approx_percentile_cont::ApproxPercentileAccumulator;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

/// The functions, to register over DataFusion's (same names replace them).
pub fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(Format::new("format_datetime", Style::Joda)),
        ScalarUDF::from(Format::new("date_format", Style::MySql)),
        ScalarUDF::from(FromUnixtime::new()),
        ScalarUDF::from(ToUnixtime::new()),
        ScalarUDF::from(DateTrunc::new()),
        ScalarUDF::from(ToHex::new()),
    ]
}

/// The aggregates, to register over DataFusion's.
pub fn aggregates() -> Vec<AggregateUDF> {
    vec![AggregateUDF::from(ApproxPercentile::new())]
}

/// Which pattern language a formatting function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Style {
    /// Joda-Time's `DateTimeFormat` letters (`format_datetime`).
    Joda,
    /// MySQL's `%` specifiers (`date_format`).
    MySql,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    name: &'static str,
    style: Style,
    signature: Signature,
}

impl Format {
    fn new(name: &'static str, style: Style) -> Self {
        Format { name, style, signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let pattern = match &args.args[1] {
            ColumnarValue::Scalar(value) => match value.try_as_str() {
                Some(Some(pattern)) => pattern.to_string(),
                _ => return exec_err!("{}: the format is a non-null string literal", self.name),
            },
            ColumnarValue::Array(_) => return exec_err!("{}: the format is a string literal", self.name),
        };
        let format = match self.style {
            Style::Joda => joda_to_strftime(&pattern),
            Style::MySql => mysql_to_strftime(&pattern),
        }
        .map_err(|reason| datafusion::error::DataFusionError::Execution(format!("{}: {reason}", self.name)))?;
        let rows = args.number_rows;
        let values = args.args[0].to_array(rows)?;
        let (micros, zone) = as_micros(&values, self.name)?;
        let formatted: StringArray = micros
            .iter()
            .map(|value| value.map(|us| in_zone(us, zone.as_deref()).map(|t| t.format(&format).to_string())))
            .map(Option::flatten)
            .collect();
        scalar_if(&args.args[0], Arc::new(formatted))
    }
}

/// A time in its zone (UTC when it has none), ready to format.
fn in_zone(micros: i64, zone: Option<&str>) -> Option<DateTime<arrow::array::timezone::Tz>> {
    let utc = DateTime::<Utc>::from_timestamp_micros(micros)?;
    let zone: arrow::array::timezone::Tz = zone.unwrap_or("UTC").parse().ok()?;
    Some(utc.with_timezone(&zone))
}

/// `values` (dates or timestamps of any unit) as microseconds since the epoch, and their zone.
fn as_micros(
    values: &ArrayRef,
    name: &str,
) -> Result<(arrow::array::PrimitiveArray<TimestampMicrosecondType>, Option<String>)> {
    let zone = match values.data_type() {
        DataType::Timestamp(_, zone) => zone.as_ref().map(|z| z.to_string()),
        DataType::Date32 | DataType::Date64 | DataType::Null => None,
        other => return exec_err!("{name}: expected a timestamp or a date, got {other}"),
    };
    let micros = cast(values, &DataType::Timestamp(TimeUnit::Microsecond, zone.clone().map(Into::into)))?;
    Ok((micros.as_primitive::<TimestampMicrosecondType>().clone(), zone))
}

/// The answer as a scalar when the input was one.
fn scalar_if(input: &ColumnarValue, array: ArrayRef) -> Result<ColumnarValue> {
    match input {
        ColumnarValue::Scalar(_) => Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)),
        ColumnarValue::Array(_) => Ok(ColumnarValue::Array(array)),
    }
}

/// A Joda-Time pattern as a chrono format string.
fn joda_to_strftime(pattern: &str) -> std::result::Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // '' is a quote; 'text' is literal text.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            let end = chars[i + 1..].iter().position(|&q| q == '\'').ok_or("a quote in the pattern is not closed")?;
            for literal in &chars[i + 1..i + 1 + end] {
                push_literal(&mut out, *literal);
            }
            i += end + 2;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let spec = match (c, run) {
            ('y' | 'Y' | 'x', 2) => "%y",
            ('y' | 'Y', _) => "%Y",
            ('x', _) => "%G",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('D', 1 | 2) => "%-j",
            ('D', _) => "%j",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('e', _) => "%u",
            ('w', 1) => "%-V",
            ('w', _) => "%V",
            ('Z', 1) => "%z",
            ('Z', 2) => "%:z",
            ('Z' | 'z', _) => "%Z",
            ('S', n) => {
                return Err(format!(
                    "'{}' (fractions of a second in {n} digits) is not supported: use SSS, SSSSSS or SSSSSSSSS",
                    "S".repeat(n)
                ))
            }
            (other, _) => return Err(format!("the pattern letter '{other}' is not supported")),
        };
        out.push_str(spec);
        i += run;
    }
    Ok(out)
}

/// MySQL's `%` specifiers (as Trino's `date_format` takes them) as a chrono format string.
fn mysql_to_strftime(pattern: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            push_literal(&mut out, c);
            continue;
        }
        let Some(spec) = chars.next() else { return Err("the format ends with a lone %".into()) };
        let mapped = match spec {
            'a' => "%a",
            'b' => "%b",
            'c' => "%-m",
            'd' => "%d",
            'e' => "%-d",
            'f' => "%6f",
            'H' => "%H",
            'h' | 'I' => "%I",
            'i' => "%M",
            'j' => "%j",
            'k' => "%-H",
            'l' => "%-I",
            'M' => "%B",
            'm' => "%m",
            'p' => "%p",
            'r' => "%I:%M:%S %p",
            'S' | 's' => "%S",
            'T' => "%H:%M:%S",
            'v' => "%V",
            'W' => "%A",
            'x' => "%G",
            'Y' => "%Y",
            'y' => "%y",
            '%' => "%%",
            'D' | 'U' | 'u' | 'V' | 'w' | 'X' => return Err(format!("%{spec} is not supported (nor by Trino)")),
            other => {
                push_literal(&mut out, other);
                continue;
            }
        };
        out.push_str(mapped);
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    match c {
        '%' => out.push_str("%%"),
        c => out.push(c),
    }
}

/// `from_unixtime(seconds [, zone]) -> timestamp(3) with time zone`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FromUnixtime {
    signature: Signature,
}

impl FromUnixtime {
    fn new() -> Self {
        FromUnixtime {
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Exact(vec![DataType::Float64]),
                    datafusion::logical_expr::TypeSignature::Exact(vec![DataType::Float64, DataType::Utf8]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for FromUnixtime {
    fn name(&self) -> &str {
        "from_unixtime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("from_unixtime's type comes from its arguments")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let zone = match args.scalar_arguments.get(1) {
            None => "UTC".to_string(),
            Some(Some(value)) => match value.try_as_str() {
                Some(Some(zone)) if zone.parse::<arrow::array::timezone::Tz>().is_ok() => zone.to_string(),
                _ => {
                    return plan_err!(
                        "from_unixtime: the zone is a time zone name or offset literal, e.g. 'Europe/Berlin'"
                    )
                }
            },
            Some(None) => return plan_err!("from_unixtime: the zone is a literal"),
        };
        Ok(Arc::new(Field::new(self.name(), DataType::Timestamp(TimeUnit::Millisecond, Some(zone.into())), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let seconds = args.args[0].to_array(args.number_rows)?;
        let zone = match args.return_field.data_type() {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        let millis: TimestampMillisecondArray = seconds
            .as_primitive::<arrow::datatypes::Float64Type>()
            .iter()
            .map(|s| s.filter(|s| s.is_finite()).map(|s| (s * 1000.0).round() as i64))
            .collect();
        scalar_if(&args.args[0], Arc::new(millis.with_timezone_opt(zone)))
    }
}

/// `to_unixtime(timestamp) -> double`: seconds since the epoch, fractions kept.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToUnixtime {
    signature: Signature,
}

impl ToUnixtime {
    fn new() -> Self {
        ToUnixtime { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ToUnixtime {
    fn name(&self) -> &str {
        "to_unixtime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = args.args[0].to_array(args.number_rows)?;
        let values = match values.data_type() {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                cast(&values, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))?
            }
            _ => values,
        };
        let (micros, _) = as_micros(&values, "to_unixtime")?;
        let seconds: Float64Array = micros.iter().map(|us| us.map(|us| us as f64 / 1e6)).collect();
        scalar_if(&args.args[0], Arc::new(seconds))
    }
}

/// `date_trunc(unit, x)`: a date for a date, as Trino; DataFusion's own for timestamps.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateTrunc {
    signature: Signature,
}

impl DateTrunc {
    fn new() -> Self {
        DateTrunc { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for DateTrunc {
    fn name(&self) -> &str {
        "date_trunc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[1] {
            DataType::Date32 | DataType::Date64 => Ok(DataType::Date32),
            DataType::Timestamp(unit, zone) => Ok(DataType::Timestamp(*unit, zone.clone())),
            DataType::Null => Ok(DataType::Timestamp(TimeUnit::Microsecond, None)),
            other => plan_err!("date_trunc: expected a date or a timestamp, got {other}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let unit = match &args.args[0] {
            ColumnarValue::Scalar(value) => match value.try_as_str() {
                Some(Some(unit)) => unit.to_lowercase(),
                _ => return exec_err!("date_trunc: the unit is a non-null string literal"),
            },
            ColumnarValue::Array(_) => return exec_err!("date_trunc: the unit is a string literal"),
        };
        match args.args[1].data_type() {
            DataType::Date32 | DataType::Date64 => {
                let dates = cast(&args.args[1].to_array(args.number_rows)?, &DataType::Date32)?;
                let truncated: Date32Array = dates
                    .as_primitive::<arrow::datatypes::Date32Type>()
                    .iter()
                    .map(|day| day.map(|day| truncate_date(day, &unit)).transpose())
                    .collect::<Result<_>>()?;
                scalar_if(&args.args[1], Arc::new(truncated))
            }
            _ => datafusion::functions::datetime::date_trunc().invoke_with_args(args),
        }
    }
}

/// `to_hex(varbinary) -> varchar`: upper-case hex, as Trino; integers as DataFusion's `to_hex`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToHex {
    signature: Signature,
}

impl ToHex {
    fn new() -> Self {
        ToHex { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ToHex {
    fn name(&self) -> &str {
        "to_hex"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                Ok(DataType::Utf8)
            }
            DataType::Null => Ok(DataType::Utf8),
            other if other.is_integer() => Ok(DataType::Utf8),
            other => plan_err!("to_hex: expected varbinary or an integer, got {other}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args[0].data_type().is_integer() {
            return datafusion::functions::string::to_hex().invoke_with_args(args);
        }
        let values = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Binary)?;
        let hex: StringArray = values
            .as_binary::<i32>()
            .iter()
            .map(|bytes| bytes.map(|b| b.iter().map(|byte| format!("{byte:02X}")).collect::<String>()))
            .collect();
        scalar_if(&args.args[0], Arc::new(hex))
    }
}

/// `approx_percentile(x, p)`: the approximate `p` quantile of `x`, in `x`'s type (a bigint column's
/// is a bigint, rounded), from DataFusion's t-digest.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ApproxPercentile {
    signature: Signature,
}

impl ApproxPercentile {
    fn new() -> Self {
        ApproxPercentile { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for ApproxPercentile {
    fn name(&self) -> &str {
        "approx_percentile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            t if t.is_integer() || matches!(t, DataType::Float32 | DataType::Float64) => Ok(t.clone()),
            t if t.is_numeric() || t.is_null() => Ok(DataType::Float64),
            other => plan_err!("approx_percentile: expected a number, got {other}"),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |part: &str, data_type: DataType| {
            Arc::new(Field::new(format_state_name(args.name, part), data_type, false))
        };
        Ok(vec![
            field("max_size", DataType::UInt64),
            field("sum", DataType::Float64),
            field("count", DataType::Float64),
            field("max", DataType::Float64),
            field("min", DataType::Float64),
            Arc::new(Field::new_list(
                format_state_name(args.name, "centroids"),
                Field::new_list_field(DataType::Float64, true),
                false,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        // A literal evaluates to itself on a batch of no columns.
        let empty = arrow::array::RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty()));
        let percentile = match args.exprs[1].evaluate(&empty) {
            Ok(ColumnarValue::Scalar(value)) => match value.cast_to(&DataType::Float64) {
                Ok(ScalarValue::Float64(Some(p))) if (0.0..=1.0).contains(&p) => Some(p),
                _ => None,
            },
            _ => None,
        };
        let Some(percentile) = percentile else {
            return plan_err!("approx_percentile: the percentile is a literal between 0 and 1");
        };
        Ok(Box::new(InType {
            inner: ApproxPercentileAccumulator::new(percentile, DataType::Float64),
            answer: args.return_field.data_type().clone(),
        }))
    }
}

/// DataFusion's t-digest fed doubles, its answer given in the column's type.
#[derive(Debug)]
struct InType {
    inner: ApproxPercentileAccumulator,
    answer: DataType,
}

impl Accumulator for InType {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(&[cast(&values[0], &DataType::Float64)?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self.inner.evaluate()? {
            ScalarValue::Float64(Some(q)) if self.answer.is_integer() => {
                ScalarValue::Float64(Some(q.round())).cast_to(&self.answer)
            }
            value => value.cast_to(&self.answer),
        }
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}

/// Date `day` (days since the epoch) truncated to `unit`.
fn truncate_date(day: i32, unit: &str) -> Result<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    let date = epoch + chrono::Duration::days(i64::from(day));
    let truncated = match unit {
        "day" => date,
        "week" => date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday())),
        "month" => date.with_day(1).expect("day 1"),
        "quarter" => NaiveDate::from_ymd_opt(date.year(), (date.month0() / 3) * 3 + 1, 1).expect("a quarter's start"),
        "year" => NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("January 1"),
        other => return exec_err!("date_trunc: '{other}' is not a unit of a date (day, week, month, quarter, year)"),
    };
    Ok((truncated - epoch).num_days() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joda_and_mysql_patterns_become_chrono_formats() {
        assert_eq!(joda_to_strftime("yyyy-MM-dd HH:mm:ss.SSS").unwrap(), "%Y-%m-%d %H:%M:%S.%3f");
        assert_eq!(joda_to_strftime("EEE, d MMM yy 'at' h a ''Z''").unwrap(), "%a, %-d %b %y at %-I %p '%z'");
        assert_eq!(joda_to_strftime("100%").unwrap(), "100%%");
        assert!(joda_to_strftime("yyyy q").unwrap_err().contains("'q'"));
        assert_eq!(mysql_to_strftime("%Y-%m-%d %H:%i:%s %p %%").unwrap(), "%Y-%m-%d %H:%M:%S %p %%");
        assert!(mysql_to_strftime("%D").unwrap_err().contains("not supported"));
    }

    #[test]
    fn dates_truncate_to_trinos_units() {
        let day = |y, m, d| {
            (NaiveDate::from_ymd_opt(y, m, d).unwrap() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
        };
        assert_eq!(truncate_date(day(2026, 11, 25), "week").unwrap(), day(2026, 11, 23));
        assert_eq!(truncate_date(day(2026, 11, 25), "quarter").unwrap(), day(2026, 10, 1));
        assert_eq!(truncate_date(day(2026, 11, 25), "month").unwrap(), day(2026, 11, 1));
        assert!(truncate_date(0, "hour").is_err());
    }
}
