//! A client's session, and the statements that read or change it: `PREPARE`, `EXECUTE`,
//! `EXECUTE IMMEDIATE`, `DEALLOCATE PREPARE`, `DESCRIBE INPUT`/`OUTPUT`, `USE`, `SET SESSION`,
//! `RESET SESSION` and `SHOW SESSION`.
//!
//! As in Trino, the server keeps no session: a client sends its catalog, schema, time zone,
//! session properties and prepared statements with every request, and a statement that changes
//! them answers with the change, which the client applies once the statement has succeeded
//! ([`Change`]). So the statements here are checked and answered without running anything, except
//! `EXECUTE`, which runs its prepared statement with the parameters bound as typed values: each
//! `USING` expression is evaluated to one value and put in place of its `?` in the planned
//! statement, never pasted into SQL text.
//!
//! ```text
//! PREPARE q FROM SELECT count(*) FROM ad_events WHERE ad_id = ?   -> Change::AddedPrepare("q", sql)
//! EXECUTE q USING 42                                             -> the prepared SQL, params [42]
//! EXECUTE IMMEDIATE 'SELECT ... = ?' USING BIGINT '42'           -> the quoted SQL, params [42]
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::error::{Error, Result};
use crate::metadata::SCHEMAS;
use crate::CATALOG;

/// What a client's session holds, as it sends it with each request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    /// `X-Trino-Catalog`: the catalog of unqualified names.
    pub catalog: Option<String>,
    /// `X-Trino-Schema`: the schema of unqualified names (`lake` when none).
    pub schema: Option<String>,
    /// `X-Trino-Time-Zone`: the zone `now()` and time literals without one are in.
    pub time_zone: Option<String>,
    /// `X-Trino-Session`: session properties by name.
    pub properties: BTreeMap<String, String>,
    /// `X-Trino-Prepared-Statement`: the SQL of each prepared statement by name.
    pub prepared: BTreeMap<String, String>,
}

/// A change a statement makes to its client's session, sent back as a response header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `X-Trino-Set-Catalog`.
    SetCatalog(String),
    /// `X-Trino-Set-Schema`.
    SetSchema(String),
    /// `X-Trino-Set-Session`: a property and its value.
    SetProperty(String, String),
    /// `X-Trino-Clear-Session`: a property back to its default.
    ClearProperty(String),
    /// `X-Trino-Added-Prepare`: a statement's name and SQL.
    AddedPrepare(String, String),
    /// `X-Trino-Deallocated-Prepare`: a statement's name.
    DeallocatedPrepare(String),
}

impl Change {
    /// The response header that tells a client of this change: its name and value (names and
    /// SQL URL-encoded, as Trino clients decode them).
    pub fn header(&self) -> (&'static str, String) {
        match self {
            Change::SetCatalog(catalog) => ("x-trino-set-catalog", catalog.clone()),
            Change::SetSchema(schema) => ("x-trino-set-schema", schema.clone()),
            Change::SetProperty(name, value) => ("x-trino-set-session", format!("{name}={}", encode(value))),
            Change::ClearProperty(name) => ("x-trino-clear-session", name.clone()),
            Change::AddedPrepare(name, sql) => ("x-trino-added-prepare", format!("{}={}", encode(name), encode(sql))),
            Change::DeallocatedPrepare(name) => ("x-trino-deallocated-prepare", encode(name)),
        }
    }
}

/// A session property tidelake acts on.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    /// Its name, as in Trino.
    pub name: &'static str,
    /// Its value when the session does not set it.
    pub default: &'static str,
    /// Its Trino type.
    pub kind: &'static str,
    /// What it does here.
    pub description: &'static str,
}

