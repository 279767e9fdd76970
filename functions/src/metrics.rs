//! Metrics as CloudWatch embedded metric format (EMF) lines: one JSON object per table and batch on
//! stdout, which Lambda's log pipeline turns into CloudWatch metrics without an API call.
//!
//! Namespace `tidelake`, dimension `table`; per batch: `RecordsIn`, `RowsWritten`, `Duplicates`,
//! `DeadLetters`, `MinuteRows` (counts), `BatchDuration` (the whole batch, all its commits, in
//! milliseconds) and `RecordAge` (now minus the oldest record's Kafka timestamp, in milliseconds: how
//! far behind the function is; a Lambda Kafka event carries no end offsets to count lag in records).

use serde_json::{json, Value};

use crate::ingest::BatchReport;

/// The CloudWatch namespace of tidelake's metrics.
pub const NAMESPACE: &str = "tidelake";

/// The EMF lines of one handled batch, one per table, stamped `now_ms`.
pub fn emf_lines(report: &BatchReport, duration_ms: f64, record_age_ms: Option<i64>, now_ms: i64) -> Vec<String> {
    report
        .tables
        .iter()
        .map(|t| {
            let mut metrics = vec![
                ("RecordsIn", "Count", json!(t.records)),
                ("RowsWritten", "Count", json!(t.rows_written)),
                ("Duplicates", "Count", json!(t.duplicates)),
                ("DeadLetters", "Count", json!(t.dead_letters)),
                ("MinuteRows", "Count", json!(t.minute_rows)),
                ("BatchDuration", "Milliseconds", json!(duration_ms)),
            ];
            if let Some(age) = record_age_ms {
                metrics.push(("RecordAge", "Milliseconds", json!(age.max(0))));
            }
            let mut line = json!({
                "_aws": {
                    "Timestamp": now_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [["table"]],
                        "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
                    }],
                },
                "table": t.table,
            });
            if let Value::Object(fields) = &mut line {
                for (name, _, value) in metrics {
                    fields.insert(name.to_string(), value);
                }
            }
            line.to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::TableReport;

    #[test]
    fn each_metric_is_declared_and_valued_at_the_root() {
        let report = BatchReport {
            records: 10,
            tables: vec![TableReport {
                table: "ad_events".into(),
                records: 10,
                rows_written: 7,
                duplicates: 2,
                dead_letters: 1,
                minute_rows: 4,
                ..TableReport::default()
            }],
        };
        let lines = emf_lines(&report, 12.5, Some(3_000), 1_795_435_200_000);
        assert_eq!(lines.len(), 1);
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "tidelake");
        assert_eq!(directive["Dimensions"], json!([["table"]]));
        assert_eq!(line["table"], "ad_events");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(line[name].is_number(), "{name} has no value at the root");
        }
        assert_eq!((line["RowsWritten"].as_u64(), line["RecordAge"].as_i64()), (Some(7), Some(3_000)));
        assert_eq!(line["_aws"]["Timestamp"], 1_795_435_200_000i64);
    }
}
