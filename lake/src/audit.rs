//! The audit: proof from the Delta logs alone that every Kafka offset a table has consumed landed
//! exactly once, as a row, a counted duplicate or a dead letter.
//!
//! It reads the [`Ledger`] of the data table, its dead letters and its archive, and checks:
//! - no two ingest commits of a table cover the same offset (a double count);
//! - every ingest commit added files holding the rows its commit info says it wrote;
//! - every file an ingest commit added is still in the table and in storage, or was rewritten with
//!   its rows kept (compaction); a file removed or lost is a gap;
//! - every file in the table was added by an ingest commit or a rewrite; any other is a double;
//! - a replace commit (`tidelake reprocess --into replace`) removed files whose rows it accounts
//!   for and added the reprocessed rows it says; the ingest files it removed are replaced, not
//!   lost;
//! - per topic-partition and commit: records = rows + duplicates + dead letters;
//! - per topic-partition: the archive holds as many records, and the dead-letter table as many
//!   letters, over the same offsets as the data table counted;
//! - offsets between two data commits that no commit covers are reported as [`Hole`]s: the archive
//!   must not hold records there, and the caller checks Kafka for them (offsets of transaction
//!   markers and aborted records are legitimate holes).
//!
//! With a rollup, the minute table's lineage is checked too: every data commit since the minute
//! table exists is aggregated by exactly one minute commit, from as many rows as it wrote.
//!
//! Only when a side table's commit straddles the end of the data table's offsets does the audit
//! read that commit's files (three columns), to count the records on each side.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::batch::TopicPartition;
use crate::error::{Error, Result};
use crate::files::DataFile;
use crate::ledger::{Commit, IngestInfo, Ledger, PartitionCounts, TableKind};

/// What kind of fault the audit found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Records consumed but not in the lake.
    Gap,
    /// Records in the lake more than once.
    Double,
    /// Counts that do not add up.
    Mismatch,
}

/// One fault, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What kind of fault.
    pub kind: ProblemKind,
    /// The Delta table it is in.
    pub table: String,
    /// The topic-partition it concerns, if one.
    pub partition: Option<String>,
    /// What is wrong, with versions, offsets and files.
    pub message: String,
}

/// Offsets of a topic-partition that lie between two data commits and that no commit covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hole {
    /// The topic-partition.
    pub partition: TopicPartition,
    /// First offset not covered.
    pub from: i64,
    /// Last offset not covered.
    pub to: i64,
}

/// What the lake holds of one topic-partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartitionAudit {
    /// The topic-partition.
    pub partition: TopicPartition,
    /// First offset covered by a data commit.
    pub first: i64,
    /// Last offset covered by a data commit.
    pub last: i64,
    /// Data commits covering it.
    pub commits: usize,
    /// Records the data commits cover.
    pub records: u64,
    /// Rows written.
    pub rows: u64,
    /// Records dropped as duplicates.
    pub duplicates: u64,
    /// Records that did not decode, as the data commits count them.
    pub dead_letters: u64,
    /// Rows of the dead-letter table over the same offsets.
    pub dead_letter_rows: u64,
    /// Records of the archive over the same offsets.
    pub archived: u64,
}

/// The result of an audit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// The data table.
    pub table: String,
    /// Ingest commits of the data table audited.
    pub commits: usize,
    /// Rows the audited data commits say they wrote.
    pub rows_committed: u64,
    /// Rows of the audited data commits' files that the table holds now.
    pub rows_in_table: u64,
    /// Rows of the audited data commits' files that a reprocess replaced since (`--into replace`).
    pub rows_replaced: u64,
    /// Replace commits: ranges of event days swapped for reprocessed rows.
    pub replaces: usize,
    /// Records the audited data commits kept without a dedup check: older than the dedup window.
    pub beyond_dedup_window: u64,
    /// Per topic-partition.
    pub partitions: Vec<PartitionAudit>,
    /// Offsets between data commits to check against Kafka.
    pub holes: Vec<Hole>,
    /// The minute rollup's lineage, when the table has a rollup.
    pub rollup: Option<RollupAudit>,
    /// Everything found wrong.
    pub problems: Vec<Problem>,
}

