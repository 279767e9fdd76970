//! `tidelake duckdb-init`: the SQL that defines a DuckDB view per lake table over the Parquet files
//! of its current Delta snapshot (or an older version), for a user's own DuckDB CLI or notebook. The
//! files are resolved from the Delta log here, so DuckDB needs no delta extension.

use std::collections::HashMap;

use arrow::datatypes::{DataType, Field, TimeUnit};

use crate::{BoxError, TableArgs};

/// Flags of `tidelake duckdb-init`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    tables: TableArgs,
    /// The data tables as of this Delta version instead of the latest (time travel).
    #[arg(long, env = "TIDELAKE_AT_VERSION")]
    at_version: Option<u64>,
}

/// Prints the views.
pub async fn run(args: Args) -> Result<(), BoxError> {
    let (config, specs) = args.tables.load().await?;
    print!("{}", views(&config, &specs, args.at_version).await?);
    Ok(())
}

/// The SQL of the views over every Delta table of `specs` (data, dead letters, archive, rollups),
/// the data tables as of `at_version` when given.
pub(crate) async fn views(
    config: &tidelake_lake::PipelineConfig,
    specs: &[tidelake_lake::TableSpec],
    at_version: Option<u64>,
) -> Result<String, BoxError> {
    let mut sql = String::from(
        "-- DuckDB views over tidelake tables, written by `tidelake duckdb-init`.\n\
         -- Each view lists the Parquet files of one Delta snapshot: run this again after new commits.\n",
    );
    for spec in specs {
        for (i, (name, location)) in spec.delta_tables().into_iter().enumerate() {
            // Time travel applies to the data table (the first); the side tables are read as they are.
            let version = if i == 0 { at_version } else { None };
            sql.push_str(&view(&name, location, version, &config.storage_options).await?);
        }
        for (_, name, location) in spec.rollup.iter().flat_map(|r| r.tables()) {
            sql.push_str(&view(&name, location, None, &config.storage_options).await?);
        }
    }
    Ok(sql)
}

/// The `CREATE OR REPLACE VIEW` of one Delta table.
async fn view(
    name: &str,
    location: &url::Url,
    version: Option<u64>,
    options: &HashMap<String, String>,
) -> Result<String, BoxError> {
    let Some(table) = tidelake_lake::delta::open_existing(name, location, options, version).await? else {
        return Ok(format!("-- {name}: no Delta table at {location} yet\n"));
    };
    let snapshot = table.snapshot()?;
    let schema = snapshot.snapshot().arrow_schema();
    let partitions = snapshot.metadata().partition_columns().to_vec();
    let root = location.as_str().trim_end_matches('/');
    let files: Vec<String> = snapshot
        .log_data()
        .iter()
        .map(|f| {
            let path = format!("{root}/{}", f.path());
            let path = match location.scheme() {
                "file" => url::Url::parse(&path)
                    .ok()
                    .and_then(|u| u.to_file_path().ok())
                    .map_or(path, |p| p.display().to_string()),
                _ => path,
            };
            quote(&path)
        })
        .collect();
    let at = version.map(|v| format!(" (version {v})")).unwrap_or_default();
    let header = format!("-- {name}{at}: {} files at {location}\n", files.len());
    if files.is_empty() {
        let nulls: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("NULL::{} AS {}", duck_type(f.data_type()), ident(f.name())))
            .collect();
        return Ok(format!(
            "{header}CREATE OR REPLACE VIEW {} AS SELECT {} WHERE false;\n",
            ident(name),
            nulls.join(", ")
        ));
    }
    let hive = if partitions.is_empty() {
        String::new()
    } else {
        let types: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| partitions.contains(f.name()))
            .map(|f| format!("{}: {}", quote(f.name()), duck_type(f.data_type())))
            .collect();
        format!(", hive_partitioning = true, hive_types = {{{}}}", types.join(", "))
    };
    let columns: Vec<String> = schema.fields().iter().map(|f| format!("{} AS {}", cast(f), ident(f.name()))).collect();
    Ok(format!(
        "{header}CREATE OR REPLACE VIEW {} AS SELECT {} FROM read_parquet([{}]{hive});\n",
        ident(name),
        columns.join(", "),
        files.join(", ")
    ))
}
fn cast(field: &Field) -> String {
    format!("CAST({} AS {})", ident(field.name()), duck_type(field.data_type()))
}

/// The DuckDB type an Arrow column of a tidelake table reads as.
fn duck_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "TIMESTAMPTZ".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BLOB".into(),
        DataType::List(item) | DataType::LargeList(item) => format!("{}[]", duck_type(item.data_type())),
        DataType::Struct(fields) => format!(
            "STRUCT({})",
            fields
                .iter()
                .map(|f| format!("{} {}", ident(f.name()), duck_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("VARCHAR /* {other} */"),
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
