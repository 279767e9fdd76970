//! Avro record values in the Confluent wire format (a zero magic byte, the writer schema's id in
//! four big-endian bytes, then the Avro binary datum), read against the writer schema from the
//! registry and handed to the table's decoder as one JSON object each, so Avro and JSON records
//! meet the same column checks, defaults and exact numbers.
//!
//! Logical types keep their meaning: `timestamp-millis`/`-micros` become the event's microseconds,
//! `date` a calendar day, `decimal` its exact digits, `uuid` its text.

use apache_avro::schema::{RecordSchema, Schema};
use apache_avro::types::Value;
use serde_json::{Map, Number, Value as Json};

use crate::batch::KafkaRecord;
use crate::error::Result;
use crate::registry::Registry;

/// The magic byte that starts a value in the Confluent wire format.
const MAGIC: u8 = 0;

/// The value of each record as JSON object text, or why it cannot be read (the record is then a
/// dead letter with that reason). A registry that does not answer fails the whole call.
pub async fn transcode(
    registry: &Registry,
    records: &[&KafkaRecord],
) -> Result<Vec<std::result::Result<Vec<u8>, String>>> {
    let mut values = Vec::with_capacity(records.len());
    for record in records {
        let Some(value) = record.value.as_deref() else {
            values.push(Err("record has no value (a tombstone)".to_string()));
            continue;
        };
        let (id, datum) = match framed(value) {
            Ok(framed) => framed,
            Err(reason) => {
                values.push(Err(reason));
                continue;
            }
        };
        let schema = match registry.avro_schema(id).await? {
            Ok(schema) => schema,
            Err(reason) => {
                values.push(Err(reason));
                continue;
            }
        };
        values.push(json_of(&schema, id, datum));
    }
    Ok(values)
}

/// The schema id and the Avro datum of a value in the Confluent wire format.
fn framed(value: &[u8]) -> std::result::Result<(u32, &[u8]), String> {
    match value {
        [MAGIC, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [MAGIC, ..] => Err(format!("value of {} bytes is too short for the schema registry's framing", value.len())),
        [first, ..] => Err(format!(
            "value does not start with the schema registry's magic byte 0 (found {first:#04x}): not Avro from a registry serializer"
        )),
        [] => Err("value is empty".to_string()),
    }
}

/// One datum of `schema` (registered as `id`) as JSON object text.
fn json_of(schema: &Schema, id: u32, mut datum: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let Schema::Record(record) = schema else {
        return Err(format!("schema id {id} is not an Avro record, and a table row needs one"));
    };
    let value = apache_avro::from_avro_datum(schema, &mut datum, None)
        .map_err(|e| format!("value does not decode with schema id {id}: {e}"))?;
    if !datum.is_empty() {
        return Err(format!("value has {} bytes left after the Avro datum of schema id {id}", datum.len()));
    }
    let Value::Record(fields) = value else {
        return Err(format!("schema id {id} did not decode to a record"));
    };
    let object = object_of(record, fields)?;
    serde_json::to_vec(&Json::Object(object)).map_err(|e| e.to_string())
}

fn object_of(schema: &RecordSchema, fields: Vec<(String, Value)>) -> std::result::Result<Map<String, Json>, String> {
    let mut object = Map::with_capacity(fields.len());
    for ((name, value), field) in fields.into_iter().zip(&schema.fields) {
        let json = json_value(&field.schema, value).map_err(|reason| format!("field `{name}`: {reason}"))?;
        object.insert(name, json);
    }
    Ok(object)
}

/// A field's value as the JSON the table's decoder reads for its column: numbers as numbers,
/// timestamps as epoch microseconds, decimals as their exact digits in text.
fn json_value(schema: &Schema, value: Value) -> std::result::Result<Json, String> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::Int(i) => Json::from(i),
        Value::Long(i) => Json::from(i),
        Value::Float(f) => finite(f64::from(f))?,
        Value::Double(f) => finite(f)?,
        Value::String(s) | Value::Enum(_, s) => Json::String(s),
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::TimestampMillis(ms) | Value::LocalTimestampMillis(ms) => Json::from(ms.saturating_mul(1_000)),
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => Json::from(us),
        Value::TimestampNanos(ns) | Value::LocalTimestampNanos(ns) => Json::from(ns.div_euclid(1_000)),
        Value::Date(days) => Json::String(
            chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                .ok_or_else(|| format!("date {days} days from 1970 is out of range"))?
                .to_string(),
        ),
        Value::Decimal(decimal) => {
            let scale = match schema {
                Schema::Decimal(d) => d.scale,
                Schema::Union(u) => u
                    .variants()
                    .iter()
                    .find_map(|v| if let Schema::Decimal(d) = v { Some(d.scale) } else { None })
                    .unwrap_or(0),
                _ => 0,
            };
            let bytes: Vec<u8> = Vec::try_from(&decimal).map_err(|e| e.to_string())?;
            Json::String(decimal_text(&bytes, scale)?)
        }
        Value::Union(index, inner) => {
            let variant = match schema {
                Schema::Union(u) => u.variants().get(index as usize).unwrap_or(schema),
                other => other,
            };
            json_value(variant, *inner)?
        }
        Value::Bytes(_) | Value::Fixed(..) => return Err("bytes are not read into columns yet".to_string()),
        Value::Array(_) | Value::Map(_) | Value::Record(_) => {
            return Err("a nested value; the table's columns are flat".to_string())
        }
        other => return Err(format!("an Avro value of a type tidelake does not read yet ({other:?})")),
    })
}

