//! The SQL behaviour of the `lake`, `kafka` and `live` schemas, as sqllogictest files
//! (`tests/slt/*.slt`), over a small lake with a Kafka tail on the real broker.
//!
//! The fixture: one partition; ten events ingested five at a time (data versions 1 and 2), then in
//! Kafka above them two new events, a copy of an ingested one and a poison record. The files see
//! the topic as `${topic}`.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};
use tidelake_lake::sample::{Kind, SampleRecord};
use tidelake_presto::Connector;

use crate::helpers::*;

/// The connector as a sqllogictest database.
struct Lake(Arc<Connector>);

#[async_trait::async_trait]
impl AsyncDB for Lake {
    type Error = tidelake_presto::Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        let (schema, batches) = self.0.query(sql).await?;
        let types = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                t if t.is_integer() => DefaultColumnType::Integer,
                t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => DefaultColumnType::FloatingPoint,
                _ => DefaultColumnType::Text,
            })
            .collect();
        Ok(DBOutput::Rows { types, rows: batches.iter().flat_map(rows).collect() })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "tidelake"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A batch's rows as text: `NULL` for null, `(empty)` for an empty string.
fn rows(batch: &RecordBatch) -> Vec<Vec<String>> {
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .map(|column| match column.is_null(row) {
                    true => "NULL".to_string(),
                    false => match arrow::util::display::array_value_to_string(column, row).unwrap() {
                        text if text.is_empty() => "(empty)".to_string(),
                        text => text,
                    },
                })
                .collect()
        })
        .collect()
}

fn event(n: u32, minute: u32, kind: &str, ad_id: i64, cost: &str) -> SampleRecord {
    let id = format!("e-{n:02}");
    let value = format!(
        r#"{{"event_id":"{id}","event_time":"2026-11-23T10:{minute:02}:00Z","event_type":"{kind}","ad_id":{ad_id},"campaign_id":{},"user_id":"u-{}","cost":"{cost}"}}"#,
        1000 + ad_id,
        n % 4
    );
    SampleRecord { key: b"k".to_vec(), value: value.into_bytes(), kind: Kind::Event, event_id: id }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogs_behave_as_the_slt_files_say() {
    let ingested: Vec<SampleRecord> = (1..=10)
        .map(|n| {
            let kind = if n % 5 == 0 { "click" } else { "impression" };
            let cost = if kind == "click" { "0.500000" } else { "0.002000" };
            event(n, n, kind, i64::from(n % 3) + 1, cost)
        })
        .collect();
    let topic = filled_topic("slt", 1, &ingested[..5]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 1_000);
    ingest_to_end(&path);
    produce(&producer(), &topic, &ingested[5..]).await;
    ingest_to_end(&path);
    let mut tail = vec![event(11, 30, "impression", 1, "0.003000"), event(12, 31, "click", 2, "0.750000")];
    tail.push(SampleRecord { kind: Kind::Duplicate, ..ingested[1].clone() });
    tail.push(SampleRecord {
        key: b"k".to_vec(),
        value: b"not json".to_vec(),
        kind: Kind::Poison,
        event_id: String::new(),
    });
    produce(&producer(), &topic, &tail).await;

    let connector = Arc::new(Connector::new(load_config(&path)).unwrap());
    let mut files: Vec<_> = std::fs::read_dir(repo().join("tests/slt")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let connector = connector.clone();
        let mut runner = Runner::new(move || {
            let connector = connector.clone();
            async move { Ok(Lake(connector)) }
        });
        runner.set_var("topic".into(), topic.clone());
        runner.run_file_async(&file).await.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}