/// The session properties `SET SESSION` takes. Any other is refused, as Trino refuses an unknown
/// one: a setting that would be accepted and do nothing is worse than an error.
pub const PROPERTIES: [Property; 2] = [
    Property {
        name: "query_max_execution_time",
        default: "100d",
        kind: "varchar",
        description: "Longest a query may run, e.g. 30s, 10m, 2h; a query running longer fails with EXCEEDED_TIME_LIMIT",
    },
    Property {
        name: "query_max_run_time",
        default: "100d",
        kind: "varchar",
        description: "Longest a query may run, counted from when it was posted (queries here start at once, so as query_max_execution_time)",
    },
];

impl Session {
    /// The session of a client that sent only a schema.
    pub fn in_schema(schema: Option<&str>) -> Session {
        Session { schema: schema.map(str::to_string), ..Session::default() }
    }

    /// Checks what the client sent: a catalog and schema that exist, properties tidelake knows
    /// with values of their type.
    pub fn check(&self) -> Result<()> {
        if let Some(catalog) = &self.catalog {
            known_catalog(catalog)?;
        }
        if let Some(schema) = &self.schema {
            known_schema(schema)?;
        }
        if let Some(zone) = &self.time_zone {
            if zone.parse::<arrow::array::timezone::Tz>().is_err() {
                return Err(Error::Session(format!(
                    "Time zone not supported: {zone} (an IANA name such as Europe/Berlin, or an offset such as +02:00)"
                )));
            }
        }
        for (name, value) in &self.properties {
            check_property(name, value)?;
        }
        Ok(())
    }

    /// The longest a query of this session may run, when a property sets one.
    pub fn time_limit(&self) -> Option<Duration> {
        ["query_max_execution_time", "query_max_run_time"]
            .iter()
            .filter_map(|name| self.properties.get(*name))
            .filter_map(|value| parse_duration(value))
            .min()
    }
}

/// What a statement asks of the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run `sql` with `params` bound to its `?` in order (plain statements have none).
    Run {
        /// The statement.
        sql: String,
        /// The values of its parameters, as the client wrote them.
        params: Vec<SqlExpr>,
    },
    /// `DESCRIBE INPUT name`: the parameters of a prepared statement.
    DescribeInput(String),
    /// `DESCRIBE OUTPUT name`: the columns a prepared statement gives.
    DescribeOutput(String),
    /// `SHOW SESSION`: the properties, their values and defaults.
    ShowSession,
    /// A statement that only changes the session: answered with its changes and no rows.
    Changed {
        /// Trino's `updateType` for it, e.g. `PREPARE`.
        update_type: &'static str,
        /// What the client applies.
        changes: Vec<Change>,
    },
}

