//! The common JSON record read straight into column builders: one flat object whose fields are
//! plain values of their columns' types (`"ad_id": 42`, `"cost": "1.50"`, an RFC 3339 time).
//!
//! This is a fast path, not a second reading of JSON. A record it is not sure of (a `\u` escape, a
//! number sent to a text column, a nested value in a column, a field given twice, a value that does
//! not fit its column, a required column left out) is handed back whole, and [`crate::decode`]'s
//! arrow-json decoder reads it, refusing it with the reason when it is bad. A record read here
//! makes the row that decoder makes: numbers go through the same exact conversions, times and
//! dates through the same parsers, and the unit tests hold the two paths to the same rows.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast_utils::{string_to_datetime, Parser};
use arrow::datatypes::{DataType, Date32Type, SchemaRef};

use crate::schema::{ColumnSpec, ColumnType};

/// A stretch of records, as positions in the slice given to [`FlatJson::runs`]: read here into rows
/// of the schema, or left for the arrow-json decoder.
pub(crate) enum Run {
    Rows(Range<usize>, RecordBatch),
    Other(Range<usize>),
}

/// Reads flat JSON objects into rows of a schema whose every column is nullable.
pub(crate) struct FlatJson {
    schema: SchemaRef,
    columns: Vec<Column>,
}

struct Column {
    name: Box<[u8]>,
    /// Its type; only null is read here for a binary column, bytes go to the arrow-json decoder.
    kind: ColumnType,
    /// The time zone of a timestamp column's type.
    zone: Option<Tz>,
    /// A record must give the column a value (it is not nullable and has no default).
    required: bool,
}

/// What one record gave a column, before it is appended.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Absent,
    Null,
    /// A string's content in the record, with whether it holds escapes.
    Text(usize, usize, bool),
    Bool(bool),
    Int(i64),
    Decimal(i128),
    Float(f64),
    Day(i32),
    Micros(i64),
}

/// Nesting deeper than this, in a field no column takes, is left to the arrow-json decoder.
const MAX_DEPTH: usize = 32;

