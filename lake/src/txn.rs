//! The `txn` (application transaction) versions a table holds, kept current from the commits that
//! land rather than replayed from the log on every lookup.
//!
//! Delta answers "which version did app id X last commit" by replaying the log from its last
//! checkpoint: up to a hundred commit files read per lookup, per topic-partition, per batch. On
//! object storage that is most of what a writer reads. Here each table (by location and id) keeps the
//! versions it has looked up as of one table version; a lookup at a later version reads only the
//! commits in between (each once), and a lookup of an app id not seen yet replays the log once.
//! The latest `txn` of an app id is the one in the newest commit that has one, so what the commits
//! in between say replaces what was known.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use deltalake::DeltaTable;

use crate::error::{Error, Result};
use crate::ledger;

/// How many commits a lookup reads to bring a table's known versions up to date; further behind,
/// it starts over from the log.
const MAX_CATCH_UP: u64 = 1_000;

/// What is known of one table's app ids as of `version`: `None` = the table has no `txn` for it.
#[derive(Debug, Clone, Default)]
struct Known {
    version: u64,
    apps: HashMap<String, Option<i64>>,
}

fn known() -> &'static Mutex<HashMap<String, Known>> {
    static KNOWN: OnceLock<Mutex<HashMap<String, Known>>> = OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

/// The version of the latest `txn` action of each of `app_ids` that `table` (named `name` in
/// errors) holds as of its loaded version (`None`: it has none).
pub async fn versions(name: &str, table: &DeltaTable, app_ids: &[String]) -> Result<HashMap<String, Option<i64>>> {
    let Some(version) = table.version() else {
        return Ok(app_ids.iter().map(|a| (a.clone(), None)).collect());
    };
    // The table's id as well as its location: a table dropped and created again at the same place
    // starts over, whatever this process knew of the old one.
    let id = table.snapshot().map_err(Error::delta(name))?.metadata().id().to_string();
    let key = format!("{} {id}", table.table_url());
    let cached = known().lock().expect("txn cache").get(&key).cloned();
    // An older snapshot (a read as of a version) is answered from the log alone.
    let mut state = match cached {
        Some(state) if state.version <= version => catch_up(name, table, state, version).await?,
        Some(_) => return from_log(name, table, app_ids, Known { version, ..Known::default() }).await.map(|k| k.apps),
        None => Known { version, ..Known::default() },
    };
    state = from_log(name, table, app_ids, state).await?;
    let answer = app_ids.iter().map(|a| (a.clone(), state.apps.get(a).copied().flatten())).collect();
    let mut all = known().lock().expect("txn cache");
    if all.get(&key).is_none_or(|k| k.version <= state.version) {
        all.insert(key, state);
    }
    Ok(answer)
}

/// Brings `state` from its version to `version` by reading the commits in between; starts over
/// (empty) when they are too many or one is gone.
async fn catch_up(name: &str, table: &DeltaTable, mut state: Known, version: u64) -> Result<Known> {
    if version - state.version > MAX_CATCH_UP {
        return Ok(Known { version, ..Known::default() });
    }
    for v in state.version + 1..=version {
        let Some(commit) = ledger::read_commit(name, table, v).await? else {
            return Ok(Known { version, ..Known::default() });
        };
        for (app_id, txn_version) in commit.txns {
            state.apps.insert(app_id, Some(txn_version));
        }
    }
    state.version = version;
    Ok(state)
}

/// Looks up in the log the app ids of `app_ids` that `state` does not know yet.
async fn from_log(name: &str, table: &DeltaTable, app_ids: &[String], mut state: Known) -> Result<Known> {
    let snapshot = table.snapshot().map_err(Error::delta(name))?;
    let log_store = table.log_store();
    let unknown: Vec<&String> = app_ids.iter().filter(|a| !state.apps.contains_key(*a)).collect();
    for app_id in unknown {
        let found =
            snapshot.transaction_version(log_store.as_ref(), app_id.clone()).await.map_err(Error::delta(name))?;
        state.apps.insert(app_id.clone(), found);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::batch::TopicPartition;
    use crate::delta::{app_id, CommitMode, OffsetTable, Planned};

    /// Commits an empty append covering `tp` up to `last`.
    async fn cover(table: &mut OffsetTable, tp: &TopicPartition, last: i64) {
        let offsets = BTreeMap::from([(tp.clone(), last)]);
        table.append_once(&offsets, CommitMode::Blind, async |_, _| Ok(Planned::default())).await.unwrap();
    }

    #[tokio::test]
    async fn lookups_follow_the_commits_that_land_and_answer_older_snapshots_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let location = url::Url::from_directory_path(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
        let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        let ids = [app_id(&a), app_id(&b)];
        let mut writer = OffsetTable::open("t", &location, &schema, &[], &HashMap::new()).await.unwrap();
        cover(&mut writer, &a, 10).await;
        let old = writer.table().clone();
        let first = versions("t", &old, &ids).await.unwrap();
        assert_eq!((first[&ids[0]], first[&ids[1]]), (Some(10), None));

        // Another handle on the same table commits; the first lookup at the new version reads
        // only the commits in between, and agrees with a replay of the log.
        let mut other = OffsetTable::open("t", &location, &schema, &[], &HashMap::new()).await.unwrap();
        cover(&mut other, &b, 7).await;
        cover(&mut other, &a, 25).await;
        writer.refresh().await.unwrap();
        let now = versions("t", writer.table(), &ids).await.unwrap();
        assert_eq!((now[&ids[0]], now[&ids[1]]), (Some(25), Some(7)));
        let replayed = from_log("t", writer.table(), &ids, Known::default()).await.unwrap();
        assert_eq!(now, replayed.apps);

        // The snapshot read before still answers as of its own version.
        let then = versions("t", &old, &ids).await.unwrap();
        assert_eq!((then[&ids[0]], then[&ids[1]]), (Some(10), None));

        // The table dropped and created again at the same place, up to the same version: what was
        // known of the old one does not answer for the new one.
        std::fs::remove_dir_all(dir.path().join("_delta_log")).unwrap();
        let mut again = OffsetTable::open("t", &location, &schema, &[], &HashMap::new()).await.unwrap();
        for last in 1..=3 {
            cover(&mut again, &a, last).await;
        }
        assert_eq!(again.table().version(), writer.table().version());
        let fresh = versions("t", again.table(), &ids).await.unwrap();
        assert_eq!((fresh[&ids[0]], fresh[&ids[1]]), (Some(3), None));
    }
}
