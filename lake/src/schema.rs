//! Table specs: the columns a table holds, which of them identify and time an event, and the derived
//! partition columns, as Arrow schemas.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use url::Url;

use crate::rollup::RollupSpec;

/// The column types a table may declare in `tidelake.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `string`: UTF-8 text.
    String,
    /// `boolean`.
    Boolean,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `float32`.
    Float32,
    /// `float64`.
    Float64,
    /// `decimal(p, s)`: exact numbers, for money.
    Decimal(u8, i8),
    /// `date`: a calendar day.
    Date,
    /// `timestamp`: microseconds since the epoch, UTC (JSON: RFC 3339 text or epoch microseconds).
    Timestamp,
    /// `binary`: raw bytes.
    Binary,
}

impl ColumnType {
    /// Parses a type name as written in the config; the error lists the accepted names.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "string" => ColumnType::String,
            "boolean" | "bool" => ColumnType::Boolean,
            "int32" | "int" => ColumnType::Int32,
            "int64" | "long" => ColumnType::Int64,
            "float32" | "float" => ColumnType::Float32,
            "float64" | "double" => ColumnType::Float64,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            "binary" => ColumnType::Binary,
            _ => {
                if let Some(args) = t.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
                    let mut parts = args.split(',').map(str::trim);
                    let p = parts.next().and_then(|p| p.parse::<u8>().ok());
                    let s = parts.next().and_then(|s| s.parse::<i8>().ok());
                    if let (Some(p), Some(s), None) = (p, s, parts.next()) {
                        if (1..=38).contains(&p) && s >= 0 && (s as u8) <= p {
                            return Ok(ColumnType::Decimal(p, s));
                        }
                    }
                    return Err(format!(
                        "`{text}`: decimal needs precision 1..=38 and scale 0..=precision, like `decimal(18, 6)`"
                    ));
                }
                return Err(format!(
                    "`{text}` is not a column type; use one of string, boolean, int32, int64, float32, float64, decimal(p, s), date, timestamp, binary"
                ));
            }
        })
    }

    /// The type's name as the config writes it.
    pub fn name(self) -> String {
        match self {
            ColumnType::String => "string".into(),
            ColumnType::Boolean => "boolean".into(),
            ColumnType::Int32 => "int32".into(),
            ColumnType::Int64 => "int64".into(),
            ColumnType::Float32 => "float32".into(),
            ColumnType::Float64 => "float64".into(),
            ColumnType::Decimal(p, s) => format!("decimal({p}, {s})"),
            ColumnType::Date => "date".into(),
            ColumnType::Timestamp => "timestamp".into(),
            ColumnType::Binary => "binary".into(),
        }
    }

    /// The Arrow type rows of this column are decoded into.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float32 => DataType::Float32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Decimal(p, s) => DataType::Decimal128(p, s),
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Binary => DataType::Binary,
        }
    }
}

/// One declared column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Column name, also the JSON field name.
    pub name: String,
    /// Its type.
    pub kind: ColumnType,
    /// Whether a record may omit it; a record missing a non-nullable column is a dead letter.
    pub nullable: bool,
    /// The value, as JSON, a record that omits the column or holds null for it gets instead
    /// (`default = "unknown"`, `default = 0`); checked against the type when the config is read.
    pub default: Option<String>,
}

impl ColumnSpec {
    /// A column without a default.
    pub fn new(name: &str, kind: ColumnType, nullable: bool) -> Self {
        ColumnSpec { name: name.to_string(), kind, nullable, default: None }
    }

    /// The default as a one-value array of the column's type; the error says why the JSON value
    /// does not fit.
    pub fn default_value(&self) -> Result<Option<ArrayRef>, String> {
        let Some(json) = &self.default else { return Ok(None) };
        let schema = Arc::new(Schema::new(vec![Field::new(&self.name, self.kind.arrow(), true)]));
        let mut decoder = arrow::json::ReaderBuilder::new(schema).build_decoder().map_err(|e| e.to_string())?;
        let object = format!("{{{}:{json}}}", serde_json::Value::String(self.name.clone()));
        decoder.decode(object.as_bytes()).map_err(|e| format!("{json} is not a {}: {e}", self.kind.arrow()))?;
        let batch = decoder.flush().map_err(|e| format!("{json} is not a {}: {e}", self.kind.arrow()))?;
        match batch {
            Some(batch) if batch.num_rows() == 1 && batch.column(0).null_count() == 0 => {
                Ok(Some(batch.column(0).clone()))
            }
            _ => Err(format!("{json} is not a value of type {}", self.kind.arrow())),
        }
    }
}