impl FlatJson {
    /// A reader of records of `columns` into rows of `schema`, their Arrow schema with every
    /// column nullable. A record must give a value to a column that is neither nullable nor has
    /// a default.
    pub(crate) fn new(schema: SchemaRef, columns: &[ColumnSpec]) -> Self {
        let columns = columns
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| Column {
                name: column.name.as_bytes().into(),
                kind: column.kind,
                zone: match field.data_type() {
                    DataType::Timestamp(_, Some(zone)) => zone.parse().ok(),
                    _ => None,
                },
                required: !column.nullable && column.default.is_none(),
            })
            .collect();
        FlatJson { schema, columns }
    }

    /// The records' values (`None` for a record without one) as runs of rows and of records left
    /// to the arrow-json decoder, in order. `time_ok` is asked of each record's value in
    /// `time_column` (its position and the microseconds); a record it refuses is left too.
    pub(crate) fn runs<'v>(
        &self,
        values: impl Iterator<Item = Option<&'v [u8]>>,
        time_column: usize,
        time_ok: impl Fn(usize, i64) -> bool,
    ) -> Vec<Run> {
        let mut runs = Vec::new();
        let mut builders: Vec<Builder> =
            self.columns.iter().zip(self.schema.fields()).map(|(c, f)| Builder::new(c.kind, f.data_type())).collect();
        let mut slots = vec![Slot::Absent; self.columns.len()];
        let mut scratch = String::new();
        let (mut rows_from, mut other_from) = (0, None);
        let mut at = 0;
        for value in values {
            let read = value.is_some_and(|value| {
                self.read(value, &mut slots).is_some()
                    && match slots[time_column] {
                        Slot::Micros(t) => time_ok(at, t),
                        _ => true,
                    }
            });
            match (read, other_from) {
                (true, Some(from)) => {
                    runs.push(Run::Other(from..at));
                    other_from = None;
                    rows_from = at;
                }
                (false, None) => {
                    if at > rows_from {
                        runs.push(self.finish(rows_from..at, &mut builders));
                    }
                    other_from = Some(at);
                }
                _ => {}
            }
            if read {
                let value = value.expect("read records have values");
                for (builder, slot) in builders.iter_mut().zip(&slots) {
                    builder.append(*slot, value, &mut scratch);
                }
            }
            at += 1;
        }
        match other_from {
            Some(from) => runs.push(Run::Other(from..at)),
            None if at > rows_from => runs.push(self.finish(rows_from..at, &mut builders)),
            None => {}
        }
        runs
    }

    fn finish(&self, records: Range<usize>, builders: &mut [Builder]) -> Run {
        let columns: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
        match RecordBatch::try_new(self.schema.clone(), columns) {
            Ok(rows) => Run::Rows(records, rows),
            Err(_) => Run::Other(records),
        }
    }

    /// Reads one record into `slots`, or `None` when it is left to the arrow-json decoder.
    fn read(&self, value: &[u8], slots: &mut [Slot]) -> Option<()> {
        slots.fill(Slot::Absent);
        if value.last() != Some(&b'}') || (!value.is_ascii() && std::str::from_utf8(value).is_err()) {
            return None;
        }
        let mut c = Cursor { bytes: value, at: 0 };
        c.eat(b'{')?;
        c.space();
        let mut next = 0;
        if c.peek()? == b'}' {
            c.at += 1;
        } else {
            loop {
                let (from, to, escaped) = c.string()?;
                if escaped {
                    return None;
                }
                c.space();
                c.eat(b':')?;
                c.space();
                match self.column(&value[from..to], next) {
                    Some(i) => {
                        if !matches!(slots[i], Slot::Absent) {
                            return None;
                        }
                        slots[i] = slot(&self.columns[i], &mut c)?;
                        next = i + 1;
                    }
                    None => c.skip(0)?,
                }
                c.space();
                match c.take()? {
                    b',' => c.space(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        let required_missing = self
            .columns
            .iter()
            .zip(slots.iter())
            .any(|(column, slot)| column.required && matches!(slot, Slot::Absent | Slot::Null));
        (c.at == value.len() && !required_missing).then_some(())
    }

    /// The column named `key`, looked for at `hint` first (fields tend to come in column order).
    fn column(&self, key: &[u8], hint: usize) -> Option<usize> {
        if self.columns.get(hint).is_some_and(|c| *c.name == *key) {
            return Some(hint);
        }
        self.columns.iter().position(|c| *c.name == *key)
    }
}

/// The value at the cursor as a slot of `column`.
fn slot(column: &Column, c: &mut Cursor<'_>) -> Option<Slot> {
    let (kind, bytes) = (column.kind, c.bytes);
    match c.peek()? {
        b'n' => c.literal(b"null").map(|()| Slot::Null),
        b't' if kind == ColumnType::Boolean => c.literal(b"true").map(|()| Slot::Bool(true)),
        b'f' if kind == ColumnType::Boolean => c.literal(b"false").map(|()| Slot::Bool(false)),
        b'"' => {
            let (from, to, escaped) = c.string()?;
            if kind == ColumnType::String {
                return Some(Slot::Text(from, to, escaped));
            }
            if escaped {
                return None;
            }
            let text = std::str::from_utf8(&bytes[from..to]).ok()?;
            match kind {
                ColumnType::Date => Date32Type::parse(text).map(Slot::Day),
                ColumnType::Timestamp => {
                    string_to_datetime(column.zone.as_ref()?, text).ok().map(|t| Slot::Micros(t.timestamp_micros()))
                }
                _ => number(kind, text),
            }
        }
        b'-' | b'0'..=b'9' => {
            let (from, to) = c.number()?;
            number(kind, std::str::from_utf8(&bytes[from..to]).ok()?)
        }
        _ => None,
    }
}

/// `text` (a JSON number, or the text of a string) as a slot of a numeric column, exactly as
/// [`crate::exact`] reads it; `None` when it does not fit or the column is not numeric.
fn number(kind: ColumnType, text: &str) -> Option<Slot> {
    match kind {
        ColumnType::Int64 => plain_integer(text).or_else(|| crate::exact::integer(text, 64).ok()).map(Slot::Int),
        ColumnType::Int32 => crate::exact::integer(text, 32).ok().map(Slot::Int),
        ColumnType::Float64 => crate::exact::float(text).ok().map(Slot::Float),
        ColumnType::Float32 => crate::exact::float32(text).ok().map(|v| Slot::Float(f64::from(v))),
        ColumnType::Decimal(p, s) => {
            plain_decimal(text, p, s).or_else(|| crate::exact::decimal(text, p, s).ok()).map(Slot::Decimal)
        }
        _ => None,
    }
}

/// Up to 18 digits with an optional `-`: a value of any 64-bit column, read without the general
/// digits-and-exponent reader.
fn plain_integer(text: &str) -> Option<i64> {
    let (negative, digits) = text.strip_prefix('-').map_or((false, text), |rest| (true, rest));
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = digits.bytes().fold(0i64, |v, d| v * 10 + i64::from(d - b'0'));
    Some(if negative { -value } else { value })
}

/// Up to 18 integer digits and at most `scale` decimal places, with an optional `-`, as the
/// unscaled value of a `decimal(precision, scale)`; `None` for anything else, or what does not fit.
fn plain_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let (negative, rest) = text.strip_prefix('-').map_or((false, text), |rest| (true, rest));
    let (whole, fraction) = rest.split_once('.').unwrap_or((rest, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 18
        || scale < 0
        || fraction.len() > scale as usize
        || (rest.len() > whole.len() && fraction.is_empty())
        || !digits(whole)
        || !digits(fraction)
    {
        return None;
    }
    let mut value = whole.bytes().fold(0i128, |v, d| v * 10 + i128::from(d - b'0'));
    for i in 0..scale as usize {
        value = value * 10 + fraction.as_bytes().get(i).map_or(0, |d| i128::from(d - b'0'));
    }
    if value >= 10i128.checked_pow(u32::from(precision))? {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// A record's bytes and a position in them.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn take(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.take()? == expected).then_some(())
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string at the cursor: its content's range, and whether it holds (short) escapes. A `\u`
    /// escape or a control character ends the fast path.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.eat(b'"')?;
        let from = self.at;
        let mut escaped = false;
        loop {
            match self.take()? {
                b'"' => return Some((from, self.at - 1, escaped)),
                b'\\' => {
                    if !matches!(self.take()?, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') {
                        return None;
                    }
                    escaped = true;
                }
                0..0x20 => return None,
                _ => {}
            }
        }
    }

    /// A number in JSON's grammar (`-0.5e3`, no leading zeros): its range.
    fn number(&mut self) -> Option<(usize, usize)> {
        let from = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.take()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.take().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.take().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        Some((from, self.at))
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// Steps over a whole value no column takes, checking it is JSON.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                self.space();
                if self.peek()? == close {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    if open == b'{' {
                        self.string()?;
                        self.space();
                        self.eat(b':')?;
                        self.space();
                    }
                    self.skip(depth + 1)?;
                    self.space();
                    match self.take()? {
                        b',' => self.space(),
                        b if b == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }
}

/// A column's builder.
enum Builder {
    Text(StringBuilder),
    Boolean(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Binary(BinaryBuilder),
}

impl Builder {
    /// A builder of a column of `kind`, whose arrays are of `data_type` (a decimal's precision
    /// and scale, a timestamp's zone).
    fn new(kind: ColumnType, data_type: &DataType) -> Self {
        match kind {
            ColumnType::String => Builder::Text(StringBuilder::new()),
            ColumnType::Boolean => Builder::Boolean(BooleanBuilder::new()),
            ColumnType::Int32 => Builder::Int32(Int32Builder::new()),
            ColumnType::Int64 => Builder::Int64(Int64Builder::new()),
            ColumnType::Float32 => Builder::Float32(Float32Builder::new()),
            ColumnType::Float64 => Builder::Float64(Float64Builder::new()),
            ColumnType::Decimal(..) => Builder::Decimal(Decimal128Builder::new().with_data_type(data_type.clone())),
            ColumnType::Date => Builder::Date(Date32Builder::new()),
            ColumnType::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::new().with_data_type(data_type.clone()))
            }
            ColumnType::Binary => Builder::Binary(BinaryBuilder::new()),
        }
    }

    /// Appends what a record read by [`FlatJson::read`] gave the column (`value`, the record's bytes).
    fn append(&mut self, slot: Slot, value: &[u8], scratch: &mut String) {
        match (self, slot) {
            (Builder::Text(b), Slot::Text(from, to, escaped)) => {
                let text = std::str::from_utf8(&value[from..to]).expect("records read are UTF-8");
                if escaped {
                    unescape(text, scratch);
                    b.append_value(&scratch);
                } else {
                    b.append_value(text);
                }
            }
            (Builder::Boolean(b), Slot::Bool(v)) => b.append_value(v),
            (Builder::Int32(b), Slot::Int(v)) => b.append_value(v as i32),
            (Builder::Int64(b), Slot::Int(v)) => b.append_value(v),
            (Builder::Float32(b), Slot::Float(v)) => b.append_value(v as f32),
            (Builder::Float64(b), Slot::Float(v)) => b.append_value(v),
            (Builder::Decimal(b), Slot::Decimal(v)) => b.append_value(v),
            (Builder::Date(b), Slot::Day(v)) => b.append_value(v),
            (Builder::Timestamp(b), Slot::Micros(v)) => b.append_value(v),
            (builder, Slot::Absent | Slot::Null) => builder.append_null(),
            (_, slot) => unreachable!("a {slot:?} is only read for a column of its kind"),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Text(b) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Decimal(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Decimal(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
        }
    }
}

/// `text` with its short escapes (`\"`, `\n`, ...) replaced, into `out`.
fn unescape(text: &str, out: &mut String) {
    out.clear();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some(other) => other,
            None => break,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_read_as_the_exact_reader_reads_them() {
        for text in ["0", "-0", "7", "-123456789012345678", "000123"] {
            assert_eq!(plain_integer(text), crate::exact::integer(text, 64).ok(), "{text}");
        }
        for text in ["1e3", "1.0", "", "-", "+1", "1234567890123456789"] {
            assert_eq!(plain_integer(text), None, "{text}");
        }
        for text in ["1.123456", "-0.5", "0", "12.", "999999999999.999999", "1000000000000", "-1.1"] {
            let plain = plain_decimal(text, 18, 6);
            if plain.is_some() {
                assert_eq!(plain, crate::exact::decimal(text, 18, 6).ok(), "{text}");
            }
        }
        assert_eq!(plain_decimal("999999999999.999999", 18, 6), Some(999_999_999_999_999_999));
        assert_eq!(plain_decimal("1000000000000", 18, 6), None);
        assert_eq!(plain_decimal("1.1234567", 18, 6), None);
        assert_eq!(plain_decimal("12.", 18, 6), None);
    }

    #[test]
    fn short_escapes_are_replaced() {
        let mut out = String::new();
        unescape(r#"a\"b\\c\/d\ne\tf"#, &mut out);
        assert_eq!(out, "a\"b\\c/d\ne\tf");
    }
}
