//! Trino's metadata surface over the `lake`, `kafka` and `live` schemas: `information_schema` in
//! Trino's shapes and type names (`varchar`, `decimal(18,6)`, `timestamp(6) with time zone`), which
//! the `SHOW` statements and BI tools' browsing read.
//!
//! A listing reads no data and no Kafka tail: a lake table's columns come from its latest snapshot,
//! or from the config while it has no commit yet (or its log cannot be read), so a table declared
//! but not written yet is listed like any other and never breaks a listing.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::TableType;
use datafusion::prelude::{col, ident, lit, DataFrame, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    ShowStatementFilter, ShowStatementFilterPosition, ShowStatementOptions, Statement as SqlStatement,
};

use crate::catalog::Shared;
use crate::connector::CATALOG;
use crate::kafka_table::KafkaTable;
use crate::lake_table::LakeTable;
use crate::version::TableVersion;

/// The schema the metadata tables are in.
pub const INFORMATION_SCHEMA: &str = "information_schema";

/// The schemas of the catalog, as listed.
pub const SCHEMAS: [&str; 4] = [INFORMATION_SCHEMA, "kafka", "lake", "live"];

/// The tables of `information_schema`.
const INFORMATION_TABLES: [&str; 4] = ["columns", "schemata", "tables", "views"];

/// One table as a listing shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its schema: `lake`, `kafka`, `live` or `information_schema`.
    pub schema: &'static str,
    /// Its name.
    pub name: String,
    /// A view (`live` tables) rather than a base table.
    pub view: bool,
    /// Its columns (empty when the listing was asked without them).
    pub columns: Vec<Field>,
}

/// The Trino name of an Arrow type, as `information_schema` and `DESCRIBE` show it.
pub fn trino_type_name(data_type: &DataType) -> String {
    crate::server::wire::trino_type(data_type).0
}

/// Every table of the catalog, in schema and name order; with `columns`, each with its columns.
pub async fn list(shared: &Arc<Shared>, columns: bool) -> Vec<Listed> {
    let mut all = Vec::new();
    for name in INFORMATION_TABLES {
        let fields = if columns {
            information_schema(name).fields().iter().map(|f| f.as_ref().clone()).collect()
        } else {
            Vec::new()
        };
        all.push(Listed { schema: INFORMATION_SCHEMA, name: name.to_string(), view: false, columns: fields });
    }
    for spec in &shared.config.tables {
        let fields =
            if columns { KafkaTable::columns(spec).map(|s| fields_of(&s)).unwrap_or_default() } else { Vec::new() };
        all.push(Listed { schema: "kafka", name: spec.topic.clone(), view: false, columns: fields });
    }
    let mut lake = Vec::new();
    for (name, location) in shared.lake_tables() {
        let fields = if columns { fields_of(&lake_columns(shared, &name, location).await) } else { Vec::new() };
        lake.push(Listed { schema: "lake", name, view: false, columns: fields });
    }
    // A `live` table has the columns of the lake table it reads.
    for name in crate::catalog::LiveSchema(shared.clone()).table_names() {
        let fields = lake.iter().find(|t| t.name == name).map(|t| t.columns.clone()).unwrap_or_default();
        all.push(Listed { schema: "live", name, view: true, columns: fields });
    }
    all.extend(lake);
    all.sort_by(|a, b| (a.schema, &a.name).cmp(&(b.schema, &b.name)));
    all
}

fn fields_of(schema: &SchemaRef) -> Vec<Field> {
    schema.fields().iter().map(|f| f.as_ref().clone()).collect()
}

/// The columns of lake table `name`: its latest snapshot's, or the config's.
async fn lake_columns(shared: &Arc<Shared>, name: &str, location: &url::Url) -> SchemaRef {
    let declared = || shared.declared_schema(name).unwrap_or_else(|| Arc::new(Schema::empty()));
    match shared.open(name, location, &TableVersion::Latest).await {
        Ok(Some(table)) => match LakeTable::new(table).await {
            Ok(table) => table.schema(),
            Err(e) => {
                tracing::debug!(table = name, error = %e, "listing the config's columns: the snapshot's cannot be read");
                declared()
            }
        },
        Ok(None) => declared(),
        Err(e) => {
            tracing::debug!(table = name, error = %e, "listing the config's columns: the table cannot be opened");
            declared()
        }
    }
}

/// The columns of `information_schema.<table>`, as Trino has them.
fn information_schema(table: &str) -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let fields = match table {
        "schemata" => vec![text("catalog_name"), text("schema_name")],
        "tables" => vec![text("table_catalog"), text("table_schema"), text("table_name"), text("table_type")],
        "views" => vec![text("table_catalog"), text("table_schema"), text("table_name"), text("view_definition")],
        _ => vec![
            text("table_catalog"),
            text("table_schema"),
            text("table_name"),
            text("column_name"),
            Field::new("ordinal_position", DataType::Int64, true),
            text("column_default"),
            text("is_nullable"),
            text("data_type"),
            text("comment"),
            text("extra_info"),
        ],
    };
    Arc::new(Schema::new(fields))
}

