//! `tidelake audit`: proves from the Delta logs, the archive and Kafka itself that every offset a
//! table consumed landed exactly once, and exits 1 when it did not.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use tidelake_lake::audit::{self, AuditReport, CommitRange, Hole, Problem, ProblemKind};
use tidelake_lake::{PipelineConfig, TableSpec, TopicPartition};

use crate::{BoxError, TableArgs};

/// Flags of `tidelake audit`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config and the table to audit (may be left out when the config has one table).
    #[command(flatten)]
    tables: TableArgs,
    /// Audit only commits made at or after this time (RFC 3339, or a date like 2026-11-23).
    #[arg(long, env = "TIDELAKE_AUDIT_FROM", value_parser = parse_time)]
    from: Option<i64>,
    /// Audit only commits made at or before this time (RFC 3339, or a date: the end of that day).
    #[arg(long, env = "TIDELAKE_AUDIT_TO", value_parser = parse_end_time)]
    to: Option<i64>,
    /// Do not ask Kafka: check the lake and its archive only.
    #[arg(long, env = "TIDELAKE_AUDIT_OFFLINE")]
    offline: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// What Kafka holds of a topic-partition.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct KafkaEnds {
    /// First offset Kafka still holds.
    earliest: i64,
    /// The offset the next record will get.
    end: i64,
}

/// An audit's findings in the lake and in Kafka.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What the lake's ledgers say.
    #[serde(flatten)]
    pub lake: AuditReport,
    /// Where Kafka's partitions start and end (empty offline).
    pub kafka: BTreeMap<String, KafkaEnds>,
    /// Offsets between commits that were checked in Kafka.
    pub holes_checked_in_kafka: usize,
    /// Whether nothing is wrong.
    pub passed: bool,
}

pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    parse_instant(text, false)
}

pub(crate) fn parse_end_time(text: &str) -> Result<i64, String> {
    parse_instant(text, true)
}

fn parse_instant(text: &str, end_of_day: bool) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis();
        return Ok(if end_of_day { start + 86_400_000 - 1 } else { start });
    }
    Err(format!("`{text}` is not a time; use RFC 3339 (2026-11-23T08:00:00Z) or a date (2026-11-23)"))
}

/// Runs the audit; an error (exit 1) when it finds a problem.
pub async fn run(args: Args) -> Result<(), BoxError> {
    let (config, specs) = args.tables.load().await?;
    let [spec] = specs.as_slice() else {
        let names: Vec<&str> = specs.iter().map(|t| t.name.as_str()).collect();
        return Err(format!("name a table with --table: the config has {}", names.join(", ")).into());
    };
    let range = CommitRange { from_ms: args.from, to_ms: args.to };
    let report = check(&config, spec, range, !args.offline).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    if report.passed {
        Ok(())
    } else {
        let count = |k: ProblemKind| report.lake.problems.iter().filter(|p| p.kind == k).count();
        Err(format!(
            "audit of {} failed: {} gaps, {} double counts, {} mismatches",
            report.lake.table,
            count(ProblemKind::Gap),
            count(ProblemKind::Double),
            count(ProblemKind::Mismatch)
        )
        .into())
    }
}

/// Audits table `spec` of `config`: its ledgers, and with `ask_kafka` Kafka's offsets.
pub async fn check(
    config: &PipelineConfig,
    spec: &TableSpec,
    range: CommitRange,
    ask_kafka: bool,
) -> Result<Report, BoxError> {
    let ledgers = audit::read_ledgers(spec, &config.storage_options).await?;
    let mut lake = audit::audit(&ledgers, range).await?;
    let mut kafka = BTreeMap::new();
    let mut checked = 0;
    if ask_kafka {
        let partitions: Vec<TopicPartition> = lake.partitions.iter().map(|p| p.partition.clone()).collect();
        let holes = lake.holes.clone();
        let config = config.clone();
        let (ends, found, n) = tokio::task::spawn_blocking(move || check_kafka(&config, &partitions, &holes)).await??;
        kafka = ends;
        checked = n;
        let table = lake.table.clone();
        lake.problems.extend(found.into_iter().map(|p| Problem { table: table.clone(), ..p }));
    }
    // Kept next to the table for the status page; a lake this user may not write to still gets
    // its audit, without the record.
    let at_ms = chrono::Utc::now().timestamp_millis();
    let outcome = audit::AuditOutcome::of(&lake, &ledgers, range, ask_kafka, at_ms);
    if let Err(e) = outcome.record(ledgers.data.store.as_ref()).await {
        tracing::warn!(table = %spec.name, error = %e, "could not keep this audit's outcome for the status page");
    }
    Ok(Report { passed: lake.passed(), lake, kafka, holes_checked_in_kafka: checked })
}

