//! The `system` catalog, as drivers and BI tools read it from Trino:
//!
//! - `system.jdbc`: the tables the Trino JDBC driver's `DatabaseMetaData` reads (`getCatalogs`,
//!   `getSchemas`, `getTables`, `getColumns`, `getTableTypes`, `getTypeInfo`), in Trino's columns
//!   with `java.sql.Types` codes, column sizes and decimal digits;
//! - `system.metadata.table_comments`: each table's comment (none here), which SQLAlchemy's Trino
//!   dialect reads when it reflects a table.
//!
//! Both are built from the same listing as `information_schema` ([`crate::metadata::list`]), so
//! they read no data either.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::TableType;

use crate::catalog::Shared;
use crate::connector::CATALOG;
use crate::metadata::{list, trino_type_name, SCHEMAS};

/// The catalog the JDBC driver's metadata calls read (`system.jdbc.*`).
pub const SYSTEM_CATALOG: &str = "system";

/// The tables of `system.metadata`.
const METADATA_TABLES: [&str; 1] = ["table_comments"];

/// The tables of `system.jdbc`.
const JDBC_TABLES: [&str; 6] = ["catalogs", "columns", "schemas", "table_types", "tables", "types"];

/// What JDBC says of a Trino type: its `java.sql.Types` code, column size, decimal digits, radix and
/// octet length (as Trino's `system.jdbc.columns` gives them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct JdbcType {
    code: i64,
    size: Option<i64>,
    digits: Option<i64>,
    radix: Option<i64>,
    octets: Option<i64>,
}

/// The longest time zone name, which a `timestamp with time zone` value may end with.
const LONGEST_ZONE: i64 = 32;

fn jdbc_type(data_type: &DataType) -> JdbcType {
    let number = |code, size, radix| JdbcType { code, size: Some(size), radix: Some(radix), ..Default::default() };
    let unbounded = |code| JdbcType {
        code,
        size: Some(i64::from(i32::MAX)),
        octets: Some(i64::from(i32::MAX)),
        ..Default::default()
    };
    match data_type {
        DataType::Boolean => JdbcType { code: 16, ..Default::default() },
        DataType::Int8 => number(-6, 3, 10),
        DataType::Int16 | DataType::UInt8 => number(5, 5, 10),
        DataType::Int32 | DataType::UInt16 => number(4, 10, 10),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => number(-5, 19, 10),
        DataType::Float16 | DataType::Float32 => number(7, 24, 2),
        DataType::Float64 => number(8, 53, 2),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            JdbcType { digits: Some(i64::from(*s)), ..number(3, i64::from(*p), 10) }
        }
        DataType::Date32 | DataType::Date64 => JdbcType { code: 91, size: Some(14), ..Default::default() },
        DataType::Timestamp(_, None) => {
            JdbcType { code: 93, size: Some(21 + 1 + 6), digits: Some(6), ..Default::default() }
        }
        DataType::Timestamp(_, Some(_)) => {
            JdbcType { code: 2014, size: Some(23 + 1 + 6 + LONGEST_ZONE), digits: Some(6), ..Default::default() }
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => unbounded(-3),
        DataType::Dictionary(_, value) => jdbc_type(value),
        _ => unbounded(12),
    }
}

/// The types `system.jdbc.types` lists: one Arrow type of each Trino type a column here can have.
fn listed_types() -> Vec<DataType> {
    use arrow::datatypes::TimeUnit::Microsecond;
    vec![
        DataType::Int64,
        DataType::Boolean,
        DataType::Date32,
        DataType::Decimal128(38, 0),
        DataType::Float64,
        DataType::Int32,
        DataType::Float32,
        DataType::Int16,
        DataType::Timestamp(Microsecond, None),
        DataType::Timestamp(Microsecond, Some("UTC".into())),
        DataType::Int8,
        DataType::Binary,
        DataType::Utf8,
    ]
}

