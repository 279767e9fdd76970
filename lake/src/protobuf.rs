//! Protobuf record values in the Confluent wire format (a zero magic byte, the writer schema's id
//! in four big-endian bytes, the message's place in the schema's file as an array of indexes, then
//! the message), read by reflection over the descriptor the registry serves, and handed to the
//! table's decoder as one JSON object each, so Protobuf and JSON records meet the same column
//! checks, defaults and exact numbers.
//!
//! A column is filled from the message field of its name. The well-known types keep their meaning:
//! `google.protobuf.Timestamp` is the event's microseconds, the wrappers (`StringValue`,
//! `Int64Value`, ...) their value or null, `google.type.Date` a calendar day. A field with presence
//! (a message, a wrapper, `optional`) that is not set is null; a proto3 scalar that is not set is
//! its zero value, as every Protobuf reader sees it.

use std::collections::HashMap;

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage as _, Value};
use serde_json::{Map, Number, Value as Json};

use crate::batch::KafkaRecord;
use crate::decode::Fit;
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::schema::{ColumnSpec, ColumnType};

/// The most levels of nesting a message index array may name.
const MAX_DEPTH: usize = 32;

/// The value of each record as JSON object text, or why it cannot be read (the record is then a
/// dead letter with that reason): among the reasons, a writer message that does not fit the
/// table's columns ([`fits`]), checked once per schema id and message. A registry that does not
/// answer fails the whole call, as does a misfit when `fit` says to stop.
pub async fn transcode(
    registry: &Registry,
    records: &[&KafkaRecord],
    fit: Fit<'_>,
) -> Result<Vec<std::result::Result<Vec<u8>, String>>> {
    let mut checked: HashMap<(u32, Vec<usize>), Verdict> = HashMap::new();
    let mut values = Vec::with_capacity(records.len());
    for record in records {
        let Some(value) = record.value.as_deref() else {
            values.push(Err("record has no value (a tombstone)".to_string()));
            continue;
        };
        let (id, rest) = match crate::avro::framed(value) {
            Ok(framed) => framed,
            Err(reason) => {
                values.push(Err(reason.replace("not Avro", "not Protobuf")));
                continue;
            }
        };
        let file = match registry.protobuf_schema(id).await? {
            Ok(file) => file,
            Err(reason) => {
                values.push(Err(reason));
                continue;
            }
        };
        let (path, message) = match indexes(rest) {
            Ok(read) => read,
            Err(reason) => {
                values.push(Err(reason));
                continue;
            }
        };
        let verdict = checked.entry((id, path)).or_insert_with_key(|(_, path)| Verdict::of(&file, path, fit.columns));
        match verdict {
            Verdict::Misfit(reason) if fit.stop => {
                return Err(Error::SchemaIncompatible {
                    table: fit.table.to_string(),
                    at: format!("{}-{}@{}", record.topic, record.partition, record.offset),
                    id,
                    reason: reason.clone(),
                })
            }
            Verdict::Misfit(reason) => values.push(Err(format!("schema id {id} does not fit the table: {reason}"))),
            Verdict::Unknown(reason) => values.push(Err(format!("schema id {id}: {reason}"))),
            Verdict::Fits(descriptor, fields) => values.push(json_of(descriptor, fields, id, message)),
        }
    }
    Ok(values)
}

/// What a writer message is to a table, decided once per schema id and message.
enum Verdict {
    /// Its records fill the columns: the message, and the field of each column it has.
    Fits(MessageDescriptor, Vec<(String, FieldDescriptor)>),
    /// Its records cannot fill the columns, for this reason ([`fits`]).
    Misfit(String),
    /// The index array names no message of the schema.
    Unknown(String),
}

impl Verdict {
    fn of(file: &prost_reflect::FileDescriptor, path: &[usize], columns: &[ColumnSpec]) -> Verdict {
        let mut message = match file.messages().nth(path[0]) {
            Some(message) => message,
            None => return Verdict::Unknown(format!("its file has no message {}", path[0])),
        };
        for &index in &path[1..] {
            let child = message.child_messages().nth(index);
            message = match child {
                Some(child) => child,
                None => {
                    return Verdict::Unknown(format!("message {} has no nested message {index}", message.full_name()))
                }
            };
        }
        match fits(&message, columns) {
            Ok(fields) => Verdict::Fits(message, fields),
            Err(reason) => Verdict::Misfit(format!("message {}: {reason}", message.full_name())),
        }
    }
}