impl AuditReport {
    /// Whether the audit found nothing wrong.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Where the outcome of a table's last audit is kept, under its data table's folder: Delta readers
/// and vacuum leave folders whose names start with `_` alone.
pub const LAST_AUDIT: &str = "_tidelake/last_audit.json";

/// The outcome of an audit, as kept next to the table for the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditOutcome {
    /// When the audit ran, milliseconds since the epoch.
    pub at_ms: i64,
    /// Whether it found nothing wrong.
    pub passed: bool,
    /// The data table's version it audited up to.
    pub version: Option<u64>,
    /// Ingest commits audited.
    pub commits: usize,
    /// Rows those commits say they wrote.
    pub rows_committed: u64,
    /// Problems found, by kind.
    pub gaps: usize,
    /// See [`AuditOutcome::gaps`].
    pub doubles: usize,
    /// See [`AuditOutcome::gaps`].
    pub mismatches: usize,
    /// The first problem found, as said.
    pub first_problem: Option<String>,
    /// Whether Kafka was asked about the offsets between commits (not an offline audit).
    pub kafka_checked: bool,
    /// The commit times audited (milliseconds since the epoch), when not all of them.
    pub from_ms: Option<i64>,
    /// See [`AuditOutcome::from_ms`].
    pub to_ms: Option<i64>,
}

impl AuditOutcome {
    /// The outcome of `report`, an audit of `ledgers` over `range` run at `at_ms`.
    pub fn of(
        report: &AuditReport,
        ledgers: &TableLedgers,
        range: CommitRange,
        kafka_checked: bool,
        at_ms: i64,
    ) -> Self {
        let count = |kind: ProblemKind| report.problems.iter().filter(|p| p.kind == kind).count();
        AuditOutcome {
            at_ms,
            passed: report.passed(),
            version: ledgers.data.commits.last().map(|c| c.version),
            commits: report.commits,
            rows_committed: report.rows_committed,
            gaps: count(ProblemKind::Gap),
            doubles: count(ProblemKind::Double),
            mismatches: count(ProblemKind::Mismatch),
            first_problem: report.problems.first().map(|p| p.message.clone()),
            kafka_checked,
            from_ms: range.from_ms,
            to_ms: range.to_ms,
        }
    }

    /// Keeps this outcome as the last audit of the data table whose store is `data` (rooted at the
    /// table), replacing the one before.
    pub async fn record(&self, data: &dyn object_store::ObjectStore) -> Result<()> {
        let bytes = serde_json::to_vec(self).expect("an audit outcome serializes");
        data.put(&object_store::path::Path::from(LAST_AUDIT), bytes.into()).await?;
        Ok(())
    }

    /// The last audit kept for the data table whose store is `data` (`None`: never audited, or a
    /// record that does not read).
    pub async fn last(data: &dyn object_store::ObjectStore) -> Result<Option<AuditOutcome>> {
        let bytes = match data.get(&object_store::path::Path::from(LAST_AUDIT)).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // A record another version wrote, or a broken one, is no audit to show; the next audit
        // writes it again.
        match serde_json::from_slice(&bytes) {
            Ok(outcome) => Ok(Some(outcome)),
            Err(e) => {
                tracing::warn!(path = LAST_AUDIT, error = %e, "ignoring a last-audit record that does not read");
                Ok(None)
            }
        }
    }
}

/// Which commits to audit, by commit time (milliseconds since the epoch, inclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitRange {
    /// Audit commits made at or after this time.
    pub from_ms: Option<i64>,
    /// Audit commits made at or before this time.
    pub to_ms: Option<i64>,
}

impl CommitRange {
    fn contains(&self, commit: &Commit) -> bool {
        self.from_ms.is_none_or(|f| commit.timestamp_ms >= f) && self.to_ms.is_none_or(|t| commit.timestamp_ms <= t)
    }
}

/// The three ledgers of a configured table.
#[derive(Debug)]
pub struct TableLedgers {
    /// The data table.
    pub data: Ledger,
    /// The dead-letter table.
    pub dead_letters: Ledger,
    /// The archive.
    pub archive: Ledger,
    /// The rollup's minute table, with the data version its partial rows start after.
    pub minute: Option<(Ledger, u64)>,
}

/// The minute rollup's lineage, as the audit found it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollupAudit {
    /// The minute table.
    pub table: String,
    /// Data commits since the minute table exists.
    pub data_commits: usize,
    /// Of them, those a minute commit aggregated.
    pub aggregated: usize,
    /// Rows of the data commits aggregated.
    pub source_rows: u64,
    /// Minute commits that caught up after a crash.
    pub caught_up: usize,
}

