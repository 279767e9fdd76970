//! Protobuf record values in the Confluent wire format (a zero magic byte, the writer schema's id
//! in four big-endian bytes, the message's place in the schema's file as an array of indexes, then
//! the message), read by reflection over the descriptor the registry serves, and handed to the
//! table's decoder as one [`Cell`] per column each, so Protobuf and JSON records meet the same
//! column checks, defaults and exact numbers.
//!
//! A column is filled from the message field of its name. The well-known types keep their meaning:
//! `google.protobuf.Timestamp` is the event's microseconds, the wrappers (`StringValue`,
//! `Int64Value`, ...) their value or null, `google.type.Date` a calendar day. A field with presence
//! (a message, a wrapper, `optional`) that is not set is null; a proto3 scalar that is not set is
//! its zero value, as every Protobuf reader sees it.

use std::collections::HashMap;

use crate::batch::KafkaRecord;
use crate::cells::Cell;
use crate::decode::Fit;
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::schema::{ColumnSpec, ColumnType};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage as _, Value};

/// The most levels of nesting a message index array may name.
const MAX_DEPTH: usize = 32;

/// The values of each record, a [`Cell`] per column, or why it cannot be read (the record is then a
/// dead letter with that reason): among the reasons, a writer message that does not fit the
/// table's columns ([`fits`]), checked once per schema id and message. A registry that does not
/// answer fails the whole call, as does a misfit when `fit` says to stop.
pub async fn transcode(
    registry: &Registry,
    records: &[&KafkaRecord],
    fit: Fit<'_>,
) -> Result<Vec<std::result::Result<Vec<Cell>, String>>> {
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
        let verdict = checked.entry((id, path)).or_insert_with_key(|(_, path)| Verdict::of(&file, path, fit));
        let at = || format!("{}-{}@{}", record.topic, record.partition, record.offset);
        match verdict {
            Verdict::NewField(field) => {
                return Err(Error::SchemaChanged { table: fit.table.to_string(), at: at(), id, field: field.clone() })
            }
            Verdict::Misfit(reason) if fit.stop => {
                return Err(Error::SchemaIncompatible {
                    table: fit.table.to_string(),
                    at: at(),
                    id,
                    reason: reason.clone(),
                })
            }
            Verdict::Misfit(reason) => values.push(Err(format!("schema id {id} does not fit the table: {reason}"))),
            Verdict::Unknown(reason) => values.push(Err(format!("schema id {id}: {reason}"))),
            Verdict::Fits(descriptor, fields) => {
                values.push(cells_of(descriptor, fields, fit.columns.len(), id, message))
            }
        }
    }
    Ok(values)
}

/// What a writer message is to a table, decided once per schema id and message.
enum Verdict {
    /// Its records fill the columns: the message, and the field of each column it has, with the
    /// column's index.
    Fits(MessageDescriptor, Vec<(usize, FieldDescriptor)>),
    /// Its records cannot fill the columns, for this reason ([`fits`]).
    Misfit(String),
    /// The index array names no message of the schema.
    Unknown(String),
    /// It has this field, which is not a column, and the columns follow the registry.
    NewField(String),
}

impl Verdict {
    fn of(file: &prost_reflect::FileDescriptor, path: &[usize], fit: Fit<'_>) -> Verdict {
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
        if fit.follow {
            if let Some(field) = message.fields().find(|f| !fit.columns.iter().any(|c| c.name == f.name())) {
                return Verdict::NewField(field.name().to_string());
            }
        }
        match fits(&message, fit.columns) {
            Ok(fields) => Verdict::Fits(message, fields),
            Err(reason) => Verdict::Misfit(format!("message {}: {reason}", message.full_name())),
        }
    }
}