/// What `sql` asks of the server in `session`. Session statements are checked here (a prepared
/// statement must parse and exist, a catalog and schema must exist, a property must be known);
/// any other statement is returned to run as written.
pub fn command(sql: &str, session: &Session) -> Result<Command> {
    let dialect = GenericDialect {};
    let tokens: Vec<TokenWithSpan> = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| Error::Syntax(e.to_string()))?
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let mut words = Words { sql, tokens: &tokens, at: 0 };
    let run = || Command::Run { sql: sql.to_string(), params: Vec::new() };
    let Some(first) = words.keyword() else { return Ok(run()) };
    match first {
        Keyword::PREPARE => {
            let name = words.name("PREPARE takes a name: PREPARE name FROM statement")?;
            words.expect(Keyword::FROM, "PREPARE name FROM statement")?;
            let statement = words.rest().trim().trim_end_matches(';').trim().to_string();
            if statement.is_empty() {
                return Err(Error::Syntax("PREPARE name FROM statement: the statement is missing".into()));
            }
            if changes_the_session(&statement) {
                return Err(Error::Session(format!("PREPARE takes a query, not `{statement}`")));
            }
            crate::statement::parse(&statement, &crate::statement::Limits::default())?;
            Ok(Command::Changed { update_type: "PREPARE", changes: vec![Change::AddedPrepare(name, statement)] })
        }
        Keyword::EXECUTE => {
            let sql = match words.peek_keyword() == Some(Keyword::IMMEDIATE) {
                true => {
                    words.at += 1;
                    match words.next() {
                        Some(Token::SingleQuotedString(sql)) => sql.clone(),
                        _ => {
                            return Err(Error::Syntax(
                                "EXECUTE IMMEDIATE takes the statement as a string literal".into(),
                            ))
                        }
                    }
                }
                false => {
                    let name = words.name("EXECUTE takes a prepared statement's name: EXECUTE name [USING ...]")?;
                    prepared(session, &name)?.to_string()
                }
            };
            let params = match words.next() {
                None | Some(Token::SemiColon) => Vec::new(),
                Some(Token::Word(w)) if w.keyword == Keyword::USING && w.quote_style.is_none() => {
                    words.expressions()?
                }
                Some(other) => return Err(Error::Syntax(format!("EXECUTE: expected USING, found `{other}`"))),
            };
            Ok(Command::Run { sql, params })
        }
        Keyword::DEALLOCATE => {
            words.expect(Keyword::PREPARE, "DEALLOCATE PREPARE name")?;
            let name = words.name("DEALLOCATE PREPARE name")?;
            words.end()?;
            prepared(session, &name)?;
            Ok(Command::Changed { update_type: "DEALLOCATE", changes: vec![Change::DeallocatedPrepare(name)] })
        }
        Keyword::DESCRIBE if matches!(words.peek_keyword(), Some(Keyword::INPUT | Keyword::OUTPUT)) => {
            let input = words.keyword() == Some(Keyword::INPUT);
            let name = words.name("DESCRIBE INPUT|OUTPUT name")?;
            words.end()?;
            prepared(session, &name)?;
            Ok(if input { Command::DescribeInput(name) } else { Command::DescribeOutput(name) })
        }
        Keyword::USE => {
            let first = words.name("USE [catalog.]schema")?;
            let (catalog, schema) = match words.next() {
                Some(Token::Period) => (Some(first), words.name("USE [catalog.]schema")?),
                None | Some(Token::SemiColon) => (None, first),
                Some(other) => return Err(Error::Syntax(format!("USE [catalog.]schema: unexpected `{other}`"))),
            };
            words.end()?;
            let mut changes = Vec::new();
            if let Some(catalog) = catalog {
                known_catalog(&catalog)?;
                changes.push(Change::SetCatalog(catalog));
            }
            known_schema(&schema)?;
            changes.push(Change::SetSchema(schema));
            Ok(Command::Changed { update_type: "USE", changes })
        }
        Keyword::SET if words.peek_keyword() == Some(Keyword::SESSION) => {
            words.at += 1;
            let name = words.property()?;
            if words.next() != Some(&Token::Eq) {
                return Err(Error::Syntax("SET SESSION name = value".into()));
            }
            let value = match words.expressions()?.as_slice() {
                [SqlExpr::Value(v)] => match &v.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    Value::Number(n, _) => n.clone(),
                    Value::Boolean(b) => b.to_string(),
                    other => return Err(Error::Session(format!("SET SESSION {name}: `{other}` is not a value"))),
                },
                _ => return Err(Error::Session(format!("SET SESSION {name} takes one literal value"))),
            };
            check_property(&name, &value)?;
            Ok(Command::Changed { update_type: "SET SESSION", changes: vec![Change::SetProperty(name, value)] })
        }
        Keyword::RESET if words.peek_keyword() == Some(Keyword::SESSION) => {
            words.at += 1;
            let name = words.property()?;
            words.end()?;
            property(&name)?;
            Ok(Command::Changed { update_type: "RESET SESSION", changes: vec![Change::ClearProperty(name)] })
        }
        Keyword::SHOW if words.peek_keyword() == Some(Keyword::SESSION) => {
            words.at += 1;
            words.end()?;
            Ok(Command::ShowSession)
        }
        _ => Ok(run()),
    }
}

