//! `tidelake sql`: SQL over the lake in an embedded DuckDB, every table a view over the Parquet files
//! of its Delta snapshot (the views of `tidelake duckdb-init`), so DuckDB needs no extension.
//!
//! The embedded DuckDB is a build feature: `sql` links a prebuilt libduckdb 1.5.6 (`DUCKDB_LIB_DIR`
//! at build time, on the loader path at run time; `infra/duckdb.sh` fetches one), `sql-bundled`
//! compiles DuckDB from source instead (about 25 minutes on two cores). A build without either says
//! so and points at `tidelake duckdb-init`.

use std::io::{BufRead, IsTerminal, Write};

use crate::{BoxError, TableArgs};

/// Flags of `tidelake sql`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    tables: TableArgs,
    /// The SQL statement to run; without it, statements ending in `;` are read from stdin (an
    /// interactive prompt on a terminal; `.refresh` re-reads the Delta logs, `.quit` leaves).
    sql: Option<String>,
    /// How results are printed.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "TIDELAKE_SQL_FORMAT")]
    format: Format,
    /// The data tables as of this Delta version instead of the latest (time travel).
    #[arg(long, env = "TIDELAKE_AT_VERSION")]
    at_version: Option<u64>,
    /// Print on stderr how long resolving the views and each statement took.
    #[arg(long)]
    timing: bool,
}

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns with a header.
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// One JSON array of objects; decimals and huge integers as strings, exactly.
    Json,
}

/// One value of a result.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "sql"), allow(dead_code))]
pub(crate) enum Cell {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    /// Exact numbers (decimals) and everything printed as text (times, nested values).
    Text(String),
    /// A number that JSON should carry as a string to stay exact (decimals).
    Exact(String),
    Bytes(Vec<u8>),
}

impl Cell {
    fn plain(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Text(t) | Cell::Exact(t) => t.clone(),
            Cell::Bytes(b) => format!("\\x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Bool(b) => (*b).into(),
            Cell::Int(i) => i64::try_from(*i).map_or_else(|_| i.to_string().into(), Into::into),
            Cell::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
            Cell::Text(_) | Cell::Exact(_) | Cell::Bytes(_) => self.plain().into(),
        }
    }
}

