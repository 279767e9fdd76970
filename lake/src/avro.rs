//! Avro record values in the Confluent wire format (a zero magic byte, the writer schema's id in
//! four big-endian bytes, then the Avro binary datum), read against the writer schema from the
//! registry, or plain datums of the table's own `avro_schema`, and handed to the table's decoder
//! as one [`Cell`] per column each, so Avro and JSON records meet the same column checks, defaults
//! and exact numbers, with no text in between.
//!
//! Logical types keep their meaning: `timestamp-millis`/`-micros` become the event's microseconds,
//! `date` a calendar day, `decimal` its exact digits, `uuid` its text.

use std::collections::HashMap;

use crate::batch::KafkaRecord;
use crate::cells::Cell;
use crate::decode::Fit;
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::schema::{ColumnSpec, ColumnType};
use apache_avro::schema::{RecordSchema, Schema};

/// The magic byte that starts a value in the Confluent wire format.
const MAGIC: u8 = 0;

/// The values of each record, a [`Cell`] per column, or why it cannot be read (the record is then a
/// dead letter with that reason): among the reasons, a writer schema that does not fit the
/// table's columns ([`fits`]), checked once per schema id. A registry that does not answer fails
/// the whole call, as does a schema change `fit` says stops the batch.
pub async fn transcode(
    registry: &Registry,
    records: &[&KafkaRecord],
    fit: Fit<'_>,
) -> Result<Vec<std::result::Result<Vec<Cell>, String>>> {
    let mut checked: HashMap<u32, Verdict> = HashMap::new();
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
        let at = || format!("{}-{}@{}", record.topic, record.partition, record.offset);
        let table = || fit.table.to_string();
        match checked.entry(id).or_insert_with(|| Verdict::of(&schema, fit)) {
            Verdict::NewField(field) => {
                return Err(Error::SchemaChanged { table: table(), at: at(), id, field: field.clone() })
            }
            Verdict::Misfit(reason) if fit.stop => {
                return Err(Error::SchemaIncompatible { table: table(), at: at(), id, reason: reason.clone() })
            }
            Verdict::Misfit(reason) => values.push(Err(format!("schema id {id} does not fit the table: {reason}"))),
            Verdict::Fits(places) => {
                values.push(cells_of(&schema, places, fit.columns.len(), &format!("schema id {id}"), datum))
            }
        }
    }
    Ok(values)
}

/// What a writer schema is to a table, decided once per schema id.
enum Verdict {
    /// Its records fill the columns: the column of each of its fields, if it has one.
    Fits(Vec<Option<usize>>),
    /// It has this field, which is not a column, and the columns follow the registry.
    NewField(String),
    /// Its records cannot fill the columns, for this reason ([`fits`]).
    Misfit(String),
}

impl Verdict {
    fn of(schema: &Schema, fit: Fit<'_>) -> Verdict {
        if let (true, Schema::Record(record)) = (fit.follow, schema) {
            if let Some(field) = record.fields.iter().find(|f| !fit.columns.iter().any(|c| c.name == f.name)) {
                return Verdict::NewField(field.name.clone());
            }
        }
        match fits(schema, fit.columns) {
            Ok(()) => Verdict::Fits(places(schema, fit.columns)),
            Err(reason) => Verdict::Misfit(reason),
        }
    }
}

/// Why records of `schema` cannot fill `columns`, if they cannot: a field whose type its column
/// does not take (a type narrowed or changed: `long` into an `int32` column, `double` into a
/// `decimal`, a decimal with another scale or more integer digits), or a required column without a
/// default that the schema lacks (a field renamed or removed). The promotions Avro's schema
/// resolution allows fit (`int` into `int64`, `float` into `float64`, any number into `float64`).
pub fn fits(schema: &Schema, columns: &[ColumnSpec]) -> std::result::Result<(), String> {
    let Schema::Record(record) = schema else {
        return Err("it is not an Avro record".to_string());
    };
    for column in columns {
        let Some(field) = record.fields.iter().find(|f| f.name == column.name) else {
            if !column.nullable && column.default.is_none() {
                return Err(format!("it has no field `{}`, a required column", column.name));
            }
            continue;
        };
        let variants: Vec<&Schema> = match &field.schema {
            Schema::Union(union) => union.variants().iter().filter(|v| !matches!(v, Schema::Null)).collect(),
            other => vec![other],
        };
        if let Some(bad) = variants.iter().find(|v| !takes(column.kind, v)) {
            return Err(format!(
                "field `{}` is {}, which column `{}` ({}) does not take",
                field.name,
                avro_type(bad),
                column.name,
                column.kind.name()
            ));
        }
    }
    Ok(())
}

