//! The swap of `tidelake reprocess --into replace`: the rows of a range of event days in a live
//! table exchanged for the rows a reprocess wrote into its shadow table, in one Delta commit.
//!
//! The shadow's files of the range are copied next to the live table's files under names that
//! carry the shadow and its version (`replace-<shadow>-v<version>-<file>`); one commit then adds
//! the copies and removes every live file of those `event_date` partitions, with the range and
//! row counts in its commit info ([`ReplaceInfo`]) for the audit and the shadow's version as an
//! application transaction (`txn`). Readers see the old range or the new one, never a mix. Run
//! again after a crash, the copies are made again and committed; run again after the commit, the
//! transaction shows the shadow version is in, and nothing is committed.

use chrono::NaiveDate;
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use object_store::ObjectStoreExt;
use serde::Serialize;
use tidelake_lake::commit::{Depends, Prepared, Region};
use tidelake_lake::ledger::ReplaceInfo;
use tidelake_lake::rollup::DATE_COLUMN;
use tidelake_lake::PipelineConfig;
use url::Url;

use crate::error::{Error, Result};

/// What the swap of one table did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Swapped {
    /// The Delta table.
    pub table: String,
    /// The commit made; `None` when there was nothing to swap or a run before had swapped it.
    pub version: Option<u64>,
    /// Whether a run before this one had committed the same swap.
    pub already_done: bool,
    /// Live files removed.
    pub files_removed: usize,
    /// Rows of those files.
    pub rows_removed: u64,
    /// Shadow files copied in.
    pub files_added: usize,
    /// Rows of those files.
    pub rows_added: u64,
}

/// How many times a swap whose commit conflicted with one that landed meanwhile is planned again.
const MAX_REPLANS: usize = 8;

/// Swaps the `event_date` partitions `from..=to` of table `name` at `live` for those of the shadow
/// table at `shadow`. A commit that lands meanwhile and touches those days (ingest adding a late
/// event to one, a compaction rewriting one of its files) sends the swap back to plan on the new
/// table, by the lake's commit policy ([`tidelake_lake::commit`]).
pub async fn swap(
    config: &PipelineConfig,
    name: &str,
    live: &Url,
    shadow: &Url,
    range: (NaiveDate, NaiveDate),
) -> Result<Swapped> {
    let mut attempt = 0;
    loop {
        match swap_once(config, name, live, shadow, range).await {
            Err(Error::Lake(e @ tidelake_lake::Error::Conflict { .. })) if attempt < MAX_REPLANS => {
                attempt += 1;
                tracing::info!(table = %name, attempt, reason = %e, "a commit landed while swapping; planning again");
                tidelake_lake::commit::backoff(attempt).await;
            }
            other => return other,
        }
    }
}