/// The rows of `information_schema.<table>` as the catalog stands.
async fn information_rows(shared: &Arc<Shared>, table: &str) -> DfResult<RecordBatch> {
    let schema = information_schema(table);
    let mut columns: Vec<StringBuilder> = (0..schema.fields().len()).map(|_| StringBuilder::new()).collect();
    let mut ordinals = Int64Builder::new();
    match table {
        "schemata" => {
            for name in SCHEMAS {
                columns[0].append_value(CATALOG);
                columns[1].append_value(name);
            }
        }
        "tables" | "views" => {
            for t in list(shared, false).await {
                if table == "views" && !t.view {
                    continue;
                }
                columns[0].append_value(CATALOG);
                columns[1].append_value(t.schema);
                columns[2].append_value(&t.name);
                match table {
                    "tables" => columns[3].append_value(if t.view { "VIEW" } else { "BASE TABLE" }),
                    _ => columns[3].append_null(),
                }
            }
        }
        _ => {
            for t in list(shared, true).await {
                for (i, field) in t.columns.iter().enumerate() {
                    columns[0].append_value(CATALOG);
                    columns[1].append_value(t.schema);
                    columns[2].append_value(&t.name);
                    columns[3].append_value(field.name());
                    ordinals.append_value(i as i64 + 1);
                    columns[5].append_null();
                    columns[6].append_value(if field.is_nullable() { "YES" } else { "NO" });
                    columns[7].append_value(trino_type_name(field.data_type()));
                    columns[8].append_null();
                    columns[9].append_null();
                }
            }
        }
    }
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| -> ArrayRef {
            match f.data_type() {
                DataType::Int64 => Arc::new(ordinals.finish()),
                _ => Arc::new(columns[i].finish()),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// `information_schema` in Trino's shapes, looked up when a query names one of its tables.
#[derive(Debug)]
pub struct InformationSchema(pub Arc<Shared>);

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        INFORMATION_TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if !INFORMATION_TABLES.contains(&name) {
            return Ok(None);
        }
        let rows = information_rows(&self.0, name).await?;
        Ok(Some(Arc::new(MemTable::try_new(rows.schema(), vec![vec![rows]])?)))
    }

    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        Ok(self.table_exist(name).then_some(TableType::Base))
    }

    fn table_exist(&self, name: &str) -> bool {
        INFORMATION_TABLES.contains(&name)
    }
}

/// The rows of a `SHOW` or `DESCRIBE` statement in Trino's shape, or `None` for any other
/// statement. Unqualified names are looked up in `schema`, the session's.
///
/// | statement | columns |
/// |---|---|
/// | `SHOW CATALOGS [LIKE p]` | `Catalog` |
/// | `SHOW SCHEMAS [FROM c] [LIKE p]` | `Schema` |
/// | `SHOW TABLES [FROM [c.]s] [LIKE p]` | `Table` |
/// | `SHOW COLUMNS FROM t`, `DESCRIBE t` | `Column`, `Type`, `Extra`, `Comment` |
pub async fn show(ctx: &SessionContext, statement: &DfStatement, schema: &str) -> DfResult<Option<DataFrame>> {
    let DfStatement::Statement(statement) = statement else { return Ok(None) };
    let frame = match statement.as_ref() {
        SqlStatement::ShowCatalogs { show_options, .. } => {
            no_parent(show_options, "SHOW CATALOGS")?;
            let frame =
                information(ctx, "schemata").await?.select(vec![col("catalog_name").alias("Catalog")])?.distinct()?;
            like(frame, "Catalog", show_options)?.sort(vec![ident("Catalog").sort(true, false)])?
        }
        SqlStatement::ShowSchemas { show_options, .. } | SqlStatement::ShowDatabases { show_options, .. } => {
            if let Some(parent) = parent(show_options) {
                let [catalog] = parent.as_slice() else {
                    return Err(plan_error(format!("SHOW SCHEMAS FROM takes a catalog, not `{}`", parent.join("."))));
                };
                known_catalog(catalog)?;
            }
            let frame = information(ctx, "schemata").await?.select(vec![col("schema_name").alias("Schema")])?;
            like(frame, "Schema", show_options)?.sort(vec![ident("Schema").sort(true, false)])?
        }
        SqlStatement::ShowTables { show_options, .. } => {
            let schema = match parent(show_options).as_deref() {
                None => schema.to_string(),
                Some([schema]) => schema.clone(),
                Some([catalog, schema]) => {
                    known_catalog(catalog)?;
                    schema.clone()
                }
                Some(other) => {
                    return Err(plan_error(format!("SHOW TABLES FROM takes a schema, not `{}`", other.join("."))))
                }
            };
            known_schema(&schema)?;
            let frame = information(ctx, "tables")
                .await?
                .filter(col("table_schema").eq(lit(schema)))?
                .select(vec![col("table_name").alias("Table")])?;
            like(frame, "Table", show_options)?.sort(vec![ident("Table").sort(true, false)])?
        }
        SqlStatement::ShowColumns { show_options, .. } => {
            let Some(name) = parent(show_options) else {
                return Err(plan_error("SHOW COLUMNS needs a table: SHOW COLUMNS FROM t".into()));
            };
            let frame = describe(ctx, &name, schema).await?;
            like(frame, "Column", show_options)?
        }
        SqlStatement::ExplainTable { table_name, .. } => {
            let name: Vec<String> = table_name.0.iter().map(|part| part.to_string()).map(unquote).collect();
            describe(ctx, &name, schema).await?
        }
        _ => return Ok(None),
    };
    Ok(Some(frame))
}

