//! The Trino client protocol's JSON: column types, values, query stats and errors, in the forms
//! the Trino and Presto clients' type mappers expect.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int16Type, Int32Type, Int64Type, Int8Type, SchemaRef, TimeUnit};
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

/// Every row of `batch` as Trino JSON rows, appended to `out`.
pub fn push_rows(batch: &RecordBatch, out: &mut Vec<Value>) -> Result<(), String> {
    let columns: Vec<ArrayRef> = batch.columns().iter().map(plain).collect::<Result<_, _>>()?;
    for row in 0..batch.num_rows() {
        out.push(Value::Array(columns.iter().map(|c| value(c, row)).collect::<Result<_, _>>()?));
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

/// A dictionary column as its values; others as they are.
fn plain(column: &ArrayRef) -> Result<ArrayRef, String> {
    match column.data_type() {
        DataType::Dictionary(_, value) => cast(column, value).map_err(|e| e.to_string()),
        DataType::Utf8View | DataType::LargeUtf8 => cast(column, &DataType::Utf8).map_err(|e| e.to_string()),
        DataType::BinaryView | DataType::LargeBinary => cast(column, &DataType::Binary).map_err(|e| e.to_string()),
        _ => Ok(column.clone()),
    }
}

fn value(column: &ArrayRef, row: usize) -> Result<Value, String> {
    if column.is_null(row) {
        return Ok(Value::Null);
    }
    let shown = || arrow::util::display::array_value_to_string(column, row).map_err(|e| e.to_string());
    Ok(match column.data_type() {
        DataType::Boolean => json!(column.as_boolean().value(row)),
        DataType::Int8 => json!(column.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => json!(column.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => json!(column.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(column.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            json!(shown()?.parse::<u64>().map_err(|e| e.to_string())?)
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let x: f64 = shown()?.parse().map_err(|e: std::num::ParseFloatError| e.to_string())?;
            if x.is_finite() {
                json!(x)
            } else if x.is_nan() {
                json!("NaN")
            } else if x > 0.0 {
                json!("Infinity")
            } else {
                json!("-Infinity")
            }
        }
        DataType::Timestamp(unit, zone) => {
            let t = timestamp_micros(column, *unit, row)
                .and_then(chrono::DateTime::from_timestamp_micros)
                .ok_or("timestamp out of range")?;
            let text = t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            match zone {
                Some(_) => json!(format!("{text} UTC")),
                None => json!(text),
            }
        }
        DataType::Binary => json!(STANDARD.encode(column.as_binary::<i32>().value(row))),
        DataType::FixedSizeBinary(_) => json!(STANDARD.encode(column.as_fixed_size_binary().value(row))),
        _ => json!(shown()?),
    })
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

    #[test]
    fn values_take_trino_json_forms() {
        use arrow::array::{Decimal128Array, TimestampMicrosecondArray};
        let cost: ArrayRef =
            Arc::new(Decimal128Array::from(vec![Some(12_500_000)]).with_precision_and_scale(18, 6).unwrap());
        assert_eq!(value(&cost, 0).unwrap(), json!("12.500000"));
        assert_eq!(trino_type(cost.data_type()).0, "decimal(18,6)");
        let at: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_795_435_200_000_001]).with_timezone("UTC"));
        assert_eq!(value(&at, 0).unwrap(), json!("2026-11-23 12:00:00.000001 UTC"));
    }
}