/// `SHOW SESSION`: each property tidelake acts on, its value in `session`, its default, type
/// and what it does.
pub fn show(session: &Session) -> RecordBatch {
    let names = ["Name", "Value", "Default", "Type", "Description"];
    let schema = Arc::new(Schema::new(names.map(|n| Field::new(n, DataType::Utf8, false)).to_vec()));
    let column = |f: &dyn Fn(&Property) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(PROPERTIES.iter().map(f)))
    };
    let value = |p: &Property| session.properties.get(p.name).cloned().unwrap_or_else(|| p.default.to_string());
    let columns = vec![
        column(&|p| p.name.to_string()),
        column(&value),
        column(&|p| p.default.to_string()),
        column(&|p| p.kind.to_string()),
        column(&|p| p.description.to_string()),
    ];
    RecordBatch::try_new(schema, columns).expect("columns match the schema")
}

/// Whether `sql` is a statement of this module's (not a query to prepare), told by its first words
/// alone: a `PREPARE` of a `PREPARE` of ... is refused without reading it any further.
fn changes_the_session(sql: &str) -> bool {
    let dialect = GenericDialect {};
    let mut tokenizer = Tokenizer::new(&dialect, sql);
    let Ok(tokens) = tokenizer.tokenize() else { return false };
    let mut words = tokens.iter().filter_map(|t| match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        Token::Whitespace(_) => None,
        _ => Some(Keyword::NoKeyword),
    });
    matches!(
        (words.next(), words.next()),
        (Some(Keyword::PREPARE | Keyword::EXECUTE | Keyword::DEALLOCATE | Keyword::USE), _)
            | (Some(Keyword::SET | Keyword::RESET | Keyword::SHOW), Some(Keyword::SESSION))
            | (Some(Keyword::DESCRIBE), Some(Keyword::INPUT | Keyword::OUTPUT))
    )
}

/// The SQL of prepared statement `name`.
pub fn prepared<'a>(session: &'a Session, name: &str) -> Result<&'a str> {
    session
        .prepared
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| Error::Session(format!("Prepared statement not found: {name}")))
}

/// The tokens of a statement, read word by word.
struct Words<'a> {
    sql: &'a str,
    tokens: &'a [TokenWithSpan],
    at: usize,
}

impl Words<'_> {
    fn next(&mut self) -> Option<&Token> {
        let token = self.tokens.get(self.at).map(|t| &t.token);
        self.at += 1;
        token
    }

    fn peek_keyword(&self) -> Option<Keyword> {
        match self.tokens.get(self.at).map(|t| &t.token) {
            Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.keyword),
            _ => None,
        }
    }

    fn keyword(&mut self) -> Option<Keyword> {
        let keyword = self.peek_keyword();
        self.at += 1;
        keyword
    }

    fn expect(&mut self, keyword: Keyword, form: &str) -> Result<()> {
        match self.keyword() == Some(keyword) {
            true => Ok(()),
            false => Err(Error::Syntax(format!("expected {form}"))),
        }
    }

    /// An identifier: as written when quoted, lower-cased when not.
    fn name(&mut self, form: &str) -> Result<String> {
        match self.next() {
            Some(Token::Word(w)) if w.quote_style.is_some() => Ok(w.value.clone()),
            Some(Token::Word(w)) => Ok(w.value.to_lowercase()),
            _ => Err(Error::Syntax(format!("expected {form}"))),
        }
    }

    /// A session property's name: `name` or `catalog.name`.
    fn property(&mut self) -> Result<String> {
        let mut name = self.name("a session property's name")?;
        while self.tokens.get(self.at).map(|t| &t.token) == Some(&Token::Period) {
            self.at += 1;
            name = format!("{name}.{}", self.name("a session property's name")?);
        }
        Ok(name)
    }

    /// Nothing but a `;` may follow.
    fn end(&self) -> Result<()> {
        match &self.tokens[self.at.min(self.tokens.len())..] {
            [] => Ok(()),
            [last] if last.token == Token::SemiColon => Ok(()),
            [next, ..] => Err(Error::Syntax(format!("unexpected `{}` at the end of the statement", next.token))),
        }
    }

    /// The statement's text from the current token on, exactly as written.
    fn rest(&self) -> &str {
        match self.tokens.get(self.at) {
            Some(token) => &self.sql[offset(self.sql, token.span.start)..],
            None => "",
        }
    }

    /// A comma-separated list of expressions up to the end of the statement.
    fn expressions(&mut self) -> Result<Vec<SqlExpr>> {
        let rest: Vec<TokenWithSpan> = self.tokens[self.at.min(self.tokens.len())..].to_vec();
        self.at = self.tokens.len();
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect).with_tokens_with_locations(rest);
        let list = parser.parse_comma_separated(Parser::parse_expr).map_err(|e| Error::Syntax(e.to_string()))?;
        let _ = parser.consume_token(&Token::SemiColon);
        match parser.peek_token().token {
            Token::EOF => Ok(list),
            other => Err(Error::Syntax(format!("unexpected `{other}` after the values"))),
        }
    }
}

