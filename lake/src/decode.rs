//! Decoding record values (JSON objects) straight into Arrow against a table's schema.
//!
//! A JSON record that is a flat object of plain values is read straight into column builders (the
//! `flat` module); the others of a batch go through one arrow-json push decoder. When that fails,
//! the records are split in halves until every bad record stands alone, so a poison record costs a
//! few extra decodes of its neighbours, not a per-record decoder for the whole batch. A record is
//! bad when its value is missing, is not exactly one JSON object, does not fit a column's type, or
//! lacks a non-nullable column.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Date32Array, Int32Array, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;

use crate::batch::KafkaRecord;
use crate::cells::Cell;
use crate::error::{Error, Result};
use crate::flat::{FlatJson, Run};
use crate::schema::{PartitionGrain, RecordFormat, TableSpec};

const MICROS_PER_DAY: i64 = 86_400_000_000;
const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// The outcome of decoding a set of records.
#[derive(Debug)]
pub struct Decoded {
    /// Rows in the table schema (declared columns then partition columns), in record order.
    pub rows: RecordBatch,
    /// For each row, the index of the record it came from.
    pub row_sources: Vec<usize>,
    /// Records that could not be decoded: record index and the reason.
    pub rejected: Vec<(usize, String)>,
}

/// Decodes record values into rows of `spec`'s table schema, in the table's format: an Avro or
/// Protobuf table's values are read against their writer schemas (from the registry, once per
/// schema id, or the table's own `avro_schema`) first. A registry that does not answer is an error of the
/// whole call; a record it cannot read is rejected with the reason.
pub async fn decode_records(spec: &TableSpec, records: &[&KafkaRecord]) -> Result<Decoded> {
    match &spec.format {
        RecordFormat::Json => decode_in_chunks(spec, records, None).await,
        RecordFormat::Avro { registry, columns_follow, stop_on_incompatible } => {
            let fit =
                Fit { table: &spec.name, columns: &spec.columns, follow: *columns_follow, stop: *stop_on_incompatible };
            let cells = crate::avro::transcode(registry, records, fit).await?;
            decode_in_chunks(spec, records, Some(&cells)).await
        }
        RecordFormat::Protobuf { registry, columns_follow, stop_on_incompatible } => {
            let fit =
                Fit { table: &spec.name, columns: &spec.columns, follow: *columns_follow, stop: *stop_on_incompatible };
            let cells = crate::protobuf::transcode(registry, records, fit).await?;
            decode_in_chunks(spec, records, Some(&cells)).await
        }
        RecordFormat::AvroSchema(schema) => {
            let cells = crate::avro::transcode_plain(schema, &spec.columns, records);
            decode_in_chunks(spec, records, Some(&cells)).await
        }
    }
}

/// Records decoded at a time by [`decode_records`]. Decoding is CPU work that does not wait: between
/// chunks the task lets the other work of its batch run (the archive's rows and files are made
/// while the batch decodes, rather than after it).
const CHUNK_RECORDS: usize = 4096;

/// [`decode_values`] a chunk of records at a time, yielding between chunks; the chunks' rows are
/// joined once, at the end.
async fn decode_in_chunks(spec: &TableSpec, records: &[&KafkaRecord], values: Option<&Cells>) -> Result<Decoded> {
    let (group, indices, mut made) = Group::start(spec, records, values);
    for chunk in indices.chunks(CHUNK_RECORDS) {
        decode_chunk(&group, chunk, &mut made);
        if chunk.len() == CHUNK_RECORDS {
            tokio::task::yield_now().await;
        }
    }
    made.finish(&group)
}

