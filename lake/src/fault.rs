//! Crash points for tests: `TIDELAKE_CRASH_AT=<point>[:<n>]` aborts the process the n-th time (default
//! first) execution reaches `point`, the way a SIGKILL or a Lambda timeout would stop it there.
//!
//! Points: `after-data-write` (files written, not committed), `after-commit` (a table committed, the
//! next table or the Kafka offset commit not yet), `after-data-commit` (the data table committed, the
//! rollup's minute table not yet), `after-batch` (all tables committed, Kafka offsets not yet); and
//! in compaction `<job>-after-write` and `<job>-after-commit` for optimize, finalize and rollup;
//! in a reprocess replace `replace-after-copy` (the shadow's files copied, not committed) and
//! `replace-after-commit` (one table swapped, the next not yet).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

static TARGET: LazyLock<Option<(String, u64)>> = LazyLock::new(|| {
    let spec = std::env::var("TIDELAKE_CRASH_AT").ok()?;
    let (point, nth) = match spec.split_once(':') {
        Some((point, n)) => (point.to_string(), n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    Some((point, nth))
});
static HITS: AtomicU64 = AtomicU64::new(0);

/// Aborts the process here when `TIDELAKE_CRASH_AT` names this point and its count is reached.
pub fn point(name: &str) {
    if let Some((target, nth)) = TARGET.as_ref() {
        if target == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
            eprintln!("tidelake: crash injected at {name} (hit {nth})");
            std::process::abort();
        }
    }
}
