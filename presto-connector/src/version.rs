//! Time travel on lake tables.
//!
//! A lake table name may carry the version to read: `"ad_events@v3"` (Delta version 3) or
//! `"ad_events@2026-11-23T12:00:00Z"` (the version current at that time; also
//! `2026-11-23 12:00:00`, UTC, or a date). Trino's syntax is accepted too and becomes such a name
//! when the statement is parsed (see [`statement`](crate::statement)):
//!
//! ```sql
//! SELECT count(*) FROM lake.ad_events FOR VERSION AS OF 3
//! SELECT count(*) FROM lake.ad_events FOR TIMESTAMP AS OF TIMESTAMP '2026-11-23 12:00:00'
//! ```

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::error::DataFusionError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