/// The columns the fields of every version of a subject make (`columns = "registry"`), in order:
/// the fields of each version's first message, each column made by the first version that has the
/// field, with that version's type, as [`crate::avro::columns_of`] makes Avro's. Integers are
/// `int64` (a `uint64` a `decimal(20, 0)`), floats `float64`, strings and enums `string`,
/// `google.protobuf.Timestamp` a `timestamp`, `google.type.Date` a `date`, a wrapper its value's
/// type. A column is nullable when its field has presence (a message, a wrapper, a proto3
/// `optional`) or came after the first version, except the `required` ones (the event UUID and
/// time: a record without them is a dead letter).
pub fn columns_of(
    history: &[(u32, prost_reflect::FileDescriptor)],
    required: &[&str],
) -> std::result::Result<Vec<(String, String, bool)>, String> {
    let mut columns: Vec<(String, String, bool)> = Vec::new();
    for (i, (version, file)) in history.iter().enumerate() {
        let message = file
            .messages()
            .next()
            .ok_or_else(|| format!("version {version} defines no message, and a table row needs one"))?;
        for field in message.fields() {
            if columns.iter().any(|(name, ..)| name == field.name()) {
                continue;
            }
            let kind = column_type(&field).map_err(|reason| {
                format!(
                    "version {version}'s field `{}` is {reason}, which tidelake does not read into a column yet",
                    field.name()
                )
            })?;
            let nullable = (field.supports_presence() || i > 0) && !required.contains(&field.name());
            columns.push((field.name().to_string(), kind, nullable));
        }
    }
    Ok(columns)
}

