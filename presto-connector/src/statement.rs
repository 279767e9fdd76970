//! From SQL text to the statement the planner gets, with the limits a hostile client meets first.
//!
//! The text is tokenized once and parsed from those tokens; nothing is ever printed back to SQL, so
//! every literal, comment, quoted identifier and Unicode character reaches the planner exactly as
//! the client wrote it. Trino's time-travel clauses are the one change (and each `?` parameter is
//! numbered, `$1`, `$2`, ..., for the values `EXECUTE` binds):
//!
//! ```text
//! lake.ad_events FOR VERSION AS OF 3                              -> lake."ad_events@v3"
//! ad_events FOR TIMESTAMP AS OF TIMESTAMP '2026-11-23 12:00:00'   -> "ad_events@2026-11-23 12:00:00"
//! ```
//!
//! The clause's tokens are taken out before parsing (DataFusion's SQL dialect has no such clause),
//! and the table name it followed is renamed in the parsed statement, found by its position in the
//! text. Before anything is parsed the text is held to [`Limits::max_statement_bytes`]; after, the
//! nesting depth of its expressions to [`Limits::max_depth`], so a statement that would take a
//! deep recursion to plan is refused as the client's error instead of exhausting a stack.

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType, Expr, ObjectName, ObjectNamePart, Value, ValueWithSpan, Visit, VisitMut, Visitor,
    VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::error::{Error, Result};

/// How large a statement may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of SQL text. Trino takes 1,000,000 characters; here planning a filter of a lake table
    /// holds about a thousand times its text's size for a while (a 250 KB `IN` list over a lake
    /// table peaked at 320 MB), so the default is a quarter of that.
    pub max_statement_bytes: usize,
    /// Nesting depth of expressions: `a + b + c` is 3 deep, an `IN` list of any length 2.
    pub max_depth: usize,
    /// Nesting depth of `+`, `-` and `*` alone: integer arithmetic is checked for overflow by a
    /// function per operator (see [`overflow`](crate::overflow)), and planning a chain of them
    /// costs the cube of its length.
    pub max_arithmetic_depth: usize,
    /// Nesting depth of the parser's recursion (parentheses, subqueries): DataFusion's default.
    pub max_parser_recursion: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_statement_bytes: 256 << 10, max_depth: 2_000, max_arithmetic_depth: 256, max_parser_recursion: 50 }
    }
}

/// Refuses a statement longer than `limits` allow, before anything reads it.
pub fn check_size(sql: &str, limits: &Limits) -> Result<()> {
    match sql.len() > limits.max_statement_bytes {
        true => Err(Error::TooLarge(format!(
            "the statement is {} bytes; the limit is {} (--max-statement-bytes)",
            sql.len(),
            limits.max_statement_bytes
        ))),
        false => Ok(()),
    }
}

/// Parses one statement, applying Trino's time-travel clauses, within `limits`.
pub fn parse(sql: &str, limits: &Limits) -> Result<Statement> {
    check_size(sql, limits)?;
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize_with_location().map_err(|e| Error::Syntax(e.to_string()))?;
    let (mut tokens, versions) = take_time_travel(tokens)?;
    number_parameters(&mut tokens);
    let mut statements = DFParserBuilder::new(tokens)
        .with_dialect(&dialect)
        .with_recursion_limit(limits.max_parser_recursion)
        .build()
        .map_err(|e| Error::Syntax(e.strip_backtrace()))?
        .parse_statements()
        .map_err(|e| Error::Syntax(e.strip_backtrace()))?;
    if statements.len() != 1 {
        return Err(Error::Syntax(format!("expected one statement, found {}", statements.len())));
    }
    let mut statement = statements.pop_front().expect("one statement");
    check_depth(&statement, limits)?;
    rewrite(&mut statement, versions)?;
    Ok(statement)
}

/// A time-travel clause taken out of the tokens: where the table name it follows starts, and the
/// suffix that name gets (`v3`, or the time as written).
#[derive(Debug, PartialEq)]
struct Versioned {
    name_at: Location,
    suffix: String,
}