/// Whether a column of `kind` takes values of the Avro type `schema`: every value as it is, or, for
/// a `string` into a `timestamp`, `date` or `decimal` column, text the column reads (RFC 3339, a
/// day, exact digits) as it reads JSON text, each record checked as it is decoded.
fn takes(kind: ColumnType, schema: &Schema) -> bool {
    let timestamp = matches!(
        schema,
        Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
    );
    match kind {
        ColumnType::String => matches!(schema, Schema::String | Schema::Enum(_) | Schema::Uuid),
        ColumnType::Boolean => matches!(schema, Schema::Boolean),
        ColumnType::Int32 => matches!(schema, Schema::Int),
        ColumnType::Int64 => matches!(schema, Schema::Int | Schema::Long),
        ColumnType::Float32 => matches!(schema, Schema::Int | Schema::Long | Schema::Float),
        ColumnType::Float64 => matches!(schema, Schema::Int | Schema::Long | Schema::Float | Schema::Double),
        ColumnType::Decimal(precision, scale) => match schema {
            Schema::Decimal(d) => {
                d.scale == scale as usize && d.precision - d.scale <= usize::from(precision) - scale as usize
            }
            Schema::Int => usize::from(precision) - scale as usize >= 10,
            Schema::Long => usize::from(precision) - scale as usize >= 19,
            Schema::String => true,
            _ => false,
        },
        ColumnType::Date => matches!(schema, Schema::Date | Schema::String),
        ColumnType::Timestamp => timestamp || matches!(schema, Schema::Long | Schema::String),
        ColumnType::Binary => false,
    }
}

/// An Avro type as a schema writes it: `long`, `decimal(18, 6)`, `timestamp-micros`.
fn avro_type(schema: &Schema) -> String {
    match schema {
        Schema::Decimal(d) => format!("decimal({}, {})", d.precision, d.scale),
        Schema::Uuid => "uuid".to_string(),
        Schema::Date => "date".to_string(),
        Schema::TimestampMillis => "timestamp-millis".to_string(),
        Schema::TimestampMicros => "timestamp-micros".to_string(),
        Schema::TimestampNanos => "timestamp-nanos".to_string(),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_ascii_lowercase(),
    }
}

/// The values of each record, a plain Avro datum (no framing) of `schema`, a [`Cell`] per column
/// of `columns`, or why it cannot be read.
pub fn transcode_plain(
    schema: &Schema,
    columns: &[ColumnSpec],
    records: &[&KafkaRecord],
) -> Vec<std::result::Result<Vec<Cell>, String>> {
    let places = places(schema, columns);
    records
        .iter()
        .map(|record| match record.value.as_deref() {
            Some(datum) => cells_of(schema, &places, columns.len(), "the table's avro_schema", datum),
            None => Err("record has no value (a tombstone)".to_string()),
        })
        .collect()
}

/// For each field of `schema` (a record), the index of the column of its name, if there is one.
fn places(schema: &Schema, columns: &[ColumnSpec]) -> Vec<Option<usize>> {
    match schema {
        Schema::Record(record) => record.fields.iter().map(|f| columns.iter().position(|c| c.name == f.name)).collect(),
        _ => Vec::new(),
    }
}