/// A partition column derived from the event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PartitionGrain {
    /// `event_date`, the UTC day of the event time (a `date`).
    Date,
    /// `event_hour`, the UTC hour of the event time, 0 to 23 (an `int32`).
    Hour,
}

impl PartitionGrain {
    /// Parses `date` or `hour`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "date" => Ok(PartitionGrain::Date),
            "hour" => Ok(PartitionGrain::Hour),
            other => Err(format!("`{other}` is not a partition grain; use \"date\" and/or \"hour\"")),
        }
    }

    /// The column this grain adds to the table.
    pub fn column(self) -> &'static str {
        match self {
            PartitionGrain::Date => "event_date",
            PartitionGrain::Hour => "event_hour",
        }
    }

    /// The column's Arrow type.
    pub fn arrow(self) -> DataType {
        match self {
            PartitionGrain::Date => DataType::Date32,
            PartitionGrain::Hour => DataType::Int32,
        }
    }
}

/// How far ahead of its Kafka timestamp an event time may lie unless the table says otherwise.
pub const DEFAULT_MAX_FUTURE: std::time::Duration = std::time::Duration::from_secs(3600);

/// How a table's record values are encoded.
#[derive(Debug, Clone, Default)]
pub enum RecordFormat {
    /// One JSON object per record.
    #[default]
    Json,
    /// Avro in the schema registry's wire format; the writer schemas come from this registry.
    Avro {
        /// Where the writer schemas are.
        registry: Arc<crate::registry::Registry>,
        /// The table's columns are the subject's schemas' fields (`columns = "registry"`): a record
        /// of a schema with a field that is not a column yet stops the batch (a restart takes the
        /// newer schema) instead of dropping the field's values.
        columns_follow: bool,
        /// `on_incompatible = "stop"`: a writer schema that does not fit the columns stops the
        /// batch; otherwise its records are dead letters with the reason.
        stop_on_incompatible: bool,
    },
    /// Protobuf in the schema registry's wire format; the writer schemas come from this registry.
    Protobuf {
        /// Where the writer schemas are.
        registry: Arc<crate::registry::Registry>,
        /// The table's columns are the fields of the subject's schemas' first message
        /// (`columns = "registry"`), as [`RecordFormat::Avro`]'s.
        columns_follow: bool,
        /// `on_incompatible = "stop"`: a writer message that does not fit the columns stops the
        /// batch; otherwise its records are dead letters with the reason.
        stop_on_incompatible: bool,
    },
    /// Plain Avro binary datums, no framing, all written with this one schema (the table's
    /// `avro_schema`).
    AvroSchema(Arc<apache_avro::Schema>),
}

impl RecordFormat {
    /// The name the config gives it.
    pub fn name(&self) -> &'static str {
        match self {
            RecordFormat::Json => "json",
            RecordFormat::Avro { .. } | RecordFormat::AvroSchema(_) => "avro",
            RecordFormat::Protobuf { .. } => "protobuf",
        }
    }
}

/// Everything tidelake knows about one table: its source topic, columns, keys and locations.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Table name (`ad_events`).
    pub name: String,
    /// The Kafka topic that feeds it.
    pub topic: String,
    /// Declared columns, in order.
    pub columns: Vec<ColumnSpec>,
    /// The event UUID column.
    pub event_uuid: String,
    /// The event time column.
    pub event_time: String,
    /// Derived partition columns, date before hour.
    pub partition_by: Vec<PartitionGrain>,
    /// Where the Delta table lives.
    pub location: Url,
    /// Where the dead-letter table lives.
    pub dead_letters: Url,
    /// Where the raw-batch archive lives.
    pub archive: Url,
    /// How far back in event time a record is checked against the table for an earlier copy of its
    /// event UUID; `None` turns deduplication against the table off (copies within one batch are
    /// still dropped).
    pub dedup_window: Option<std::time::Duration>,
    /// How far an event time may lie ahead of its record's Kafka timestamp (of the clock, for a
    /// record without one); a later one is a dead letter. `None`: no bound but the year 9999.
    pub max_future: Option<std::time::Duration>,
    /// The table's rollup, if it declares one.
    pub rollup: Option<RollupSpec>,
    /// The columns optimize sorts the rows of each file it writes by (`optimize.sort_by`).
    pub sort_by: Vec<String>,
    /// How record values are encoded (`format`).
    pub format: RecordFormat,
    record_schema: SchemaRef,
    table_schema: SchemaRef,
}

