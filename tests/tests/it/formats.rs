//! Record formats other than JSON: Avro through a real schema registry, produced by the registry
//! client's own serializer, lands the same rows as the same events in JSON.

use std::io::Write;
use std::process::Command;

use tidelake_lake::sample::Kind;

use crate::helpers::*;

/// `write_config`'s pipeline with the table reading Avro through the test registry.
fn avro_config(dir: &std::path::Path, topic: &str) -> std::path::PathBuf {
    let path = write_config(dir, topic, &unique("group"), 500);
    let text = std::fs::read_to_string(&path).unwrap();
    let topic_line = format!("topic = \"{topic}\"\n");
    let text = text.replacen(&topic_line, &format!("{topic_line}format = \"avro\"\n"), 1).replacen(
        "[tables.",
        &format!("[schema_registry]\nurl = \"{}\"\n\n[tables.", schema_registry()),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_from_the_schema_registry_lands_the_same_rows_as_json() {
    let records = events(3_000, 0.05, 0.0, 91);
    let valid = records.iter().filter(|r| r.kind != Kind::Poison).count();
    assert!(valid > 3_000, "the stream holds copies to drop");

    // The events as Avro, serialized by confluent-kafka's AvroSerializer, plus two records it could
    // not have written: a JSON value (no registry framing) and a framed value of an id the registry
    // never gave out.
    let avro_topic = unique("avro");
    create_topic(&avro_topic, 3).await;
    let mut lines = tempfile::NamedTempFile::new().unwrap();
    for r in &records {
        let value: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        let key = String::from_utf8(r.key.clone()).unwrap();
        writeln!(lines, "{}", serde_json::json!({"key": key, "value": value})).unwrap();
    }
    let poison = [hex(&records[0].value), "00000f423f02".to_string()];
    for raw in &poison {
        writeln!(lines, "{}", serde_json::json!({"key": "poison", "raw": raw})).unwrap();
    }
    lines.flush().unwrap();
    let out = Command::new(python())
        .arg(repo().join("tests/produce_avro.py"))
        .args([kafka(), schema_registry(), &avro_topic, lines.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "produce_avro.py failed:\n{}", String::from_utf8_lossy(&out.stderr));

    let avro_dir = tempfile::tempdir().unwrap();
    let avro = avro_config(avro_dir.path(), &avro_topic);
    let avro_report = ingest_to_end(&avro);

    let json_topic = filled_topic("json", 3, &records).await;
    let json_dir = tempfile::tempdir().unwrap();
    let json = write_config(json_dir.path(), &json_topic, &unique("group"), 500);
    let json_report = ingest_to_end(&json);

    assert_eq!(avro_report["records"], records.len() + poison.len(), "{avro_report}");
    assert_eq!(avro_report["rows_written"], json_report["rows_written"], "{avro_report} {json_report}");
    assert_eq!(avro_report["duplicates_dropped"], json_report["duplicates_dropped"], "{avro_report}");
    assert_eq!(avro_report["dead_letters"], 2, "{avro_report}");
    let reasons = avro_report["dead_letter_samples"].to_string();
    assert!(reasons.contains("magic byte"), "{reasons}");
    assert!(reasons.contains("schema id 999999 is not in the schema registry"), "{reasons}");

    // Same rows, read by DuckDB and Python deltalake: count, distinct ids, their digest, the exact
    // sum of the decimal cost.
    let location = |config: &std::path::Path| load_config(config).tables[0].location.clone();
    let from_avro = read_back(&location(&avro), "event_id", "cost");
    let from_json = read_back(&location(&json), "event_id", "cost");
    assert_eq!(from_avro, from_json);
    assert_eq!(from_avro["duckdb"]["sum"], cost_sum(&dedup_valid(&records)), "{from_avro}");
    let audit = audit_passes(&avro);
    assert_eq!(audit_sum(&audit, "dead_letters"), 2, "{audit}");
}

/// The valid records, each event UUID once.
fn dedup_valid(records: &[tidelake_lake::sample::SampleRecord]) -> Vec<tidelake_lake::sample::SampleRecord> {
    let mut seen = std::collections::HashSet::new();
    records.iter().filter(|r| r.kind != Kind::Poison && seen.insert(r.event_id.clone())).cloned().collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