/// The message index array after the schema id (zig-zag varints: a count, then that many indexes
/// into the file's messages and their nested messages; a count of 0 is the file's first message),
/// and the message bytes after it.
fn indexes(bytes: &[u8]) -> std::result::Result<(Vec<usize>, &[u8]), String> {
    let mut rest = bytes;
    let mut next = || -> std::result::Result<i64, String> {
        let mut raw = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, tail) = rest.split_first().ok_or("value ends inside its message index array")?;
            rest = tail;
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err("a varint of the message index array runs past ten bytes".to_string())
    };
    let count = next()?;
    let path = if count == 0 {
        vec![0]
    } else {
        if !(1..=MAX_DEPTH as i64).contains(&count) {
            return Err(format!("message index array of {count} levels (at most {MAX_DEPTH})"));
        }
        (0..count)
            .map(|_| next().and_then(|i| usize::try_from(i).map_err(|_| format!("negative message index {i}"))))
            .collect::<std::result::Result<Vec<_>, _>>()?
    };
    Ok((path, rest))
}

/// The fields of `message` that fill `columns` (by name), or why its records cannot: a field
/// whose type its column does not take (a type narrowed or changed: `int64` into an `int32`
/// column, `double` into a `decimal`), a repeated field or a map, or a required column without a
/// default that the message lacks (a field renamed or removed).
pub fn fits(
    message: &MessageDescriptor,
    columns: &[ColumnSpec],
) -> std::result::Result<Vec<(String, FieldDescriptor)>, String> {
    let mut fields = Vec::with_capacity(columns.len());
    for column in columns {
        let Some(field) = message.get_field_by_name(&column.name) else {
            if !column.nullable && column.default.is_none() {
                return Err(format!("it has no field `{}`, a required column", column.name));
            }
            continue;
        };
        let kind = field.kind();
        if field.is_list() || field.is_map() || !takes(column.kind, &kind) {
            let repeated = if field.is_map() {
                "a map"
            } else if field.is_list() {
                "repeated"
            } else {
                ""
            };
            return Err(format!(
                "field `{}` is {}{}, which column `{}` ({}) does not take",
                field.name(),
                if repeated.is_empty() { String::new() } else { format!("{repeated} ") },
                proto_type(&kind),
                column.name,
                column.kind.name()
            ));
        }
        fields.push((column.name.clone(), field));
    }
    Ok(fields)
}

/// The wrapper messages (`google.protobuf.Int64Value`, ...): a value that can be null.
fn wrapped(kind: &Kind) -> Option<Kind> {
    let Kind::Message(message) = kind else { return None };
    let name = message.full_name().strip_prefix("google.protobuf.")?;
    if !name.ends_with("Value") || matches!(name, "Value" | "ListValue") {
        return None;
    }
    message.get_field_by_name("value").map(|f| f.kind())
}

fn named(kind: &Kind) -> Option<&str> {
    match kind {
        Kind::Message(message) => Some(message.full_name()),
        _ => None,
    }
}

/// Whether a column of `kind` takes values of the Protobuf type `field`: every value as it is, or,
/// for a `string` into a `timestamp`, `date` or `decimal` column, text the column reads (RFC 3339,
/// a day, exact digits), each record checked as it is decoded.
fn takes(kind: ColumnType, field: &Kind) -> bool {
    if let Some(inner) = wrapped(field) {
        return takes(kind, &inner);
    }
    let int32 = matches!(field, Kind::Int32 | Kind::Sint32 | Kind::Sfixed32);
    let int64 = int32 || matches!(field, Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32);
    let integer = int64 || matches!(field, Kind::Uint64 | Kind::Fixed64);
    match kind {
        ColumnType::String => matches!(field, Kind::String | Kind::Enum(_)),
        ColumnType::Boolean => matches!(field, Kind::Bool),
        ColumnType::Int32 => int32,
        ColumnType::Int64 => int64,
        ColumnType::Float32 => integer || matches!(field, Kind::Float),
        ColumnType::Float64 => integer || matches!(field, Kind::Float | Kind::Double),
        ColumnType::Decimal(precision, scale) => {
            let digits = usize::from(precision) - scale as usize;
            matches!(field, Kind::String)
                || (int32 && digits >= 10)
                || (int64 && digits >= 19)
                || (integer && digits >= 20)
        }
        ColumnType::Date => matches!(field, Kind::String) || named(field) == Some("google.type.Date"),
        ColumnType::Timestamp => {
            matches!(field, Kind::String | Kind::Int64) || named(field) == Some("google.protobuf.Timestamp")
        }
        ColumnType::Binary => false,
    }
}

