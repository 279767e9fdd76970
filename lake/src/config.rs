//! The pipeline config, `tidelake.toml`: where records come from, which tables they land in, and how.
//!
//! [`PipelineConfig::load`] reads and validates the whole file before anything touches storage, so a
//! bad config is refused with an error that names the key (`tables.ad_events.event_time`) and says what
//! is wrong. Relative locations are resolved against the folder of the config file.
//!
//! ```
//! let config = tidelake_lake::PipelineConfig::parse(r#"
//!     [kafka]
//!     brokers = "127.0.0.1:9092"
//!
//!     [lake]
//!     root = "file:///tmp/lake"
//!
//!     [tables.ad_events]
//!     topic = "ad_events"
//!     event_uuid = "event_id"
//!     event_time = "event_time"
//!     partition_by = ["date"]
//!     dedup_window = "24h"
//!     max_future = "1h"
//!     optimize = { sort_by = ["ad_id"] }
//!     columns = [
//!       { name = "event_id", type = "string", nullable = false },
//!       { name = "event_time", type = "timestamp", nullable = false },
//!       { name = "ad_id", type = "int64" },
//!       { name = "user_id", type = "string", default = "anonymous" },
//!     ]
//! "#, std::path::Path::new("/tmp")).unwrap();
//! assert_eq!(config.tables[0].location.as_str(), "file:///tmp/lake/ad_events");
//! assert_eq!(config.kafka.isolation_level, "read_committed");
//! assert_eq!(config.tables[0].sort_by, ["ad_id"]);
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result};
use crate::registry::{Registry, RegistryAuth, RegistryConfig};
use crate::rollup::RawRollup;
use crate::schema::{ColumnSpec, ColumnType, PartitionGrain, RecordFormat, TableSpec};

/// A whole pipeline: one Kafka source, micro-batch limits, and the tables records land in.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Where the config was read from (`<inline>` when parsed from a string).
    pub source: String,
    /// The Kafka source.
    pub kafka: KafkaConfig,
    /// How the local poller cuts micro-batches.
    pub batch: BatchConfig,
    /// Options handed to the object store (S3 endpoint, region, credentials, ...).
    pub storage_options: HashMap<String, String>,
    /// The tables, in name order.
    pub tables: Vec<TableSpec>,
}

/// The Kafka side of a pipeline.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group of the local poller (`group.id`).
    pub group_id: String,
    /// `read_committed` (default) or `read_uncommitted`.
    pub isolation_level: String,
    /// Extra librdkafka settings, passed through as they are.
    pub properties: BTreeMap<String, String>,
    /// Where ingest starts a partition the lake has never held (a partition it holds resumes one
    /// past its last offset, whatever the consumer group says).
    pub start_from: StartFrom,
}

/// Where ingest starts reading a partition the lake has never held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest record the topic still holds (the default: the whole history).
    Earliest,
    /// The end of the partition when ingest starts: only what comes after.
    Latest,
    /// The first record at or after this time (epoch milliseconds, by Kafka's time index).
    Time(i64),
}

/// Micro-batch limits of the local poller; the defaults match a Lambda Kafka event source mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most records in one batch.
    pub max_records: usize,
    /// Most value+key bytes in one batch.
    pub max_bytes: usize,
    /// Longest wait after the first record of a batch.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_records: 10_000, max_bytes: 6 * 1024 * 1024, max_wait: Duration::from_millis(500) }
    }
}

impl PipelineConfig {
    /// Reads and validates a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::ConfigRead { path: path.to_path_buf(), source })?;
        let base = absolute_dir(path);
        Self::parse_named(&text, &base, &path.display().to_string())
    }

    /// Reads the config of a function: the text of `TIDELAKE_CONFIG_TOML` when that is set (a Lambda
    /// environment variable), otherwise `location`: an `s3://bucket/key` object (credentials, region
    /// and endpoint from the usual `AWS_*` variables) or a file path. Locations inside a config read
    /// from the environment or S3 resolve against the working directory: give them as URLs.
    pub async fn for_function(location: &str) -> Result<Self> {
        if let Ok(text) = std::env::var("TIDELAKE_CONFIG_TOML") {
            let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            return Self::parse_named(&text, &here, "TIDELAKE_CONFIG_TOML");
        }
        if !(location.starts_with("s3://") || location.starts_with("s3a://")) {
            return Self::load(location);
        }
        let fetch_error = |reason: String| Error::ConfigFetch { location: location.to_string(), reason };
        let url = Url::parse(location).map_err(|e| fetch_error(format!("not a URL: {e}")))?;
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_url(location)
            .build()
            .map_err(|e| fetch_error(e.to_string()))?;
        let key = object_store::path::Path::from_url_path(url.path()).map_err(|e| fetch_error(e.to_string()))?;
        let bytes = object_store::ObjectStoreExt::get(&store, &key)
            .await
            .map_err(|e| fetch_error(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| fetch_error(e.to_string()))?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|e| fetch_error(format!("not UTF-8 text: {e}")))?;
        let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Self::parse_named(&text, &here, location)
    }

    /// Validates a config given as text; relative locations resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self> {
        Self::parse_named(text, base_dir, "<inline>")
    }

    fn parse_named(text: &str, base_dir: &Path, source: &str) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| Error::ConfigSyntax {
            path: source.to_string(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        Validator { source }.config(raw, base_dir)
    }

    /// Every topic the pipeline consumes.
    pub fn topics(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.topic.clone()).collect()
    }
}

