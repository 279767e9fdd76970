//! Record formats other than JSON: Avro and Protobuf through a real schema registry, produced by
//! the registry client's own serializers, and plain Avro datums of a schema file land the same rows
//! as the same events in JSON.

use tidelake_lake::sample::{Kind, SampleRecord};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_and_protobuf_from_the_schema_registry_land_the_same_rows_as_json() {
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
    produce_avro(&avro_topic, &records, &extra, "v1");

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

    // The same events as Protobuf `AdEvent` messages (a Timestamp, an enum, a StringValue wrapper,
    // a proto3 optional), serialized by confluent-kafka's ProtobufSerializer, plus what it could
    // not have written: a JSON value, an unknown id, a message declaring a 256 MiB first string,
    // and an index array naming a message the schema does not have.
    let proto_topic = unique("protobuf");
    create_topic(&proto_topic, 3).await;
    let hostile = ["000a8080808001", "0206"];
    let extra: Vec<serde_json::Value> = poison
        .iter()
        .map(|raw| serde_json::json!({"key": "poison", "raw": raw}))
        .chain(hostile.iter().map(|datum| serde_json::json!({"key": "poison", "datum": datum})))
        .collect();
    produce_protobuf(&proto_topic, &records, &extra);
    let proto_dir = tempfile::tempdir().unwrap();
    let proto = write_config(proto_dir.path(), &proto_topic, &unique("group"), 500);
    read_through_registry(&proto, "protobuf");
    let proto_report = ingest_to_end(&proto);
    assert_eq!(proto_report["rows_written"], json_report["rows_written"], "{proto_report} {json_report}");
    assert_eq!(proto_report["duplicates_dropped"], json_report["duplicates_dropped"], "{proto_report}");
    assert_eq!(proto_report["dead_letters"], dead, "{proto_report}");
    let table = &load_config(&proto).tables[0];
    let reasons = strings(&read_rows(&table.dead_letters, &Default::default()).await, "reason").join("\n");
    assert!(reasons.contains("not Protobuf from a registry serializer"), "{reasons}");
    assert!(reasons.contains("schema id 999999 is not in the schema registry"), "{reasons}");
    assert!(reasons.contains("does not decode as tidelake.sample.AdEvent"), "{reasons}");
    assert!(reasons.contains("its file has no message 3"), "{reasons}");
    let from_proto = read_back(&location(&proto), "event_id", "cost");
    assert_eq!(from_proto, from_json);
    let audit = audit_passes(&proto);
    assert_eq!(audit_sum(&audit, "dead_letters"), dead as u64, "{audit}");

    // With `columns = "registry"` the columns are the message's fields: the same rows, the
    // Timestamp a timestamp, the enum a string, the wrapper and the proto3 optional nullable.
    let listed_dir = tempfile::tempdir().unwrap();
    let listed = write_config(listed_dir.path(), &proto_topic, &unique("group"), 500);
    read_through_registry(&listed, "protobuf");
    columns_from_registry(&listed);
    let columns: Vec<(String, String, bool)> =
        load_config(&listed).tables[0].columns.iter().map(|c| (c.name.clone(), c.kind.name(), c.nullable)).collect();
    let expect = [
        ("event_id", "string", false),
        ("event_time", "timestamp", false),
        ("event_type", "string", false),
        ("ad_id", "int64", false),
        ("campaign_id", "int64", false),
        ("user_id", "string", true),
        ("cost", "string", true),
    ];
    assert_eq!(columns, expect.map(|(n, t, z)| (n.to_string(), t.to_string(), z)).to_vec());
    let report = ingest_to_end(&listed);
    assert_eq!(report["rows_written"], json_report["rows_written"], "{report}");
    assert_eq!(report["dead_letters"], dead, "{report}");
}