/// Takes every `FOR VERSION AS OF <n>` and `FOR TIMESTAMP AS OF [TIMESTAMP] '<time>'` out of
/// `tokens`, noting the word token before each.
fn take_time_travel(mut tokens: Vec<TokenWithSpan>) -> Result<(Vec<TokenWithSpan>, Vec<Versioned>)> {
    let mut versions = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !is_keyword(&tokens[i].token, Keyword::FOR) {
            i += 1;
            continue;
        }
        let words: Vec<usize> = (i + 1..tokens.len()).filter(|j| !is_space(&tokens[*j].token)).take(5).collect();
        let word = |n: usize, keyword: Keyword| words.get(n).is_some_and(|j| is_keyword(&tokens[*j].token, keyword));
        let by_version = word(0, Keyword::VERSION);
        let by_time = word(0, Keyword::TIMESTAMP);
        if !(by_version || by_time) || !word(1, Keyword::AS) || !word(2, Keyword::OF) {
            i += 1;
            continue;
        }
        let value = if by_time && word(3, Keyword::TIMESTAMP) { words.get(4) } else { words.get(3) };
        let suffix = match value.map(|j| &tokens[*j].token) {
            Some(Token::Number(n, _)) if by_version && n.chars().all(|c| c.is_ascii_digit()) => format!("v{n}"),
            Some(Token::SingleQuotedString(t)) if by_time => t.clone(),
            _ if by_version => return Err(Error::Syntax("FOR VERSION AS OF takes a version number".into())),
            _ => {
                return Err(Error::Syntax(
                    "FOR TIMESTAMP AS OF takes a time literal, e.g. TIMESTAMP '2026-11-23 12:00:00'".into(),
                ))
            }
        };
        let name = (0..i).rev().find(|j| !is_space(&tokens[*j].token));
        let Some(name) = name.filter(|j| matches!(tokens[*j].token, Token::Word(_))) else {
            return Err(Error::Syntax("FOR ... AS OF must follow a table name".into()));
        };
        versions.push(Versioned { name_at: tokens[name].span.start, suffix });
        let end = value.expect("matched above") + 1;
        tokens.drain(i..end);
    }
    Ok((tokens, versions))
}

/// Numbers the statement's `?` parameters `$1`, `$2`, ... in the order they are written, the form
/// the planner binds values to.
fn number_parameters(tokens: &mut [TokenWithSpan]) {
    let mut n = 0;
    for token in tokens {
        if matches!(&token.token, Token::Placeholder(p) if p == "?") {
            n += 1;
            token.token = Token::Placeholder(format!("${n}"));
        }
    }
}

/// What the planner gets changed in the parsed statement: each table a time-travel clause followed
/// is renamed `<name>@<suffix>`, the name the `lake` schema reads that version under; a `U&'..'`
/// literal, decoded by the parser, becomes the plain string it stands for (DataFusion's planner
/// takes no other form).
fn rewrite(statement: &mut Statement, versions: Vec<Versioned>) -> Result<()> {
    struct Rewrite {
        versions: Vec<Versioned>,
    }
    impl VisitorMut for Rewrite {
        type Break = ();
        fn pre_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<()> {
            if let Some(ObjectNamePart::Identifier(ident)) = name.0.last_mut() {
                if let Some(k) = self.versions.iter().position(|v| v.name_at == ident.span.start) {
                    let version = self.versions.swap_remove(k);
                    ident.value = format!("{}@{}", ident.value, version.suffix);
                    ident.quote_style = Some('"');
                }
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            trino_forms(expr);
            ControlFlow::Continue(())
        }
        fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
            if let Value::UnicodeStringLiteral(text) = &mut value.value {
                value.value = Value::SingleQuotedString(std::mem::take(text));
            }
            ControlFlow::Continue(())
        }
    }
    let mut rewrite = Rewrite { versions };
    let mut current = statement;
    loop {
        match current {
            Statement::Statement(inner) => {
                let _ = VisitMut::visit(inner.as_mut(), &mut rewrite);
                break;
            }
            Statement::Explain(explain) => current = &mut explain.statement,
            _ => break,
        }
    }
    match rewrite.versions.is_empty() {
        true => Ok(()),
        false => Err(Error::Syntax("FOR ... AS OF must follow a table name in FROM or JOIN".into())),
    }
}

/// Trino's forms that DataFusion's planner takes in another shape: `CAST(x AS VARBINARY)` is
/// `CAST(x AS BYTEA)`.
fn trino_forms(expr: &mut Expr) {
    match expr {
        Expr::Cast { data_type, .. } if matches!(data_type, DataType::Varbinary(_) | DataType::Binary(_)) => {
            *data_type = DataType::Bytea;
        }
        _ => {}
    }
}

