//! The Trino client protocol's JSON: column types, values, query stats and errors, in the forms
//! the Trino and Presto clients' type mappers expect.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::error::Error;

/// A Trino error: its name, code and type, as `io.trino.spi.StandardErrorCode` numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// `errorName`, e.g. `SYNTAX_ERROR`.
    pub name: &'static str,
    /// `errorCode`.
    pub code: i64,
    /// `errorType`: `USER_ERROR`, `INTERNAL_ERROR`, `INSUFFICIENT_RESOURCES` or `EXTERNAL`.
    pub kind: &'static str,
}

const fn user(name: &'static str, code: i64) -> ErrorCode {
    ErrorCode { name, code, kind: "USER_ERROR" }
}

/// The statement does not parse.
pub const SYNTAX_ERROR: ErrorCode = user("SYNTAX_ERROR", 1);
/// A user error without a more precise code.
pub const GENERIC_USER_ERROR: ErrorCode = user("GENERIC_USER_ERROR", 0);
/// The statement asks for something tidelake does not do (writes, DDL).
pub const NOT_SUPPORTED: ErrorCode = user("NOT_SUPPORTED", 13);
/// A value does not fit its type (integer overflow).
pub const NUMERIC_VALUE_OUT_OF_RANGE: ErrorCode = user("NUMERIC_VALUE_OUT_OF_RANGE", 19);
/// The statement is longer or deeper than the server takes.
pub const QUERY_TEXT_TOO_LARGE: ErrorCode = user("QUERY_TEXT_TOO_LARGE", 35);
/// A table version that cannot be read.
pub const INVALID_ARGUMENTS: ErrorCode = user("INVALID_ARGUMENTS", 76);
/// The server failed, not the query.
pub const GENERIC_INTERNAL_ERROR: ErrorCode =
    ErrorCode { name: "GENERIC_INTERNAL_ERROR", code: 65536, kind: "INTERNAL_ERROR" };
/// As many queries are running as the server runs at once.
pub const QUERY_QUEUE_FULL: ErrorCode =
    ErrorCode { name: "QUERY_QUEUE_FULL", code: 131074, kind: "INSUFFICIENT_RESOURCES" };
/// The query needed more memory than the server gives queries.
pub const EXCEEDED_LOCAL_MEMORY_LIMIT: ErrorCode =
    ErrorCode { name: "EXCEEDED_LOCAL_MEMORY_LIMIT", code: 131079, kind: "INSUFFICIENT_RESOURCES" };

/// The query ran longer than its session allows.
pub const EXCEEDED_TIME_LIMIT: ErrorCode =
    ErrorCode { name: "EXCEEDED_TIME_LIMIT", code: 131075, kind: "INSUFFICIENT_RESOURCES" };

/// Records the query must read are gone from Kafka (retention deleted them before ingest read them).
pub const KAFKA_TAIL_RECORDS_LOST: ErrorCode =
    ErrorCode { name: "KAFKA_TAIL_RECORDS_LOST", code: 16_777_217, kind: "EXTERNAL" };

/// The Trino error a query failure is reported as.
pub fn error_code(e: &Error) -> ErrorCode {
    match e {
        Error::Syntax(_) => SYNTAX_ERROR,
        Error::TooLarge(_) => QUERY_TEXT_TOO_LARGE,
        Error::Version { .. } => INVALID_ARGUMENTS,
        Error::TailLost { .. } => KAFKA_TAIL_RECORDS_LOST,
        Error::TimeLimit(_) => EXCEEDED_TIME_LIMIT,
        _ if e.is_memory_exceeded() => EXCEEDED_LOCAL_MEMORY_LIMIT,
        _ if e.is_overflow() => NUMERIC_VALUE_OUT_OF_RANGE,
        _ if e.is_user_error() && e.to_string().contains("not supported") => NOT_SUPPORTED,
        _ if e.is_user_error() => GENERIC_USER_ERROR,
        _ => GENERIC_INTERNAL_ERROR,
    }
}