/// The byte offset of `location` (1-based line and character column) in `sql`.
fn offset(sql: &str, location: Location) -> usize {
    let mut line = 1;
    let mut column = 1;
    for (i, c) in sql.char_indices() {
        if line == location.line && column == location.column {
            return i;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    sql.len()
}

fn property(name: &str) -> Result<&'static Property> {
    PROPERTIES.iter().find(|p| p.name == name).ok_or_else(|| {
        let known: Vec<&str> = PROPERTIES.iter().map(|p| p.name).collect();
        Error::Session(format!("Session property '{name}' does not exist (tidelake has {})", known.join(", ")))
    })
}

fn check_property(name: &str, value: &str) -> Result<()> {
    property(name)?;
    match parse_duration(value) {
        Some(_) => Ok(()),
        None => Err(Error::Session(format!(
            "Session property '{name}': `{value}` is not a duration (a number and a unit: ms, s, m, h or d, e.g. 30s)"
        ))),
    }
}

/// A duration as Trino writes one: a number and a unit (`500ms`, `30s`, `1.5m`, `2h`, `100d`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ns" => number / 1e9,
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

fn known_catalog(catalog: &str) -> Result<()> {
    match catalog == CATALOG || catalog == crate::system::SYSTEM_CATALOG {
        true => Ok(()),
        false => Err(Error::Session(format!("Catalog '{catalog}' does not exist (there is one: {CATALOG})"))),
    }
}

fn known_schema(schema: &str) -> Result<()> {
    match SCHEMAS.contains(&schema) || schema == "jdbc" {
        true => Ok(()),
        false => Err(Error::Session(format!("Schema '{schema}' does not exist (there are {})", SCHEMAS.join(", ")))),
    }
}

/// `text` URL-encoded as a form value (space as `+`), the way Trino clients decode header values.
pub fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A header value a Trino client URL-encoded.
pub fn decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// `name=value` pairs of a header, comma-separated and URL-encoded, decoded.
pub fn pairs(values: &[&str]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err(Error::Session(format!("a header value `{part}` is not name=value")));
        };
        out.push((decode(name.trim()), decode(value.trim())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_with(name: &str, sql: &str) -> Session {
        Session { prepared: BTreeMap::from([(name.to_string(), sql.to_string())]), ..Session::default() }
    }

    #[test]
    fn prepare_keeps_the_statement_as_written() {
        let sql = "PREPARE q1 FROM\n  SELECT 'a ''b''' /* ? */, x FROM t WHERE y = ? ;";
        let Command::Changed { update_type, changes } = command(sql, &Session::default()).unwrap() else {
            panic!("PREPARE changes the session")
        };
        assert_eq!(update_type, "PREPARE");
        assert_eq!(
            changes,
            vec![Change::AddedPrepare("q1".into(), "SELECT 'a ''b''' /* ? */, x FROM t WHERE y = ?".into())]
        );
        assert!(matches!(command("PREPARE q FROM SELEC 1", &Session::default()), Err(Error::Syntax(_))));
        assert!(matches!(command("PREPARE q FROM USE live", &Session::default()), Err(Error::Session(_))));
        // Nested to any depth, refused at the first level, with no recursion.
        let nested = format!("{}SELECT 1", "PREPARE q FROM ".repeat(20_000));
        assert!(matches!(command(&nested, &Session::default()), Err(Error::Session(_))));
    }

    #[test]
    fn execute_binds_the_prepared_statement_or_the_quoted_one() {
        let session = session_with("q1", "SELECT ? + 1");
        let Command::Run { sql, params } = command("EXECUTE q1 USING BIGINT '5'", &session).unwrap() else {
            panic!("EXECUTE runs")
        };
        assert_eq!(sql, "SELECT ? + 1");
        assert_eq!(params.len(), 1);
        let Command::Run { sql, params } =
            command("EXECUTE IMMEDIATE 'SELECT ''O''''Brien'' = ?' USING 'x', NULL", &session).unwrap()
        else {
            panic!("EXECUTE IMMEDIATE runs")
        };
        assert_eq!(sql, "SELECT 'O''Brien' = ?");
        assert_eq!(params.len(), 2);
        let missing = command("EXECUTE q2 USING 1", &session).unwrap_err();
        assert_eq!(missing.to_string(), "Prepared statement not found: q2");
    }

    #[test]
    fn session_statements_answer_with_their_changes() {
        let session = session_with("q1", "SELECT 1");
        let changes = |sql: &str| match command(sql, &session).unwrap() {
            Command::Changed { changes, .. } => changes,
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(
            changes("USE tidelake.live"),
            vec![Change::SetCatalog("tidelake".into()), Change::SetSchema("live".into())]
        );
        assert_eq!(changes("use KAFKA"), vec![Change::SetSchema("kafka".into())]);
        assert_eq!(changes("DEALLOCATE PREPARE q1"), vec![Change::DeallocatedPrepare("q1".into())]);
        assert_eq!(
            changes("SET SESSION query_max_execution_time = '30s'"),
            vec![Change::SetProperty("query_max_execution_time".into(), "30s".into())]
        );
        assert_eq!(
            changes("RESET SESSION query_max_run_time"),
            vec![Change::ClearProperty("query_max_run_time".into())]
        );
        assert!(command("USE hive.default", &session)
            .unwrap_err()
            .to_string()
            .contains("Catalog 'hive' does not exist"));
        assert!(command("SET SESSION nothing = 1", &session).unwrap_err().to_string().contains("does not exist"));
        assert!(command("SET SESSION query_max_run_time = 'soon'", &session)
            .unwrap_err()
            .to_string()
            .contains("duration"));
        assert_eq!(command("SHOW SESSION", &session).unwrap(), Command::ShowSession);
        assert_eq!(command("DESCRIBE OUTPUT q1", &session).unwrap(), Command::DescribeOutput("q1".into()));
        assert!(matches!(command("DESCRIBE ad_events", &session).unwrap(), Command::Run { .. }));
    }

    #[test]
    fn headers_carry_names_and_sql_url_encoded() {
        let change = Change::AddedPrepare("q1".into(), "SELECT a, b FROM t WHERE c = 'x y'".into());
        let (name, value) = change.header();
        assert_eq!(name, "x-trino-added-prepare");
        assert!(!value[3..].contains(',') && !value.contains(' '));
        let back = pairs(&[&value, "q2=SELECT+1"]).unwrap();
        assert_eq!(back[0], ("q1".into(), "SELECT a, b FROM t WHERE c = 'x y'".into()));
        assert_eq!(back[1], ("q2".into(), "SELECT 1".into()));
        assert_eq!(parse_duration("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("ten"), None);
    }
}
