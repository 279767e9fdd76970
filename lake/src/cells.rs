//! Typed field values straight into Arrow columns: what the Avro and Protobuf readers hand the
//! table's decoder, one [`Cell`] per column and record, in place of JSON text to parse again.
//!
//! Each cell becomes a value of its column's type by the rules JSON values follow ([`crate::exact`]
//! for numbers and text): nothing is rounded, clamped or truncated, text is read as JSON text is
//! (RFC 3339 times, `YYYY-MM-DD` days, exact digits), and a value that does not fit is the
//! record's reason to be a dead letter.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast_utils::{string_to_datetime, Parser};
use arrow::datatypes::{DataType, Date32Type};

/// One field's value of one record, as its writer's format typed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value: a null, or a field the record's schema does not have.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer (Avro `int`/`long`, Protobuf's signed and 32-bit unsigned integers).
    Int(i64),
    /// An unsigned 64-bit integer (Protobuf `uint64`/`fixed64`).
    UInt(u64),
    /// A finite float (Avro `float`/`double`, Protobuf `float`/`double`).
    Float(f64),
    /// Text: a string, an enum symbol, a UUID.
    Text(String),
    /// An exact decimal: `unscaled × 10^-scale`.
    Decimal(i128, u32),
    /// An instant, in microseconds since 1970 (UTC).
    Micros(i64),
    /// A calendar day, in days since 1970-01-01.
    Day(i32),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("null"),
            Cell::Bool(b) => write!(f, "{b}"),
            Cell::Int(n) => write!(f, "{n}"),
            Cell::UInt(n) => write!(f, "{n}"),
            Cell::Float(x) => write!(f, "{x}"),
            Cell::Text(t) => write!(f, "{t:?}"),
            Cell::Decimal(unscaled, scale) => f.write_str(&decimal_text(*unscaled, *scale)),
            Cell::Micros(us) => write!(f, "{us} µs since 1970"),
            Cell::Day(d) => write!(f, "day {d} since 1970"),
        }
    }
}