/// The table columns a subject's schemas make (`columns = "registry"`), given oldest first: name,
/// the config's type name, and whether it may be null. A column is made by the first version that
/// has its field, with that version's type, so every writer of the table, whenever it starts,
/// agrees on the columns; a later change of a field's type is checked per record schema ([`fits`])
/// and never changes the column. Each column takes the widest type of its field's family (`int`
/// and `long` are `int64`, `float` and `double` are `float64`), so a producer widening a field as
/// Avro's schema resolution allows fits. A field is nullable when it is a union with `null`, has a
/// default, or came after the first version (rows from before it hold none).
pub fn columns_of(
    history: &[(u32, std::sync::Arc<Schema>)],
) -> std::result::Result<Vec<(String, String, bool)>, String> {
    let mut columns: Vec<(String, String, bool)> = Vec::new();
    for (i, (version, schema)) in history.iter().enumerate() {
        let Schema::Record(record) = schema.as_ref() else {
            return Err(format!("version {version} is not an Avro record schema, and a table row needs one"));
        };
        for field in &record.fields {
            if columns.iter().any(|(name, ..)| *name == field.name) {
                continue;
            }
            let (kind, nullable) =
                column_of(field).map_err(|reason| format!("version {version}'s field `{}` {reason}", field.name))?;
            columns.push((field.name.clone(), kind, nullable || i > 0));
        }
    }
    Ok(columns)
}

/// A record field's column type name, and whether the field may be missing or null.
fn column_of(field: &apache_avro::schema::RecordField) -> std::result::Result<(String, bool), String> {
    let (inner, in_union) = match &field.schema {
        Schema::Union(union) => {
            let variants: Vec<&Schema> = union.variants().iter().filter(|v| !matches!(v, Schema::Null)).collect();
            match variants.as_slice() {
                [only] => (*only, variants.len() < union.variants().len()),
                _ => return Err("is a union of several types, which no column holds".to_string()),
            }
        }
        other => (other, false),
    };
    let kind = match inner {
        Schema::Boolean => "boolean".to_string(),
        Schema::Int | Schema::Long => "int64".to_string(),
        Schema::Float | Schema::Double => "float64".to_string(),
        Schema::String | Schema::Enum(_) | Schema::Uuid => "string".to_string(),
        Schema::Date => "date".to_string(),
        Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "timestamp".to_string(),
        Schema::Decimal(d) if d.precision <= 38 => format!("decimal({}, {})", d.precision, d.scale),
        other => return Err(format!("is {}, which tidelake does not read into a column yet", avro_type(other))),
    };
    Ok((kind, in_union || field.default.is_some()))
}

/// Why `schema` cannot be a table's `avro_schema` whose rows need `fields`: it is not a record, or
/// lacks one of them.
pub fn check_plain_schema(schema: &Schema, fields: &[&str]) -> std::result::Result<(), String> {
    let Schema::Record(record) = schema else {
        return Err("is not an Avro record schema, and a table row needs one".to_string());
    };
    match fields.iter().find(|f| !record.fields.iter().any(|field| field.name == **f)) {
        Some(missing) => Err(format!("has no field `{missing}`, which the table's rows need")),
        None => Ok(()),
    }
}

/// The schema id and the Avro datum of a value in the Confluent wire format.
pub(crate) fn framed(value: &[u8]) -> std::result::Result<(u32, &[u8]), String> {
    match value {
        [MAGIC, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [MAGIC, ..] => Err(format!("value of {} bytes is too short for the schema registry's framing", value.len())),
        [first, ..] => Err(format!(
            "value does not start with the schema registry's magic byte 0 (found {first:#04x}): not Avro from a registry serializer"
        )),
        [] => Err("value is empty".to_string()),
    }
}

/// One datum of `schema` (`which`, for reasons: "schema id 7") as the cells of the columns its
/// fields fill (`places`: the column of each field); a column no field fills is null.
fn cells_of(
    schema: &Schema,
    places: &[Option<usize>],
    columns: usize,
    which: &str,
    datum: &[u8],
) -> std::result::Result<Vec<Cell>, String> {
    let Schema::Record(record) = schema else {
        return Err(format!("{which} is not an Avro record, and a table row needs one"));
    };
    let mut datum = Datum { bytes: datum, root: schema };
    let mut cells = vec![Cell::Null; columns];
    read_record(record, places, &mut datum, &mut cells)
        .map_err(|e| format!("value does not decode with {which}: {e}"))?;
    if !datum.bytes.is_empty() {
        return Err(format!("value has {} bytes left after the Avro datum of {which}", datum.bytes.len()));
    }
    Ok(cells)
}

fn read_record(
    schema: &RecordSchema,
    places: &[Option<usize>],
    datum: &mut Datum,
    cells: &mut [Cell],
) -> std::result::Result<(), String> {
    for (field, place) in schema.fields.iter().zip(places) {
        let cell = datum.value(&field.schema).map_err(|reason| format!("field `{}`: {reason}", field.name))?;
        if let Some(place) = place {
            cells[*place] = cell;
        }
    }
    Ok(())
}

/// The bytes of one Avro binary datum not read yet. Every length it reads is checked against the
/// bytes left before anything is taken, so a record can never make the reader hold more than the
/// record's own size, whatever length it declares.
struct Datum<'a> {
    bytes: &'a [u8],
    /// The writer schema, where named types referred to by name are defined.
    root: &'a Schema,
}