fn absolute_dir(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    kafka: RawKafka,
    #[serde(default)]
    batch: RawBatch,
    lake: RawLake,
    schema_registry: Option<RawRegistry>,
    #[serde(default)]
    tables: BTreeMap<String, RawTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    url: String,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    ca_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    brokers: String,
    group_id: Option<String>,
    isolation_level: Option<String>,
    start_from: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    max_records: Option<i64>,
    max_bytes: Option<Size>,
    max_wait: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLake {
    root: String,
    #[serde(default)]
    storage: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    topic: String,
    format: Option<String>,
    avro_schema: Option<String>,
    on_incompatible: Option<String>,
    event_uuid: String,
    event_time: String,
    #[serde(default)]
    partition_by: Vec<String>,
    location: Option<String>,
    dead_letters: Option<String>,
    archive: Option<String>,
    dedup_window: Option<String>,
    max_future: Option<String>,
    /// A list of columns, or `"registry"`: the fields of the subject's schemas.
    columns: toml::Value,
    rollup: Option<RawRollup>,
    optimize: Option<RawOptimize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptimize {
    #[serde(default)]
    sort_by: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "default_true")]
    nullable: bool,
    default: Option<toml::Value>,
}

fn default_true() -> bool {
    true
}

struct Validator<'a> {
    source: &'a str,
}