type KafkaFindings = (BTreeMap<String, KafkaEnds>, Vec<Problem>, usize);

/// Asks Kafka where each partition starts and ends, and whether it holds committed records in the
/// offsets between two data commits that no commit covers.
fn check_kafka(
    config: &PipelineConfig,
    partitions: &[TopicPartition],
    holes: &[Hole],
) -> Result<KafkaFindings, BoxError> {
    let consumer: BaseConsumer = tidelake_lake::kafka::client_config(config)
        .set("group.id", format!("{}-audit", config.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()?;
    let timeout = Duration::from_secs(10);
    let watermarks = tidelake_lake::kafka::watermarks(&consumer, partitions, timeout).map_err(|e| {
        format!(
            "asking Kafka ({}) for the offsets of {}: {e}; use --offline to audit without Kafka",
            config.kafka.brokers,
            partitions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )
    })?;
    let ends: BTreeMap<String, KafkaEnds> = partitions
        .iter()
        .zip(watermarks)
        .map(|(tp, (earliest, end))| (tp.to_string(), KafkaEnds { earliest, end }))
        .collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    for hole in holes {
        let Some(kafka) = ends.get(&hole.partition.to_string()) else { continue };
        if hole.to < kafka.earliest {
            continue;
        }
        let from = hole.from.max(kafka.earliest);
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&hole.partition.topic, hole.partition.partition, Offset::Offset(from))?;
        consumer.assign(&list)?;
        checked += 1;
        let mut found = Vec::new();
        loop {
            match consumer.poll(timeout) {
                None => {
                    return Err(format!(
                        "Kafka sent nothing for {} from offset {from} within {timeout:?}",
                        hole.partition
                    )
                    .into())
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(format!("reading {} from offset {from}: {e}", hole.partition).into()),
                Some(Ok(m)) if m.offset() > hole.to => break,
                Some(Ok(m)) => found.push(m.offset()),
            }
        }
        if !found.is_empty() {
            problems.push(Problem {
                kind: ProblemKind::Gap,
                table: String::new(),
                partition: Some(hole.partition.to_string()),
                message: format!(
                    "Kafka holds {} records at offsets {}..={} (first {}) that no data commit covers",
                    found.len(),
                    hole.from,
                    hole.to,
                    found[0]
                ),
            });
        }
    }
    Ok((ends, problems, checked))
}

fn print_table(report: &Report) {
    let lake = &report.lake;
    println!(
        "audit of {}: {} data commits, {} rows committed, {} of them in the table, {} kept beyond the dedup window",
        lake.table, lake.commits, lake.rows_committed, lake.rows_in_table, lake.beyond_dedup_window
    );
    if lake.replaces > 0 {
        println!(
            "  {} replace commits swapped {} of those rows for reprocessed rows",
            lake.replaces, lake.rows_replaced
        );
    }
    println!(
        "{:<28} {:>21} {:>7} {:>9} {:>9} {:>10} {:>7} {:>9} {:>10} {:>7}",
        "partition", "offsets", "commits", "records", "rows", "duplicates", "dead", "archived", "kafka end", "lag"
    );
    for p in &lake.partitions {
        let kafka = report.kafka.get(&p.partition.to_string());
        let (end, lag) = match kafka {
            Some(k) => (k.end.to_string(), (k.end - p.last - 1).max(0).to_string()),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<28} {:>21} {:>7} {:>9} {:>9} {:>10} {:>7} {:>9} {:>10} {:>7}",
            p.partition.to_string(),
            format!("{}..={}", p.first, p.last),
            p.commits,
            p.records,
            p.rows,
            p.duplicates,
            p.dead_letters,
            p.archived,
            end,
            lag
        );
    }
    if let Some(r) = &lake.rollup {
        println!(
            "rollup {}: {} of {} data commits aggregated ({} rows), {} minute commits caught up after a crash",
            r.table, r.aggregated, r.data_commits, r.source_rows, r.caught_up
        );
    }
    for p in &lake.problems {
        let kind = match p.kind {
            ProblemKind::Gap => "GAP",
            ProblemKind::Double => "DOUBLE",
            ProblemKind::Mismatch => "MISMATCH",
        };
        let at = p.partition.as_deref().map(|tp| format!(" {tp}")).unwrap_or_default();
        println!("{kind:<9} {}{at}: {}", p.table, p.message);
    }
    if report.passed {
        println!(
            "audit passed: every consumed offset is a row, a dropped duplicate or a dead letter, once ({} holes checked in Kafka)",
            report.holes_checked_in_kafka
        );
    }
}