impl<'a> Datum<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if n > self.bytes.len() {
            return Err(format!("the datum ends {} bytes short of a value", n - self.bytes.len()));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// A zig-zag varint `long` (at most ten bytes).
    fn long(&mut self) -> std::result::Result<i64, String> {
        let mut raw = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err("a varint runs past ten bytes".to_string())
    }

    fn int(&mut self) -> std::result::Result<i32, String> {
        let long = self.long()?;
        i32::try_from(long).map_err(|_| format!("{long} is out of range for an Avro int"))
    }

    /// A length-prefixed run of bytes (`bytes`, `string`).
    fn run(&mut self) -> std::result::Result<&'a [u8], String> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        self.take(len)
    }

    fn text(&mut self) -> std::result::Result<&'a str, String> {
        std::str::from_utf8(self.run()?).map_err(|e| format!("a string that is not UTF-8 ({e})"))
    }

    /// The next value of `schema` as a cell for its column: timestamps as epoch microseconds, days
    /// since 1970, decimals as their exact unscaled value and scale.
    fn value(&mut self, schema: &Schema) -> std::result::Result<Cell, String> {
        Ok(match schema {
            Schema::Null => Cell::Null,
            Schema::Boolean => match self.take(1)?[0] {
                0 => Cell::Bool(false),
                1 => Cell::Bool(true),
                other => return Err(format!("boolean byte {other:#04x} is neither 0 nor 1")),
            },
            Schema::Int => Cell::Int(i64::from(self.int()?)),
            Schema::Long => Cell::Int(self.long()?),
            Schema::Float => Cell::Float(f64::from(f32::from_le_bytes(self.take(4)?.try_into().expect("four bytes")))),
            Schema::Double => Cell::Float(f64::from_le_bytes(self.take(8)?.try_into().expect("eight bytes"))),
            Schema::String => Cell::Text(self.text()?.to_string()),
            Schema::Enum(e) => {
                let index = self.int()?;
                let symbol = usize::try_from(index).ok().and_then(|i| e.symbols.get(i));
                Cell::Text(symbol.ok_or_else(|| format!("enum index {index} of {} symbols", e.symbols.len()))?.clone())
            }
            Schema::Uuid => {
                let bytes = self.run()?;
                let uuid = match uuid::Uuid::from_slice(bytes) {
                    Ok(uuid) => uuid,
                    Err(_) => std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|text| uuid::Uuid::parse_str(text).ok())
                        .ok_or_else(|| "a uuid that is neither 16 bytes nor UUID text".to_string())?,
                };
                Cell::Text(uuid.to_string())
            }
            Schema::Date => {
                let days = self.int()?;
                chrono::NaiveDate::from_num_days_from_ce_opt(days.saturating_add(719_163))
                    .ok_or_else(|| format!("date {days} days from 1970 is out of range"))?;
                Cell::Day(days)
            }
            Schema::TimestampMillis | Schema::LocalTimestampMillis => {
                let ms = self.long()?;
                Cell::Micros(ms.checked_mul(1_000).ok_or_else(|| format!("timestamp {ms} ms is out of range"))?)
            }
            Schema::TimestampMicros | Schema::LocalTimestampMicros => Cell::Micros(self.long()?),
            Schema::TimestampNanos | Schema::LocalTimestampNanos => Cell::Micros(self.long()?.div_euclid(1_000)),
            Schema::Decimal(decimal) => {
                let unscaled = match decimal.inner.as_ref() {
                    Schema::Fixed(fixed) => self.take(fixed.size)?,
                    _ => self.run()?,
                };
                let scale = u32::try_from(decimal.scale).map_err(|_| format!("decimal scale {}", decimal.scale))?;
                Cell::Decimal(unscaled_of(unscaled)?, scale)
            }
            Schema::Union(union) => {
                let index = self.long()?;
                let variant = usize::try_from(index).ok().and_then(|i| union.variants().get(i));
                self.value(variant.ok_or_else(|| format!("union branch {index} of {}", union.variants().len()))?)?
            }
            Schema::Ref { name } => {
                let named = apache_avro::schema::ResolvedSchema::try_from(self.root)
                    .ok()
                    .and_then(|resolved| resolved.get_names().get(name).map(|s| (*s).clone()))
                    .ok_or_else(|| format!("the named type {name} is not in the schema"))?;
                self.value(&named)?
            }
            Schema::Bytes | Schema::Fixed(_) | Schema::BigDecimal | Schema::Duration => {
                return Err("bytes are not read into columns yet".to_string())
            }
            Schema::Array(_) | Schema::Map(_) | Schema::Record(_) => {
                return Err("a nested value; the table's columns are flat".to_string())
            }
            Schema::TimeMillis | Schema::TimeMicros => {
                return Err("a time of day; no column type reads one yet".to_string())
            }
        })
    }
}