/// What a table asks of its records' writer schemas (Avro or Protobuf from a registry).
#[derive(Debug, Clone, Copy)]
pub struct Fit<'a> {
    /// The table, for errors.
    pub table: &'a str,
    /// Its columns.
    pub columns: &'a [crate::schema::ColumnSpec],
    /// The columns follow the registry (`columns = "registry"`): a field that is not a column
    /// stops the batch ([`Error::SchemaChanged`]) instead of being left out.
    pub follow: bool,
    /// `on_incompatible = "stop"`: a schema that does not fit the columns stops the batch
    /// ([`Error::SchemaIncompatible`]) instead of sending its records to the dead letters.
    pub stop: bool,
}

/// Decodes JSON record values into rows of `spec`'s table schema.
pub fn decode(spec: &TableSpec, records: &[&KafkaRecord]) -> Result<Decoded> {
    decode_values(spec, records, None)
}

/// Each record's values, one [`Cell`] per column of the table, or why it has none: what a format
/// other than JSON hands the decoder in place of the records' own values.
pub type Cells = [std::result::Result<Vec<Cell>, String>];

fn decode_values(spec: &TableSpec, records: &[&KafkaRecord], values: Option<&Cells>) -> Result<Decoded> {
    let (group, indices, mut made) = Group::start(spec, records, values);
    decode_chunk(&group, &indices, &mut made);
    made.finish(&group)
}

/// What every decode of a batch shares: the record schema, the columns' defaults, the records.
struct Group<'a> {
    spec: &'a TableSpec,
    schema: SchemaRef,
    /// `schema` with every column nullable.
    filled_schema: SchemaRef,
    /// `filled_schema` with numbers as text.
    decode_schema: SchemaRef,
    /// The clock, for records without a Kafka timestamp.
    now_us: i64,
    defaults: Vec<(usize, ArrayRef)>,
    records: &'a [&'a KafkaRecord],
    /// The records' values as cells, when the table's format is not JSON.
    values: Option<&'a Cells>,
    /// The reader of flat JSON records, when the table's format is JSON.
    flat: Option<FlatJson>,
}

/// The rows a batch's groups made so far, the records each row came from, and the records refused.
#[derive(Default)]
struct Made {
    parts: Vec<RecordBatch>,
    row_sources: Vec<usize>,
    rejected: Vec<(usize, String)>,
}

impl<'a> Group<'a> {
    /// The decode of `records` of `spec`'s table (`values` their cells, when the format is not
    /// JSON), the indices of the records left to decode, and the records already refused: those
    /// whose format's reader gave the reason, rather than found again by halving the groups
    /// around them.
    fn start(
        spec: &'a TableSpec,
        records: &'a [&'a KafkaRecord],
        values: Option<&'a Cells>,
    ) -> (Self, Vec<usize>, Made) {
        let schema = spec.record_schema();
        let defaults: Vec<(usize, ArrayRef)> = spec
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.default_value().expect("defaults are checked with the config")?)))
            .collect();
        let mut made = Made { row_sources: Vec::with_capacity(records.len()), ..Made::default() };
        let mut indices: Vec<usize> = (0..records.len()).collect();
        if let Some(cells) = values {
            indices.retain(|&i| match &cells[i] {
                Ok(_) => true,
                Err(reason) => {
                    made.rejected.push((i, reason.clone()));
                    false
                }
            });
        }
        // Every column is decoded as nullable, so a record that omits one gets its default, or is
        // refused naming the field, rather than failing the decoder; and numbers as their text, to be
        // made exact ([`crate::exact`]). The rows are checked against the declared schema after.
        let filled: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        let decoded: Vec<Field> =
            filled.iter().map(|f| f.clone().with_data_type(crate::exact::decoded_as(f.data_type()))).collect();
        let filled_schema = Arc::new(Schema::new(filled));
        let flat = values.is_none().then(|| FlatJson::new(filled_schema.clone(), &spec.columns));
        let group = Group {
            spec,
            schema,
            filled_schema,
            flat,
            decode_schema: Arc::new(Schema::new(decoded)),
            defaults,
            records,
            values,
            now_us: chrono::Utc::now().timestamp_micros(),
        };
        (group, indices, made)
    }
}