/// `DESCRIBE [[c.]s.]t`: its columns in order.
async fn describe(ctx: &SessionContext, name: &[String], session_schema: &str) -> DfResult<DataFrame> {
    let (schema, table) = match name {
        [table] => (session_schema, table),
        [schema, table] => (schema.as_str(), table),
        [catalog, schema, table] => {
            known_catalog(catalog)?;
            (schema.as_str(), table)
        }
        _ => return Err(plan_error(format!("`{}` is not a table name", name.join(".")))),
    };
    known_schema(schema)?;
    // The columns are listed once, here: the frame returned reads these rows, not the listing again.
    let columns = information(ctx, "columns")
        .await?
        .filter(col("table_schema").eq(lit(schema)).and(col("table_name").eq(lit(table.as_str()))))?
        .sort(vec![col("ordinal_position").sort(true, false)])?
        .select(vec![
            col("column_name").alias("Column"),
            col("data_type").alias("Type"),
            lit("").alias("Extra"),
            lit("").alias("Comment"),
        ])?
        .collect()
        .await?;
    if columns.iter().all(|b| b.num_rows() == 0) {
        return Err(plan_error(format!("Table '{CATALOG}.{schema}.{table}' does not exist")));
    }
    let schema = columns[0].schema();
    ctx.read_table(Arc::new(MemTable::try_new(schema, vec![columns])?))
}

async fn information(ctx: &SessionContext, table: &str) -> DfResult<DataFrame> {
    ctx.table(TableReference::full(CATALOG, INFORMATION_SCHEMA, table)).await
}

/// The `FROM`/`IN` name of a `SHOW` statement, its parts unquoted.
fn parent(options: &ShowStatementOptions) -> Option<Vec<String>> {
    let name = options.show_in.as_ref()?.parent_name.as_ref()?;
    Some(name.0.iter().map(|part| unquote(part.to_string())).collect())
}

fn unquote(part: String) -> String {
    match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => part.to_lowercase(),
    }
}

fn no_parent(options: &ShowStatementOptions, statement: &str) -> DfResult<()> {
    match options.show_in {
        Some(_) => Err(plan_error(format!("{statement} takes no FROM"))),
        None => Ok(()),
    }
}

/// The rows of `frame` whose `column` is like the statement's `LIKE` pattern, if it has one.
fn like(frame: DataFrame, column: &str, options: &ShowStatementOptions) -> DfResult<DataFrame> {
    match &options.filter_position {
        None => Ok(frame),
        Some(ShowStatementFilterPosition::Infix(filter) | ShowStatementFilterPosition::Suffix(filter)) => {
            match filter {
                ShowStatementFilter::Like(pattern) | ShowStatementFilter::NoKeyword(pattern) => {
                    frame.filter(ident(column).like(lit(pattern.as_str())))
                }
                ShowStatementFilter::ILike(pattern) => frame.filter(ident(column).ilike(lit(pattern.as_str()))),
                ShowStatementFilter::Where(_) => Err(plan_error("SHOW ... WHERE is not supported; use LIKE".into())),
            }
        }
    }
}

fn known_catalog(catalog: &str) -> DfResult<()> {
    match catalog == CATALOG {
        true => Ok(()),
        false => Err(plan_error(format!("Catalog '{catalog}' does not exist (there is one: {CATALOG})"))),
    }
}

fn known_schema(schema: &str) -> DfResult<()> {
    match SCHEMAS.contains(&schema) {
        true => Ok(()),
        false => Err(plan_error(format!("Schema '{schema}' does not exist (there are {})", SCHEMAS.join(", ")))),
    }
}

fn plan_error(message: String) -> DataFusionError {
    DataFusionError::Plan(message)
}
