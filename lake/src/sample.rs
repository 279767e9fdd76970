//! The running example: ad impressions and clicks of a food-delivery marketplace. Used by
//! `tidelake quickstart`, the tests and the benchmarks.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The `[tables.ad_events]` section for the sample events (topic `ad_events`).
pub const AD_EVENTS_TABLE: &str = r#"[tables.ad_events]
topic = "ad_events"
event_uuid = "event_id"
event_time = "event_time"
partition_by = ["date", "hour"]
columns = [
  { name = "event_id", type = "string", nullable = false },
  { name = "event_time", type = "timestamp", nullable = false },
  { name = "event_type", type = "string", nullable = false },
  { name = "ad_id", type = "int64", nullable = false },
  { name = "campaign_id", type = "int64", nullable = false },
  { name = "user_id", type = "string" },
  { name = "cost", type = "decimal(18, 6)" },
]
"#;

/// The `[tables.ad_events.rollup]` section: impressions, clicks, spend and unique users per ad and
/// campaign, by minute, hour and day.
pub const AD_EVENTS_ROLLUP: &str = r#"[tables.ad_events.rollup]
dimensions = ["ad_id", "campaign_id"]
grains = ["minute", "hour", "day"]
allowed_lateness = "5m"
measures = [
  { name = "impressions", fn = "count", filter = "event_type = 'impression'" },
  { name = "clicks", fn = "count", filter = "event_type = 'click'" },
  { name = "spend", fn = "sum", column = "cost" },
  { name = "max_cost", fn = "max", column = "cost" },
  { name = "unique_users", fn = "approx_distinct", column = "user_id" },
]
"#;

/// What a generated record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A valid event, first time sent.
    Event,
    /// A valid event sent again: same event UUID and content (a producer retry).
    Duplicate,
    /// A record that cannot be decoded.
    Poison,
}

/// One generated Kafka record.
#[derive(Debug, Clone)]
pub struct SampleRecord {
    /// Key: the ad id, so one ad's events stay in order on one partition.
    pub key: Vec<u8>,
    /// JSON value.
    pub value: Vec<u8>,
    /// What it is.
    pub kind: Kind,
    /// The event UUID (empty for poison).
    pub event_id: String,
}

/// Shape of a generated stream.
#[derive(Debug, Clone, Copy)]
pub struct SampleSpec {
    /// Distinct valid events.
    pub events: usize,
    /// Extra copies of earlier events, as a fraction of `events`.
    pub duplicate_ratio: f64,
    /// Poison records, as a fraction of `events`.
    pub poison_ratio: f64,
    /// Event times spread over the hour before this (microseconds since the epoch).
    pub end_time_us: i64,
    /// Seed: the same spec gives the same records.
    pub seed: u64,
}

/// Generates the records of `spec`, duplicates and poison mixed in at random places.
pub fn generate(spec: &SampleSpec) -> Vec<SampleRecord> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let duplicates = (spec.events as f64 * spec.duplicate_ratio).round() as usize;
    let poison = (spec.events as f64 * spec.poison_ratio).round() as usize;
    let mut out: Vec<SampleRecord> = Vec::with_capacity(spec.events + duplicates + poison);
    for _ in 0..spec.events {
        out.push(event(&mut rng, spec.end_time_us));
    }
    for _ in 0..duplicates {
        let original = out[rng.random_range(0..spec.events)].clone();
        let at = rng.random_range(0..=out.len());
        out.insert(at, SampleRecord { kind: Kind::Duplicate, ..original });
    }
    for i in 0..poison {
        let at = rng.random_range(0..=out.len());
        out.insert(at, poison_record(&mut rng, i));
    }
    out
}

fn event(rng: &mut StdRng, end_time_us: i64) -> SampleRecord {
    let id = uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string();
    let at = end_time_us - rng.random_range(0..3_600_000_000i64);
    let time = chrono::DateTime::from_timestamp_micros(at).expect("valid time").format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let ad_id: i64 = rng.random_range(1..=200);
    let campaign_id = 1000 + ad_id / 10;
    let click = rng.random_bool(0.08);
    let kind = if click { "click" } else { "impression" };
    let cost = if click { rng.random_range(100_000..2_000_000) } else { rng.random_range(500..5_000) };
    let user = rng.random_range(1..50_000);
    let value = format!(
        r#"{{"event_id":"{id}","event_time":"{time}","event_type":"{kind}","ad_id":{ad_id},"campaign_id":{campaign_id},"user_id":"u-{user}","cost":"{}.{:06}"}}"#,
        cost / 1_000_000,
        cost % 1_000_000
    );
    SampleRecord { key: ad_id.to_string().into_bytes(), value: value.into_bytes(), kind: Kind::Event, event_id: id }
}

fn poison_record(rng: &mut StdRng, i: usize) -> SampleRecord {
    let value = match i % 4 {
        0 => r#"{"event_id":"truncated","event_time":"2026-11-23T1"#.to_string(),
        1 => r#"{"event_time":"2026-11-23T10:00:00Z","event_type":"click","ad_id":1,"campaign_id":1000}"#.to_string(),
        2 => format!(
            r#"{{"event_id":"{}","event_time":"2026-11-23T10:00:00Z","event_type":"click","ad_id":"forty-two","campaign_id":1000}}"#,
            uuid::Builder::from_random_bytes(rng.random()).into_uuid()
        ),
        _ => "not json at all".to_string(),
    };
    SampleRecord { key: b"poison".to_vec(), value: value.into_bytes(), kind: Kind::Poison, event_id: String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_determinism() {
        let spec = SampleSpec {
            events: 1000,
            duplicate_ratio: 0.05,
            poison_ratio: 0.01,
            end_time_us: 1_795_435_200_000_000,
            seed: 7,
        };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.len(), 1060);
        assert_eq!(a.iter().filter(|r| r.kind == Kind::Poison).count(), 10);
        assert_eq!(a.iter().filter(|r| r.kind == Kind::Duplicate).count(), 50);
        assert_eq!(a.iter().map(|r| &r.value).collect::<Vec<_>>(), b.iter().map(|r| &r.value).collect::<Vec<_>>());
    }
}
