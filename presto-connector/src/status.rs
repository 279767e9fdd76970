//! How each table of the pipeline stands right now, for `tidelake serve`'s status page (`/ui`)
//! and its Prometheus metrics (`/metrics`): how fresh the lake and Kafka are, how far ingest is
//! behind per partition, what the table holds, what went to the dead letters and why, and its
//! recent commits with their counts.
//!
//! Each figure is looked up on its own: Kafka not answering or a table not created yet leaves the
//! rest of the status as it is and says what failed in `problems`.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Int64Type};
use deltalake::DeltaTable;
use serde::Serialize;
use tidelake_lake::audit::AuditOutcome;
use tidelake_lake::ledger::Commit;
use tidelake_lake::TableSpec;

use crate::catalog::Shared;
use crate::connector::Connector;
use crate::version::TableVersion;

/// Commits of a data table the status lists, newest first.
pub const RECENT_COMMITS: usize = 12;

/// Dead-letter reasons the status lists, most frequent first.
pub const TOP_REASONS: usize = 8;

/// One table of the pipeline, as it stands.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableStatus {
    /// The data table.
    pub table: String,
    /// Its topic.
    pub topic: String,
    /// The data table's latest version (`None`: no commit yet).
    pub version: Option<u64>,
    /// Rows of the latest version.
    pub rows: u64,
    /// Data files of the latest version.
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
    /// The newest event time the lake holds, milliseconds since the epoch (from file statistics).
    pub newest_event_ms: Option<i64>,
    /// The timestamp of the newest record of the topic, milliseconds since the epoch.
    pub newest_record_ms: Option<i64>,
    /// Per partition, the records of the topic above the offsets the lake holds.
    pub lag: BTreeMap<i32, u64>,
    /// Rows of the dead-letter table.
    pub dead_letters: u64,
    /// The most frequent kinds of dead letter.
    pub dead_letter_reasons: Vec<ReasonCount>,
    /// The data table's recent commits, newest first.
    pub commits: Vec<CommitSummary>,
    /// The outcome of the last `tidelake audit` of the table (`None`: never audited).
    pub last_audit: Option<AuditOutcome>,
    /// What could not be looked up, and why.
    pub problems: Vec<String>,
}

impl TableStatus {
    /// Records of the topic above the lake's offsets, over all partitions.
    pub fn lag_total(&self) -> u64 {
        self.lag.values().sum()
    }
}

/// A kind of dead letter: the reason up to its first colon (`column `cost``, `invalid JSON`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    /// The kind.
    pub reason: String,
    /// Dead letters of that kind.
    pub count: u64,
    /// One whole reason of that kind.
    pub example: String,
}

/// One commit of a data table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitSummary {
    /// Table version it made.
    pub version: u64,
    /// Commit time, milliseconds since the epoch.
    pub at_ms: i64,
    /// `ingest`, `compaction`, `replace`, or Delta's operation name.
    pub kind: String,
    /// Rows its files added.
    pub rows_added: u64,
    /// With ingest: records of its batch sent to the dead letters.
    pub dead_letters: u64,
    /// With ingest: copies of an event UUID dropped.
    pub duplicates: u64,
    /// Files added.
    pub files_added: usize,
    /// Files removed.
    pub files_removed: usize,
}

impl CommitSummary {
    fn of(commit: &Commit) -> Self {
        let kind = if commit.info.is_some() {
            "ingest".to_string()
        } else if commit.replace.is_some() {
            "replace".to_string()
        } else if commit.operation == "OPTIMIZE"
            || (!commit.adds.is_empty() && commit.adds.iter().chain(&commit.removes).all(|f| !f.data_change))
        {
            "compaction".to_string()
        } else {
            commit.operation.to_lowercase()
        };
        CommitSummary {
            version: commit.version,
            at_ms: commit.timestamp_ms,
            kind,
            rows_added: commit.added_rows(),
            dead_letters: commit.info.as_ref().map_or(0, |i| i.dead_letters),
            duplicates: commit.info.as_ref().map_or(0, |i| i.duplicates),
            files_added: commit.adds.len(),
            files_removed: commit.removes.len(),
        }
    }
}

/// The status of every table of `shared`'s config.
pub(crate) async fn collect(connector: &Connector, shared: &Shared) -> Vec<TableStatus> {
    let mut all = Vec::new();
    for spec in &shared.config.tables {
        all.push(table_status(connector, shared, spec).await);
    }
    all
}

