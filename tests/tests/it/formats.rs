//! Record formats other than JSON: Avro through a real schema registry, produced by the registry
//! client's own serializer, lands the same rows as the same events in JSON.

use tidelake_lake::sample::Kind;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_from_the_schema_registry_lands_the_same_rows_as_json() {
    let records = events(3_000, 0.05, 0.0, 91);
    let valid = records.iter().filter(|r| r.kind != Kind::Poison).count();
    assert!(valid > 3_000, "the stream holds copies to drop");

    // The events as Avro, serialized by confluent-kafka's AvroSerializer, plus records it could not
    // have written: a JSON value (no registry framing), a framed value of an id the registry never
    // gave out, and two datums of the real schema id that declare a first string of 256 MiB and of
    // 2^62 bytes in a few bytes (read, they would take that memory: they must cost nothing).
    let avro_topic = unique("avro");
    create_topic(&avro_topic, 3).await;
    let poison = [hex(&records[0].value), "00000f423f02".to_string()];
    let hostile = ["8080808002414243", "feffffffffffffff7f00"];
    let extra: Vec<serde_json::Value> = poison
        .iter()
        .map(|raw| serde_json::json!({"key": "poison", "raw": raw}))
        .chain(hostile.iter().map(|datum| serde_json::json!({"key": "poison", "datum": datum})))
        .collect();
    produce_avro(&avro_topic, &records, &extra);

    let avro_dir = tempfile::tempdir().unwrap();
    let avro = write_config(avro_dir.path(), &avro_topic, &unique("group"), 500);
    read_as_avro(&avro);
    let avro_report = ingest_to_end(&avro);

    let json_topic = filled_topic("json", 3, &records).await;
    let json_dir = tempfile::tempdir().unwrap();
    let json = write_config(json_dir.path(), &json_topic, &unique("group"), 500);
    let json_report = ingest_to_end(&json);

    let dead = poison.len() + hostile.len();
    assert_eq!(avro_report["records"], records.len() + dead, "{avro_report}");
    assert_eq!(avro_report["rows_written"], json_report["rows_written"], "{avro_report} {json_report}");
    assert_eq!(avro_report["duplicates_dropped"], json_report["duplicates_dropped"], "{avro_report}");
    assert_eq!(avro_report["dead_letters"], dead, "{avro_report}");
    let reasons = avro_report["dead_letter_samples"].to_string();
    assert!(reasons.contains("magic byte"), "{reasons}");
    assert!(reasons.contains("schema id 999999 is not in the schema registry"), "{reasons}");
    assert!(reasons.contains("field `event_id`: the datum ends 268435453 bytes short"), "{reasons}");

    // Same rows, read by DuckDB and Python deltalake: count, distinct ids, their digest, the exact
    // sum of the decimal cost.
    let location = |config: &std::path::Path| load_config(config).tables[0].location.clone();
    let from_avro = read_back(&location(&avro), "event_id", "cost");
    let from_json = read_back(&location(&json), "event_id", "cost");
    assert_eq!(from_avro, from_json);
    assert_eq!(from_avro["duckdb"]["sum"], cost_sum(&dedup_valid(&records)), "{from_avro}");
    let audit = audit_passes(&avro);
    assert_eq!(audit_sum(&audit, "dead_letters"), dead as u64, "{audit}");
}

/// The valid records, each event UUID once.
fn dedup_valid(records: &[tidelake_lake::sample::SampleRecord]) -> Vec<tidelake_lake::sample::SampleRecord> {
    let mut seen = std::collections::HashSet::new();
    records.iter().filter(|r| r.kind != Kind::Poison && seen.insert(r.event_id.clone())).cloned().collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
