//! Rollups end to end: partial minute rows written by ingest hold, bucket for bucket, what the raw
//! table holds, also across crashes between the data commit and the minute commit.

use std::collections::BTreeMap;

use tidelake_lake::ledger::{Ledger, RollupKind, TableKind};
use tidelake_lake::rollup::Grain;

use crate::helpers::*;

/// Which data commits each minute commit took its rows from: every data commit that wrote rows
/// must be in exactly one minute commit. Returns how many data commits minute commits took along
/// besides their own batch's (catching up after a crash).
async fn assert_each_data_commit_once(config: &tidelake_lake::PipelineConfig) -> usize {
    let spec = &config.tables[0];
    let options = &config.storage_options;
    let rollup = spec.rollup.as_ref().unwrap();
    let data = Ledger::read(&spec.name, &open(&spec.location, options).await).await.unwrap();
    let minute_name = rollup.table_name(Grain::Minute);
    let minute =
        Ledger::read(&minute_name, &open(rollup.location(Grain::Minute).unwrap(), options).await).await.unwrap();
    let mut taken: BTreeMap<u64, usize> = BTreeMap::new();
    let mut catch_ups = 0;
    let mut source_rows = 0;
    for commit in minute.commits.iter().filter_map(|c| c.rollup.as_ref()) {
        assert_eq!(commit.kind, RollupKind::Partial);
        catch_ups += commit.source_versions.len().saturating_sub(1);
        source_rows += commit.source_rows;
        for v in &commit.source_versions {
            *taken.entry(*v).or_default() += 1;
        }
    }
    let mut data_rows = 0;
    for commit in &data.commits {
        let Some(info) = commit.info.as_ref().filter(|i| i.kind == TableKind::Data) else { continue };
        data_rows += info.rows;
        let times = taken.remove(&commit.version).unwrap_or(0);
        assert!(
            times == 1 || (times == 0 && info.rows == 0),
            "data version {} ({} rows) is in {times} minute commits",
            commit.version,
            info.rows
        );
    }
    assert!(taken.is_empty(), "minute commits name data versions that are not data commits: {taken:?}");
    assert_eq!(
        source_rows, data_rows,
        "minute commits aggregated {source_rows} rows, the data table holds {data_rows}"
    );
    catch_ups
}

#[tokio::test(flavor = "multi_thread")]
async fn minute_rollup_matches_the_raw_table_bucket_for_bucket() {
    let records = events(20_000, 0.05, 0.005, 41);
    let topic = filled_topic("rollup", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 700);
    let report = ingest_to_end(&config_path);
    assert!(report["minute_rows"].as_u64().unwrap() > 0, "{report}");

    let config = load_config(&config_path);
    let check = rollup_check(&config.tables[0].location, &["minute"]);
    assert_rollups_match(&check, &["minute"], 0.02);
    assert_eq!(assert_each_data_commit_once(&config).await, 0, "no crash, so no minute commit had to catch up");
    audit_passes(&config_path);

    // Delivered again from the start (a new consumer group): nothing changes.
    let again = write_config_with_rollup(dir.path(), &topic, &unique("group"), 700);
    let report = ingest_to_end(&again);
    assert_eq!(report["minute_rows"], 0, "{report}");
    assert_rollups_match(&rollup_check(&config.tables[0].location, &["minute"]), &["minute"], 0.02);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_the_data_and_minute_commits_is_caught_up_from_the_data_commits() {
    let records = events(12_000, 0.05, 0.005, 43);
    let topic = filled_topic("rollup-crash", 3, &records).await;
    let dir = tempfile::tempdir().unwrap();
    // Four commits per batch: archive, dead letters, data, minute. Hit 3 + 4k is the data commit of
    // batch k + 1: the process dies with the data committed and the minute rows not.
    let mut crashes = 0;
    for point in ["after-commit:3", "after-commit:7", "after-commit:11", "after-commit:3", "after-commit:15"] {
        let config = write_config_with_rollup(dir.path(), &topic, &unique("group"), 400);
        let out = run_tidelake(
            &["ingest", "--config", config.to_str().unwrap(), "--stop-at-end"],
            &[("TIDELAKE_CRASH_AT", point)],
        );
        if !out.status.success() {
            assert!(String::from_utf8_lossy(&out.stderr).contains("crash injected"), "{point}");
            crashes += 1;
        }
    }
    assert_eq!(crashes, 5, "every run dies at its data commit");
    let config_path = write_config_with_rollup(dir.path(), &topic, &unique("group"), 400);
    ingest_to_end(&config_path);

    let config = load_config(&config_path);
    assert_rollups_match(&rollup_check(&config.tables[0].location, &["minute"]), &["minute"], 0.02);
    let catch_ups = assert_each_data_commit_once(&config).await;
    assert_eq!(catch_ups, 5, "each crash left one data commit for a later minute commit to take along");
    audit_passes(&config_path);
}