/// The digits of `unscaled × 10^-scale`: `-12.50` for (-1250, 2).
pub fn decimal_text(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// The cells of one column (one per row) as an Arrow array of `kind`, or the first row whose cell
/// does not fit, with the reason.
pub(crate) fn column<'a>(
    kind: &DataType,
    cells: impl ExactSizeIterator<Item = &'a Cell>,
) -> Result<ArrayRef, (usize, String)> {
    let rows = cells.len();
    macro_rules! build {
        ($builder:expr, $convert:expr) => {{
            let mut builder = $builder;
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Null => builder.append_null(),
                    cell => builder.append_value($convert(cell).map_err(|reason: String| (row, reason))?),
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    Ok(match kind {
        DataType::Utf8 => build!(StringBuilder::with_capacity(rows, rows * 16), |c: &Cell| match c {
            Cell::Text(t) => Ok(t.clone()),
            other => Err(misfit(other, "string")),
        }),
        DataType::Boolean => build!(BooleanBuilder::with_capacity(rows), |c: &Cell| match c {
            Cell::Bool(b) => Ok(*b),
            other => Err(misfit(other, "boolean")),
        }),
        DataType::Int32 => build!(Int32Builder::with_capacity(rows), |c: &Cell| integer(c, 32).map(|v| v as i32)),
        DataType::Int64 => build!(Int64Builder::with_capacity(rows), |c: &Cell| integer(c, 64)),
        DataType::Float64 => build!(Float64Builder::with_capacity(rows), |c: &Cell| match c {
            Cell::Float(x) if x.is_finite() => Ok(*x),
            Cell::Float(x) => Err(format!("`{x}` is not a finite number")),
            Cell::Int(n) => Ok(*n as f64),
            Cell::UInt(n) => Ok(*n as f64),
            Cell::Text(t) => crate::exact::float(t).map_err(|reason| format!("`{t}` {reason}")),
            other => Err(misfit(other, "float64")),
        }),
        DataType::Float32 => build!(Float32Builder::with_capacity(rows), |c: &Cell| {
            let narrow = match c {
                Cell::Float(x) => *x as f32,
                Cell::Int(n) => *n as f32,
                Cell::UInt(n) => *n as f32,
                Cell::Text(t) => crate::exact::float32(t).map_err(|reason| format!("`{t}` {reason}"))?,
                other => return Err(misfit(other, "float32")),
            };
            narrow.is_finite().then_some(narrow).ok_or_else(|| format!("`{c}` is too large for a float32"))
        }),
        DataType::Decimal128(precision, scale) => {
            let builder = Decimal128Builder::with_capacity(rows)
                .with_precision_and_scale(*precision, *scale)
                .map_err(|e| (0, e.to_string()))?;
            build!(builder, |c: &Cell| decimal(c, *precision, *scale))
        }
        DataType::Date32 => build!(Date32Builder::with_capacity(rows), |c: &Cell| match c {
            Cell::Day(d) => Ok(*d),
            Cell::Text(t) => Date32Type::parse(t).ok_or_else(|| format!("`{t}` is not a date")),
            other => Err(misfit(other, "date")),
        }),
        DataType::Timestamp(_, zone) => {
            let builder = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone_opt(zone.clone());
            build!(builder, |c: &Cell| match c {
                Cell::Micros(us) | Cell::Int(us) => Ok(*us),
                Cell::Text(t) => string_to_datetime(&chrono::Utc, t)
                    .map(|at| at.timestamp_micros())
                    .map_err(|e| format!("`{t}` is not a timestamp: {e}")),
                other => Err(misfit(other, "timestamp")),
            })
        }
        other => return Err((0, format!("no value is read into a {other} column yet"))),
    })
}

fn misfit(cell: &Cell, kind: &str) -> String {
    format!("`{cell}` is not a {kind}")
}

fn integer(cell: &Cell, bits: u32) -> Result<i64, String> {
    let (min, max) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
    let value = match cell {
        Cell::Int(n) => i128::from(*n),
        Cell::UInt(n) => i128::from(*n),
        Cell::Text(t) => return crate::exact::integer(t, bits).map_err(|reason| format!("`{t}` {reason}")),
        Cell::Decimal(..) | Cell::Float(_) => {
            let text = cell.to_string();
            return crate::exact::integer(&text, bits).map_err(|reason| format!("`{text}` {reason}"));
        }
        other => return Err(misfit(other, &format!("int{bits}"))),
    };
    if value < min || value > max {
        return Err(format!("`{cell}` is out of the range of int{bits}"));
    }
    Ok(value as i64)
}

fn decimal(cell: &Cell, precision: u8, scale: i8) -> Result<i128, String> {
    let text = match cell {
        Cell::Text(t) => t.clone(),
        Cell::Int(_) | Cell::UInt(_) | Cell::Decimal(..) => cell.to_string(),
        other => return Err(misfit(other, &format!("decimal({precision}, {scale})"))),
    };
    crate::exact::decimal(&text, precision, scale).map_err(|reason| format!("`{text}` {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Decimal128Type, Int32Type, TimestampMicrosecondType};

    #[test]
    fn cells_become_their_columns_values_or_a_reason() {
        let ints = [Cell::Int(7), Cell::Null, Cell::Text("1e3".into())];
        let out = column(&DataType::Int32, ints.iter()).unwrap();
        assert_eq!(out.as_primitive::<Int32Type>().iter().collect::<Vec<_>>(), vec![Some(7), None, Some(1000)]);
        let wide = [Cell::Int(1), Cell::Int(i64::from(i32::MAX) + 1)];
        assert_eq!(
            column(&DataType::Int32, wide.iter()).unwrap_err(),
            (1, "`2147483648` is out of the range of int32".into())
        );
        let unsigned = [Cell::UInt(u64::MAX)];
        assert!(column(&DataType::Int64, unsigned.iter()).unwrap_err().1.contains("out of the range of int64"));

        let money = [Cell::Decimal(1_250_000, 6), Cell::Decimal(15, 1), Cell::Int(3), Cell::Text("0.000001".into())];
        let out = column(&DataType::Decimal128(18, 6), money.iter()).unwrap();
        let values: Vec<i128> = out.as_primitive::<Decimal128Type>().values().to_vec();
        assert_eq!(values, vec![1_250_000, 1_500_000, 3_000_000, 1]);
        let fine = [Cell::Decimal(1, 7)];
        assert_eq!(
            column(&DataType::Decimal128(18, 6), fine.iter()).unwrap_err().1,
            "`0.0000001` has more than 6 decimal places"
        );

        let utc = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
        let times = [Cell::Micros(1), Cell::Text("2026-12-04T03:00:00.5Z".into())];
        let out = column(&utc, times.iter()).unwrap();
        assert_eq!(out.data_type(), &utc);
        assert_eq!(out.as_primitive::<TimestampMicrosecondType>().value(1), 1_796_353_200_500_000);
        let days = [Cell::Day(3), Cell::Text("1970-01-05".into())];
        let out = column(&DataType::Date32, days.iter()).unwrap();
        assert_eq!(out.as_primitive::<Date32Type>().values().to_vec(), vec![3, 4]);
        assert!(column(&DataType::Utf8, [Cell::Int(1)].iter()).unwrap_err().1.contains("is not a string"));
        assert!(column(&DataType::Float32, [Cell::Float(1e39)].iter())
            .unwrap_err()
            .1
            .contains("too large for a float32"));
        assert!(column(&DataType::Float64, [Cell::Float(f64::NAN)].iter())
            .unwrap_err()
            .1
            .contains("not a finite number"));
    }

    #[test]
    fn decimal_text_keeps_every_digit() {
        assert_eq!(decimal_text(-1250, 2), "-12.50");
        assert_eq!(decimal_text(5, 3), "0.005");
        assert_eq!(decimal_text(i128::MAX, 0), i128::MAX.to_string());
    }
}
