//! The federated query connector against the real broker: `live` tables are exact at every moment
//! of a running ingest, fresh records are visible before any lake commit holds them, and `kafka`,
//! `lake` (with time travel) and `live` join in one query.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use tidelake_lake::sample::{Kind, SampleRecord};
use tidelake_presto::Connector;

use crate::helpers::*;

/// The single row of a query, each column as text (`NULL` for null).
async fn row(connector: &Connector, sql: &str) -> Vec<String> {
    let (_, batches) = connector.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1, "{sql}: one row expected");
    let batch = batches[0];
    (0..batch.num_columns())
        .map(|c| {
            let column = batch.column(c);
            if column.is_null(0) {
                "NULL".into()
            } else {
                arrow::util::display::array_value_to_string(column, 0).unwrap()
            }
        })
        .collect()
}

/// The single bigint of a query, and the Kafka offsets the connector read for it.
async fn reads(connector: &Connector, sql: String) -> (i64, u64) {
    let before = connector.tail_offsets_read();
    let answer = number(connector, &sql).await;
    (answer, connector.tail_offsets_read() - before)
}

/// The single bigint of a query.
async fn number(connector: &Connector, sql: &str) -> i64 {
    let (_, batches) = connector.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let values: Vec<i64> =
        batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(values.len(), 1, "{sql}");
    values[0]
}

/// Like [`number`], `None` while the lake table does not exist yet.
async fn number_or_missing(connector: &Connector, sql: &str) -> Option<i64> {
    match connector.query(sql).await {
        Err(e) if e.to_string().contains("no Delta table") => None,
        Err(e) => panic!("{sql}: {e}"),
        Ok((_, batches)) => Some(batches[0].column(0).as_primitive::<Int64Type>().value(0)),
    }
}