/// Trino's error object: `errorType` tells clients a query at fault from a failing server.
pub fn error_json(code: ErrorCode, message: &str) -> Value {
    json!({
        "message": message,
        "errorCode": code.code,
        "errorName": code.name,
        "errorType": code.kind,
        "failureInfo": {"type": "io.tidelake.QueryError", "message": message, "suppressed": [], "stack": []},
    })
}

/// The `stats` object of a response.
pub fn stats(state: &str, elapsed_ms: u64, rows: u64) -> Value {
    json!({
        "state": state,
        "queued": state == "QUEUED",
        "scheduled": state != "QUEUED",
        "nodes": 1,
        "totalSplits": 1,
        "queuedSplits": 0,
        "runningSplits": 0,
        "completedSplits": if state == "FINISHED" { 1 } else { 0 },
        "cpuTimeMillis": elapsed_ms,
        "wallTimeMillis": elapsed_ms,
        "elapsedTimeMillis": elapsed_ms,
        "queuedTimeMillis": 0,
        "processedRows": rows,
        "processedBytes": 0,
        "peakMemoryBytes": 0,
    })
}

/// Every row of `batch` as Trino JSON rows (an array of its values each), written to `out` with a
/// comma before each unless `out` is empty: `out` holds the inside of a page's `data` array. Each
/// column's reader is set up once per batch and the text goes straight into `out`, with no JSON
/// value per cell in between.
pub fn write_rows(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), String> {
    let columns: Vec<ArrayRef> = batch.columns().iter().map(plain).collect::<Result<_, _>>()?;
    let options = FormatOptions::default();
    let cells: Vec<Cells<'_>> = columns.iter().map(|c| Cells::new(c, &options)).collect::<Result<_, _>>()?;
    let mut scratch = String::new();
    for row in 0..batch.num_rows() {
        if !out.is_empty() {
            out.push(b',');
        }
        out.push(b'[');
        for (i, (cells, column)) in cells.iter().zip(&columns).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match column.is_null(row) {
                true => out.extend_from_slice(b"null"),
                false => cells.write(row, out, &mut scratch)?,
            }
        }
        out.push(b']');
    }
    Ok(())
}

/// The Trino type of an Arrow column: its name and type signature.
pub fn trino_type(data_type: &DataType) -> (String, Value) {
    let simple = |name: &str| (name.to_string(), json!({"rawType": name, "arguments": []}));
    let long = |n: i64| json!({"kind": "LONG", "value": n});
    match data_type {
        DataType::Boolean => simple("boolean"),
        DataType::Int8 => simple("tinyint"),
        DataType::Int16 | DataType::UInt8 => simple("smallint"),
        DataType::Int32 | DataType::UInt16 => simple("integer"),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => simple("bigint"),
        DataType::Float32 | DataType::Float16 => simple("real"),
        DataType::Float64 => simple("double"),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => (
            format!("decimal({p},{s})"),
            json!({"rawType": "decimal", "arguments": [long(i64::from(*p)), long(i64::from(*s))]}),
        ),
        DataType::Date32 | DataType::Date64 => simple("date"),
        DataType::Timestamp(_, Some(_)) => (
            "timestamp(6) with time zone".into(),
            json!({"rawType": "timestamp with time zone", "arguments": [long(6)]}),
        ),
        DataType::Timestamp(_, None) => {
            ("timestamp(6)".into(), json!({"rawType": "timestamp", "arguments": [long(6)]}))
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            simple("varbinary")
        }
        DataType::Dictionary(_, value) => trino_type(value),
        _ => ("varchar".into(), json!({"rawType": "varchar", "arguments": [long(2147483647)]})),
    }
}

/// The `columns` of a response: each column's name, Trino type and type signature.
pub fn columns_json(schema: &SchemaRef) -> Value {
    Value::Array(
        schema
            .fields()
            .iter()
            .map(|f| {
                let (name, signature) = trino_type(f.data_type());
                json!({"name": f.name(), "type": name, "typeSignature": signature})
            })
            .collect(),
    )
}