/// Audits one configured table; see the module docs for what is checked.
pub async fn audit(ledgers: &TableLedgers, range: CommitRange) -> Result<AuditReport> {
    let mut problems = Vec::new();
    let data = check_table(&ledgers.data, TableKind::Data, range, &mut problems);
    check_table(&ledgers.dead_letters, TableKind::DeadLetters, range, &mut problems);
    check_table(&ledgers.archive, TableKind::Archive, range, &mut problems);

    let mut partitions = Vec::new();
    let mut holes = Vec::new();
    for (tp, mut parts) in data.by_partition {
        parts.sort_by_key(|(counts, _)| counts.first);
        let mut p = PartitionAudit {
            partition: tp.clone(),
            first: parts[0].0.first,
            last: parts.iter().map(|(c, _)| c.last).max().unwrap_or_default(),
            commits: parts.len(),
            ..PartitionAudit::default()
        };
        for (counts, version) in &parts {
            p.records += counts.records;
            p.rows += counts.rows;
            p.duplicates += counts.duplicates;
            p.dead_letters += counts.dead_letters;
            if counts.records != counts.rows + counts.duplicates + counts.dead_letters {
                problems.push(Problem {
                    kind: ProblemKind::Mismatch,
                    table: ledgers.data.name.clone(),
                    partition: Some(tp.to_string()),
                    message: format!(
                        "version {version} covers {} records at offsets {}..={} but counts {} rows + {} duplicates + {} dead letters",
                        counts.records, counts.first, counts.last, counts.rows, counts.duplicates, counts.dead_letters
                    ),
                });
            }
        }
        // Ingest recorded where it started the partition: offsets from there to the first one a
        // commit covers are a hole too (a lake that skipped history).
        if let Some(start) = parts[0].0.start.filter(|start| *start < parts[0].0.first) {
            holes.push(Hole { partition: tp.clone(), from: start, to: parts[0].0.first - 1 });
        }
        for pair in parts.windows(2) {
            let (a, b) = (&pair[0].0, &pair[1].0);
            if b.first > a.last + 1 {
                holes.push(Hole { partition: tp.clone(), from: a.last + 1, to: b.first - 1 });
            }
        }
        p.dead_letter_rows = count_in(&ledgers.dead_letters, range, &tp, p.first, p.last).await?;
        p.archived = count_in(&ledgers.archive, range, &tp, p.first, p.last).await?;
        let at = Some(tp.to_string());
        if p.archived != p.records {
            problems.push(Problem {
                kind: if p.archived < p.records { ProblemKind::Mismatch } else { ProblemKind::Gap },
                table: ledgers.archive.name.clone(),
                partition: at.clone(),
                message: format!(
                    "the archive holds {} records at offsets {}..={}, the data table accounts for {}",
                    p.archived, p.first, p.last, p.records
                ),
            });
        }
        if p.dead_letter_rows != p.dead_letters {
            problems.push(Problem {
                kind: ProblemKind::Mismatch,
                table: ledgers.dead_letters.name.clone(),
                partition: at,
                message: format!(
                    "the dead-letter table holds {} records at offsets {}..={}, the data table counts {}",
                    p.dead_letter_rows, p.first, p.last, p.dead_letters
                ),
            });
        }
        partitions.push(p);
    }
    partitions.sort_by(|a, b| a.partition.cmp(&b.partition));
    let rollup = ledgers
        .minute
        .as_ref()
        .map(|(minute, start)| check_rollup(&ledgers.data, minute, *start, range, &mut problems));

    Ok(AuditReport {
        rollup,
        table: ledgers.data.name.clone(),
        commits: data.commits,
        rows_committed: data.rows_committed,
        rows_in_table: data.rows_in_table,
        rows_replaced: data.rows_replaced,
        replaces: data.replaces,
        beyond_dedup_window: data.beyond_dedup_window,
        partitions,
        holes,
        problems,
    })
}