fn valid_events(records: &[SampleRecord]) -> Vec<SampleRecord> {
    records.iter().filter(|r| r.kind == Kind::Event).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_counts_every_event_once_while_ingest_runs() {
    let records = events(30_000, 0.05, 0.01, 51);
    let distinct = valid_events(&records);
    let topic = filled_topic("live", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 300);
    let connector = Connector::new(load_config(&path)).unwrap();
    let expected = vec![distinct.len().to_string(), distinct.len().to_string(), cost_sum(&distinct)];
    let live = "SELECT count(*), count(DISTINCT event_id), sum(cost) FROM live.ad_events";
    // The minute rollup, live: its rows and the partial rows of what it does not hold yet.
    let expected_minutes = vec![distinct.len().to_string(), cost_sum(&distinct)];
    let live_minutes = "SELECT sum(impressions) + sum(clicks), sum(spend) FROM live.ad_events_minute";

    let mut ingest = Command::new(env!("CARGO_BIN_EXE_tidelake-under-test"))
        .args(["ingest", "--config", path.to_str().unwrap(), "--stop-at-end"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start ingest");
    let mut lake_counts = BTreeSet::new();
    let mut probes = 0;
    loop {
        let running = ingest.try_wait().unwrap().is_none();
        // The lake first: the live probe after it reads a snapshot at least this new.
        let lake = number_or_missing(&connector, "SELECT count(*) FROM lake.ad_events").await.unwrap_or(0);
        assert_eq!(row(&connector, live).await, expected, "probe {probes}, lake at {lake} rows");
        assert_eq!(row(&connector, live_minutes).await, expected_minutes, "probe {probes}: live minutes");
        probes += 1;
        lake_counts.insert(lake);
        if !running {
            break;
        }
    }
    assert!(ingest.wait().unwrap().success());
    let inside: Vec<&i64> = lake_counts.iter().filter(|n| **n > 0 && **n < distinct.len() as i64).collect();
    assert!(inside.len() >= 2, "the probes should catch the lake part-way at least twice: {lake_counts:?}");
    assert_eq!(number(&connector, "SELECT count(*) FROM lake.ad_events").await, distinct.len() as i64);
    assert_eq!(number(&connector, &format!("SELECT count(*) FROM kafka.\"{topic}\"")).await, 0);
    assert_eq!(row(&connector, live).await, expected);
    assert_eq!(row(&connector, live_minutes).await, expected_minutes);
    let lake_minutes = live_minutes.replace("live.", "lake.");
    assert_eq!(row(&connector, &lake_minutes).await, expected_minutes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fresh_records_are_live_before_any_commit_and_join_the_lake() {
    let first = events(2_000, 0.0, 0.0, 52);
    let topic = filled_topic("fresh", 2, &first).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 700);
    ingest_to_end(&path);
    let config = load_config(&path);
    let commits = open(&config.tables[0].location, &config.storage_options).await.version().unwrap();
    assert!(commits >= 3, "several data commits, for time travel: {commits}");

    // Not ingested yet: 300 new events, 7 copies of ingested ones and 4 poison records.
    let fresh = events(300, 0.0, 4.0 / 300.0, 53);
    let copies: Vec<SampleRecord> =
        first.iter().take(7).map(|r| SampleRecord { kind: Kind::Duplicate, ..r.clone() }).collect();
    produce(&producer(), &topic, &fresh).await;
    produce(&producer(), &topic, &copies).await;
    let connector = Connector::new(config.clone()).unwrap();

    assert_eq!(number(&connector, "SELECT count(*) FROM lake.ad_events").await, 2_000);
    let kafka = format!("kafka.\"{topic}\"");
    assert_eq!(number(&connector, &format!("SELECT count(*) FROM {kafka}")).await, 307);
    assert_eq!(connector.poison_skipped(), 4);
    let all = valid_events(&first).into_iter().chain(valid_events(&fresh)).collect::<Vec<_>>();
    assert_eq!(
        row(&connector, "SELECT count(*), count(DISTINCT event_id), sum(cost) FROM live.ad_events").await,
        ["2300".to_string(), "2300".to_string(), cost_sum(&all)]
    );
    // The live minute rollup adds up to the live rows, and its sketches merge to their distinct users.
    let minutes = "SELECT sum(impressions) + sum(clicks), sum(spend), sketch_distinct(unique_users_sketch) \
                   FROM live.ad_events_minute";
    let users = "SELECT count(*), sum(cost), count(DISTINCT user_id) FROM live.ad_events";
    let (by_minute, by_row) = (row(&connector, minutes).await, row(&connector, users).await);
    assert_eq!(by_minute[..2], by_row[..2], "{minutes}");
    let (estimate, exact): (f64, f64) = (by_minute[2].parse().unwrap(), by_row[2].parse().unwrap());
    assert!((estimate - exact).abs() <= exact * 0.03, "{estimate} users estimated, {exact} distinct");
    let lake_minutes = row(&connector, &minutes.replace("live.", "lake.")).await;
    assert_eq!(lake_minutes[0], "2000", "the lake's minute rows hold the ingested events only");

    // Each record of the tail is where Kafka holds it, above the lake's offsets.
    let positions = row(
        &connector,
        &format!("SELECT count(DISTINCT concat(_partition, '-', _offset)), min(_timestamp) IS NOT NULL FROM {kafka}"),
    )
    .await;
    assert_eq!(positions, ["307", "true"]);
    // The copies in the tail are the rows the lake holds already.
    let joined = format!("SELECT count(*) FROM {kafka} k JOIN lake.ad_events l ON k.event_id = l.event_id");
    assert_eq!(number(&connector, &joined).await, 7);
    let by_type = "SELECT count(*) FROM live.ad_events l JOIN (SELECT DISTINCT event_type FROM lake.ad_events) t ON l.event_type = t.event_type";
    assert_eq!(number(&connector, by_type).await, 2_300);

    // Time travel: version 1 is the first data commit; FOR VERSION AS OF and the versioned name agree.
    let at_one = number(&connector, "SELECT count(*) FROM lake.ad_events FOR VERSION AS OF 1").await;
    assert!(at_one > 0 && at_one < 2_000, "{at_one}");
    assert_eq!(number(&connector, "SELECT count(*) FROM lake.\"ad_events@v1\"").await, at_one);
    let first_commit = {
        let mut table = open(&config.tables[0].location, &config.storage_options).await;
        table.load_version(1).await.unwrap();
        tidelake_lake::delta::row_and_file_count(&table).unwrap().0 as i64
    };
    assert_eq!(at_one, first_commit);
    let later = "SELECT count(*) FROM lake.ad_events FOR TIMESTAMP AS OF TIMESTAMP '2100-01-01 00:00:00'";
    assert_eq!(number(&connector, later).await, 2_000);

    // A tail longer than a query may read is refused, saying how far ingest is behind; the lake
    // still answers.
    let capped = Connector::new(config.clone()).unwrap().with_max_tail_records(300);
    for sql in [format!("SELECT count(*) FROM {kafka}"), "SELECT count(*) FROM live.ad_events".into()] {
        let refused = capped.query(&sql).await.unwrap_err();
        assert!(refused.is_user_error(), "{refused}");
        assert!(refused.to_string().contains("ingest is behind by 311 records"), "{sql}: {refused}");
        assert!(refused.to_string().contains("would read 311 records"), "{sql}: {refused}");
    }
    assert_eq!(number(&capped, "SELECT count(*) FROM lake.ad_events").await, 2_000);

    // Once ingested, the lake holds what live showed, and the tail is empty.
    ingest_to_end(&path);
    assert_eq!(number(&connector, "SELECT count(*) FROM live.ad_events").await, 2_300);
    assert_eq!(number(&connector, "SELECT count(*) FROM lake.ad_events").await, 2_300);
    assert_eq!(number(&connector, &format!("SELECT count(*) FROM {kafka}")).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_tail_is_read_as_far_as_the_query_needs() {
    // 60,000 records no lake holds yet, over 3 partitions; a query may read 40,000 of them.
    let topic = filled_topic("tail-reads", 3, &events(60_000, 0.0, 0.0, 61)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = load_config(&write_config(dir.path(), &topic, &unique("group"), 1_000));
    let capped = Connector::new(config.clone()).unwrap().with_max_tail_records(40_000);
    let whole = Connector::new(config).unwrap();
    let kafka = format!("kafka.\"{topic}\"");

    // The whole tail is past the cap: refused, saying how much the query would read.
    let refused = capped.query(&format!("SELECT count(*) FROM {kafka}")).await.unwrap_err();
    assert!(refused.is_user_error(), "{refused}");
    assert!(refused.to_string().contains("would read 60000 records"), "{refused}");

    // A LIMIT stops the reading: a chunk per partition at most, not the tail.
    let (rows, read) = reads(&capped, format!("SELECT count(*) FROM (SELECT * FROM {kafka} LIMIT 10)")).await;
    assert_eq!(rows, 10);
    let chunk = tidelake_presto::kafka_table::CHUNK_RECORDS as u64;
    assert!(read <= 3 * chunk, "{read} offsets read for 10 rows");

    // Filters on the positions read exactly the offsets they name; the same filter written so that
    // no read can be narrowed (a full read, uncapped) gives the same rows.
    let (per_partition, _) = reads(&whole, format!("SELECT count(*) FROM {kafka} WHERE _partition + 0 = 1")).await;
    assert!(per_partition > 10_000, "partition 1 holds {per_partition} of 60,000");
    for (narrow, open) in [
        ("_partition = 1 AND _offset >= 1000", "_partition + 0 = 1 AND _offset + 0 >= 1000"),
        (
            "_partition IN (0, 2) AND _offset BETWEEN 10 AND 4009",
            "_partition + 0 <> 1 AND _offset + 0 BETWEEN 10 AND 4009",
        ),
        ("_offset < 100 AND 2 > _partition", "_offset + 0 < 100 AND _partition + 0 < 2"),
        ("_partition = 7", "_partition + 0 = 7"),
    ] {
        let (rows, read) = reads(&capped, format!("SELECT count(*) FROM {kafka} WHERE {narrow}")).await;
        let (expected, _) = reads(&whole, format!("SELECT count(*) FROM {kafka} WHERE {open}")).await;
        assert_eq!(rows, expected, "{narrow}");
        assert_eq!(read, rows as u64, "{narrow}: only its rows' offsets are read");
    }
    assert_eq!(
        reads(&capped, format!("SELECT count(*) FROM {kafka} WHERE _partition = 1 AND _offset >= 1000")).await.0,
        per_partition - 1_000
    );

    // A lower bound on the timestamp starts each partition at Kafka's first record that late.
    let since = chrono::Utc::now().timestamp_millis() + 5;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    produce(&producer(), &topic, &events(50, 0.0, 0.0, 62)).await;
    let late = format!("SELECT count(*) FROM {kafka} WHERE _timestamp >= to_timestamp_millis({since})");
    assert_eq!(reads(&capped, late).await, (50, 50));
    let (all, read) = reads(&whole, format!("SELECT count(*) FROM {kafka}")).await;
    assert_eq!((all, read), (60_050, 60_050));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_that_lost_records_to_retention_is_refused_unless_a_partial_answer_is_allowed() {
    let topic = filled_topic("lost", 1, &events(500, 0.0, 0.0, 71)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &topic, &unique("group"), 1_000);
    ingest_to_end(&path);
    // Offsets 500..800 arrive; retention deletes 500..600 before ingest reads them.
    produce(&producer(), &topic, &events(300, 0.0, 0.0, 72)).await;
    delete_records_below(&topic, 0, 600).await;

    let config = load_config(&path);
    let strict = Connector::new(config.clone()).unwrap();
    for sql in ["SELECT count(*) FROM live.ad_events".to_string(), format!("SELECT count(*) FROM kafka.\"{topic}\"")] {
        let refused = strict.query(&sql).await.unwrap_err();
        assert!(!refused.is_user_error(), "{refused}");
        assert!(refused.to_string().contains("partition 0: offsets 500..=599 (100 records)"), "{sql}: {refused}");
    }
    assert_eq!(number(&strict, "SELECT count(*) FROM lake.ad_events").await, 500);

    let partial = Connector::new(config).unwrap().with_allow_lost_tail(true);
    assert_eq!(number(&partial, "SELECT count(*) FROM live.ad_events").await, 700);
    assert_eq!(number(&partial, &format!("SELECT count(*) FROM kafka.\"{topic}\"")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_query_is_refused_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "unused", "unused", 100);
    let connector = Connector::new(load_config(&path)).unwrap();
    let error = |sql: &'static str| {
        let connector = &connector;
        async move { connector.query(sql).await.expect_err(sql) }
    };
    let e = error("SELEC 1").await;
    assert!(e.is_user_error() && e.to_string().contains("SELEC"), "{e}");
    let e = error("SELECT nope").await;
    assert!(e.is_user_error(), "{e}");
    let e = error("SELECT * FROM lake.no_such_table").await;
    assert!(e.is_user_error() && e.to_string().contains("no_such_table"), "{e}");
    // A declared table with no commit reads as empty; a version of it does not exist.
    let (_, rows) = connector.query("SELECT * FROM lake.ad_events").await.unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    let e = error("SELECT * FROM lake.ad_events FOR VERSION AS OF 1").await;
    assert!(e.to_string().contains("no Delta table"), "{e}");
    let e = error("CREATE TABLE x AS SELECT 1").await;
    assert!(e.to_string().to_lowercase().contains("not supported") || e.to_string().contains("DDL"), "{e}");
    let e = error("SELECT * FROM lake.\"ad_events@yesterday\"").await;
    assert!(e.to_string().contains("yesterday"), "{e}");
}

#[test]
fn tidelake_query_prints_a_table_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "unused", "unused", 100);
    let config = path.to_str().unwrap();
    let sql = "SELECT 1 AS one, CAST(12.5 AS DECIMAL(18, 6)) AS cost, 'x' AS name";
    let table = String::from_utf8(run_ok(&["query", "--config", config, sql], &[]).stdout).unwrap();
    assert!(table.contains("| one | cost      | name |") && table.contains("| 1   | 12.500000 | x    |"), "{table}");
    let csv = String::from_utf8(run_ok(&["query", "--config", config, "--format", "csv", sql], &[]).stdout).unwrap();
    assert_eq!(csv, "one,cost,name\n1,12.500000,x\n");
    let json = run_ok(&["query", "--config", config, "--format", "json", sql], &[]).stdout;
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json, serde_json::json!([{"one": 1, "cost": "12.500000", "name": "x"}]));
    let bad = run_tidelake(&["query", "--config", config, "SELECT * FROM lake.nothing"], &[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nothing"));
}

/// Every row of a query, each column as text, in the query's order.
async fn rows(connector: &Connector, sql: &str) -> Vec<Vec<String>> {
    let (_, batches) = connector.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = Vec::new();
    for batch in &batches {
        for r in 0..batch.num_rows() {
            let text = |c: usize| arrow::util::display::array_value_to_string(batch.column(c), r).unwrap();
            rows.push((0..batch.num_columns()).map(text).collect());
        }
    }
    rows
}

/// `n` click events of ad 1 at `time`, with fresh event UUIDs.
fn clicks_at(time: &str, n: usize) -> Vec<SampleRecord> {
    (0..n)
        .map(|i| {
            let id = format!("late-{i}");
            let value = format!(
                r#"{{"event_id":"{id}","event_time":"{time}","event_type":"click","ad_id":1,"campaign_id":1001,"user_id":"u-1","cost":"0.250000"}}"#
            );
            SampleRecord { key: b"1".to_vec(), value: value.into_bytes(), kind: Kind::Event, event_id: id }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_queries_over_closed_days_come_from_the_cache() {
    // Four closed days (2026-11-20 to 23) of events, their minute rollup written by ingest.
    let records = spread_over_days(events(6_000, 0.05, 0.01, 81), 3);
    let topic = filled_topic("cache", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 1_000);
    ingest_to_end(&path);
    let config = load_config(&path);
    let cached = Connector::new(config.clone()).unwrap().with_result_cache(64 << 20);
    let plain = Connector::new(config).unwrap();
    let stats = || cached.cache_stats().unwrap();

    let dashboard = "SELECT campaign_id, sum(impressions) AS impressions, sum(clicks) AS clicks, sum(spend) AS spend, \
                     max(max_cost) AS top, count(*) AS buckets FROM lake.ad_events_minute \
                     WHERE minute >= TIMESTAMP '2026-11-20 00:00:00' AND minute < TIMESTAMP '2026-11-24 00:00:00' \
                     GROUP BY campaign_id ORDER BY spend DESC, campaign_id LIMIT 5";
    let expected = rows(&plain, dashboard).await;
    assert_eq!(expected.len(), 5, "{expected:?}");
    // Bounds at midnight are applied as the same bounds on the date partition: whole files, and
    // the minute column is not read. The rows are those of bounds that cannot be (the last
    // microsecond before each midnight), which filter rows by their minute.
    let unaligned = dashboard
        .replace("minute >= TIMESTAMP '2026-11-20 00:00:00'", "minute > TIMESTAMP '2026-11-19 23:59:59.999999'")
        .replace("minute < TIMESTAMP '2026-11-24 00:00:00'", "minute <= TIMESTAMP '2026-11-23 23:59:59.999999'");
    assert_eq!(rows(&plain, &unaligned).await, expected);
    let physical = |plan: Vec<Vec<String>>| plan.into_iter().find(|r| r[0] == "physical_plan").unwrap()[1].clone();
    assert!(physical(rows(&plain, &format!("EXPLAIN {unaligned}")).await).contains(" minute@"));
    let aligned = physical(rows(&plain, &format!("EXPLAIN {dashboard}")).await);
    assert!(!aligned.contains(" minute@") && !aligned.contains(", minute,"), "{aligned}");
    let first = rows(&cached, dashboard).await;
    assert_eq!(first, expected);
    let after_first = stats();
    assert_eq!((after_first.misses, after_first.hits, after_first.split_queries), (4, 0, 1), "{after_first:?}");
    assert_eq!((after_first.statement_misses, after_first.statement_hits), (1, 0), "{after_first:?}");

    // The second run: the whole answer from the cache, the same rows, no day looked up.
    assert_eq!(rows(&cached, dashboard).await, expected);
    let after_second = stats();
    assert_eq!((after_second.misses, after_second.hits, after_second.statement_hits), (4, 0, 1), "{after_second:?}");
    assert!(after_second.entries == 5 && after_second.bytes > 0, "{after_second:?}");

    // A wider range and another limit share the days: conditions a whole day meets are not part
    // of the signature, and the limit applies after the merge.
    let wider = dashboard.replace("2026-11-20 00:00:00", "2026-11-01 00:00:00").replace("LIMIT 5", "LIMIT 3");
    assert_eq!(rows(&cached, &wider).await, expected[..3]);
    assert_eq!(stats().hits, 4, "{:?}", stats());
    // Part of a day is its own entry, a day the range leaves out is not read; what it returns still
    // equals the plain engine's answer.
    let part = dashboard.replace("2026-11-20 00:00:00", "2026-11-21 12:00:00");
    assert_eq!(rows(&cached, &part).await, rows(&plain, &part).await);
    assert_eq!((stats().hits, stats().misses), (6, 5), "{:?}", stats());

    // The data table is partitioned by date too; a global aggregate over it splits the same way.
    let totals = "SELECT count(*), sum(cost), min(event_time), max(event_time) FROM lake.ad_events";
    let average = "SELECT event_type, avg(cost) FROM lake.ad_events GROUP BY event_type ORDER BY event_type";
    let raw = "SELECT event_type, count(*), sum(cost), min(event_time), max(event_time) FROM lake.ad_events GROUP BY event_type ORDER BY event_type";
    assert_eq!(rows(&cached, raw).await, rows(&plain, raw).await);
    assert_eq!(rows(&cached, totals).await, rows(&plain, totals).await);
    assert_eq!(stats().misses, 13, "{:?}", stats());
    // avg does not merge from per-day averages: that query runs whole, and is still right.
    let splits = stats().split_queries;
    assert_eq!(rows(&cached, average).await, rows(&plain, average).await);
    assert_eq!(stats().split_queries, splits);

    // A late event lands in 2026-11-21: that day is recomputed, the other three still hit, and the
    // answer holds the late clicks.
    produce(&producer(), &topic, &clicks_at("2026-11-21T10:00:00Z", 40)).await;
    ingest_to_end(&path);
    let (hits, misses) = (stats().hits, stats().misses);
    let total = "SELECT sum(clicks), count(*) FROM lake.ad_events_minute \
                 WHERE minute >= TIMESTAMP '2026-11-20 00:00:00' AND minute < TIMESTAMP '2026-11-24 00:00:00'";
    let now = rows(&cached, dashboard).await;
    assert_eq!(now, rows(&plain, dashboard).await);
    assert_ne!(now, expected, "the late clicks are in the answer");
    assert_eq!((stats().hits - hits, stats().misses - misses), (3, 1), "{:?}", stats());
    assert_eq!(rows(&cached, total).await, rows(&plain, total).await);
    // The new answer is kept in turn, and given again while nothing changes.
    let statement_hits = stats().statement_hits;
    assert_eq!(rows(&cached, dashboard).await, now);
    assert_eq!(stats().statement_hits, statement_hits + 1, "{:?}", stats());

    // What can answer differently over the same files is never kept whole: a query of `now()`,
    // the Kafka tail, a version read through time travel.
    let (kept, found) = (stats().statement_misses, stats().statement_hits);
    for changing in [
        "SELECT count(*) FROM lake.ad_events WHERE event_time < now()",
        "SELECT count(*) FROM live.ad_events",
        "SELECT count(*) FROM lake.ad_events FOR VERSION AS OF 1",
    ] {
        let once = rows(&cached, changing).await;
        assert_eq!(rows(&cached, changing).await, once, "{changing}");
        assert_eq!(rows(&plain, changing).await, once, "{changing}");
    }
    assert_eq!((stats().statement_misses, stats().statement_hits), (kept, found), "{:?}", stats());
}