/// The columns of `system.jdbc.<table>`, as Trino has them.
fn jdbc_schema(table: &str) -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let number = |name: &str| Field::new(name, DataType::Int64, true);
    let flag = |name: &str| Field::new(name, DataType::Boolean, true);
    let fields = match table {
        "catalogs" => vec![text("table_cat")],
        "schemas" => vec![text("table_schem"), text("table_catalog")],
        "table_types" => vec![text("table_type")],
        "tables" => ["table_cat", "table_schem", "table_name", "table_type", "remarks", "type_cat", "type_schem"]
            .into_iter()
            .chain(["type_name", "self_referencing_col_name", "ref_generation"])
            .map(text)
            .collect(),
        "types" => vec![
            text("type_name"),
            number("data_type"),
            number("precision"),
            text("literal_prefix"),
            text("literal_suffix"),
            text("create_params"),
            number("nullable"),
            flag("case_sensitive"),
            number("searchable"),
            flag("unsigned_attribute"),
            flag("fixed_prec_scale"),
            flag("auto_increment"),
            text("local_type_name"),
            number("minimum_scale"),
            number("maximum_scale"),
            number("sql_data_type"),
            number("sql_datetime_sub"),
            number("num_prec_radix"),
        ],
        _ => vec![
            text("table_cat"),
            text("table_schem"),
            text("table_name"),
            text("column_name"),
            number("data_type"),
            text("type_name"),
            number("column_size"),
            number("buffer_length"),
            number("decimal_digits"),
            number("num_prec_radix"),
            number("nullable"),
            text("remarks"),
            text("column_def"),
            number("sql_data_type"),
            number("sql_datetime_sub"),
            number("char_octet_length"),
            number("ordinal_position"),
            text("is_nullable"),
            text("scope_catalog"),
            text("scope_schema"),
            text("scope_table"),
            number("source_data_type"),
            text("is_autoincrement"),
            text("is_generatedcolumn"),
        ],
    };
    Arc::new(Schema::new(fields))
}

/// One row of a metadata table, a value per column.
#[derive(Debug, Clone)]
enum Cell {
    Text(Option<String>),
    Number(Option<i64>),
    Flag(Option<bool>),
}

fn text_cell(value: impl Into<String>) -> Cell {
    Cell::Text(Some(value.into()))
}