/// The valid records, each event UUID once.
fn dedup_valid(records: &[SampleRecord]) -> Vec<SampleRecord> {
    let mut seen = std::collections::HashSet::new();
    records.iter().filter(|r| r.kind != Kind::Poison && seen.insert(r.event_id.clone())).cloned().collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_avro_of_a_schema_file_lands_the_same_rows_as_json() {
    let records = events(2_000, 0.05, 0.0, 93);
    let schema = apache_avro::Schema::parse_str(EVENT_SCHEMA).unwrap();
    // The events as plain Avro datums, then a JSON value and a datum cut short: dead letters.
    let mut avro: Vec<SampleRecord> =
        records.iter().map(|r| SampleRecord { value: plain_avro(&schema, &r.value), ..r.clone() }).collect();
    let cut = avro[0].value[..avro[0].value.len() - 3].to_vec();
    avro.push(SampleRecord { value: records[1].value.clone(), kind: Kind::Poison, ..records[1].clone() });
    avro.push(SampleRecord { value: cut, kind: Kind::Poison, ..records[2].clone() });
    let avro_topic = filled_topic("plain-avro", 3, &avro).await;
    let avro_dir = tempfile::tempdir().unwrap();
    std::fs::write(avro_dir.path().join("ad_event.avsc"), EVENT_SCHEMA).unwrap();
    let config = write_config(avro_dir.path(), &avro_topic, &unique("group"), 500);
    let text = std::fs::read_to_string(&config).unwrap();
    let topic_line = format!("topic = \"{avro_topic}\"\n");
    std::fs::write(
        &config,
        text.replacen(&topic_line, &format!("{topic_line}format = \"avro\"\navro_schema = \"ad_event.avsc\"\n"), 1),
    )
    .unwrap();
    let report = ingest_to_end(&config);

    let json_topic = filled_topic("json", 3, &records).await;
    let json_dir = tempfile::tempdir().unwrap();
    let json = write_config(json_dir.path(), &json_topic, &unique("group"), 500);
    let json_report = ingest_to_end(&json);

    assert_eq!(report["rows_written"], json_report["rows_written"], "{report} {json_report}");
    assert_eq!(report["duplicates_dropped"], json_report["duplicates_dropped"], "{report}");
    assert_eq!(report["dead_letters"], 2, "{report}");
    assert!(
        report["dead_letter_samples"].to_string().contains("does not decode with the table's avro_schema"),
        "{report}"
    );
    let location = |config: &std::path::Path| load_config(config).tables[0].location.clone();
    let from_avro = read_back(&location(&config), "event_id", "cost");
    assert_eq!(from_avro, read_back(&location(&json), "event_id", "cost"));
    assert_eq!(from_avro["duckdb"]["sum"], cost_sum(&dedup_valid(&records)), "{from_avro}");
    audit_passes(&config);
}

/// A TLS front on a free port for the plain HTTP service on `backend`, with `cert` and `key`: the
/// test registry as an `https` registry with a private CA looks to its clients.
async fn tls_front(cert: &std::path::Path, key: &std::path::Path, backend: u16) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(tidelake_presto::server::tls::config(cert, key).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_registry_signed_by_a_private_ca_is_trusted_through_ca_file() {
    let records = events(400, 0.0, 0.0, 95);
    let topic = unique("avro-tls");
    create_topic(&topic, 2).await;
    produce_avro(&topic, &records, &[], "v1");

    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (dir.path().join("registry.pem"), dir.path().join("registry.key"), dir.path().join("ca.pem"));
    let made = std::process::Command::new(python())
        .arg(repo().join("tests/make_cert.py"))
        .args([&cert, &key, &ca])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let plain = url::Url::parse(schema_registry()).unwrap();
    let port = tls_front(&cert, &key, plain.port().unwrap()).await;
    let https = format!("https://localhost:{port}{}", plain.path());

    let config = write_config(dir.path(), &topic, &unique("group"), 500);
    read_as_avro(&config);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(schema_registry(), &https, 1).replacen(
        "[schema_registry]\n",
        "[schema_registry]\nca_file = \"ca.pem\"\n",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let report = tokio::task::spawn_blocking(move || ingest_to_end(&config)).await.unwrap();
    assert_eq!(report["rows_written"], 400, "{report}");
    assert_eq!(report["dead_letters"], 0, "{report}");
}