impl Made {
    /// The rows as one batch of `group`'s table schema (its partition columns added), once.
    fn finish(mut self, group: &Group<'_>) -> Result<Decoded> {
        let Group { spec, schema, .. } = group;
        self.rejected.sort_by_key(|(i, _)| *i);
        let decoded = if self.parts.is_empty() {
            RecordBatch::new_empty(schema.clone())
        } else {
            concat_batches(schema, &self.parts).map_err(Error::arrow("joining decoded rows"))?
        };
        // Rows are produced per group in order, and groups in order, so row_sources is ascending.
        let rows = with_partitions(spec, decoded)?;
        Ok(Decoded { rows, row_sources: self.row_sources, rejected: self.rejected })
    }
}

/// Decodes `chunk`: a JSON table's flat records straight into rows (`flat`), every other
/// record through [`split_decode`].
fn decode_chunk(group: &Group<'_>, chunk: &[usize], made: &mut Made) {
    let Some(flat) = &group.flat else { return split_decode(group, chunk, made) };
    let values = chunk.iter().map(|&i| group.records[i].value.as_deref());
    let time_ok = |at: usize, time: i64| event_time_fault(group, chunk[at], time).is_none();
    for run in flat.runs(values, group.spec.event_time_index(), time_ok) {
        match run {
            Run::Rows(at, rows) => match checked(group, &chunk[at.clone()], rows) {
                Ok(rows) => {
                    made.parts.push(rows);
                    made.row_sources.extend_from_slice(&chunk[at]);
                }
                Err(_) => split_decode(group, &chunk[at], made),
            },
            Run::Other(at) => split_decode(group, &chunk[at], made),
        }
    }
}

fn split_decode(batch: &Group<'_>, group: &[usize], made: &mut Made) {
    if group.is_empty() {
        return;
    }
    match decode_group(batch, group) {
        Ok(rows) => {
            made.parts.push(rows);
            made.row_sources.extend_from_slice(group);
        }
        Err(reason) if group.len() == 1 => made.rejected.push((group[0], reason)),
        Err(_) => {
            let (left, right) = group.split_at(group.len() / 2);
            split_decode(batch, left, made);
            split_decode(batch, right, made);
        }
    }
}

fn decode_group(shared: &Group<'_>, group: &[usize]) -> Result<RecordBatch, String> {
    let rows = match shared.values {
        Some(cells) => from_cells(shared, group, cells)?,
        None => from_json(shared, group)?,
    };
    checked(shared, group, rows)
}

/// `rows` of the filled schema (the rows of `group`'s records) as rows of the table's schema: the
/// defaults filled in, then required columns and event times checked.
fn checked(shared: &Group<'_>, group: &[usize], rows: RecordBatch) -> Result<RecordBatch, String> {
    let rows = with_defaults(rows, &shared.defaults)?;
    check_required(&shared.schema, &rows)?;
    check_event_times(shared, group, &rows)?;
    RecordBatch::try_new(shared.schema.clone(), rows.columns().to_vec()).map_err(|e| e.to_string())
}