/// A dictionary column as its values, binary of other layouts as `Binary`; others as they are (the
/// text of every string layout is read in place).
fn plain(column: &ArrayRef) -> Result<ArrayRef, String> {
    match column.data_type() {
        DataType::Dictionary(_, value) => cast(column, value).map_err(|e| e.to_string()),
        DataType::BinaryView | DataType::LargeBinary => cast(column, &DataType::Binary).map_err(|e| e.to_string()),
        _ => Ok(column.clone()),
    }
}

/// How one column's values are written as Trino JSON.
enum Cells<'a> {
    /// Booleans and integers: their text is their JSON.
    Bare(ArrayFormatter<'a>),
    /// Floating point: a JSON number when finite, else the string Trino gives (`NaN`, `Infinity`).
    Float(ArrayFormatter<'a>),
    /// Timestamps as `YYYY-MM-DD HH:MM:SS.ffffff`, with ` UTC` when zoned.
    Timestamp { column: &'a ArrayRef, unit: TimeUnit, zoned: bool },
    /// Binary values in base64.
    Binary(&'a ArrayRef),
    /// Everything else as the JSON string of its text (decimals, dates, strings).
    Text(ArrayFormatter<'a>),
}

impl<'a> Cells<'a> {
    fn new(column: &'a ArrayRef, options: &FormatOptions<'a>) -> Result<Cells<'a>, String> {
        let formatter = || ArrayFormatter::try_new(column.as_ref(), options).map_err(|e| e.to_string());
        Ok(match column.data_type() {
            DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Cells::Bare(formatter()?),
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Cells::Float(formatter()?),
            DataType::Timestamp(unit, zone) => Cells::Timestamp { column, unit: *unit, zoned: zone.is_some() },
            DataType::Binary | DataType::FixedSizeBinary(_) => Cells::Binary(column),
            _ => Cells::Text(formatter()?),
        })
    }

    /// Writes the value at `row` (not null) to `out`; `scratch` is room for its text.
    fn write(&self, row: usize, out: &mut Vec<u8>, scratch: &mut String) -> Result<(), String> {
        use std::fmt::Write as _;
        use std::io::Write as _;
        match self {
            Cells::Bare(f) => write!(out, "{}", f.value(row)).map_err(|e| e.to_string()),
            Cells::Float(f) => {
                scratch.clear();
                write!(scratch, "{}", f.value(row)).map_err(|e| e.to_string())?;
                let x: f64 = scratch.parse().map_err(|e: std::num::ParseFloatError| e.to_string())?;
                let json: &[u8] = match x {
                    x if x.is_finite() => return serde_json::to_writer(&mut *out, &x).map_err(|e| e.to_string()),
                    x if x.is_nan() => b"\"NaN\"",
                    x if x > 0.0 => b"\"Infinity\"",
                    _ => b"\"-Infinity\"",
                };
                out.extend_from_slice(json);
                Ok(())
            }
            Cells::Timestamp { column, unit, zoned } => {
                let t = timestamp_micros(column, *unit, row)
                    .and_then(chrono::DateTime::from_timestamp_micros)
                    .ok_or("timestamp out of range")?;
                let zone = if *zoned { " UTC" } else { "" };
                write!(out, "\"{}{zone}\"", t.format("%Y-%m-%d %H:%M:%S%.6f")).map_err(|e| e.to_string())
            }
            Cells::Binary(column) => {
                let bytes = match column.data_type() {
                    DataType::FixedSizeBinary(_) => column.as_fixed_size_binary().value(row),
                    _ => column.as_binary::<i32>().value(row),
                };
                scratch.clear();
                STANDARD.encode_string(bytes, scratch);
                write!(out, "\"{scratch}\"").map_err(|e| e.to_string())
            }
            Cells::Text(f) => {
                scratch.clear();
                write!(scratch, "{}", f.value(row)).map_err(|e| e.to_string())?;
                serde_json::to_writer(&mut *out, scratch.as_str()).map_err(|e| e.to_string())
            }
        }
    }
}

fn timestamp_micros(column: &ArrayRef, unit: TimeUnit, row: usize) -> Option<i64> {
    use arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };
    match unit {
        TimeUnit::Second => column.as_primitive::<TimestampSecondType>().value(row).checked_mul(1_000_000),
        TimeUnit::Millisecond => column.as_primitive::<TimestampMillisecondType>().value(row).checked_mul(1_000),
        TimeUnit::Microsecond => Some(column.as_primitive::<TimestampMicrosecondType>().value(row)),
        TimeUnit::Nanosecond => Some(column.as_primitive::<TimestampNanosecondType>().value(row) / 1_000),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The rows of `columns` as written to a page, read back as JSON.
    fn rows(columns: Vec<(&str, ArrayRef)>) -> Value {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut out = Vec::new();
        write_rows(&batch, &mut out).unwrap();
        let text = format!("[{}]", String::from_utf8(out).unwrap());
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    #[test]
    fn values_take_trino_json_forms() {
        use arrow::array::{
            BinaryArray, BooleanArray, Decimal128Array, Float32Array, Float64Array, Int64Array, LargeStringArray,
            StringArray, StringViewArray, TimestampMicrosecondArray, UInt64Array,
        };
        let cost: ArrayRef =
            Arc::new(Decimal128Array::from(vec![Some(12_500_000), None]).with_precision_and_scale(18, 6).unwrap());
        assert_eq!(trino_type(cost.data_type()).0, "decimal(18,6)");
        let at: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1_795_435_200_000_001), None]).with_timezone("UTC"));
        let local: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![Some(0), Some(-1)]));
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("say \"hi\"\n\t\u{1}\\ é ✓"), None]));
        let view: ArrayRef = Arc::new(StringViewArray::from(vec![Some("a string longer than twelve \"bytes\""), None]));
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec![None, Some("z")]));
        let wide: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX, 0]));
        let n: ArrayRef = Arc::new(Int64Array::from(vec![Some(i64::MIN), None]));
        let x: ArrayRef = Arc::new(Float64Array::from(vec![f64::NAN, 0.1]));
        let y: ArrayRef = Arc::new(Float32Array::from(vec![f32::NEG_INFINITY, 1.1]));
        let flag: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None]));
        let bytes: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&b"\x00\xff"[..]), None]));
        let got = rows(vec![
            ("cost", cost),
            ("at", at),
            ("local", local),
            ("text", text),
            ("view", view),
            ("large", large),
            ("wide", wide),
            ("n", n),
            ("x", x),
            ("y", y),
            ("flag", flag),
            ("bytes", bytes),
        ]);
        assert_eq!(
            got,
            json!([
                [
                    "12.500000",
                    "2026-11-23 12:00:00.000001 UTC",
                    "1970-01-01 00:00:00.000000",
                    "say \"hi\"\n\t\u{1}\\ é ✓",
                    "a string longer than twelve \"bytes\"",
                    null,
                    u64::MAX,
                    i64::MIN,
                    "NaN",
                    "-Infinity",
                    true,
                    "AP8="
                ],
                [null, null, "1969-12-31 23:59:59.999999", null, null, "z", 0, null, 0.1, 1.1, null, null]
            ])
        );
    }

    #[test]
    fn rows_of_several_batches_make_one_array() {
        use arrow::array::Int32Array;
        let batch = |values: Vec<i32>| {
            RecordBatch::try_from_iter([("v", Arc::new(Int32Array::from(values)) as ArrayRef)]).unwrap()
        };
        let mut out = Vec::new();
        for values in [vec![1, 2], vec![], vec![3]] {
            write_rows(&batch(values), &mut out).unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "[1],[2],[3]");
    }
}