/// The unscaled value of an Avro decimal (big-endian two's complement).
fn unscaled_of(bytes: &[u8]) -> std::result::Result<i128, String> {
    if bytes.len() > 16 {
        return Err(format!("decimal of {} bytes is wider than 38 digits", bytes.len()));
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut full = [if negative { 0xff } else { 0 }; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    Ok(i128::from_be_bytes(full))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use apache_avro::types::Value;

    use super::*;

    /// Every field of `schema` read into a column of its own, in order.
    fn json_of(schema: &Schema, which: &str, datum: &[u8]) -> std::result::Result<Vec<Cell>, String> {
        let Schema::Record(record) = schema else { unreachable!("a record") };
        let places: Vec<Option<usize>> = (0..record.fields.len()).map(Some).collect();
        cells_of(schema, &places, places.len(), which, datum)
    }

    #[test]
    fn decimals_keep_their_digits_and_sign() {
        assert_eq!(unscaled_of(&[0x30, 0x39]).unwrap(), 12345);
        assert_eq!(unscaled_of(&[0xcf, 0xc7]).unwrap(), -12345);
        assert_eq!(unscaled_of(&[0x05]).unwrap(), 5);
        assert_eq!(unscaled_of(&[0xff]).unwrap(), -1);
        assert!(unscaled_of(&[1; 17]).is_err());
    }

    #[test]
    fn a_value_without_the_registry_framing_says_so() {
        assert_eq!(framed(&[0, 0, 0, 0, 7, 2]).unwrap(), (7, &[2u8][..]));
        assert!(framed(b"{\"a\":1}").unwrap_err().contains("magic byte"));
        assert!(framed(&[0, 1]).unwrap_err().contains("too short"));
    }

    #[test]
    fn a_record_decodes_to_the_cells_its_columns_read() {
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
        assert_eq!(
            json_of(&schema, "schema id 3", &datum).unwrap(),
            vec![
                Cell::Text(uuid::Uuid::nil().to_string()),
                Cell::Micros(1_700_000_000_123_000),
                Cell::Int(7),
                Cell::Decimal(123_456, 6)
            ]
        );
        // Fields no column names are read past; a column no field fills is null.
        let places = [None, Some(0), None, Some(2)];
        let cells = cells_of(&schema, &places, 3, "schema id 3", &datum).unwrap();
        assert_eq!(cells, vec![Cell::Micros(1_700_000_000_123_000), Cell::Null, Cell::Decimal(123_456, 6)]);
        assert!(json_of(&schema, "schema id 3", &datum[..datum.len() - 1]).unwrap_err().contains("does not decode"));
    }

    #[test]
    fn every_scalar_reads_as_apache_avro_writes_it() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"E","fields":[
                {"name":"ok","type":"boolean"},
                {"name":"n","type":"long"},
                {"name":"x","type":"double"},
                {"name":"f","type":"float"},
                {"name":"s","type":"string"},
                {"name":"kind","type":{"type":"enum","name":"K","symbols":["view","click"]}},
                {"name":"again","type":"K"},
                {"name":"day","type":{"type":"int","logicalType":"date"}},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-nanos"}},
                {"name":"price","type":{"type":"fixed","name":"P","size":4,"logicalType":"decimal","precision":9,"scale":3}},
                {"name":"none","type":["null","string"]}
            ]}"#,
        )
        .unwrap();
        let mut record = apache_avro::types::Record::new(&schema).unwrap();
        record.put("ok", true);
        record.put("n", -5_000_000_000i64);
        record.put("x", 0.1f64);
        record.put("f", 1.5f32);
        record.put("s", "O'Brien ünïcode");
        record.put("kind", Value::Enum(1, "click".into()));
        record.put("again", Value::Enum(0, "view".into()));
        record.put("day", Value::Date(19_700));
        record.put("at", Value::TimestampNanos(1_700_000_000_123_456_789));
        record.put("price", Value::Decimal(apache_avro::Decimal::from(vec![0xff, 0xff, 0xfc, 0x18])));
        record.put("none", Value::Union(0, Box::new(Value::Null)));
        let datum = apache_avro::to_avro_datum(&schema, record).unwrap();
        assert_eq!(
            json_of(&schema, "schema id 1", &datum).unwrap(),
            vec![
                Cell::Bool(true),
                Cell::Int(-5_000_000_000),
                Cell::Float(0.1),
                Cell::Float(1.5),
                Cell::Text("O'Brien ünïcode".into()),
                Cell::Text("click".into()),
                Cell::Text("view".into()),
                Cell::Day(19_700),
                Cell::Micros(1_700_000_000_123_456),
                Cell::Decimal(-1000, 3),
                Cell::Null
            ]
        );
    }

    #[test]
    fn registry_columns_take_the_widest_type_and_nullability_from_unions_and_defaults() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"E","fields":[
                {"name":"id","type":{"type":"string","logicalType":"uuid"}},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"n","type":"int"},
                {"name":"x","type":["null","float"]},
                {"name":"kind","type":{"type":"enum","name":"K","symbols":["a"]},"default":"a"},
                {"name":"cost","type":["null",{"type":"bytes","logicalType":"decimal","precision":18,"scale":6}]}
            ]}"#,
        )
        .unwrap();
        let v2 = Schema::parse_str(
            r#"{"type":"record","name":"E","fields":[
                {"name":"id","type":{"type":"string","logicalType":"uuid"}},
                {"name":"n","type":"string"},
                {"name":"device","type":"string"}
            ]}"#,
        )
        .unwrap();
        let columns = columns_of(&[(1, Arc::new(schema)), (2, Arc::new(v2))]).unwrap();
        let expect = [
            ("id", "string", false),
            ("at", "timestamp", false),
            ("n", "int64", false),
            ("x", "float64", true),
            ("kind", "string", true),
            ("cost", "decimal(18, 6)", true),
            ("device", "string", true),
        ];
        assert_eq!(columns, expect.map(|(n, t, z)| (n.to_string(), t.to_string(), z)).to_vec());
        let nested = Schema::parse_str(
            r#"{"type":"record","name":"E","fields":[{"name":"tags","type":{"type":"array","items":"string"}}]}"#,
        )
        .unwrap();
        assert!(columns_of(&[(1, Arc::new(nested))]).unwrap_err().contains("version 1's field `tags` is array"));
    }

    #[test]
    fn a_schema_fits_columns_that_take_its_types_as_avro_promotes_them() {
        let columns = [
            ColumnSpec::new("id", ColumnType::String, false),
            ColumnSpec::new("n", ColumnType::Int64, false),
            ColumnSpec::new("x", ColumnType::Float64, true),
            ColumnSpec::new("cost", ColumnType::Decimal(18, 6), true),
            ColumnSpec::new("note", ColumnType::String, true),
        ];
        let schema = |n: &str, cost: &str| {
            Schema::parse_str(&format!(
                r#"{{"type":"record","name":"E","fields":[
                    {{"name":"id","type":"string"}},{{"name":"n","type":{n}}},{{"name":"x","type":["null","float"]}},
                    {{"name":"cost","type":["null",{cost}]}}]}}"#
            ))
            .unwrap()
        };
        let decimal =
            |p: u8, s: u8| format!(r#"{{"type":"bytes","logicalType":"decimal","precision":{p},"scale":{s}}}"#);
        assert_eq!(fits(&schema("\"int\"", &decimal(18, 6)), &columns), Ok(()));
        assert_eq!(fits(&schema("\"long\"", &decimal(10, 6)), &columns), Ok(()));
        let reason = fits(&schema("\"string\"", &decimal(18, 6)), &columns).unwrap_err();
        assert_eq!(reason, "field `n` is string, which column `n` (int64) does not take");
        let reason = fits(&schema("\"long\"", "\"double\""), &columns).unwrap_err();
        assert_eq!(reason, "field `cost` is double, which column `cost` (decimal(18, 6)) does not take");
        assert!(fits(&schema("\"long\"", &decimal(20, 6)), &columns).is_err());
        assert!(fits(&schema("\"long\"", &decimal(18, 4)), &columns).is_err());
        // Text a decimal column reads as it reads JSON: checked per record, not refused per schema.
        assert_eq!(fits(&schema("\"long\"", "\"string\""), &columns), Ok(()));
        let narrowed = [ColumnSpec::new("n", ColumnType::Int32, false)];
        let long = Schema::parse_str(r#"{"type":"record","name":"E","fields":[{"name":"n","type":"long"}]}"#).unwrap();
        assert!(fits(&long, &narrowed).unwrap_err().contains("long, which column `n` (int32)"));
        let renamed =
            Schema::parse_str(r#"{"type":"record","name":"E","fields":[{"name":"m","type":"long"}]}"#).unwrap();
        assert_eq!(fits(&renamed, &narrowed).unwrap_err(), "it has no field `n`, a required column");
    }

    #[test]
    fn declared_lengths_are_checked_against_the_bytes_there() {
        let schema =
            Schema::parse_str(r#"{"type":"record","name":"E","fields":[{"name":"s","type":"string"}]}"#).unwrap();
        // A string of 2^28 bytes declared in five: refused from the bytes there, nothing allocated.
        let reason = json_of(&schema, "schema id 1", &[0x80, 0x80, 0x80, 0x80, 0x02, b'a']).unwrap_err();
        assert!(reason.contains("field `s`: the datum ends 268435455 bytes short"), "{reason}");
        assert!(json_of(&schema, "schema id 1", &[0x01]).unwrap_err().contains("negative length -1"));
        assert!(json_of(&schema, "schema id 1", &[0xff; 11]).unwrap_err().contains("past ten bytes"));
        assert!(json_of(&schema, "schema id 1", &[0x02, b'a', 0x00]).unwrap_err().contains("1 bytes left"));
        assert!(json_of(&schema, "schema id 1", &[0x02, 0xff]).unwrap_err().contains("not UTF-8"));
        let union = Schema::parse_str(r#"{"type":"record","name":"E","fields":[{"name":"u","type":["null","long"]}]}"#)
            .unwrap();
        assert!(json_of(&union, "schema id 1", &[0x04]).unwrap_err().contains("union branch 2 of 2"));
    }
}