/// `rows` (a [`Cell`] per column of `schema`) as one batch.
fn batch(schema: SchemaRef, rows: Vec<Vec<Cell>>) -> DfResult<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let cells = rows.iter().map(|row| row[i].clone());
        let array: ArrayRef = match field.data_type() {
            DataType::Int64 => {
                Arc::new(cells.map(|c| if let Cell::Number(n) = c { n } else { None }).collect::<Int64Array>())
            }
            DataType::Boolean => {
                Arc::new(cells.map(|c| if let Cell::Flag(b) = c { b } else { None }).collect::<BooleanArray>())
            }
            _ => Arc::new(cells.map(|c| if let Cell::Text(t) = c { t } else { None }).collect::<StringArray>()),
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// The rows of `system.jdbc.<table>` as the catalog stands.
async fn jdbc_rows(shared: &Arc<Shared>, table: &str) -> DfResult<RecordBatch> {
    let schema = jdbc_schema(table);
    let width = schema.fields().len();
    let pad = |mut row: Vec<Cell>| {
        while row.len() < width {
            row.push(match schema.field(row.len()).data_type() {
                DataType::Int64 => Cell::Number(None),
                DataType::Boolean => Cell::Flag(None),
                _ => Cell::Text(None),
            });
        }
        row
    };
    let rows: Vec<Vec<Cell>> = match table {
        "catalogs" => vec![vec![text_cell(CATALOG)]],
        "schemas" => SCHEMAS.iter().map(|s| vec![text_cell(*s), text_cell(CATALOG)]).collect(),
        "table_types" => vec![vec![text_cell("TABLE")], vec![text_cell("VIEW")]],
        "tables" => list(shared, false)
            .await
            .into_iter()
            .map(|t| {
                pad(vec![
                    text_cell(CATALOG),
                    text_cell(t.schema),
                    text_cell(t.name),
                    text_cell(if t.view { "VIEW" } else { "TABLE" }),
                ])
            })
            .collect(),
        "types" => listed_types()
            .iter()
            .map(|data_type| {
                let jdbc = jdbc_type(data_type);
                let name = match data_type {
                    DataType::Decimal128(..) => "decimal".to_string(),
                    DataType::Timestamp(_, None) => "timestamp".to_string(),
                    DataType::Timestamp(_, Some(_)) => "timestamp with time zone".to_string(),
                    other => trino_type_name(other),
                };
                vec![
                    text_cell(name),
                    Cell::Number(Some(jdbc.code)),
                    Cell::Number(jdbc.size),
                    Cell::Text(None),
                    Cell::Text(None),
                    Cell::Text(None),
                    Cell::Number(Some(1)),
                    Cell::Flag(Some(false)),
                    Cell::Number(Some(3)),
                    Cell::Flag(None),
                    Cell::Flag(Some(false)),
                    Cell::Flag(None),
                    Cell::Text(None),
                    Cell::Number(Some(0)),
                    Cell::Number(Some(0)),
                    Cell::Number(None),
                    Cell::Number(None),
                    Cell::Number(jdbc.radix),
                ]
            })
            .collect(),
        _ => {
            let mut rows = Vec::new();
            for t in list(shared, true).await {
                for (i, field) in t.columns.iter().enumerate() {
                    let jdbc = jdbc_type(field.data_type());
                    rows.push(pad(vec![
                        text_cell(CATALOG),
                        text_cell(t.schema),
                        text_cell(t.name.clone()),
                        text_cell(field.name().clone()),
                        Cell::Number(Some(jdbc.code)),
                        text_cell(trino_type_name(field.data_type())),
                        Cell::Number(jdbc.size),
                        Cell::Number(Some(0)),
                        Cell::Number(jdbc.digits),
                        Cell::Number(jdbc.radix),
                        // Trino's: nullability unknown to JDBC here, told by `is_nullable`.
                        Cell::Number(Some(2)),
                        Cell::Text(None),
                        Cell::Text(None),
                        Cell::Number(None),
                        Cell::Number(None),
                        Cell::Number(jdbc.octets),
                        Cell::Number(Some(i as i64 + 1)),
                        text_cell(if field.is_nullable() { "YES" } else { "NO" }),
                    ]));
                }
            }
            rows
        }
    };
    batch(schema, rows)
}

/// `system.jdbc`: what the Trino JDBC driver's `DatabaseMetaData` reads (`getCatalogs`,
/// `getSchemas`, `getTables`, `getColumns`, `getTableTypes`, `getTypeInfo`).
#[derive(Debug)]
pub struct JdbcSchema(pub Arc<Shared>);

#[async_trait]
impl SchemaProvider for JdbcSchema {
    fn table_names(&self) -> Vec<String> {
        JDBC_TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if !JDBC_TABLES.contains(&name) {
            return Ok(None);
        }
        let rows = jdbc_rows(&self.0, name).await?;
        Ok(Some(Arc::new(MemTable::try_new(rows.schema(), vec![vec![rows]])?)))
    }

    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        Ok(self.table_exist(name).then_some(TableType::Base))
    }

    fn table_exist(&self, name: &str) -> bool {
        JDBC_TABLES.contains(&name)
    }
}

/// `system.metadata`: `table_comments`, one row per table, its comment null.
#[derive(Debug)]
pub struct MetadataSchema(pub Arc<Shared>);

#[async_trait]
impl SchemaProvider for MetadataSchema {
    fn table_names(&self) -> Vec<String> {
        METADATA_TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if !METADATA_TABLES.contains(&name) {
            return Ok(None);
        }
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let schema =
            Arc::new(Schema::new(vec![text("catalog_name"), text("schema_name"), text("table_name"), text("comment")]));
        let rows = list(&self.0, false)
            .await
            .into_iter()
            .map(|t| vec![text_cell(CATALOG), text_cell(t.schema), text_cell(t.name), Cell::Text(None)])
            .collect();
        let rows = batch(schema, rows)?;
        Ok(Some(Arc::new(MemTable::try_new(rows.schema(), vec![vec![rows]])?)))
    }

    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        Ok(self.table_exist(name).then_some(TableType::Base))
    }

    fn table_exist(&self, name: &str) -> bool {
        METADATA_TABLES.contains(&name)
    }
}