impl TableSpec {
    /// The Delta tables behind this table, each with its name and location: the data table, its
    /// dead letters (`<name>_dead_letters`) and its archive (`<name>_archive`), in that order.
    pub fn delta_tables(&self) -> [(String, &Url); 3] {
        [
            (self.name.clone(), &self.location),
            (format!("{}_dead_letters", self.name), &self.dead_letters),
            (format!("{}_archive", self.name), &self.archive),
        ]
    }

    /// Builds a spec; the config module validates the parts first.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        topic: String,
        columns: Vec<ColumnSpec>,
        event_uuid: String,
        event_time: String,
        partition_by: Vec<PartitionGrain>,
        location: Url,
        dead_letters: Url,
        archive: Url,
    ) -> Self {
        let record_fields: Vec<Field> =
            columns.iter().map(|c| Field::new(&c.name, c.kind.arrow(), c.nullable)).collect();
        let mut table_fields = record_fields.clone();
        table_fields.extend(partition_by.iter().map(|g| Field::new(g.column(), g.arrow(), false)));
        TableSpec {
            name,
            topic,
            columns,
            event_uuid,
            event_time,
            partition_by,
            location,
            dead_letters,
            archive,
            dedup_window: None,
            max_future: Some(DEFAULT_MAX_FUTURE),
            rollup: None,
            sort_by: Vec::new(),
            format: RecordFormat::Json,
            record_schema: Arc::new(Schema::new(record_fields)),
            table_schema: Arc::new(Schema::new(table_fields)),
        }
    }

    /// Sets the dedup window.
    pub fn with_dedup_window(mut self, window: Option<std::time::Duration>) -> Self {
        self.dedup_window = window;
        self
    }

    /// Sets how far ahead of its Kafka timestamp an event time may lie.
    pub fn with_max_future(mut self, max_future: Option<std::time::Duration>) -> Self {
        self.max_future = max_future;
        self
    }

    /// Sets the rollup.
    pub fn with_rollup(mut self, rollup: Option<RollupSpec>) -> Self {
        self.rollup = rollup;
        self
    }

    /// Sets the columns optimize sorts rows by.
    pub fn with_sort_by(mut self, columns: Vec<String>) -> Self {
        self.sort_by = columns;
        self
    }

    /// Sets how record values are encoded.
    pub fn with_format(mut self, format: RecordFormat) -> Self {
        self.format = format;
        self
    }

    /// Index of the event UUID column in the record schema.
    pub fn event_uuid_index(&self) -> usize {
        self.columns.iter().position(|c| c.name == self.event_uuid).expect("validated event_uuid column")
    }

    /// The schema a record value is decoded against (declared columns only).
    pub fn record_schema(&self) -> SchemaRef {
        self.record_schema.clone()
    }

    /// The schema of the table: declared columns, then the derived partition columns.
    pub fn table_schema(&self) -> SchemaRef {
        self.table_schema.clone()
    }

    /// Names of the Delta partition columns.
    pub fn partition_columns(&self) -> Vec<String> {
        self.partition_by.iter().map(|g| g.column().to_string()).collect()
    }

    /// Index of the event time column in the record schema.
    pub fn event_time_index(&self) -> usize {
        self.columns.iter().position(|c| c.name == self.event_time).expect("validated event_time column")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types() {
        assert_eq!(ColumnType::parse("decimal(18, 6)"), Ok(ColumnType::Decimal(18, 6)));
        assert_eq!(ColumnType::parse("Int64"), Ok(ColumnType::Int64));
        assert!(ColumnType::parse("decimal(40,2)").unwrap_err().contains("precision"));
        assert!(ColumnType::parse("money").unwrap_err().contains("string, boolean"));
    }
}