/// The column type a message field makes, or what the field is.
fn column_type(field: &FieldDescriptor) -> std::result::Result<String, String> {
    let kind = field.kind();
    if field.is_map() {
        return Err(format!("a map of {}", proto_type(&kind)));
    }
    if field.is_list() {
        return Err(format!("repeated {}", proto_type(&kind)));
    }
    let kind = wrapped(&kind).unwrap_or(kind);
    Ok(match &kind {
        Kind::Bool => "boolean",
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint32
        | Kind::Fixed32 => "int64",
        Kind::Uint64 | Kind::Fixed64 => "decimal(20, 0)",
        Kind::Float | Kind::Double => "float64",
        Kind::String | Kind::Enum(_) => "string",
        _ if named(&kind) == Some("google.protobuf.Timestamp") => "timestamp",
        _ if named(&kind) == Some("google.type.Date") => "date",
        other => return Err(proto_type(other)),
    }
    .to_string())
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
) -> std::result::Result<Vec<(usize, FieldDescriptor)>, String> {
    let mut fields = Vec::with_capacity(columns.len());
    for (place, column) in columns.iter().enumerate() {
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
        fields.push((place, field));
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

/// One message of `descriptor` as the cells of `columns` columns, filled from `fields` (the field
/// of each column the message has); the others are null.
fn cells_of(
    descriptor: &MessageDescriptor,
    fields: &[(usize, FieldDescriptor)],
    columns: usize,
    id: u32,
    bytes: &[u8],
) -> std::result::Result<Vec<Cell>, String> {
    let message = DynamicMessage::decode(descriptor.clone(), bytes)
        .map_err(|e| format!("value does not decode as {} of schema id {id}: {e}", descriptor.full_name()))?;
    let mut cells = vec![Cell::Null; columns];
    for (place, field) in fields {
        if field.supports_presence() && !message.has_field(field) {
            continue;
        }
        cells[*place] = cell_of(&message.get_field(field), &field.kind())
            .map_err(|reason| format!("field `{}`: {reason}", field.name()))?;
    }
    Ok(cells)
}

/// A field's value as a cell for its column: timestamps as epoch microseconds, dates as days,
/// enums by name.
fn cell_of(value: &Value, kind: &Kind) -> std::result::Result<Cell, String> {
    Ok(match value {
        Value::Bool(b) => Cell::Bool(*b),
        Value::I32(n) => Cell::Int(i64::from(*n)),
        Value::I64(n) => Cell::Int(*n),
        Value::U32(n) => Cell::Int(i64::from(*n)),
        Value::U64(n) => Cell::UInt(*n),
        Value::F32(f) => Cell::Float(f64::from(*f)),
        Value::F64(f) => Cell::Float(*f),
        Value::String(s) => Cell::Text(s.clone()),
        Value::EnumNumber(n) => match kind {
            Kind::Enum(e) => Cell::Text(e.get_value(*n).map_or_else(|| n.to_string(), |v| v.name().to_string())),
            _ => Cell::Text(n.to_string()),
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
                    Cell::Micros(micros.ok_or_else(|| format!("a Timestamp of {seconds} seconds is out of range"))?)
                }
                "google.type.Date" => {
                    let (year, month, day) = (number("year"), number("month"), number("day"));
                    let date = i32::try_from(year)
                        .ok()
                        .zip(u32::try_from(month).ok().zip(u32::try_from(day).ok()))
                        .and_then(|(y, (m, d))| chrono::NaiveDate::from_ymd_opt(y, m, d))
                        .ok_or_else(|| format!("a Date of {year}-{month}-{day} is not a day"))?;
                    Cell::Day((date - chrono::NaiveDate::default()).num_days() as i32)
                }
                _ => match (wrapped(kind), message.descriptor().get_field_by_name("value")) {
                    (Some(inner), Some(field)) => cell_of(&message.get_field(&field), &inner)?,
                    _ => return Err(format!("a {} message, which no column takes", message.descriptor().full_name())),
                },
            }
        }
        Value::Bytes(_) | Value::List(_) | Value::Map(_) => return Err("a value no column takes".to_string()),
    })
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
        let columns = format!(r#"{{ name = "n", type = "{n}" }}, {{ name = "user", type = "string" }},"#);
        crate::config::test_table("", &columns).columns
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
        let fit = Fit { table: "t", columns: &[], follow: false, stop: false };
        assert!(matches!(Verdict::of(&file, &[0, 0], fit), Verdict::Fits(m, _) if m.name() == "Inner"));
        assert!(matches!(Verdict::of(&file, &[3], fit), Verdict::Unknown(r) if r.contains("no message 3")));
        let follow = Fit { follow: true, ..fit };
        assert!(matches!(Verdict::of(&file, &[0, 0], follow), Verdict::NewField(f) if f == "n"));
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
        let cells = cells_of(&outer, &fields, 4, 1, &message.encode_to_vec()).unwrap();
        // n unset is proto3's zero; the unset wrapper is null.
        let expect = [Cell::Text("e1".into()), Cell::Micros(1_700_000_000_123_456), Cell::Int(0), Cell::Null];
        assert_eq!(cells, expect);

        let mut user =
            DynamicMessage::new(outer.parent_pool().get_message_by_name("google.protobuf.StringValue").unwrap());
        user.set_field_by_name("value", Value::String("u1".into()));
        message.set_field_by_name("user", Value::Message(user));
        let cells = cells_of(&outer, &fields, 4, 1, &message.encode_to_vec()).unwrap();
        assert_eq!(cells[3], Cell::Text("u1".into()));

        let cut = &message.encode_to_vec()[..5];
        assert!(cells_of(&outer, &fields, 4, 7, cut)
            .unwrap_err()
            .contains("does not decode as t.Outer of schema id 7"));
    }

    #[test]
    fn registry_columns_come_from_the_first_message_of_each_version() {
        let file = file();
        let columns = columns_of(&[(1, file.clone())], &["id", "at"]).unwrap();
        let expect =
            [("id", "string", false), ("at", "timestamp", false), ("n", "int64", false), ("user", "string", true)];
        assert_eq!(columns, expect.map(|(n, t, z)| (n.to_string(), t.to_string(), z)).to_vec());
        let loose = columns_of(&[(1, file)], &[]).unwrap();
        assert!(loose[1].2, "a Timestamp has presence: {loose:?}");
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