/// The group's records' cells as rows of the filled schema: each cell made a value of its
/// column's type directly, no text in between.
fn from_cells(shared: &Group<'_>, group: &[usize], cells: &Cells) -> Result<RecordBatch, String> {
    let rows: Vec<&Vec<Cell>> =
        group.iter().map(|&i| cells[i].as_ref().map_err(Clone::clone)).collect::<Result<_, String>>()?;
    let columns = shared
        .filled_schema
        .fields()
        .iter()
        .enumerate()
        .map(|(c, field)| {
            crate::cells::column(field.data_type(), rows.iter().map(|row| &row[c]))
                .map_err(|(_, reason)| format!("column `{}`: {reason}", field.name()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    RecordBatch::try_new(shared.filled_schema.clone(), columns).map_err(|e| e.to_string())
}

/// The group's records' JSON values as rows of the filled schema, through one arrow-json decoder.
fn from_json(shared: &Group<'_>, group: &[usize]) -> Result<RecordBatch, String> {
    let records = shared.records;
    let mut decoder = ReaderBuilder::new(shared.decode_schema.clone())
        .with_coerce_primitive(true)
        .with_batch_size(group.len() + 1)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    for (n, &i) in group.iter().enumerate() {
        let value = records[i].value.as_deref().ok_or("record has no value (a tombstone)")?;
        let used = decoder.decode(value).map_err(|e| format!("invalid JSON: {e}"))?;
        if used != value.len() || decoder.has_partial_record() {
            return Err("value is not one complete JSON object (truncated or trailing bytes)".into());
        }
        if decoder.len() != n + 1 {
            return Err(if decoder.len() == n {
                "value is empty".into()
            } else {
                "value holds more than one JSON object".into()
            });
        }
    }
    let batch = decoder
        .flush()
        .map_err(|e| format!("does not fit the table schema: {e}"))?
        .unwrap_or_else(|| RecordBatch::new_empty(shared.decode_schema.clone()));
    let columns = batch
        .columns()
        .iter()
        .zip(shared.filled_schema.fields())
        .map(|(column, field)| {
            crate::exact::convert(column, field.data_type())
                .map_err(|(_, reason)| format!("column `{}`: {reason}", field.name()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    RecordBatch::try_new(shared.filled_schema.clone(), columns).map_err(|e| e.to_string())
}

/// The first and last instants an event time may be: years 1 to 9999, what Delta, Parquet and
/// the common readers (Python's `datetime`, DuckDB, Spark) all take.
const EARLIEST_US: i64 = -62_135_596_800_000_000;
const LATEST_US: i64 = 253_402_300_799_999_999;

/// Event times within years 1-9999 and at most the table's `max_future` ahead of their record's
/// Kafka timestamp (of the clock, for a record without one).
fn check_event_times(shared: &Group<'_>, group: &[usize], rows: &RecordBatch) -> Result<(), String> {
    let times = rows
        .column(shared.spec.event_time_index())
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("event time is a microsecond timestamp");
    for (row, &i) in group.iter().enumerate() {
        if let Some(fault) = event_time_fault(shared, i, times.value(row)) {
            return Err(fault);
        }
    }
    Ok(())
}

/// What is wrong with `time` as the event time of record `i`, if anything.
fn event_time_fault(shared: &Group<'_>, i: usize, time: i64) -> Option<String> {
    let text = |t: i64| {
        chrono::DateTime::from_timestamp_micros(t).map_or_else(|| format!("{t} µs since 1970"), |t| t.to_rfc3339())
    };
    if !(EARLIEST_US..=LATEST_US).contains(&time) {
        return Some(format!("event time `{}` is outside years 1-9999", text(time)));
    }
    let ahead = shared.spec.max_future?;
    let clock = shared.records[i].timestamp_ms.map_or(shared.now_us, |ms| ms.saturating_mul(1_000));
    (time > clock.saturating_add(ahead.as_micros() as i64)).then(|| {
        format!(
            "event time `{}` is more than {} ahead of the record's Kafka timestamp `{}` (max_future)",
            text(time),
            humantime::format_duration(ahead),
            text(clock)
        )
    })
}

/// Nulls (and fields a record omits) of columns with a default take the default.
fn with_defaults(rows: RecordBatch, defaults: &[(usize, ArrayRef)]) -> Result<RecordBatch, String> {
    if defaults.iter().all(|(i, _)| rows.column(*i).null_count() == 0) {
        return Ok(rows);
    }
    let mut columns = rows.columns().to_vec();
    for (i, default) in defaults {
        let present = arrow::compute::is_not_null(&columns[*i]).map_err(|e| e.to_string())?;
        let filled = arrow::compute::kernels::zip::zip(&present, &columns[*i], &arrow::array::Scalar::new(default))
            .map_err(|e| e.to_string())?;
        columns[*i] = filled;
    }
    RecordBatch::try_new(rows.schema(), columns).map_err(|e| e.to_string())
}

/// arrow-json fills a missing field with null even when the field is not nullable; refuse that here.
fn check_required(schema: &SchemaRef, batch: &RecordBatch) -> Result<(), String> {
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(format!("required field `{}` is missing or null", field.name()));
        }
    }
    Ok(())
}

fn with_partitions(spec: &TableSpec, decoded: RecordBatch) -> Result<RecordBatch> {
    let time = decoded
        .column(spec.event_time_index())
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("event time is a microsecond timestamp");
    let mut columns = decoded.columns().to_vec();
    for grain in &spec.partition_by {
        let column: ArrayRef = match grain {
            PartitionGrain::Date => Arc::new(Date32Array::from_iter_values(
                time.values().iter().map(|t| t.div_euclid(MICROS_PER_DAY) as i32),
            )),
            PartitionGrain::Hour => Arc::new(Int32Array::from_iter_values(
                time.values().iter().map(|t| (t.rem_euclid(MICROS_PER_DAY) / MICROS_PER_HOUR) as i32),
            )),
        };
        columns.push(column);
    }
    RecordBatch::try_new(spec.table_schema(), columns).map_err(Error::arrow("adding partition columns"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_table;
    use arrow::array::{AsArray, StringArray};
    use arrow::datatypes::Int32Type;

    fn spec() -> TableSpec {
        test_table(r#"partition_by = ["date", "hour"]"#, r#"{ name = "n", type = "int64" },"#)
    }

    fn record(offset: i64, value: &str) -> KafkaRecord {
        KafkaRecord {
            topic: "ev".into(),
            partition: 0,
            offset,
            timestamp_ms: None,
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
        }
    }

    #[tokio::test]
    async fn a_batch_decoded_in_chunks_keeps_every_row_and_every_rejection_at_its_record() {
        let n = 2 * CHUNK_RECORDS + 10;
        let poison = [0, CHUNK_RECORDS - 1, CHUNK_RECORDS, n - 1];
        let records: Vec<KafkaRecord> = (0..n)
            .map(|i| match poison.contains(&i) {
                true => record(i as i64, "{not json"),
                false => record(i as i64, &format!(r#"{{"id":"e{i}","at":"2026-11-23T10:15:00Z","n":{i}}}"#)),
            })
            .collect();
        let decoded = decode_records(&spec(), &records.iter().collect::<Vec<_>>()).await.unwrap();
        assert_eq!(decoded.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(), poison);
        let kept: Vec<usize> = (0..n).filter(|i| !poison.contains(i)).collect();
        assert_eq!(decoded.row_sources, kept);
        let ids = decoded.rows.column(0).as_string::<i32>();
        let n_column = decoded.rows.column(2).as_primitive::<arrow::datatypes::Int64Type>();
        for (row, source) in kept.iter().enumerate() {
            assert_eq!(ids.value(row), format!("e{source}"));
            assert_eq!(n_column.value(row), *source as i64);
        }
    }

    #[test]
    fn a_default_fills_missing_and_null_values() {
        let mut spec = spec();
        spec.columns[2].default = Some("-1".into());
        let values = [
            r#"{"id":"a","at":"2026-11-23T10:15:00Z","n":1}"#,
            r#"{"id":"b","at":"2026-11-23T10:15:00Z"}"#,
            r#"{"id":"c","at":"2026-11-23T10:15:00Z","n":null}"#,
        ];
        let records: Vec<KafkaRecord> = values.iter().enumerate().map(|(i, v)| record(i as i64, v)).collect();
        let decoded = decode(&spec, &records.iter().collect::<Vec<_>>()).unwrap();
        let n = decoded.rows.column(2).as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(n.iter().collect::<Vec<_>>(), vec![Some(1), Some(-1), Some(-1)]);

        spec.columns[2].default = Some("\"many\"".into());
        assert!(spec.columns[2].default_value().unwrap_err().contains("\"many\""));
    }

    #[test]
    fn a_required_column_with_a_default_takes_it_when_a_record_omits_it() {
        let spec = test_table("", r#"{ name = "n", type = "int64", nullable = false, default = 7 },"#);
        let values = [
            r#"{"id":"a","at":"2026-11-23T10:15:00Z","n":1}"#,
            r#"{"id":"b","at":"2026-11-23T10:15:00Z"}"#,
            r#"{"id":"c","at":"2026-11-23T10:15:00Z","n":null}"#,
            r#"{"at":"2026-11-23T10:15:00Z","n":2}"#,
        ];
        let records: Vec<KafkaRecord> = values.iter().enumerate().map(|(i, v)| record(i as i64, v)).collect();
        let decoded = decode(&spec, &records.iter().collect::<Vec<_>>()).unwrap();
        let n = decoded.rows.column(2).as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(n.iter().collect::<Vec<_>>(), vec![Some(1), Some(7), Some(7)]);
        assert!(!decoded.rows.schema().field(2).is_nullable());
        assert_eq!(decoded.rejected.len(), 1);
        assert!(decoded.rejected[0].1.contains("required field `id`"), "{:?}", decoded.rejected);
    }

    /// A JSON number as text: digits, a fraction and an exponent of any length, any sign.
    fn number() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        (any::<bool>(), "[0-9]{1,24}", proptest::option::of("[0-9]{0,12}"), proptest::option::of(-400i32..400))
            .prop_map(|(negative, int, fraction, exponent)| {
                let mut text = format!("{}{int}", if negative { "-" } else { "" });
                if let Some(f) = fraction.filter(|f| !f.is_empty()) {
                    text += &format!(".{f}");
                }
                if let Some(e) = exponent {
                    text += &format!("e{e}");
                }
                text
            })
    }

    /// A value for the event time: a number, an RFC 3339 text of any year, or something else.
    fn event_time() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            number(),
            (0u32..=99_999, 1u32..=12, 1u32..=28, 0u32..24)
                .prop_map(|(y, m, d, h)| format!("\"{y:04}-{m:02}-{d:02}T{h:02}:00:00Z\"")),
            "\"[ -~]{0,12}\"".prop_map(|s| s.replace('\\', "")),
            Just("null".to_string()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Whatever the bytes, every record is a row or a rejected record with a reason; nothing
        /// panics, on decoding or on deriving the partitions.
        #[test]
        fn any_bytes_are_a_row_or_a_reason(values in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48), 1..8)) {
            let spec = spec();
            let records: Vec<KafkaRecord> = values.iter().enumerate().map(|(i, v)| KafkaRecord { value: Some(v.clone()), ..record(i as i64, "") }).collect();
            let decoded = decode(&spec, &records.iter().collect::<Vec<_>>()).unwrap();
            proptest::prop_assert_eq!(decoded.rows.num_rows() + decoded.rejected.len(), records.len());
        }

        /// Whatever the numbers and times, a row holds exactly the number sent, and its event day
        /// is within years 1-9999.
        #[test]
        fn any_json_event_is_exact_or_a_reason(events in proptest::collection::vec((event_time(), number()), 1..8)) {
            let spec = spec();
            let values: Vec<String> = events
                .iter()
                .enumerate()
                .map(|(i, (at, n))| format!(r#"{{"id":"e{i}","at":{at},"n":{n}}}"#))
                .collect();
            let records: Vec<KafkaRecord> = values.iter().enumerate().map(|(i, v)| record(i as i64, v)).collect();
            let decoded = decode(&spec, &records.iter().collect::<Vec<_>>()).unwrap();
            proptest::prop_assert_eq!(decoded.rows.num_rows() + decoded.rejected.len(), records.len());
            let n = decoded.rows.column(2).as_primitive::<arrow::datatypes::Int64Type>();
            let days = decoded.rows.column(3).as_primitive::<arrow::datatypes::Date32Type>();
            for (row, source) in decoded.row_sources.iter().enumerate() {
                let sent = &events[*source].1;
                let exact: f64 = sent.parse().unwrap();
                proptest::prop_assert!((n.value(row) as f64 - exact).abs() <= exact.abs() * 1e-12, "{} -> {}", sent, n.value(row));
                let day = days.value(row);
                proptest::prop_assert!((-719_162..=2_932_896).contains(&day), "day {}", day);
            }
        }
    }

    /// A table with a column of every type, one with a default, and a `max_future`.
    fn every_type() -> TableSpec {
        test_table(
            r#"max_future = "1h""#,
            r#"
            { name = "b", type = "boolean" },
            { name = "i", type = "int32" },
            { name = "n", type = "int64" },
            { name = "f", type = "float32" },
            { name = "d", type = "float64" },
            { name = "m", type = "decimal(18, 6)" },
            { name = "day", type = "date" },
            { name = "raw", type = "binary" },
            { name = "k", type = "int64", nullable = false, default = 5 },
            "#,
        )
    }

    /// The rows and refusals of the arrow-json decoder alone.
    fn through_arrow_json(spec: &TableSpec, records: &[&KafkaRecord]) -> Decoded {
        let (mut group, indices, mut made) = Group::start(spec, records, None);
        group.flat = None;
        decode_chunk(&group, &indices, &mut made);
        made.finish(&group).unwrap()
    }

    /// A field's value: of any column's type, or of none, or not JSON at all.
    fn any_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let words = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "7",
            "-12",
            "1.5",
            "1e3",
            "12.5e1",
            "2147483648",
            "1.1234567",
            "99999999999999999999",
            "1e400",
            "01",
            "1.",
            ".5",
            "-",
            "tru",
            "nul",
            "'x'",
            "\"7\"",
            "\"-0.25\"",
            "\"1.123456\"",
            "\"1e2\"",
            "\"x\"",
            "\"\"",
            "\"2026-11-23T10:15:00Z\"",
            "\"2026-11-23T10:15:00.123456789+05:30\"",
            "\"2026-11-23 10:15:00\"",
            "\"2026-11-23T10:15:00\"",
            "\"2026-11-23\"",
            "\"0001-01-01T00:00:00Z\"",
            "\"9999-12-31T23:59:59.999999Z\"",
            "\"2099-01-01T00:00:00Z\"",
            "\"2026-13-01T00:00:00Z\"",
            "\"2026-02-30\"",
            "\"20261123\"",
            "\"a\\\"b\"",
            "\"\\u0041\"",
            "\"x\\ny\\t\\/\"",
            "\"\u{e9}t\u{e9}\"",
            "\"\u{65e5}\u{672c}\"",
            "\"bad\\q\"",
            "\"tab\there\"",
            "{}",
            "[]",
            "{\"a\":[1,2,{\"b\":null}]}",
            "[1,",
            "{\"a\" 1}",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        ];
        prop_oneof![
            3 => proptest::sample::select(words.to_vec()).prop_map(str::to_string),
            1 => number(),
            1 => event_time(),
        ]
    }

    /// A record: fields (any key, some twice) with any values and spacing, sometimes with bytes
    /// before or after the object, cut short, or not UTF-8.
    fn any_record() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let keys = ["id", "at", "b", "i", "n", "f", "d", "m", "day", "raw", "k", "extra", "ID", "a\\u0062"];
        let field =
            (proptest::sample::select(keys.to_vec()), any_value(), proptest::sample::select(vec!["", " ", "\n\t "]));
        (proptest::collection::vec(field, 0..6), 0u8..16, any::<u8>()).prop_map(|(fields, shape, cut)| {
            let mut body: Vec<String> =
                fields.iter().map(|(k, v, ws)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}")).collect();
            if shape > 5 {
                body.insert(0, r#""id":"e","at":"2026-11-23T10:15:00Z""#.to_string());
            }
            let mut text = format!("{{{}}}", body.join(",")).into_bytes();
            match shape {
                0 => text.insert(0, b' '),
                1 => text.extend_from_slice(b" {}"),
                2 => text.truncate(usize::from(cut) % (text.len() + 1)),
                3 => text.push(b'\n'),
                4 => text.insert(1, 0xff),
                _ => {}
            }
            text
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The flat reader's rows are the arrow-json decoder's rows, and the same records are
        /// refused for the same reasons, whatever the records.
        #[test]
        fn flat_records_read_as_arrow_json_reads_them(values in proptest::collection::vec(any_record(), 1..8)) {
            let spec = every_type();
            let records: Vec<KafkaRecord> = values
                .iter()
                .enumerate()
                .map(|(i, v)| KafkaRecord { value: Some(v.clone()), timestamp_ms: Some(1_800_000_000_000), ..record(i as i64, "") })
                .collect();
            let refs: Vec<&KafkaRecord> = records.iter().collect();
            let fast = decode(&spec, &refs).unwrap();
            let slow = through_arrow_json(&spec, &refs);
            proptest::prop_assert_eq!(&fast.rows, &slow.rows);
            proptest::prop_assert_eq!(&fast.row_sources, &slow.row_sources);
            proptest::prop_assert_eq!(&fast.rejected, &slow.rejected);
        }
    }

    #[test]
    fn isolates_each_poison_record() {
        let spec = spec();
        let values = [
            r#"{"id":"a","at":"2026-11-23T10:15:00Z","n":1}"#,
            r#"{"id":"b","at":"2026-11-23T10:15:00Z","n":"many"}"#,
            r#"{"id":"c","at":"2026-11-23T23:59:59Z"}"#,
            r#"{"id":"d","at":"2026-11-23T1"#,
            r#"{"at":"2026-11-23T10:15:00Z","n":4}"#,
            r#"[1,2]"#,
            r#"{"id":"e","at":"2026-11-24T00:00:00Z","n":5} {"id":"f","at":"2026-11-24T00:00:00Z"}"#,
            r#"{"id":"g","at":"2026-11-24T01:00:00Z","n":7,"extra":true}"#,
        ];
        let records: Vec<KafkaRecord> = values.iter().enumerate().map(|(i, v)| record(i as i64, v)).collect();
        let refs: Vec<&KafkaRecord> = records.iter().collect();
        let decoded = decode(&spec, &refs).unwrap();
        assert_eq!(decoded.row_sources, vec![0, 2, 7]);
        let bad: Vec<usize> = decoded.rejected.iter().map(|(i, _)| *i).collect();
        assert_eq!(bad, vec![1, 3, 4, 5, 6]);
        assert!(decoded.rejected[2].1.contains("required field `id`"), "{:?}", decoded.rejected[2]);
        assert!(decoded.rejected[0].1.contains("many"), "{:?}", decoded.rejected[0]);
        let ids: &StringArray = decoded.rows.column(0).as_string();
        assert_eq!(ids.iter().flatten().collect::<Vec<_>>(), vec!["a", "c", "g"]);
        let hours = decoded.rows.column(4).as_primitive::<Int32Type>();
        assert_eq!(hours.values().to_vec(), vec![10, 23, 1]);
    }

    #[test]
    fn a_missing_value_is_rejected() {
        let spec = spec();
        let mut tombstone = record(0, "");
        tombstone.value = None;
        let decoded = decode(&spec, &[&tombstone]).unwrap();
        assert_eq!(decoded.rows.num_rows(), 0);
        assert!(decoded.rejected[0].1.contains("tombstone"));
    }
}