/// A Protobuf type as a `.proto` file writes it: `int64`, `google.protobuf.Timestamp`.
fn proto_type(kind: &Kind) -> String {
    match kind {
        Kind::Message(message) => message.full_name().to_string(),
        Kind::Enum(e) => e.full_name().to_string(),
        scalar => format!("{scalar:?}").to_ascii_lowercase(),
    }
}

/// One message of `descriptor` as JSON object text of the columns' fields.
fn json_of(
    descriptor: &MessageDescriptor,
    fields: &[(String, FieldDescriptor)],
    id: u32,
    bytes: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let message = DynamicMessage::decode(descriptor.clone(), bytes)
        .map_err(|e| format!("value does not decode as {} of schema id {id}: {e}", descriptor.full_name()))?;
    let mut object = Map::with_capacity(fields.len());
    for (column, field) in fields {
        if field.supports_presence() && !message.has_field(field) {
            continue;
        }
        let value = json_value(&message.get_field(field), &field.kind())
            .map_err(|reason| format!("field `{}`: {reason}", field.name()))?;
        object.insert(column.clone(), value);
    }
    serde_json::to_vec(&Json::Object(object)).map_err(|e| e.to_string())
}

/// A field's value as the JSON the table's decoder reads for its column: numbers as numbers,
/// timestamps as epoch microseconds, days as `YYYY-MM-DD`, enums by name.
fn json_value(value: &Value, kind: &Kind) -> std::result::Result<Json, String> {
    Ok(match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(n) => Json::from(*n),
        Value::I64(n) => Json::from(*n),
        Value::U32(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::F32(f) => finite(f64::from(*f))?,
        Value::F64(f) => finite(*f)?,
        Value::String(s) => Json::String(s.clone()),
        Value::EnumNumber(n) => match kind {
            Kind::Enum(e) => {
                e.get_value(*n).map_or_else(|| Json::String(n.to_string()), |v| Json::String(v.name().into()))
            }
            _ => Json::String(n.to_string()),
        },
        Value::Message(message) => {
            let number = |name: &str| match message.get_field_by_name(name).as_deref() {
                Some(Value::I64(n)) => *n,
                Some(Value::I32(n)) => i64::from(*n),
                _ => 0,
            };
            match message.descriptor().full_name() {
                "google.protobuf.Timestamp" => {
                    let (seconds, nanos) = (number("seconds"), number("nanos"));
                    if !(0..1_000_000_000).contains(&nanos) {
                        return Err(format!("a Timestamp with {nanos} nanoseconds (0 to 999,999,999)"));
                    }
                    let micros = seconds.checked_mul(1_000_000).and_then(|s| s.checked_add(nanos / 1_000));
                    Json::from(micros.ok_or_else(|| format!("a Timestamp of {seconds} seconds is out of range"))?)
                }
                "google.type.Date" => {
                    Json::String(format!("{:04}-{:02}-{:02}", number("year"), number("month"), number("day")))
                }
                _ => match (wrapped(kind), message.descriptor().get_field_by_name("value")) {
                    (Some(inner), Some(field)) => json_value(&message.get_field(&field), &inner)?,
                    _ => return Err(format!("a {} message, which no column takes", message.descriptor().full_name())),
                },
            }
        }
        Value::Bytes(_) | Value::List(_) | Value::Map(_) => return Err("a value no column takes".to_string()),
    })
}