async fn swap_once(
    config: &PipelineConfig,
    name: &str,
    live: &Url,
    shadow: &Url,
    (from, to): (NaiveDate, NaiveDate),
) -> Result<Swapped> {
    let options = &config.storage_options;
    let mut table = tidelake_lake::delta::open_existing(name, live, options, None).await?.ok_or_else(|| {
        Error::Replace { table: name.to_string(), reason: format!("there is no table at {live} to replace a range of") }
    })?;
    let shadow_name = format!("{name} (shadow)");
    let shadow_table = tidelake_lake::delta::open_existing(&shadow_name, shadow, options, None).await?;
    let in_range = |values: std::collections::HashMap<String, Option<String>>| {
        let day = values.get(DATE_COLUMN).cloned().flatten();
        day.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()).is_some_and(|d| d >= from && d <= to)
    };
    let mut report = Swapped { table: name.to_string(), ..Swapped::default() };

    let (shadow_version, incoming) = match &shadow_table {
        Some(s) => {
            let files = s.snapshot().map_err(delta(&shadow_name))?.log_data();
            let files: Vec<_> = files.iter().filter(|f| in_range(f.partition_values_map())).collect();
            let adds = files.iter().map(|f| {
                let add = Add {
                    path: f.path().to_string(),
                    partition_values: f.partition_values_map(),
                    size: f.size(),
                    modification_time: f.modification_time(),
                    data_change: true,
                    stats: f.stats(),
                    tags: None,
                    deletion_vector: None,
                    base_row_id: None,
                    default_row_commit_version: None,
                    clustering_provider: None,
                };
                (add, f.num_records().unwrap_or(0) as u64, f.object_store_path())
            });
            (s.version().unwrap_or(0), adds.collect::<Vec<_>>())
        }
        None => (0, Vec::new()),
    };
    let tag = format!("replace-{:016x}-v{shadow_version}", fnv1a(shadow.as_str()));
    let renamed = |path: &str| match path.rsplit_once('/') {
        Some((dir, file)) => format!("{dir}/{tag}-{file}"),
        None => format!("{tag}-{path}"),
    };

    let snapshot = table.snapshot().map_err(delta(name))?.clone();
    // The commit records the shadow version it swapped in as an application transaction, the way
    // ingest records offsets: later rewrites of the copies (finalize, optimize) do not hide it.
    let app_id = tag.rsplit_once("-v").map_or(tag.clone(), |(shadow, _)| format!("tidelake-{shadow}"));
    let done = tidelake_lake::txn::versions(name, &table, std::slice::from_ref(&app_id)).await?[&app_id];
    if done.is_some_and(|v| v >= shadow_version as i64) {
        report.already_done = true;
        return Ok(report);
    }
    let mut actions = Vec::new();
    for file in snapshot.log_data().iter().filter(|f| in_range(f.partition_values_map())) {
        report.files_removed += 1;
        report.rows_removed += file.num_records().unwrap_or(0) as u64;
        actions.push(Action::Remove(file.remove_action(true)));
    }
    if incoming.is_empty() && actions.is_empty() {
        return Ok(report);
    }
    let (source, target) = (shadow_table.as_ref().map(|s| s.object_store()), table.object_store());
    let now = chrono::Utc::now().timestamp_millis();
    for (mut add, rows, from_path) in incoming {
        let source = source.as_ref().expect("files come from a shadow table");
        let bytes = source.get(&from_path).await.map_err(tidelake_lake::Error::from)?.bytes().await;
        let bytes = bytes.map_err(tidelake_lake::Error::from)?;
        add.path = renamed(&add.path);
        let to_path = object_store::path::Path::parse(&add.path).map_err(|e| Error::Replace {
            table: name.to_string(),
            reason: format!("cannot place {}: {e}", add.path),
        })?;
        target.put(&to_path, bytes.into()).await.map_err(tidelake_lake::Error::from)?;
        report.files_added += 1;
        report.rows_added += rows;
        add.modification_time = now;
        actions.push(Action::Add(add));
    }
    tidelake_lake::fault::point("replace-after-copy");

    let info = ReplaceInfo {
        from: from.to_string(),
        to: to.to_string(),
        shadow: shadow.to_string(),
        shadow_version,
        rows_removed: report.rows_removed,
        rows_added: report.rows_added,
    };
    let operation = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: Some(snapshot.metadata().partition_columns().to_vec()),
        predicate: Some(format!("{DATE_COLUMN} >= '{from}' AND {DATE_COLUMN} <= '{to}'")),
    };
    let txns = vec![Transaction::new(app_id, shadow_version as i64)];
    let depends = Depends {
        region: Some(Region { column: DATE_COLUMN.to_string(), from: from.to_string(), to: to.to_string() }),
        ..Depends::of(&actions, &txns)
    };
    let prepared = Prepared { actions, operation, info: info.to_commit_info(), txns };
    let version = tidelake_lake::commit::commit(&mut table, name, prepared, &depends).await?;
    report.version = Some(version);
    tidelake_lake::fault::point("replace-after-commit");
    tracing::info!(
        table = %name,
        version,
        %from,
        %to,
        rows_removed = report.rows_removed,
        rows_added = report.rows_added,
        "replaced a range of event days"
    );
    Ok(report)
}

fn delta(table: &str) -> impl Fn(deltalake::DeltaTableError) -> Error + '_ {
    move |e| Error::Lake(tidelake_lake::Error::Delta { table: table.to_string(), source: Box::new(e) })
}

/// A stable 64-bit FNV-1a hash: the same shadow gets the same file names in every run.
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