impl Validator<'_> {
    fn invalid(&self, key: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::ConfigInvalid { path: self.source.to_string(), key: key.into(), reason: reason.into() }
    }

    fn config(&self, raw: RawConfig, base_dir: &Path) -> Result<PipelineConfig> {
        let kafka = self.kafka(raw.kafka)?;
        let batch = self.batch(raw.batch)?;
        let root = self.location("lake.root", &raw.lake.root, base_dir)?;
        if raw.tables.is_empty() {
            return Err(self.invalid(
                "tables",
                "no table is declared; add a [tables.<name>] section with topic, event_uuid, event_time and columns",
            ));
        }
        let registry = raw.schema_registry.map(|r| self.registry(r, base_dir)).transpose()?;
        let mut tables = Vec::with_capacity(raw.tables.len());
        let mut topics = HashSet::new();
        for (name, table) in raw.tables {
            let key = format!("tables.{name}");
            if !topics.insert(table.topic.clone()) {
                return Err(self.invalid(
                    format!("{key}.topic"),
                    format!("topic `{}` already feeds another table; one topic feeds one table", table.topic),
                ));
            }
            let format = self.format(&key, &table, registry.as_ref(), base_dir)?;
            let (columns, format) = self.columns(&key, &table, format)?;
            let spec = self.table(&key, name, table, columns, &root, base_dir)?.with_format(format);
            if let RecordFormat::AvroSchema(schema) = &spec.format {
                crate::avro::fits(schema, &spec.columns).map_err(|reason| {
                    self.invalid(format!("{key}.avro_schema"), format!("does not fit the columns: {reason}"))
                })?;
            }
            tables.push(spec);
        }
        self.distinct_delta_tables(&tables)?;
        let mut kafka = kafka;
        if kafka.group_id.is_empty() {
            kafka.group_id = default_group_id(&tables);
        }
        Ok(PipelineConfig { source: self.source.to_string(), kafka, batch, storage_options: raw.lake.storage, tables })
    }

    /// Every Delta table of the config (data, dead letters, archive, rollups) has a name and a
    /// location of its own: two tables in one place would take each other's offsets and rows for
    /// their own (the second topic's records dropped as copies), and a name is a table of the
    /// query schemas.
    fn distinct_delta_tables(&self, tables: &[TableSpec]) -> Result<()> {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut places: HashMap<String, String> = HashMap::new();
        for spec in tables {
            let key = format!("tables.{}", spec.name);
            let side = spec.delta_tables().into_iter().zip(["location", "dead_letters", "archive"]);
            let mut all: Vec<(String, &Url, String)> =
                side.map(|((name, at), field)| (name, at, format!("{key}.{field}"))).collect();
            if let Some(rollup) = &spec.rollup {
                all.extend(
                    rollup
                        .tables()
                        .map(|(grain, name, at)| (name, at, format!("{key}.rollup ({} table)", grain.name()))),
                );
            }
            for (name, at, field) in all {
                if let Some(first) = names.insert(name.clone(), field.clone()) {
                    return Err(self.invalid(
                        key.clone(),
                        format!("makes a Delta table `{name}`, which {first} already names; rename the table"),
                    ));
                }
                let place = at.as_str().trim_end_matches('/').to_string();
                if let Some(first) = places.insert(place.clone(), field.clone()) {
                    return Err(self.invalid(
                        field,
                        format!(
                            "`{place}` is where {first} already lives; each Delta table needs a location of its own"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn registry(&self, raw: RawRegistry, base_dir: &Path) -> Result<Arc<Registry>> {
        let url = Url::parse(raw.url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| self.invalid("schema_registry.url", format!("`{}` is not an http(s) URL", raw.url)))?;
        let auth =
            match (raw.username, raw.password, raw.token) {
                (None, None, None) => RegistryAuth::None,
                (Some(username), Some(password), None) => RegistryAuth::Basic { username, password },
                (None, None, Some(token)) => RegistryAuth::Bearer(token),
                (Some(_), None, None) => {
                    return Err(self
                        .invalid("schema_registry.password", "is missing: basic auth takes a username and a password"))
                }
                (None, Some(_), None) => {
                    return Err(self
                        .invalid("schema_registry.username", "is missing: basic auth takes a username and a password"))
                }
                _ => {
                    return Err(self
                        .invalid("schema_registry.token", "is given next to a username or password; sign in one way"))
                }
            };
        let ca_pem = match raw.ca_file {
            None => None,
            Some(file) => {
                let path = base_dir.join(file.trim());
                let pem = std::fs::read(&path).map_err(|e| {
                    self.invalid("schema_registry.ca_file", format!("cannot read `{}`: {e}", path.display()))
                })?;
                crate::registry::authorities(&pem).map_err(|reason| {
                    self.invalid("schema_registry.ca_file", format!("`{}` {reason}", path.display()))
                })?;
                Some(pem)
            }
        };
        let registry = Registry::new(RegistryConfig { url, auth, ca_pem })
            .map_err(|e| self.invalid("schema_registry", e.to_string()))?;
        Ok(Arc::new(registry))
    }

    fn format(
        &self,
        key: &str,
        table: &RawTable,
        registry: Option<&Arc<Registry>>,
        base_dir: &Path,
    ) -> Result<RecordFormat> {
        let through_registry = matches!(table.format.as_deref().map(str::trim), Some("avro" | "protobuf"));
        if table.on_incompatible.is_some() && (!through_registry || table.avro_schema.is_some()) {
            return Err(self.invalid(
                format!("{key}.on_incompatible"),
                "applies to Avro and Protobuf tables read through a schema registry, whose writer schemas can change",
            ));
        }
        match (table.format.as_deref().map(str::trim), &table.avro_schema) {
            (None | Some("json"), None) => Ok(RecordFormat::Json),
            (None | Some("json"), Some(_)) => Err(self.invalid(
                format!("{key}.avro_schema"),
                "is given, but the table's format is json: set format = \"avro\" to read plain Avro datums",
            )),
            (Some("avro"), Some(text)) => {
                let needs = [table.event_uuid.as_str(), table.event_time.as_str()];
                Ok(RecordFormat::AvroSchema(self.avro_schema(key, text, base_dir, &needs)?))
            }
            (Some("avro"), None) => match registry {
                Some(registry) => Ok(RecordFormat::Avro {
                    registry: Arc::clone(registry),
                    columns_follow: false,
                    stop_on_incompatible: self.stop_on_incompatible(key, table)?,
                }),
                None => Err(self.invalid(
                    format!("{key}.format"),
                    "is \"avro\": add a [schema_registry] section with its url (values in the registry's wire format), \
                     or give the table an avro_schema (plain Avro datums of that schema)",
                )),
            },
            (Some("protobuf"), Some(_)) => Err(self.invalid(
                format!("{key}.avro_schema"),
                "is given, but the table's format is protobuf, whose schemas come from the schema registry",
            )),
            (Some("protobuf"), None) => match registry {
                Some(registry) => Ok(RecordFormat::Protobuf {
                    registry: Arc::clone(registry),
                    columns_follow: false,
                    stop_on_incompatible: self.stop_on_incompatible(key, table)?,
                }),
                None => Err(self.invalid(
                    format!("{key}.format"),
                    "is \"protobuf\": add a [schema_registry] section with its url (values in the registry's wire format)",
                )),
            },
            (Some(other), _) => Err(self.invalid(
                format!("{key}.format"),
                format!("`{other}` is not \"json\", \"avro\" or \"protobuf\""),
            )),
        }
    }

    /// What a registry Avro or Protobuf table does with a writer schema that does not fit its columns.
    fn stop_on_incompatible(&self, key: &str, table: &RawTable) -> Result<bool> {
        match table.on_incompatible.as_deref().map(str::trim) {
            None | Some("dead_letter") => Ok(false),
            Some("stop") => Ok(true),
            Some(other) => {
                Err(self
                    .invalid(format!("{key}.on_incompatible"), format!("`{other}` is not \"dead_letter\" or \"stop\"")))
            }
        }
    }

    /// A table's `avro_schema`: the schema's JSON itself, or the path of a file holding it (relative
    /// to the config's folder), parsed and checked to be a record with the `needs` fields.
    fn avro_schema(&self, key: &str, text: &str, base_dir: &Path, needs: &[&str]) -> Result<Arc<apache_avro::Schema>> {
        let skey = format!("{key}.avro_schema");
        let json = match text.trim_start().starts_with('{') {
            true => text.to_string(),
            false => {
                let path = base_dir.join(text);
                std::fs::read_to_string(&path)
                    .map_err(|e| self.invalid(&skey, format!("cannot read `{}`: {e}", path.display())))?
            }
        };
        let schema = apache_avro::Schema::parse_str(&json)
            .map_err(|e| self.invalid(&skey, format!("is not an Avro schema: {e}")))?;
        crate::avro::check_plain_schema(&schema, needs).map_err(|reason| self.invalid(&skey, reason))?;
        Ok(Arc::new(schema))
    }

    fn kafka(&self, raw: RawKafka) -> Result<KafkaConfig> {
        if raw.brokers.trim().is_empty() {
            return Err(self.invalid("kafka.brokers", "must list at least one host:port"));
        }
        let isolation_level = raw.isolation_level.unwrap_or_else(|| "read_committed".into());
        if !matches!(isolation_level.as_str(), "read_committed" | "read_uncommitted") {
            return Err(self.invalid(
                "kafka.isolation_level",
                format!("`{isolation_level}` is not `read_committed` or `read_uncommitted`"),
            ));
        }
        for key in ["bootstrap.servers", "group.id", "isolation.level", "enable.auto.commit"] {
            if raw.properties.contains_key(key) {
                return Err(self.invalid(
                    format!("kafka.properties.\"{key}\""),
                    "is set by tidelake itself; use the [kafka] keys brokers, group_id and isolation_level",
                ));
            }
        }
        let start_from = match raw.start_from.as_deref().map(str::trim) {
            None | Some("earliest") => StartFrom::Earliest,
            Some("latest") => StartFrom::Latest,
            Some(text) => StartFrom::Time(
                chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).map_err(|e| {
                    self.invalid(
                        "kafka.start_from",
                        format!("`{text}` is not \"earliest\", \"latest\" or an RFC 3339 time like \"2026-11-23T00:00:00Z\": {e}"),
                    )
                })?,
            ),
        };
        Ok(KafkaConfig {
            brokers: raw.brokers,
            // Filled in from the tables when the config does not name one.
            group_id: raw.group_id.unwrap_or_default(),
            isolation_level,
            properties: raw.properties,
            start_from,
        })
    }

    fn batch(&self, raw: RawBatch) -> Result<BatchConfig> {
        let mut batch = BatchConfig::default();
        if let Some(n) = raw.max_records {
            if !(1..=1_000_000).contains(&n) {
                return Err(self.invalid("batch.max_records", format!("{n} is outside 1..=1000000")));
            }
            batch.max_records = n as usize;
        }
        if let Some(size) = raw.max_bytes {
            let bytes = match size {
                Size::Bytes(n) => n,
                Size::Text(text) => parse_size(&text).ok_or_else(|| {
                    self.invalid(
                        "batch.max_bytes",
                        format!("`{text}` is not a size like 6291456, \"6MB\" or \"512KiB\""),
                    )
                })?,
            };
            if bytes < 1024 {
                return Err(self.invalid("batch.max_bytes", format!("{bytes} bytes is below the minimum of 1024")));
            }
            batch.max_bytes = bytes as usize;
        }
        if let Some(wait) = raw.max_wait {
            batch.max_wait = humantime::parse_duration(&wait).map_err(|e| {
                self.invalid("batch.max_wait", format!("`{wait}` is not a duration like \"500ms\" or \"5s\": {e}"))
            })?;
        }
        Ok(batch)
    }

    /// A table's columns as written in the config, or, with `columns = "registry"`, the fields of
    /// every schema of its topic's value subject (`<topic>-value`, see [`crate::avro::columns_of`]
    /// and [`crate::protobuf::columns_of`]), asked of the registry now; the table's format then
    /// stops on a record of a schema with fields it does not have.
    fn columns(&self, key: &str, table: &RawTable, format: RecordFormat) -> Result<(Vec<RawColumn>, RecordFormat)> {
        let ckey = format!("{key}.columns");
        let text = match &table.columns {
            toml::Value::String(text) => text.trim(),
            listed => {
                let columns =
                    Vec::<RawColumn>::deserialize(listed.clone()).map_err(|e| self.invalid(&ckey, e.to_string()))?;
                return Ok((columns, format));
            }
        };
        if text != "registry" {
            return Err(self.invalid(ckey, format!("`{text}` is not a list of columns or \"registry\"")));
        }
        let (registry, protobuf) = match &format {
            RecordFormat::Avro { registry, .. } => (Arc::clone(registry), false),
            RecordFormat::Protobuf { registry, .. } => (Arc::clone(registry), true),
            _ => {
                return Err(self.invalid(
                    ckey,
                    "is \"registry\", which takes the columns from the schema registry: the table's format must be \"avro\" or \"protobuf\" with a [schema_registry]",
                ))
            }
        };
        let required = [table.event_uuid.trim(), table.event_time.trim()];
        let subject = format!("{}-value", table.topic.trim());
        // Configs are read before any runtime runs, and inside one: the one request runs on a
        // thread and a runtime of its own, with a client of its own.
        let client = Registry::new(registry.config().clone()).map_err(|e| self.invalid(&ckey, e.to_string()))?;
        let asked = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    Ok::<_, std::io::Error>(runtime.block_on(async {
                        let columns = if protobuf {
                            let history = client.protobuf_history(&subject).await?;
                            history.map(|h| crate::protobuf::columns_of(&h, &required))
                        } else {
                            client.history(&subject).await?.map(|h| crate::avro::columns_of(&h))
                        };
                        Ok::<_, Error>(columns)
                    }))
                })
                .join()
        });
        let fields = match asked {
            Ok(Ok(Ok(Ok(Ok(found))))) => found,
            Ok(Ok(Ok(Ok(Err(reason))))) => {
                return Err(self.invalid(ckey, format!("is \"registry\", and subject `{subject}`: {reason}")))
            }
            Ok(Ok(Ok(Err(reason)))) => return Err(self.invalid(ckey, format!("is \"registry\", but {reason}"))),
            Ok(Ok(Err(e))) => {
                return Err(self.invalid(ckey, format!("is \"registry\", and the registry did not answer: {e}")))
            }
            Ok(Err(e)) => return Err(self.invalid(ckey, format!("is \"registry\": no runtime to ask it: {e}"))),
            Err(_) => return Err(self.invalid(ckey, "is \"registry\": asking the registry failed")),
        };
        let columns = fields
            .into_iter()
            .map(|(name, kind, nullable)| RawColumn { name, kind, nullable, default: None })
            .collect();
        let format = match format {
            RecordFormat::Avro { registry, stop_on_incompatible, .. } => {
                RecordFormat::Avro { registry, columns_follow: true, stop_on_incompatible }
            }
            RecordFormat::Protobuf { registry, stop_on_incompatible, .. } => {
                RecordFormat::Protobuf { registry, columns_follow: true, stop_on_incompatible }
            }
            other => other,
        };
        Ok((columns, format))
    }

    fn table(
        &self,
        key: &str,
        name: String,
        raw: RawTable,
        raw_columns: Vec<RawColumn>,
        root: &Url,
        base_dir: &Path,
    ) -> Result<TableSpec> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(self.invalid(key, format!("table name `{name}` may hold only letters, digits and `_`")));
        }
        if raw.topic.trim().is_empty() {
            return Err(self.invalid(format!("{key}.topic"), "must name a Kafka topic"));
        }
        let mut columns = Vec::with_capacity(raw_columns.len());
        let mut seen = HashSet::new();
        for (i, column) in raw_columns.into_iter().enumerate() {
            let ckey = format!("{key}.columns[{i}]");
            if column.name.is_empty() {
                return Err(self.invalid(format!("{ckey}.name"), "must not be empty"));
            }
            if !seen.insert(column.name.clone()) {
                return Err(self.invalid(format!("{ckey}.name"), format!("column `{}` is declared twice", column.name)));
            }
            let kind =
                ColumnType::parse(&column.kind).map_err(|reason| self.invalid(format!("{ckey}.type"), reason))?;
            let default = match column.default {
                Some(value) => Some(
                    serde_json::to_string(&value)
                        .map_err(|e| self.invalid(format!("{ckey}.default"), format!("is not a JSON value: {e}")))?,
                ),
                None => None,
            };
            let column = ColumnSpec { name: column.name, kind, nullable: column.nullable, default };
            column.default_value().map_err(|reason| self.invalid(format!("{ckey}.default"), reason))?;
            columns.push(column);
        }
        if columns.is_empty() {
            return Err(
                self.invalid(format!("{key}.columns"), "must declare at least the event UUID and event time columns")
            );
        }
        let find = |field: &str, wanted: &str| -> Result<ColumnSpec> {
            columns.iter().find(|c| c.name == wanted).cloned().ok_or_else(|| {
                self.invalid(format!("{key}.{field}"), format!("names column `{wanted}`, which is not in `columns`"))
            })
        };
        // A default on the event UUID would give every record without one the same id (dedup keeps
        // one of them); on the event time, the same minute. Such records are dead letters instead.
        for (field, wanted) in [("event_uuid", &raw.event_uuid), ("event_time", &raw.event_time)] {
            if let Some(i) = columns.iter().position(|c| c.name == *wanted && c.default.is_some()) {
                return Err(self.invalid(
                    format!("{key}.columns[{i}].default"),
                    format!("column `{wanted}` is the table's {field}, which takes no default: a record without it is a dead letter"),
                ));
            }
        }
        let uuid = find("event_uuid", &raw.event_uuid)?;
        if uuid.kind != ColumnType::String || uuid.nullable {
            return Err(self.invalid(
                format!("{key}.event_uuid"),
                format!("column `{}` must be `type = \"string\", nullable = false`", uuid.name),
            ));
        }
        let time = find("event_time", &raw.event_time)?;
        if time.kind != ColumnType::Timestamp || time.nullable {
            return Err(self.invalid(
                format!("{key}.event_time"),
                format!("column `{}` must be `type = \"timestamp\", nullable = false`", time.name),
            ));
        }
        let mut partition_by = Vec::new();
        for (i, grain) in raw.partition_by.iter().enumerate() {
            let grain = PartitionGrain::parse(grain)
                .map_err(|reason| self.invalid(format!("{key}.partition_by[{i}]"), reason))?;
            if partition_by.contains(&grain) {
                return Err(self.invalid(format!("{key}.partition_by[{i}]"), "is listed twice"));
            }
            if seen.contains(grain.column()) {
                return Err(self.invalid(
                    format!("{key}.partition_by[{i}]"),
                    format!("derives column `{}`, which `columns` already declares", grain.column()),
                ));
            }
            partition_by.push(grain);
        }
        partition_by.sort();
        let mut sort_by: Vec<String> = Vec::new();
        for (i, column) in raw.optimize.map(|o| o.sort_by).unwrap_or_default().into_iter().enumerate() {
            let skey = format!("{key}.optimize.sort_by[{i}]");
            if !seen.contains(&column) {
                return Err(self.invalid(skey, format!("names column `{column}`, which is not in `columns`")));
            }
            if sort_by.contains(&column) {
                return Err(self.invalid(skey, format!("column `{column}` is listed twice")));
            }
            sort_by.push(column);
        }
        let located = |field: &str, given: Option<String>, default: String| -> Result<Url> {
            match given {
                Some(text) => self.location(&format!("{key}.{field}"), &text, base_dir),
                None => child(root, &default).map_err(|reason| self.invalid("lake.root", reason)),
            }
        };
        let rollup = match raw.rollup {
            None => None,
            Some(rollup) => Some(
                rollup
                    .validate(key, &name, &columns, |grain| {
                        child(root, &format!("{name}_{}", grain.name())).map_err(|reason| ("lake.root".into(), reason))
                    })
                    .map_err(|(key, reason)| self.invalid(key, reason))?,
            ),
        };
        Ok(TableSpec::new(
            name.clone(),
            raw.topic,
            columns,
            raw.event_uuid,
            raw.event_time,
            partition_by,
            located("location", raw.location, name.clone())?,
            located("dead_letters", raw.dead_letters, format!("_dead_letters/{name}"))?,
            located("archive", raw.archive, format!("_archive/{name}"))?,
        )
        .with_dedup_window(self.dedup_window(key, raw.dedup_window)?)
        .with_max_future(self.max_future(key, raw.max_future)?)
        .with_rollup(rollup)
        .with_sort_by(sort_by))
    }

    fn dedup_window(&self, key: &str, raw: Option<String>) -> Result<Option<Duration>> {
        let text = raw.unwrap_or_else(|| "24h".to_string());
        if matches!(text.trim(), "off" | "0" | "none") {
            return Ok(None);
        }
        let window = humantime::parse_duration(&text).map_err(|e| {
            self.invalid(
                format!("{key}.dedup_window"),
                format!("`{text}` is not a duration like \"24h\" or \"off\": {e}"),
            )
        })?;
        if window.is_zero() {
            return Ok(None);
        }
        Ok(Some(window))
    }

    fn max_future(&self, key: &str, raw: Option<String>) -> Result<Option<Duration>> {
        let Some(text) = raw else { return Ok(Some(crate::schema::DEFAULT_MAX_FUTURE)) };
        if text.trim() == "off" {
            return Ok(None);
        }
        humantime::parse_duration(&text).map(Some).map_err(|e| {
            self.invalid(format!("{key}.max_future"), format!("`{text}` is not a duration like \"1h\" or \"off\": {e}"))
        })
    }

    fn location(&self, key: &str, text: &str, base_dir: &Path) -> Result<Url> {
        parse_location(text, base_dir).map_err(|reason| self.invalid(key, reason))
    }
}