/// A result: column names and rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Prints `answer` in `format`.
pub(crate) fn render(answer: &Answer, format: Format) -> String {
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = answer
                .rows
                .iter()
                .map(|row| {
                    let object = answer.columns.iter().cloned().zip(row.iter().map(Cell::json)).collect();
                    serde_json::Value::Object(object)
                })
                .collect();
            format!("{}\n", serde_json::Value::Array(rows))
        }
        Format::Csv => {
            let line = |cells: Vec<String>| cells.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",") + "\n";
            let mut out = line(answer.columns.clone());
            for row in &answer.rows {
                out.push_str(&line(row.iter().map(Cell::plain).collect()));
            }
            out
        }
        Format::Table => {
            let cells: Vec<Vec<String>> = answer
                .rows
                .iter()
                .map(|row| row.iter().map(|c| if *c == Cell::Null { "NULL".into() } else { c.plain() }).collect())
                .collect();
            let mut widths: Vec<usize> = answer.columns.iter().map(|c| c.chars().count()).collect();
            for row in &cells {
                for (w, c) in widths.iter_mut().zip(row) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let numeric: Vec<bool> = (0..answer.columns.len())
                .map(|i| {
                    answer
                        .rows
                        .iter()
                        .all(|r| matches!(r[i], Cell::Int(_) | Cell::Float(_) | Cell::Exact(_) | Cell::Null))
                })
                .collect();
            let line = |row: &[String]| {
                let padded: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .zip(&numeric)
                    .map(|((c, w), right)| if *right { format!("{c:>w$}") } else { format!("{c:<w$}") })
                    .collect();
                padded.join("  ").trim_end().to_string() + "\n"
            };
            let mut out = line(&answer.columns);
            out.push_str(&line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>()));
            for row in &cells {
                out.push_str(&line(row));
            }
            let n = answer.rows.len();
            out.push_str(&format!("({n} row{})\n", if n == 1 { "" } else { "s" }));
            out
        }
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Runs `tidelake sql`.
pub async fn run(args: Args) -> Result<(), BoxError> {
    let (config, specs) = args.tables.load().await?;
    let started = std::time::Instant::now();
    let views = crate::duckdb_init::views(&config, &specs, args.at_version).await?;
    let mut engine = engine::Engine::open(&views)?;
    let timed = |what: &str, started: std::time::Instant| {
        if args.timing {
            eprintln!("timing: {what} {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
        }
    };
    timed("views", started);
    let run = |engine: &mut engine::Engine, sql: &str| -> Result<String, BoxError> {
        let started = std::time::Instant::now();
        let answer = engine.query(sql)?;
        timed("statement", started);
        Ok(render(&answer, args.format))
    };
    if let Some(sql) = &args.sql {
        print!("{}", run(&mut engine, sql)?);
        return Ok(());
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let prompt = |continued: bool| {
        if interactive {
            eprint!("{}", if continued { "     ...> " } else { "tidelake> " });
            let _ = std::io::stderr().flush();
        }
    };
    let mut statement = String::new();
    let mut failed = false;
    prompt(false);
    for line in stdin.lock().lines() {
        let line = line?;
        let command = line.trim();
        if statement.is_empty() && command.starts_with('.') {
            match command {
                ".quit" | ".exit" => return Ok(()),
                ".refresh" => {
                    let views = crate::duckdb_init::views(&config, &specs, args.at_version).await?;
                    engine = engine::Engine::open(&views)?;
                    eprintln!("views re-read from the Delta logs");
                }
                other => eprintln!("unknown command `{other}`: use .refresh or .quit"),
            }
            prompt(false);
            continue;
        }
        statement.push_str(&line);
        statement.push('\n');
        if !command.ends_with(';') {
            prompt(!statement.trim().is_empty());
            continue;
        }
        match run(&mut engine, &statement) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
        statement.clear();
        prompt(false);
    }
    if failed && !interactive {
        return Err("a statement failed (see above)".into());
    }
    Ok(())
}

#[cfg(feature = "sql")]
mod engine {
    use super::{Answer, Cell};
    use crate::BoxError;

    /// An in-memory DuckDB with the lake's views.
    pub(crate) struct Engine {
        connection: duckdb::Connection,
    }

    impl Engine {
        pub(crate) fn open(views: &str) -> Result<Self, BoxError> {
            let connection = duckdb::Connection::open_in_memory()?;
            connection.execute_batch(views).map_err(|e| format!("defining the lake's views: {e}"))?;
            Ok(Engine { connection })
        }

        pub(crate) fn query(&mut self, sql: &str) -> Result<Answer, BoxError> {
            let mut statement = self.connection.prepare(sql)?;
            let mut rows = statement.query([])?;
            let mut answer = Answer::default();
            while let Some(row) = rows.next()? {
                let n = row.as_ref().column_count();
                let mut cells = Vec::with_capacity(n);
                for i in 0..n {
                    cells.push(cell(row.get::<_, duckdb::types::Value>(i)?));
                }
                answer.rows.push(cells);
            }
            answer.columns = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
            Ok(answer)
        }
    }

    fn cell(value: duckdb::types::Value) -> Cell {
        use duckdb::types::{TimeUnit, Value};
        let micros = |unit: TimeUnit, v: i64| match unit {
            TimeUnit::Second => v.saturating_mul(1_000_000),
            TimeUnit::Millisecond => v.saturating_mul(1_000),
            TimeUnit::Microsecond => v,
            TimeUnit::Nanosecond => v / 1_000,
        };
        match value {
            Value::Null => Cell::Null,
            Value::Boolean(b) => Cell::Bool(b),
            Value::TinyInt(i) => Cell::Int(i.into()),
            Value::SmallInt(i) => Cell::Int(i.into()),
            Value::Int(i) => Cell::Int(i.into()),
            Value::BigInt(i) => Cell::Int(i.into()),
            Value::HugeInt(i) => Cell::Int(i),
            Value::UTinyInt(i) => Cell::Int(i.into()),
            Value::USmallInt(i) => Cell::Int(i.into()),
            Value::UInt(i) => Cell::Int(i.into()),
            Value::UBigInt(i) => Cell::Int(i.into()),
            Value::UHugeInt(i) => i128::try_from(i).map_or_else(|_| Cell::Exact(i.to_string()), Cell::Int),
            Value::Float(f) => Cell::Float(f.into()),
            Value::Double(f) => Cell::Float(f),
            Value::Decimal(d) => Cell::Exact(d.to_string()),
            Value::Timestamp(unit, v) => Cell::Text(
                chrono::DateTime::from_timestamp_micros(micros(unit, v))
                    .map_or_else(|| v.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            ),
            Value::Date32(days) => Cell::Text(
                (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(days.into()))
                    .to_string(),
            ),
            Value::Text(t) => Cell::Text(t),
            Value::Blob(b) => Cell::Bytes(b),
            other => Cell::Text(format!("{other:?}")),
        }
    }
}

#[cfg(not(feature = "sql"))]
mod engine {
    use super::Answer;
    use crate::BoxError;

    pub(crate) struct Engine;

    impl Engine {
        pub(crate) fn open(_views: &str) -> Result<Self, BoxError> {
            Err("this tidelake was built without its embedded DuckDB. Build it with `--features sql` \
                 (links the libduckdb 1.5.6 that DUCKDB_LIB_DIR points at; `infra/duckdb.sh` fetches one) \
                 or `--features sql-bundled` (compiles DuckDB, about 25 minutes), or pipe \
                 `tidelake duckdb-init` into your own DuckDB"
                .into())
        }

        pub(crate) fn query(&mut self, _sql: &str) -> Result<Answer, BoxError> {
            unreachable!("an engine without DuckDB is never opened")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Answer {
        Answer {
            columns: vec!["ad_id".into(), "spend".into(), "note".into()],
            rows: vec![
                vec![Cell::Int(7), Cell::Exact("1.500000".into()), Cell::Text("a, \"b\"".into())],
                vec![Cell::Int(12), Cell::Null, Cell::Null],
            ],
        }
    }

    #[test]
    fn tables_align_numbers_right_and_count_rows() {
        assert_eq!(
            render(&answer(), Format::Table),
            "ad_id     spend  note\n-----  --------  ------\n    7  1.500000  a, \"b\"\n   12      NULL  NULL\n(2 rows)\n"
        );
    }

    #[test]
    fn csv_quotes_and_json_keeps_decimals_exact() {
        assert_eq!(render(&answer(), Format::Csv), "ad_id,spend,note\n7,1.500000,\"a, \"\"b\"\"\"\n12,,\n");
        let json: serde_json::Value = serde_json::from_str(&render(&answer(), Format::Json)).unwrap();
        assert_eq!(json[0]["spend"], "1.500000");
        assert_eq!(json[0]["ad_id"], 7);
        assert_eq!(json[1]["note"], serde_json::Value::Null);
    }
}