async fn table_status(connector: &Connector, shared: &Shared, spec: &TableSpec) -> TableStatus {
    let mut status = TableStatus { table: spec.name.clone(), topic: spec.topic.clone(), ..TableStatus::default() };
    let data = match shared.open(&spec.name, &spec.location, &TableVersion::Latest).await {
        Ok(table) => table,
        Err(e) => {
            status.problems.push(format!("reading {}: {e}", spec.name));
            None
        }
    };
    if let Some(table) = &data {
        if let Err(e) = describe_files(table, spec, &mut status) {
            status.problems.push(format!("listing the files of {}: {e}", spec.name));
        }
        match recent_commits(shared, &spec.name, table).await {
            Ok(commits) => status.commits = commits,
            Err(e) => status.problems.push(format!("reading the commits of {}: {e}", spec.name)),
        }
        match AuditOutcome::last(table.object_store().as_ref()).await {
            Ok(outcome) => status.last_audit = outcome,
            Err(e) => status.problems.push(format!("reading the last audit of {}: {e}", spec.name)),
        }
    }
    match shared.tail_bounds(spec, data.as_ref()).await {
        Ok(bounds) => {
            status.lag = bounds.ranges.iter().map(|(p, (start, end))| (*p, (end - start).max(0) as u64)).collect();
            let last: BTreeMap<i32, (i64, i64)> = bounds
                .ranges
                .iter()
                .filter(|(_, (_, end))| *end > 0)
                .map(|(p, (_, end))| (*p, (end - 1, *end)))
                .collect();
            match shared.read_offsets(&spec.topic, last).await {
                Ok(records) => status.newest_record_ms = records.iter().filter_map(|r| r.timestamp_ms).max(),
                Err(e) => status.problems.push(format!("reading the newest records of {}: {e}", spec.topic)),
            }
        }
        Err(e) => status.problems.push(e.to_string()),
    }
    let dead_name = format!("{}_dead_letters", spec.name);
    match shared.open(&dead_name, &spec.dead_letters, &TableVersion::Latest).await {
        Ok(Some(table)) => {
            status.dead_letters = tidelake_lake::delta::row_and_file_count(&table).map_or(0, |(rows, _)| rows);
            if status.dead_letters > 0 {
                match dead_letter_reasons(connector, &dead_name).await {
                    Ok(reasons) => status.dead_letter_reasons = reasons,
                    Err(e) => status.problems.push(format!("grouping the dead letters of {}: {e}", spec.name)),
                }
            }
        }
        Ok(None) => {}
        Err(e) => status.problems.push(format!("reading {dead_name}: {e}")),
    }
    status
}

/// Rows, files, bytes and the newest event time of the table's latest version.
fn describe_files(table: &DeltaTable, spec: &TableSpec, status: &mut TableStatus) -> Result<(), String> {
    status.version = table.version();
    let snapshot = table.snapshot().map_err(|e| e.to_string())?;
    for file in snapshot.log_data().iter() {
        status.rows += file.num_records().unwrap_or(0) as u64;
        status.files += 1;
        status.bytes += file.size().max(0) as u64;
        let newest = file.stats().and_then(|stats| newest_in_stats(&stats, &spec.event_time));
        status.newest_event_ms = status.newest_event_ms.max(newest);
    }
    Ok(())
}

/// The `maxValues` of `column` in a file's statistics (Delta's JSON form), in milliseconds.
fn newest_in_stats(stats: &str, column: &str) -> Option<i64> {
    let stats: serde_json::Value = serde_json::from_str(stats).ok()?;
    let text = stats.get("maxValues")?.get(column)?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

/// The newest [`RECENT_COMMITS`] commits of `table`, newest first.
async fn recent_commits(shared: &Shared, name: &str, table: &DeltaTable) -> crate::Result<Vec<CommitSummary>> {
    let Some(latest) = table.version() else { return Ok(Vec::new()) };
    let mut commits = Vec::new();
    for version in (0..=latest).rev().take(RECENT_COMMITS) {
        match shared.commit_summary(name, table, version).await? {
            Some(summary) => commits.push(summary),
            // The log no longer holds it, nor anything older.
            None => break,
        }
    }
    Ok(commits)
}

/// Reads commit `version` of `table` as a summary (`None`: the log no longer holds it).
pub(crate) async fn read_summary(
    name: &str,
    table: &DeltaTable,
    version: u64,
) -> tidelake_lake::Result<Option<CommitSummary>> {
    Ok(tidelake_lake::ledger::read_commit(name, table, version).await?.as_ref().map(CommitSummary::of))
}

/// The dead letters of `table` grouped by kind, most frequent first.
async fn dead_letter_reasons(connector: &Connector, table: &str) -> crate::Result<Vec<ReasonCount>> {
    let sql = format!(
        "SELECT split_part(reason, ':', 1) AS kind, count(*) AS n, min(reason) AS example \
         FROM lake.\"{table}\" GROUP BY 1 ORDER BY n DESC, kind LIMIT {TOP_REASONS}"
    );
    let (_, batches) = connector.query(&sql).await?;
    let mut reasons = Vec::new();
    for batch in &batches {
        let text = |i: usize| {
            arrow::compute::cast(batch.column(i), &DataType::Utf8)
                .map_err(|e| crate::Error::Query(datafusion::error::DataFusionError::ArrowError(Box::new(e), None)))
        };
        let (kinds, examples) = (text(0)?, text(2)?);
        let (kinds, examples) = (kinds.as_string::<i32>(), examples.as_string::<i32>());
        let counts = batch.column(1).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            reasons.push(ReasonCount {
                reason: kinds.value(row).to_string(),
                count: counts.value(row).max(0) as u64,
                example: examples.value(row).to_string(),
            });
        }
    }
    Ok(reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_event_comes_from_the_max_values_of_the_event_time_column() {
        let stats = r#"{"numRecords":3,"minValues":{"at":"2026-11-23T10:00:00.000Z"},"maxValues":{"at":"2026-11-23T12:30:00.123Z","n":4}}"#;
        let expected = chrono::DateTime::parse_from_rfc3339("2026-11-23T12:30:00.123Z").unwrap().timestamp_millis();
        assert_eq!(newest_in_stats(stats, "at"), Some(expected));
        assert_eq!(newest_in_stats(stats, "n"), None, "not a time");
        assert_eq!(newest_in_stats(stats, "other"), None);
        assert_eq!(newest_in_stats("not json", "at"), None);
    }
}
