//! Time travel on lake tables.
//!
//! A lake table name may carry the version to read: `"ad_events@v3"` (Delta version 3) or
//! `"ad_events@2026-11-23T12:00:00Z"` (the version current at that time; also
//! `2026-11-23 12:00:00`, UTC, or a date). Trino's syntax is accepted too and becomes such a name
//! before planning:
//!
//! ```sql
//! SELECT count(*) FROM lake.ad_events FOR VERSION AS OF 3
//! SELECT count(*) FROM lake.ad_events FOR TIMESTAMP AS OF TIMESTAMP '2026-11-23 12:00:00'
//! ```

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};

use crate::error::{Error, Result};

/// Which version of a lake table a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableVersion {
    /// The latest commit.
    Latest,
    /// A Delta version number.
    Version(u64),
    /// The version that was current at this time.
    Timestamp(DateTime<Utc>),
}

impl TableVersion {
    /// Splits `ad_events@v3` into the table name and the version it asks for.
    pub fn split(name: &str) -> Result<(&str, TableVersion), DataFusionError> {
        let Some((base, at)) = name.split_once('@') else {
            return Ok((name, TableVersion::Latest));
        };
        let refused = |reason: String| Error::Version { table: name.to_string(), reason };
        if let Some(number) = at.strip_prefix('v') {
            let version = number
                .parse()
                .map_err(|_| refused(format!("`{number}` is not a Delta version number (write `{base}@v3`)")))?;
            return Ok((base, TableVersion::Version(version)));
        }
        let time = parse_time(at).ok_or_else(|| {
            refused(format!(
                "`{at}` is neither `v<version>` nor a time (RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` in UTC, or a date)"
            ))
        })?;
        Ok((base, TableVersion::Timestamp(time)))
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

/// Rewrites `<table> FOR VERSION AS OF <n>` and `<table> FOR TIMESTAMP AS OF [TIMESTAMP] '<time>'`
/// into the quoted name `"<table>@v<n>"` / `"<table>@<time>"`; other SQL comes back unchanged.
pub fn rewrite_time_travel(sql: &str) -> Result<String> {
    let dialect = GenericDialect {};
    let mut tokens = Tokenizer::new(&dialect, sql).tokenize().map_err(|e| Error::Syntax(e.to_string()))?;
    let mut i = 0;
    while i < tokens.len() {
        if !is_keyword(&tokens[i], Keyword::FOR) {
            i += 1;
            continue;
        }
        let mut at = i + 1;
        let mut next = |tokens: &[Token]| -> Option<usize> {
            while matches!(tokens.get(at), Some(Token::Whitespace(_))) {
                at += 1;
            }
            let found = (at < tokens.len()).then_some(at);
            at += 1;
            found
        };
        let kind = next(&tokens);
        let (Some(kind), Some(as_), Some(of)) = (kind, next(&tokens), next(&tokens)) else {
            i += 1;
            continue;
        };
        let by_version = is_keyword(&tokens[kind], Keyword::VERSION);
        let by_time = is_keyword(&tokens[kind], Keyword::TIMESTAMP);
        if !(by_version || by_time) || !is_keyword(&tokens[as_], Keyword::AS) || !is_keyword(&tokens[of], Keyword::OF) {
            i += 1;
            continue;
        }
        let mut value = next(&tokens);
        if by_time && value.is_some_and(|v| is_keyword(&tokens[v], Keyword::TIMESTAMP)) {
            value = next(&tokens);
        }
        let suffix = match value.map(|v| &tokens[v]) {
            Some(Token::Number(n, _)) if by_version => format!("v{n}"),
            Some(Token::SingleQuotedString(t)) if by_time => t.clone(),
            _ => {
                return Err(Error::Syntax(format!(
                    "FOR {} AS OF takes {}",
                    if by_version { "VERSION" } else { "TIMESTAMP" },
                    if by_version {
                        "a version number"
                    } else {
                        "a time literal, e.g. TIMESTAMP '2026-11-23 12:00:00'"
                    }
                )))
            }
        };
        let end = value.expect("matched above") + 1;
        let Some(name) = (0..i).rev().find(|j| !matches!(tokens[*j], Token::Whitespace(_))) else {
            return Err(Error::Syntax("FOR ... AS OF must follow a table name".into()));
        };
        let Token::Word(word) = &tokens[name] else {
            return Err(Error::Syntax("FOR ... AS OF must follow a table name".into()));
        };
        let renamed = format!("{}@{suffix}", word.value);
        tokens[name] = Token::Word(Word { value: renamed, quote_style: Some('"'), keyword: Keyword::NoKeyword });
        tokens.drain(name + 1..end);
        i = name + 1;
    }
    Ok(tokens.iter().map(ToString::to_string).collect())
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.keyword == keyword)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trino_time_travel_becomes_a_versioned_name() {
        assert_eq!(
            rewrite_time_travel("SELECT count(*) FROM lake.ad_events FOR VERSION AS OF 3 WHERE ad_id = 1").unwrap(),
            "SELECT count(*) FROM lake.\"ad_events@v3\" WHERE ad_id = 1"
        );
        assert_eq!(
            rewrite_time_travel("select * from ad_events for timestamp as of timestamp '2026-11-23 12:00:00' t")
                .unwrap(),
            "select * from \"ad_events@2026-11-23 12:00:00\" t"
        );
        let plain = "SELECT substring(x FROM 1 FOR 2) FROM t";
        assert_eq!(rewrite_time_travel(plain).unwrap(), plain);
        assert!(rewrite_time_travel("SELECT * FROM t FOR VERSION AS OF 'x'").is_err());
    }

    #[test]
    fn versioned_names_split() {
        assert_eq!(TableVersion::split("t").unwrap(), ("t", TableVersion::Latest));
        assert_eq!(TableVersion::split("t@v12").unwrap(), ("t", TableVersion::Version(12)));
        let (_, at) = TableVersion::split("t@2026-11-23 12:00:00").unwrap();
        assert_eq!(at, TableVersion::Timestamp("2026-11-23T12:00:00Z".parse().unwrap()));
        let (_, at) = TableVersion::split("t@2026-11-23").unwrap();
        assert_eq!(at, TableVersion::Timestamp("2026-11-23T00:00:00Z".parse().unwrap()));
        assert!(TableVersion::split("t@vx").is_err());
        assert!(TableVersion::split("t@yesterday").is_err());
    }
}