/// Refuses a statement whose expressions nest deeper than `limits` allow.
fn check_depth(statement: &Statement, limits: &Limits) -> Result<()> {
    struct Depth {
        now: usize,
        arithmetic: usize,
        limits: Limits,
        refused: Option<String>,
    }
    fn is_arithmetic(e: &Expr) -> bool {
        matches!(e, Expr::BinaryOp { op: BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Multiply, .. })
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            self.now += 1;
            self.arithmetic += usize::from(is_arithmetic(e));
            let max = self.limits.max_depth;
            let max_arithmetic = self.limits.max_arithmetic_depth;
            if self.now > max {
                self.refused = Some(format!(
                    "an expression of the statement nests more than {max} deep (a chain of {max} `AND` or `OR` is as \
                     deep); split it, or use IN (...) for a list of values"
                ));
            } else if self.arithmetic > max_arithmetic {
                self.refused = Some(format!(
                    "an arithmetic expression chains more than {max_arithmetic} `+`, `-` or `*`; sum the values with \
                     sum(...) over rows, or split the expression"
                ));
            }
            match self.refused {
                Some(_) => ControlFlow::Break(()),
                None => ControlFlow::Continue(()),
            }
        }
        fn post_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            self.now -= 1;
            self.arithmetic -= usize::from(is_arithmetic(e));
            ControlFlow::Continue(())
        }
    }
    let mut depth = Depth { now: 0, arithmetic: 0, limits: *limits, refused: None };
    let _ = match statement {
        Statement::Statement(inner) => Visit::visit(inner.as_ref(), &mut depth),
        Statement::Explain(explain) => match explain.statement.as_ref() {
            Statement::Statement(inner) => Visit::visit(inner.as_ref(), &mut depth),
            _ => ControlFlow::Continue(()),
        },
        _ => ControlFlow::Continue(()),
    };
    match depth.refused {
        Some(reason) => Err(Error::TooLarge(reason)),
        None => Ok(()),
    }
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.keyword == keyword)
}

fn is_space(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(sql: &str) -> String {
        parse(sql, &Limits::default()).unwrap().to_string()
    }

    #[test]
    fn time_travel_renames_the_table_and_leaves_the_rest_as_written() {
        assert_eq!(
            planned("SELECT count(*) FROM lake.ad_events FOR VERSION AS OF 3 WHERE user_id = 'O''Brien'"),
            "SELECT count(*) FROM lake.\"ad_events@v3\" WHERE user_id = 'O''Brien'"
        );
        assert_eq!(
            planned("select * from ad_events for timestamp as of timestamp '2026-11-23 12:00:00' t"),
            "SELECT * FROM \"ad_events@2026-11-23 12:00:00\" t"
        );
        assert_eq!(
            planned("SELECT * FROM a FOR VERSION AS OF 1 JOIN b FOR VERSION AS OF 2 ON a.x = b.x"),
            "SELECT * FROM \"a@v1\" JOIN \"b@v2\" ON a.x = b.x"
        );
        let plain = "SELECT SUBSTRING(x FROM 1 FOR 2) FROM t";
        assert_eq!(planned(plain), plain);
        assert!(matches!(parse("SELECT * FROM t FOR VERSION AS OF 'x'", &Limits::default()), Err(Error::Syntax(_))));
        assert!(matches!(parse("SELECT * FROM t FOR VERSION AS OF 1.5", &Limits::default()), Err(Error::Syntax(_))));
    }

    #[test]
    fn quotes_and_comments_inside_literals_stay_literals() {
        let sql = "SELECT count(*) FROM t WHERE user_id = 'x'' OR ''1''=''1' -- FOR VERSION AS OF 3";
        let statement = planned(sql);
        assert_eq!(statement, "SELECT count(*) FROM t WHERE user_id = 'x'' OR ''1''=''1'");
        assert_eq!(planned("SELECT 'FOR VERSION AS OF 3' FROM t"), "SELECT 'FOR VERSION AS OF 3' FROM t");
        assert_eq!(planned("SELECT U&'Zo\\00EB' FROM t"), "SELECT 'Zoë' FROM t");
    }

    #[test]
    fn statements_past_the_limits_are_refused() {
        let limits = Limits { max_statement_bytes: 200, max_depth: 10, max_arithmetic_depth: 5, ..Limits::default() };
        let long = format!("SELECT '{}'", "x".repeat(200));
        assert!(matches!(parse(&long, &limits), Err(Error::TooLarge(m)) if m.contains("limit is 200")));
        let chain = |n: usize, op: &str| format!("SELECT {}", vec!["x = 1"; n].join(op));
        assert!(parse(&chain(9, " OR "), &limits).is_ok());
        assert!(matches!(parse(&chain(10, " OR "), &limits), Err(Error::TooLarge(m)) if m.contains("10 deep")));
        let sum = |n: usize| format!("SELECT {}", vec!["1"; n].join(" + "));
        assert!(parse(&sum(6), &limits).is_ok());
        assert!(matches!(parse(&sum(7), &limits), Err(Error::TooLarge(m)) if m.contains("more than 5 `+`")));
        let list = format!("SELECT 1 IN ({})", vec!["1"; 40].join(", "));
        assert!(parse(&list, &limits).is_ok());
        assert!(matches!(parse("SELECT 1; SELECT 2", &limits), Err(Error::Syntax(_))));
    }
}