/// Checks that each data commit after `start` is in exactly one minute commit, with its rows.
fn check_rollup(
    data: &Ledger,
    minute: &Ledger,
    start: u64,
    range: CommitRange,
    problems: &mut Vec<Problem>,
) -> RollupAudit {
    let problem = |kind, message| Problem { kind, table: minute.name.clone(), partition: None, message };
    let mut audit = RollupAudit { table: minute.name.clone(), ..RollupAudit::default() };
    let mut taken: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut claimed_rows: Vec<(u64, u64, Vec<u64>)> = Vec::new();
    for commit in &minute.commits {
        let Some(info) = commit.rollup.as_ref().filter(|i| i.kind == crate::ledger::RollupKind::Partial) else {
            continue;
        };
        audit.caught_up += usize::from(info.caught_up);
        for v in &info.source_versions {
            taken.entry(*v).or_default().push(commit.version);
        }
        claimed_rows.push((commit.version, info.source_rows, info.source_versions.clone()));
    }
    // A minute log cleaned up past its retention no longer shows what it aggregated long ago.
    let start = match minute.commits.first() {
        Some(first) if first.version > 1 => start.max(
            claimed_rows.iter().flat_map(|(_, _, v)| v.iter().copied()).min().unwrap_or(u64::MAX).saturating_sub(1),
        ),
        _ => start,
    };
    let mut rows_of: HashMap<u64, u64> = HashMap::new();
    for commit in data.commits.iter().filter(|c| c.version > start && range.contains(c)) {
        let Some(info) = ingest_info(commit, TableKind::Data) else { continue };
        rows_of.insert(commit.version, info.rows);
        audit.data_commits += 1;
        match taken.get(&commit.version).map_or(0, Vec::len) {
            1 => {
                audit.aggregated += 1;
                audit.source_rows += info.rows;
            }
            0 => problems.push(problem(
                ProblemKind::Gap,
                format!(
                    "data version {} ({} rows) is in no minute commit: the minute table catches up when its offsets are delivered again (restart the poller)",
                    commit.version, info.rows
                ),
            )),
            _ => problems.push(problem(
                ProblemKind::Double,
                format!("data version {} is aggregated by minute commits {:?}", commit.version, taken[&commit.version]),
            )),
        }
    }
    for (version, rows, sources) in claimed_rows {
        if sources.iter().all(|v| rows_of.contains_key(v)) {
            let expected: u64 = sources.iter().map(|v| rows_of[v]).sum();
            if expected != rows {
                problems.push(problem(
                    ProblemKind::Mismatch,
                    format!("minute version {version} aggregated {rows} rows of data versions {sources:?}, which wrote {expected}"),
                ));
            }
        }
    }
    audit
}

/// What [`check_table`] gathered from a table's ingest commits.
#[derive(Debug, Default)]
struct TableSummary {
    commits: usize,
    rows_committed: u64,
    rows_in_table: u64,
    beyond_dedup_window: u64,
    rows_replaced: u64,
    replaces: usize,
    by_partition: BTreeMap<TopicPartition, Vec<(PartitionCounts, u64)>>,
}

fn ingest_info(commit: &Commit, kind: TableKind) -> Option<&IngestInfo> {
    commit.info.as_ref().filter(|info| info.kind == kind)
}