fn finite(f: f64) -> std::result::Result<Json, String> {
    Number::from_f64(f).map(Json::Number).ok_or_else(|| format!("{f} has no JSON number"))
}

/// The digits of an Avro decimal (its unscaled value, big-endian two's complement) with `scale`
/// digits after the point.
fn decimal_text(bytes: &[u8], scale: usize) -> std::result::Result<String, String> {
    if bytes.len() > 16 {
        return Err(format!("decimal of {} bytes is wider than 38 digits", bytes.len()));
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut full = [if negative { 0xff } else { 0 }; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    let unscaled = i128::from_be_bytes(full);
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return Ok(format!("{sign}{digits}"));
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    Ok(format!("{sign}{whole}.{fraction}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_digits_and_sign() {
        assert_eq!(decimal_text(&[0x30, 0x39], 2).unwrap(), "123.45");
        assert_eq!(decimal_text(&[0xcf, 0xc7], 2).unwrap(), "-123.45");
        assert_eq!(decimal_text(&[0x05], 3).unwrap(), "0.005");
        assert_eq!(decimal_text(&[0xff], 0).unwrap(), "-1");
        assert!(decimal_text(&[1; 17], 0).is_err());
    }

    #[test]
    fn a_value_without_the_registry_framing_says_so() {
        assert_eq!(framed(&[0, 0, 0, 0, 7, 2]).unwrap(), (7, &[2u8][..]));
        assert!(framed(b"{\"a\":1}").unwrap_err().contains("magic byte"));
        assert!(framed(&[0, 1]).unwrap_err().contains("too short"));
    }

    #[test]
    fn a_record_decodes_to_the_json_its_columns_read() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"E","fields":[
                {"name":"id","type":{"type":"string","logicalType":"uuid"}},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"n","type":["null","int"]},
                {"name":"cost","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":6}}
            ]}"#,
        )
        .unwrap();
        let mut record = apache_avro::types::Record::new(&schema).unwrap();
        record.put("id", Value::Uuid(uuid::Uuid::nil()));
        record.put("at", Value::TimestampMillis(1_700_000_000_123));
        record.put("n", Value::Union(1, Box::new(Value::Int(7))));
        record.put("cost", Value::Decimal(apache_avro::Decimal::from(vec![0x01, 0xe2, 0x40])));
        let datum = apache_avro::to_avro_datum(&schema, record).unwrap();
        let json: Json = serde_json::from_slice(&json_of(&schema, 3, &datum).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": uuid::Uuid::nil().to_string(), "at": 1_700_000_000_123_000i64, "n": 7, "cost": "0.123456"})
        );
        assert!(json_of(&schema, 3, &datum[..datum.len() - 1]).unwrap_err().contains("does not decode"));
    }
}