fn finite(f: f64) -> std::result::Result<Json, String> {
    Number::from_f64(f).map(Json::Number).ok_or_else(|| format!("{f} has no JSON number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::prost::Message as _;
    use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
    use prost_reflect::prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};

    fn field(name: &str, number: i32, kind: Type, type_name: Option<&str>) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(kind as i32),
            type_name: type_name.map(str::to_string),
            ..Default::default()
        }
    }

    /// A file with `Outer` (id, at, n, user, day) and `Outer.Inner` (n as int32).
    fn file() -> prost_reflect::FileDescriptor {
        let mut pool = prost_reflect::DescriptorPool::global();
        let inner = DescriptorProto {
            name: Some("Inner".into()),
            field: vec![field("n", 1, Type::Int32, None)],
            ..Default::default()
        };
        let outer = DescriptorProto {
            name: Some("Outer".into()),
            field: vec![
                field("id", 1, Type::String, None),
                field("at", 2, Type::Message, Some(".google.protobuf.Timestamp")),
                field("n", 3, Type::Int64, None),
                field("user", 4, Type::Message, Some(".google.protobuf.StringValue")),
            ],
            nested_type: vec![inner],
            ..Default::default()
        };
        let file = FileDescriptorProto {
            name: Some("t.proto".into()),
            package: Some("t".into()),
            syntax: Some("proto3".into()),
            dependency: vec!["google/protobuf/timestamp.proto".into(), "google/protobuf/wrappers.proto".into()],
            message_type: vec![outer],
            ..Default::default()
        };
        pool.add_file_descriptor_proto(file).unwrap();
        pool.get_file_by_name("t.proto").unwrap()
    }

    fn columns(n: &str) -> Vec<ColumnSpec> {
        let config = crate::config::PipelineConfig::parse(
            &format!(
                r#"
                [kafka]
                brokers = "k:1"
                [lake]
                root = "/lake"
                [tables.ev]
                topic = "ev"
                event_uuid = "id"
                event_time = "at"
                columns = [
                  {{ name = "id", type = "string", nullable = false }},
                  {{ name = "at", type = "timestamp", nullable = false }},
                  {{ name = "n", type = "{n}" }},
                  {{ name = "user", type = "string" }},
                ]
                "#
            ),
            std::path::Path::new("/"),
        )
        .unwrap();
        config.tables[0].columns.clone()
    }

    #[test]
    fn index_arrays_name_the_first_message_or_a_nested_one() {
        assert_eq!(indexes(&[0, 9]).unwrap(), (vec![0], &[9u8][..]));
        // Two levels, 0 then 1, zig-zag encoded: count 2 -> 4, 0 -> 0, 1 -> 2.
        assert_eq!(indexes(&[4, 0, 2]).unwrap(), (vec![0, 1], &[][..]));
        assert!(indexes(&[]).unwrap_err().contains("ends inside"));
        assert!(indexes(&[2, 1]).unwrap_err().contains("negative"));
        assert!(indexes(&[0xfe, 0xff, 0xff, 0xff, 0x0f]).unwrap_err().contains("levels"));
        let file = file();
        assert!(matches!(Verdict::of(&file, &[0, 0], &[]), Verdict::Fits(m, _) if m.name() == "Inner"));
        assert!(matches!(Verdict::of(&file, &[3], &[]), Verdict::Unknown(r) if r.contains("no message 3")));
    }

    #[test]
    fn a_message_reads_as_the_columns_json() {
        let file = file();
        let outer = file.messages().next().unwrap();
        let fields = fits(&outer, &columns("int64")).unwrap();
        let mut message = DynamicMessage::new(outer.clone());
        message.set_field_by_name("id", Value::String("e1".into()));
        let mut at = DynamicMessage::new(outer.parent_pool().get_message_by_name("google.protobuf.Timestamp").unwrap());
        at.set_field_by_name("seconds", Value::I64(1_700_000_000));
        at.set_field_by_name("nanos", Value::I32(123_456_789));
        message.set_field_by_name("at", Value::Message(at));
        let json = json_of(&outer, &fields, 1, &message.encode_to_vec()).unwrap();
        // n unset is proto3's zero; the unset wrapper is null (left out).
        let read: Json = serde_json::from_slice(&json).unwrap();
        assert_eq!(read, serde_json::json!({"id": "e1", "at": 1_700_000_000_123_456_i64, "n": 0}));

        let mut user =
            DynamicMessage::new(outer.parent_pool().get_message_by_name("google.protobuf.StringValue").unwrap());
        user.set_field_by_name("value", Value::String("u1".into()));
        message.set_field_by_name("user", Value::Message(user));
        let json = json_of(&outer, &fields, 1, &message.encode_to_vec()).unwrap();
        assert_eq!(serde_json::from_slice::<Json>(&json).unwrap()["user"], "u1");

        let cut = &message.encode_to_vec()[..5];
        assert!(json_of(&outer, &fields, 7, cut).unwrap_err().contains("does not decode as t.Outer of schema id 7"));
    }

    #[test]
    fn types_a_column_does_not_take_are_misfits() {
        let file = file();
        let outer = file.messages().next().unwrap();
        assert!(fits(&outer, &columns("float64")).is_ok());
        assert!(fits(&outer, &columns("decimal(20, 0)")).is_ok());
        let narrowed = fits(&outer, &columns("int32")).unwrap_err();
        assert_eq!(narrowed, "field `n` is int64, which column `n` (int32) does not take");
        assert!(fits(&outer, &columns("decimal(18, 6)")).unwrap_err().contains("decimal(18, 6)"));
        let mut required = columns("int64");
        required.push(ColumnSpec { name: "gone".into(), ..required[0].clone() });
        assert_eq!(fits(&outer, &required).unwrap_err(), "it has no field `gone`, a required column");
    }
}