/// The checks of one table on its own: overlaps, files against commit infos, files gone or foreign.
fn check_table(ledger: &Ledger, kind: TableKind, range: CommitRange, problems: &mut Vec<Problem>) -> TableSummary {
    let problem =
        |kind, partition: Option<String>, message| Problem { kind, table: ledger.name.clone(), partition, message };
    let mut summary = TableSummary::default();
    let mut removed_by: HashMap<&str, &Commit> = HashMap::new();
    // Files the log's oldest rebuildable version holds (after a cleanup) count as those commits
    // counted them.
    let mut rows_of: HashMap<&str, Option<u64>> = ledger.base.iter().map(|(p, rows)| (p.as_str(), *rows)).collect();
    for commit in &ledger.commits {
        for remove in &commit.removes {
            removed_by.insert(&remove.path, commit);
        }
        for add in &commit.adds {
            rows_of.insert(&add.path, add.rows);
        }
    }
    // A file a replace commit removed: its rows were swapped for the reprocessed rows of its range.
    let replaced = |path: &str| -> bool {
        !ledger.active.contains_key(path) && removed_by.get(path).is_some_and(|c| c.replace.is_some())
    };
    let lost = |path: &str| -> Option<String> {
        if ledger.missing.contains(path) {
            return Some("is in the Delta log but gone from storage".into());
        }
        if ledger.active.contains_key(path) || replaced(path) {
            return None;
        }
        match removed_by.get(path) {
            Some(c) if c.removes.iter().any(|r| r.path == path && !r.data_change) => None,
            Some(c) => Some(format!("was removed by version {} ({})", c.version, c.operation)),
            None => Some("is not in the table".into()),
        }
    };
    // Rows of the files a commit removed, as the commits that added them counted; `None` when one
    // of them was added before the log's start and after its checkpoint's state (a commit the
    // checkpoint already holds): nothing left says how many rows it had.
    let removed_rows = |commit: &Commit| -> Option<u64> {
        commit.removes.iter().map(|r| rows_of.get(r.path.as_str()).map(|rows| rows.unwrap_or(0))).sum()
    };
    // A gap for each file a rewrite or a replace added that the table no longer holds.
    let lost_files = |commit: &Commit, origin: &str| -> Vec<Problem> {
        commit
            .adds
            .iter()
            .filter_map(|add| {
                let how = lost(&add.path)?;
                let rows = add.rows.unwrap_or(0);
                Some(problem(ProblemKind::Gap, None, format!("file {} {origin}, holding {rows} rows, {how}", add.path)))
            })
            .collect()
    };

    for commit in ledger.commits.iter().filter(|c| range.contains(c)) {
        match ingest_info(commit, kind) {
            Some(info) => {
                summary.commits += 1;
                summary.rows_committed += info.rows;
                summary.beyond_dedup_window += info.beyond_dedup_window;
                if commit.added_rows() != info.rows {
                    problems.push(problem(
                        ProblemKind::Mismatch,
                        None,
                        format!(
                            "version {} says it wrote {} rows but its files hold {}",
                            commit.version,
                            info.rows,
                            commit.added_rows()
                        ),
                    ));
                }
                let offsets: Vec<String> =
                    info.partitions().map(|(tp, c)| format!("{tp} offsets {}..={}", c.first, c.last)).collect();
                for add in &commit.adds {
                    match lost(&add.path) {
                        None if replaced(&add.path) => summary.rows_replaced += add.rows.unwrap_or(0),
                        None => summary.rows_in_table += add.rows.unwrap_or(0),
                        Some(how) => problems.push(problem(
                            ProblemKind::Gap,
                            None,
                            format!(
                                "file {} of version {} ({} rows of {}) {how}",
                                add.path,
                                commit.version,
                                add.rows.unwrap_or(0),
                                offsets.join(", ")
                            ),
                        )),
                    }
                }
                for (tp, counts) in info.partitions() {
                    summary.by_partition.entry(tp).or_default().push((counts.clone(), commit.version));
                }
            }
            None if commit.replace.is_some() => {
                let info = commit.replace.as_ref().expect("matched");
                summary.replaces += 1;
                let removed = removed_rows(commit).unwrap_or(info.rows_removed);
                if removed != info.rows_removed || commit.added_rows() != info.rows_added {
                    problems.push(problem(
                        ProblemKind::Mismatch,
                        None,
                        format!(
                            "version {} replaced event days {}..={} saying {} rows out and {} in, but its files hold {removed} out and {} in",
                            commit.version,
                            info.from,
                            info.to,
                            info.rows_removed,
                            info.rows_added,
                            commit.added_rows()
                        ),
                    ));
                }
                let origin = format!("put in by version {} from {}", commit.version, info.shadow);
                problems.extend(lost_files(commit, &origin));
            }
            None => {
                let rewrite = commit.adds.iter().chain(&commit.removes).all(|a| !a.data_change);
                if rewrite {
                    let removed = removed_rows(commit).unwrap_or(commit.added_rows());
                    if removed != commit.added_rows() {
                        problems.push(problem(
                            ProblemKind::Mismatch,
                            None,
                            format!(
                                "version {} ({}) rewrote files of {removed} rows into files of {} rows",
                                commit.version,
                                commit.operation,
                                commit.added_rows()
                            ),
                        ));
                    }
                    let origin = format!("written by version {} ({})", commit.version, commit.operation);
                    problems.extend(lost_files(commit, &origin));
                    continue;
                }
                let foreign: Vec<_> =
                    commit.adds.iter().filter(|a| a.data_change && ledger.active.contains_key(&a.path)).collect();
                if !foreign.is_empty() {
                    let rows: u64 = foreign.iter().filter_map(|a| a.rows).sum();
                    problems.push(problem(
                        ProblemKind::Double,
                        None,
                        format!(
                            "version {} ({}) added {rows} rows in {} files that no ingest commit accounts for: {}",
                            commit.version,
                            commit.operation,
                            foreign.len(),
                            foreign.iter().map(|a| a.path.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
    }

    for (tp, parts) in &mut summary.by_partition {
        parts.sort_by_key(|(counts, _)| counts.first);
        for pair in parts.windows(2) {
            let ((a, va), (b, vb)) = (&pair[0], &pair[1]);
            if b.first <= a.last {
                problems.push(problem(
                    ProblemKind::Double,
                    Some(tp.to_string()),
                    format!(
                        "offsets {}..={} are covered by both version {va} and version {vb}",
                        b.first,
                        a.last.min(b.last)
                    ),
                ));
            }
        }
    }
    summary
}

/// Rows the ingest commits of a side table (archive, dead letters) hold for `tp` at offsets
/// `from..=to`. A commit that covers offsets on both sides of the range has its files read.
async fn count_in(ledger: &Ledger, range: CommitRange, tp: &TopicPartition, from: i64, to: i64) -> Result<u64> {
    let mut total = 0;
    for commit in ledger.commits.iter().filter(|c| range.contains(c)) {
        let Some(info) = commit.info.as_ref() else { continue };
        for (_, counts) in info.partitions().filter(|(p, _)| p == tp) {
            if counts.last < from || counts.first > to {
                continue;
            }
            if counts.first >= from && counts.last <= to {
                total += counts.rows;
            } else {
                total += count_offsets_in_files(ledger, commit, tp, from, to).await?;
            }
        }
    }
    Ok(total)
}

async fn count_offsets_in_files(
    ledger: &Ledger,
    commit: &Commit,
    tp: &TopicPartition,
    from: i64,
    to: i64,
) -> Result<u64> {
    let mut total = 0;
    for add in &commit.adds {
        let path = object_store::path::Path::from(add.path.as_str());
        let file = DataFile::new(&ledger.store, &ledger.name, &path);
        let batches = file.read(Some(&["topic", "partition", "offset"])).await.map_err(|e| match e {
            Error::Delta { source, .. } => Error::Ledger {
                table: ledger.name.clone(),
                version: commit.version,
                reason: format!("file {}: {source}", add.path),
            },
            other => other,
        })?;
        for batch in batches {
            let (Some(topics), Some(partitions), Some(offsets)) =
                (batch.column_by_name("topic"), batch.column_by_name("partition"), batch.column_by_name("offset"))
            else {
                continue;
            };
            let (topics, partitions, offsets) = (
                topics.as_string::<i32>(),
                partitions.as_primitive::<arrow::datatypes::Int32Type>(),
                offsets.as_primitive::<Int64Type>(),
            );
            total += (0..batch.num_rows())
                .filter(|&i| {
                    topics.is_valid(i)
                        && topics.value(i) == tp.topic
                        && partitions.value(i) == tp.partition
                        && (from..=to).contains(&offsets.value(i))
                })
                .count() as u64;
        }
    }
    Ok(total)
}

/// Reads the ledgers of `spec`'s data table, dead letters and archive.
pub async fn read_ledgers(spec: &crate::TableSpec, storage_options: &HashMap<String, String>) -> Result<TableLedgers> {
    async fn one(name: String, uri: &url::Url, options: &HashMap<String, String>) -> Result<Ledger> {
        let table = crate::delta::open_existing(&name, uri, options, None).await?.ok_or_else(|| Error::Location {
            location: uri.to_string(),
            reason: format!("no Delta table `{name}` here: nothing has been ingested into it yet"),
        })?;
        Ledger::read(&name, &table).await
    }
    let [(data, data_at), (dead, dead_at), (archive, archive_at)] = spec.delta_tables();
    let mut minute = None;
    if let Some(rollup) = &spec.rollup {
        let grain = crate::rollup::Grain::Minute;
        let (name, at) = (rollup.table_name(grain), rollup.location(grain).expect("a rollup keeps minutes"));
        if let Some(table) = crate::delta::open_existing(&name, at, storage_options, None).await? {
            let snapshot = table.snapshot().map_err(Error::delta(&name))?;
            let start = snapshot
                .metadata()
                .configuration()
                .get(crate::rollup::SOURCE_VERSION_PROPERTY)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            minute = Some((Ledger::read(&name, &table).await?, start));
        }
    }
    Ok(TableLedgers {
        data: one(data, data_at, storage_options).await?,
        dead_letters: one(dead, dead_at, storage_options).await?,
        archive: one(archive, archive_at, storage_options).await?,
        minute,
    })
}