/// The consumer group of a pipeline that names none: its tables and where the first one lives, so
/// two pipelines never share a group by default (`tidelake-ad_events-1a2b3c4d`).
fn default_group_id(tables: &[TableSpec]) -> String {
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let place = tables.iter().map(|t| t.location.as_str()).collect::<Vec<_>>().join(",");
    let hash = place.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("tidelake-{}-{hash:08x}", names.join("+"))
}

/// Turns `s3://bucket/prefix`, `file:///abs/path` or a plain path (relative to `base_dir`) into a URL.
pub fn parse_location(text: &str, base_dir: &Path) -> std::result::Result<Url, String> {
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if text.contains("://") {
        let url = Url::parse(text).map_err(|e| format!("`{text}` is not a valid URL: {e}"))?;
        return match url.scheme() {
            "file" | "s3" | "s3a" | "memory" => Ok(url),
            other => Err(format!("scheme `{other}://` is not supported; use file://, s3:// or a local path")),
        };
    }
    let path = base_dir.join(text);
    let path = normalize(&path);
    Url::from_directory_path(&path).map_err(|_| format!("`{}` is not an absolute local path", path.display()))
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn child(root: &Url, name: &str) -> std::result::Result<Url, String> {
    let mut base = root.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join(name).map_err(|e| format!("cannot place `{name}` under `{root}`: {e}"))
}

/// Parses a byte size like `6MB`, `128MiB` or `1000` (bytes).
pub fn parse_size(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// For unit tests: table `ev` of topic `ev`, event UUID `id` and event time `at` (the first two
/// columns), with more `settings` and `columns` after those two.
#[cfg(test)]
pub(crate) fn test_table(settings: &str, columns: &str) -> TableSpec {
    let config = PipelineConfig::parse(
        &format!(
            r#"
            [kafka]
            brokers = "k:1"
            [lake]
            root = "/lake"
            [tables.ev]
            topic = "ev"
            event_uuid = "id"
            event_time = "at"
            {settings}
            columns = [
              {{ name = "id", type = "string", nullable = false }},
              {{ name = "at", type = "timestamp", nullable = false }},
              {columns}
            ]
            "#
        ),
        Path::new("/"),
    )
    .expect("a test table's config");
    config.tables[0].clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [kafka]
        brokers = "k:9092"
        [batch]
        max_bytes = "6MB"
        max_wait = "250ms"
        [lake]
        root = "lake"
        [tables.ad_events]
        topic = "ad_events"
        event_uuid = "event_id"
        event_time = "event_time"
        partition_by = ["hour", "date"]
        columns = [
          { name = "event_id", type = "string", nullable = false },
          { name = "event_time", type = "timestamp", nullable = false },
          { name = "cost", type = "decimal(18, 6)" },
        ]
    "#;

    fn parse(text: &str) -> Result<PipelineConfig> {
        PipelineConfig::parse(text, Path::new("/srv/pipe"))
    }

    #[test]
    fn columns_from_the_registry_need_an_avro_table_with_a_registry() {
        let start = GOOD.find("columns = [").unwrap();
        let end = start + GOOD[start..].find(']').unwrap() + 1;
        let with = |columns: &str| format!("{}{columns}{}", &GOOD[..start], &GOOD[end..]);
        assert_eq!(invalid_key(&with("columns = \"registry\"")), "tables.ad_events.columns");
        assert_eq!(invalid_key(&with("columns = \"everything\"")), "tables.ad_events.columns");
        assert_eq!(invalid_key(&with("columns = [{ kind = \"string\" }]")), "tables.ad_events.columns");
        // A registry that does not answer refuses the config, before anything is written.
        let avro = with("columns = \"registry\"")
            .replace("topic = \"ad_events\"", "topic = \"ad_events\"\n        format = \"avro\"")
            .replace("[tables.ad_events]", "[schema_registry]\nurl = \"http://127.0.0.1:9\"\n[tables.ad_events]");
        match parse(&avro) {
            Err(Error::ConfigInvalid { key, reason, .. }) => {
                assert_eq!(key, "tables.ad_events.columns");
                assert!(reason.contains("did not answer"), "{reason}");
            }
            other => panic!("expected ConfigInvalid, got {other:?}"),
        }
    }

    #[test]
    fn an_avro_table_needs_a_registry_and_the_registry_one_way_to_sign_in() {
        let avro = GOOD.replace("topic = \"ad_events\"", "topic = \"ad_events\"\n        format = \"avro\"");
        assert_eq!(invalid_key(&avro), "tables.ad_events.format");
        let registry = |section: &str| avro.replace("[tables.ad_events]", &format!("{section}\n[tables.ad_events]"));
        let config = parse(&registry("[schema_registry]\nurl = \"http://registry:8081\"")).unwrap();
        assert_eq!(config.tables[0].format.name(), "avro");
        assert_eq!(invalid_key(&registry("[schema_registry]\nurl = \"registry:8081\"")), "schema_registry.url");
        assert_eq!(
            invalid_key(&registry("[schema_registry]\nurl = \"http://r\"\nusername = \"u\"")),
            "schema_registry.password"
        );
        assert_eq!(
            invalid_key(&registry("[schema_registry]\nurl = \"http://r\"\ntoken = \"t\"\npassword = \"p\"")),
            "schema_registry.token"
        );
        let plain = |schema: &str| {
            GOOD.replace(
                "topic = \"ad_events\"",
                &format!("topic = \"ad_events\"\n        format = \"avro\"\n        avro_schema = '{schema}'"),
            )
        };
        let fields = r#"[{"name":"event_id","type":"string"},{"name":"event_time","type":"long"}]"#;
        let good = parse(&plain(&format!(r#"{{"type":"record","name":"E","fields":{fields}}}"#))).unwrap();
        assert!(matches!(good.tables[0].format, RecordFormat::AvroSchema(_)));
        let misfit = r#"{"type":"record","name":"E","fields":[{"name":"event_id","type":"string"},{"name":"event_time","type":"boolean"}]}"#;
        assert_eq!(invalid_key(&plain(misfit)), "tables.ad_events.avro_schema");
        let on = |value: &str, text: &str| {
            text.replace(
                "topic = \"ad_events\"",
                &format!("topic = \"ad_events\"\n        on_incompatible = \"{value}\""),
            )
        };
        assert_eq!(invalid_key(&on("stop", GOOD)), "tables.ad_events.on_incompatible");
        let lacking = r#"{"type":"record","name":"E","fields":[{"name":"event_id","type":"string"}]}"#;
        assert_eq!(invalid_key(&plain(lacking)), "tables.ad_events.avro_schema");
        assert_eq!(invalid_key(&plain("{\"type\": \"nope\"}")), "tables.ad_events.avro_schema");
        assert_eq!(invalid_key(&plain("no-such-file.avsc")), "tables.ad_events.avro_schema");
        assert_eq!(
            invalid_key(&registry("[schema_registry]\nurl = \"https://r\"\nca_file = \"no-such-ca.pem\"")),
            "schema_registry.ca_file"
        );
        let not_pem = std::env::temp_dir().join(format!("tidelake-not-a-ca-{}.pem", std::process::id()));
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let section = format!("[schema_registry]\nurl = \"https://r\"\nca_file = \"{}\"", not_pem.display());
        assert_eq!(invalid_key(&registry(&section)), "schema_registry.ca_file");
        std::fs::remove_file(&not_pem).unwrap();
        let stop = on("stop", &avro)
            .replace("[tables.ad_events]", "[schema_registry]\nurl = \"http://r\"\n[tables.ad_events]");
        assert!(matches!(
            parse(&stop).unwrap().tables[0].format,
            RecordFormat::Avro { stop_on_incompatible: true, .. }
        ));
        assert_eq!(invalid_key(&stop.replace("\"stop\"", "\"maybe\"")), "tables.ad_events.on_incompatible");
        let protobuf = GOOD.replace("topic = \"ad_events\"", "topic = \"ad_events\"\n        format = \"protobuf\"");
        assert_eq!(invalid_key(&protobuf), "tables.ad_events.format");
        let with_registry = on("stop", &protobuf)
            .replace("[tables.ad_events]", "[schema_registry]\nurl = \"http://r\"\n[tables.ad_events]");
        let read = parse(&with_registry).unwrap();
        assert!(matches!(read.tables[0].format, RecordFormat::Protobuf { stop_on_incompatible: true, .. }));
        assert_eq!(read.tables[0].format.name(), "protobuf");
        let listed = protobuf.find("columns = [").unwrap();
        let end = listed + protobuf[listed..].find("]\n").unwrap() + 2;
        let from_registry = format!("{}columns = \"registry\"\n{}", &protobuf[..listed], &protobuf[end..]);
        assert_eq!(invalid_key(&from_registry), "tables.ad_events.format");
        assert_eq!(parse(GOOD).unwrap().tables[0].format.name(), "json");
    }

    fn invalid_key(text: &str) -> String {
        match parse(text) {
            Err(Error::ConfigInvalid { key, .. }) => key,
            other => panic!("expected ConfigInvalid, got {other:?}"),
        }
    }

    #[test]
    fn resolves_locations_and_defaults() {
        let config = parse(GOOD).unwrap();
        let table = &config.tables[0];
        assert_eq!(table.location.as_str(), "file:///srv/pipe/lake/ad_events");
        assert_eq!(table.dead_letters.as_str(), "file:///srv/pipe/lake/_dead_letters/ad_events");
        assert_eq!(table.archive.as_str(), "file:///srv/pipe/lake/_archive/ad_events");
        assert_eq!(table.partition_by, vec![PartitionGrain::Date, PartitionGrain::Hour]);
        assert_eq!(config.batch.max_bytes, 6_000_000);
        assert_eq!(config.batch.max_wait, Duration::from_millis(250));
        assert!(config.kafka.group_id.starts_with("tidelake-ad_events-"), "{}", config.kafka.group_id);
        assert_eq!(config.kafka.start_from, StartFrom::Earliest);
        let elsewhere = parse(&GOOD.replace("root = \"lake\"", "root = \"other\"")).unwrap();
        assert_ne!(elsewhere.kafka.group_id, config.kafka.group_id, "two lakes, two groups");
        let from =
            parse(&GOOD.replace("brokers = \"k:9092\"", "brokers = \"k:9092\"\nstart_from = \"2026-11-23T00:00:00Z\""))
                .unwrap();
        assert_eq!(from.kafka.start_from, StartFrom::Time(1_795_392_000_000));
        assert_eq!(
            invalid_key(&GOOD.replace("brokers = \"k:9092\"", "brokers = \"k:9092\"\nstart_from = \"yesterday\"")),
            "kafka.start_from"
        );
        assert_eq!(table.dedup_window, Some(Duration::from_secs(24 * 3600)));
    }

    #[test]
    fn names_the_bad_key() {
        assert_eq!(invalid_key(&GOOD.replace("decimal(18, 6)", "money")), "tables.ad_events.columns[2].type");
        assert_eq!(
            invalid_key(&GOOD.replace("event_uuid = \"event_id\"", "event_uuid = \"id\"")),
            "tables.ad_events.event_uuid"
        );
        assert_eq!(
            invalid_key(&GOOD.replace("[\"hour\", \"date\"]", "[\"week\"]")),
            "tables.ad_events.partition_by[0]"
        );
        assert_eq!(invalid_key(&GOOD.replace("250ms", "soon")), "batch.max_wait");
        assert_eq!(
            invalid_key(&GOOD.replace("topic = \"ad_events\"", "topic = \"ad_events\"\ndedup_window = \"a while\"")),
            "tables.ad_events.dedup_window"
        );
        assert_eq!(invalid_key(&GOOD.replace("root = \"lake\"", "root = \"ftp://x/y\"")), "lake.root");
        let cost = "{ name = \"cost\", type = \"decimal(18, 6)\" }";
        assert_eq!(
            invalid_key(&GOOD.replace(cost, "{ name = \"cost\", type = \"decimal(18, 6)\", default = \"free\" }")),
            "tables.ad_events.columns[2].default"
        );
        let good =
            parse(&GOOD.replace(cost, "{ name = \"cost\", type = \"decimal(18, 6)\", default = \"0.5\" }")).unwrap();
        assert_eq!(good.tables[0].columns[2].default.as_deref(), Some("\"0.5\""));
        assert_eq!(
            invalid_key(&GOOD.replace("brokers = \"k:9092\"", "brokers = \"k:9092\"\nisolation_level = \"dirty\"")),
            "kafka.isolation_level"
        );
    }

    #[test]
    fn each_delta_table_has_a_name_and_a_place_of_its_own_and_ids_take_no_default() {
        let second = |extra: &str| {
            let table = GOOD[GOOD.find("[tables.ad_events]").unwrap()..]
                .replace("[tables.ad_events]", "[tables.clicks]")
                .replace("topic = \"ad_events\"", &format!("topic = \"clicks\"\n{extra}"));
            format!("{GOOD}\n{table}")
        };
        assert_eq!(parse(&second("")).unwrap().tables.len(), 2);
        let same_place = second("location = \"lake/ad_events/\"");
        assert_eq!(invalid_key(&same_place), "tables.clicks.location");
        let err = parse(&same_place).unwrap_err().to_string();
        assert!(err.contains("tables.ad_events.location already lives"), "{err}");
        assert_eq!(invalid_key(&second("archive = \"lake/_dead_letters/ad_events\"")), "tables.clicks.archive");
        // A table named like another's rollup table.
        let rollup = "[tables.ad_events.rollup]\ndimensions = []\ngrains = [\"minute\"]\nmeasures = [{ name = \"n\", fn = \"count\" }]\n";
        let named = format!("{}\n{rollup}", second("").replace("[tables.clicks]", "[tables.ad_events_minute]"));
        assert_eq!(invalid_key(&named), "tables.ad_events_minute");

        let id = "{ name = \"event_id\", type = \"string\", nullable = false }";
        let with_default = "{ name = \"event_id\", type = \"string\", nullable = false, default = \"x\" }";
        assert_eq!(invalid_key(&GOOD.replace(id, with_default)), "tables.ad_events.columns[0].default");
        let at = "{ name = \"event_time\", type = \"timestamp\", nullable = false }";
        let at_default =
            "{ name = \"event_time\", type = \"timestamp\", nullable = false, default = \"2026-01-01T00:00:00Z\" }";
        assert_eq!(invalid_key(&GOOD.replace(at, at_default)), "tables.ad_events.columns[1].default");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let err = parse(&GOOD.replace("topic =", "topik = \"x\"\n        topic =")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("topik") && text.contains("line"), "{text}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("6MB"), Some(6_000_000));
        assert_eq!(parse_size("512KiB"), Some(524_288));
        assert_eq!(parse_size("42"), Some(42));
        assert_eq!(parse_size("lots"), None);
    }
}
