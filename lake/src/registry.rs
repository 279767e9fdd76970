//! A schema registry client (the Confluent REST API, which Confluent Schema Registry, Apicurio's
//! `ccompat` API, Karapace and Redpanda all serve): the writer schema of each id a record names,
//! asked once and kept.
//!
//! A registry that does not answer is a fault (the batch fails and is retried); an id the registry
//! does not know, or a schema tidelake cannot use, is the record's own problem (a dead letter).
//!
//! Protobuf schemas are read as file descriptors: the base64 `FileDescriptorProto` that
//! confluent-kafka's serializers register, or, for a schema registered as `.proto` source text, the
//! descriptor the registry serves for `?format=serialized` (Confluent Schema Registry, Karapace).
//! The files a schema imports come from its references, and the well-known types
//! (`google/protobuf/*.proto`) are built in.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};

/// Where the schema registry is and how to sign in to it (`[schema_registry]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Base URL of the API, e.g. `http://registry:8081` (Apicurio: `.../apis/ccompat/v7`).
    pub url: Url,
    /// How requests sign in.
    pub auth: RegistryAuth,
    /// PEM certificates of the authorities an `https` registry's certificate may chain to, besides
    /// the system's (`ca_file`: a private CA).
    pub ca_pem: Option<Vec<u8>>,
}

/// How requests to the registry sign in.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// No credentials.
    None,
    /// HTTP basic auth (Confluent Cloud: an API key and secret).
    Basic {
        /// The user (or API key).
        username: String,
        /// Its password (or API secret).
        password: String,
    },
    /// A bearer token.
    Bearer(String),
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryAuth::None => f.write_str("None"),
            RegistryAuth::Basic { username, .. } => write!(f, "Basic({username}, <password>)"),
            RegistryAuth::Bearer(_) => f.write_str("Bearer(<token>)"),
        }
    }
}

/// How long one registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the registry said about one schema id: the parsed writer schema, or why it cannot be used.
pub type Lookup = std::result::Result<Arc<apache_avro::Schema>, String>;

/// What the registry said about one Protobuf schema id: the file that defines the writer's
/// messages (with every file it imports in its pool), or why it cannot be used.
pub type ProtoLookup = std::result::Result<prost_reflect::FileDescriptor, String>;

/// The most files a Protobuf schema may import through references, all levels together.
const MAX_REFERENCES: usize = 256;

/// A registry client with its cache of schemas by id. Ids are immutable in every registry, so an
/// answer (a schema, or "no such id") is kept for the life of the process.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    client: reqwest::Client,
    schemas: Mutex<HashMap<u32, Lookup>>,
    protos: Mutex<HashMap<u32, ProtoLookup>>,
}

/// A schema as the registry returns it (`/schemas/ids/{id}`, `/subjects/{s}/versions/{v}`).
#[derive(serde::Deserialize)]
struct Answer {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
}

/// A file a Protobuf schema imports: its import name, registered as `version` of `subject`.
#[derive(serde::Deserialize)]
struct Reference {
    name: String,
    subject: String,
    version: i64,
}

impl Registry {
    /// A client for `config`.
    pub fn new(config: RegistryConfig) -> Result<Self> {
        let fault = |reason: String| Error::Registry { url: config.url.to_string(), reason };
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        for ca in authorities(config.ca_pem.as_deref().unwrap_or_default()).map_err(fault)? {
            builder = builder.add_root_certificate(ca);
        }
        let client = builder.build().map_err(|e| fault(e.to_string()))?;
        Ok(Registry { config, client, schemas: Mutex::default(), protos: Mutex::default() })
    }

    /// Where the registry is and how to sign in.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The Avro writer schema registered under `id`. `Ok(Err(reason))`: the registry answered,
    /// and the id is unknown or its schema is not Avro tidelake can read.
    pub async fn avro_schema(&self, id: u32) -> Result<Lookup> {
        if let Some(known) = self.schemas.lock().expect("schema cache lock").get(&id) {
            return Ok(known.clone());
        }
        let found = self.fetch(id).await?;
        self.schemas.lock().expect("schema cache lock").insert(id, found.clone());
        Ok(found)
    }

    /// Every schema registered under `subject`, oldest first, with its version. `Ok(Err(reason))`:
    /// the registry answered, and there is no such subject or one of its schemas is not Avro
    /// tidelake reads.
    pub async fn history(
        &self,
        subject: &str,
    ) -> Result<std::result::Result<Vec<(u32, Arc<apache_avro::Schema>)>, String>> {
        let versions = match self.versions(subject).await? {
            Ok(versions) => versions,
            Err(reason) => return Ok(Err(reason)),
        };
        let mut history = Vec::with_capacity(versions.len());
        for (version, id) in versions {
            match self.avro_schema(id).await? {
                Ok(schema) => history.push((version, schema)),
                Err(reason) => return Ok(Err(format!("version {version} of subject `{subject}`: {reason}"))),
            }
        }
        Ok(Ok(history))
    }

    /// Every Protobuf schema registered under `subject`, oldest first, with its version, as
    /// [`Registry::history`] gives Avro's.
    pub async fn protobuf_history(
        &self,
        subject: &str,
    ) -> Result<std::result::Result<Vec<(u32, prost_reflect::FileDescriptor)>, String>> {
        let versions = match self.versions(subject).await? {
            Ok(versions) => versions,
            Err(reason) => return Ok(Err(reason)),
        };
        let mut history = Vec::with_capacity(versions.len());
        for (version, id) in versions {
            match self.protobuf_schema(id).await? {
                Ok(file) => history.push((version, file)),
                Err(reason) => return Ok(Err(format!("version {version} of subject `{subject}`: {reason}"))),
            }
        }
        Ok(Ok(history))
    }

    /// The versions registered under `subject`, oldest first, each with its schema id.
    async fn versions(&self, subject: &str) -> Result<std::result::Result<Vec<(u32, u32)>, String>> {
        #[derive(serde::Deserialize)]
        struct Version {
            id: u32,
        }
        let base = format!("{}/subjects/{subject}/versions", self.base());
        let unreadable = |url: &str, e: serde_json::Error| Error::Registry {
            url: url.to_string(),
            reason: format!("an answer that is not a version list: {e}"),
        };
        let Some(body) = self.get(&base).await? else {
            return Ok(Err(format!("subject `{subject}` is not in the schema registry")));
        };
        let mut versions: Vec<u32> = serde_json::from_slice(&body).map_err(|e| unreadable(&base, e))?;
        versions.sort_unstable();
        let mut found = Vec::with_capacity(versions.len());
        for version in versions {
            let url = format!("{base}/{version}");
            let Some(body) = self.get(&url).await? else { continue };
            let answer: Version = serde_json::from_slice(&body).map_err(|e| unreadable(&url, e))?;
            found.push((version, answer.id));
        }
        if found.is_empty() {
            return Ok(Err(format!("subject `{subject}` has no schema in the schema registry")));
        }
        Ok(Ok(found))
    }

    /// The Protobuf writer schema registered under `id`. `Ok(Err(reason))`: the registry
    /// answered, and the id is unknown or its schema is not Protobuf tidelake can read.
    pub async fn protobuf_schema(&self, id: u32) -> Result<ProtoLookup> {
        if let Some(known) = self.protos.lock().expect("schema cache lock").get(&id) {
            return Ok(known.clone());
        }
        let found = self.fetch_protobuf(id).await?;
        self.protos.lock().expect("schema cache lock").insert(id, found.clone());
        Ok(found)
    }

    async fn fetch_protobuf(&self, id: u32) -> Result<ProtoLookup> {
        let url = format!("{}/schemas/ids/{id}", self.base());
        let Some(answer) = self.answer(&url).await? else {
            return Ok(Err(format!("schema id {id} is not in the schema registry")));
        };
        let kind = answer.schema_type.as_deref().unwrap_or("AVRO");
        if !kind.eq_ignore_ascii_case("PROTOBUF") {
            return Ok(Err(format!("schema id {id} is a {kind} schema, and the table reads Protobuf")));
        }
        let which = format!("schema id {id}");
        let main = match self.descriptor(&url, &answer.schema, &which).await? {
            Ok(file) => file,
            Err(reason) => return Ok(Err(reason)),
        };
        // The imported files, found through the references level by level, each once.
        let mut pool = prost_reflect::DescriptorPool::global();
        let mut files = Vec::new();
        let mut seen = HashSet::new();
        let mut pending = answer.references;
        while let Some(reference) = pending.pop() {
            if pool.get_file_by_name(&reference.name).is_some() || !seen.insert(reference.name.clone()) {
                continue;
            }
            if seen.len() > MAX_REFERENCES {
                return Ok(Err(format!("{which} imports more than {MAX_REFERENCES} files")));
            }
            let mut url = self.config.url.clone();
            url.path_segments_mut()
                .map_err(|()| Error::Registry { url: self.base().to_string(), reason: "not a base URL".into() })?
                .pop_if_empty()
                .extend(["subjects", reference.subject.as_str(), "versions", &reference.version.to_string()]);
            let url = url.to_string();
            let which =
                format!("`{}` (version {} of subject `{}`)", reference.name, reference.version, reference.subject);
            let Some(found) = self.answer(&url).await? else {
                return Ok(Err(format!("schema id {id} imports {which}, which is not in the schema registry")));
            };
            let mut file = match self.descriptor(&url, &found.schema, &which).await? {
                Ok(file) => file,
                Err(reason) => return Ok(Err(format!("schema id {id} imports {reason}"))),
            };
            file.name = Some(reference.name);
            files.push(file);
            pending.extend(found.references);
        }
        // Every file after the files it imports.
        while !files.is_empty() {
            let ready = files.iter().position(|f| f.dependency.iter().all(|d| pool.get_file_by_name(d).is_some()));
            let Some(ready) = ready else {
                let missing: Vec<&str> = files
                    .iter()
                    .flat_map(|f| f.dependency.iter())
                    .filter(|d| pool.get_file_by_name(d).is_none() && !files.iter().any(|f| f.name() == d.as_str()))
                    .map(String::as_str)
                    .collect();
                return Ok(Err(format!("{which}'s imports are missing or circular: {missing:?}")));
            };
            let file = files.swap_remove(ready);
            let name = file.name().to_string();
            if let Err(e) = pool.add_file_descriptor_proto(file) {
                return Ok(Err(format!("{which} imports `{name}`, which is not a valid descriptor: {e}")));
            }
        }
        let name = main.name().to_string();
        if let Some(missing) = main.dependency.iter().find(|d| pool.get_file_by_name(d).is_none()) {
            return Ok(Err(format!("{which} imports `{missing}`, which none of its references is")));
        }
        if let Err(e) = pool.add_file_descriptor_proto(main) {
            return Ok(Err(format!("{which} is not a valid Protobuf descriptor: {e}")));
        }
        Ok(pool.get_file_by_name(&name).ok_or_else(|| format!("{which} defines no file `{name}`")))
    }

    /// The file descriptor a Protobuf schema's text (`schema` from `url`) is: base64 of a
    /// `FileDescriptorProto`, or `.proto` source the registry serves as one for `?format=serialized`.
    async fn descriptor(
        &self,
        url: &str,
        schema: &str,
        which: &str,
    ) -> Result<std::result::Result<prost_reflect::prost_types::FileDescriptorProto, String>> {
        use base64::Engine as _;
        use prost_reflect::prost::Message as _;
        let decode = |text: &str| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()?;
            Some(
                prost_reflect::prost_types::FileDescriptorProto::decode(bytes.as_slice())
                    .map_err(|e| format!("{which} is not a valid Protobuf descriptor: {e}")),
            )
        };
        if let Some(file) = decode(schema) {
            return Ok(file);
        }
        let serialized = format!("{url}?format=serialized");
        let served = match self.get_answer(&serialized).await? {
            (status, body) if status.is_success() => serde_json::from_slice::<Answer>(&body).ok(),
            _ => None,
        };
        Ok(served.and_then(|answer| decode(&answer.schema)).unwrap_or_else(|| {
            Err(format!(
                "{which} is Protobuf source text, which the registry does not serve as a descriptor \
                 (`?format=serialized`); tidelake reads Protobuf schemas as descriptors"
            ))
        }))
    }

    /// The schema at `url`; `None` when the registry answers 404.
    async fn answer(&self, url: &str) -> Result<Option<Answer>> {
        let Some(body) = self.get(url).await? else { return Ok(None) };
        serde_json::from_slice(&body).map(Some).map_err(|e| Error::Registry {
            url: url.to_string(),
            reason: format!("an answer that is not a schema: {e}"),
        })
    }

    fn base(&self) -> &str {
        self.config.url.as_str().trim_end_matches('/')
    }

    /// The body of a GET of `url`; `None` when the registry answers 404.
    async fn get(&self, url: &str) -> Result<Option<bytes::Bytes>> {
        let fault = |reason: String| Error::Registry { url: url.to_string(), reason };
        let (status, body) = self.get_answer(url).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            // Signing in refused, the registry failing: not the record's fault; retried.
            return Err(fault(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]))));
        }
        Ok(Some(body))
    }

    /// The status and body of a GET of `url`; an error when the registry does not answer.
    async fn get_answer(&self, url: &str) -> Result<(reqwest::StatusCode, bytes::Bytes)> {
        let fault = |reason: String| Error::Registry { url: url.to_string(), reason };
        let mut request = self.client.get(url).header("Accept", "application/vnd.schemaregistry.v1+json");
        request = match &self.config.auth {
            RegistryAuth::None => request,
            RegistryAuth::Basic { username, password } => request.basic_auth(username, Some(password)),
            RegistryAuth::Bearer(token) => request.bearer_auth(token),
        };
        let response = request.send().await.map_err(|e| fault(e.to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| fault(e.to_string()))?;
        Ok((status, body))
    }

    async fn fetch(&self, id: u32) -> Result<Lookup> {
        let url = format!("{}/schemas/ids/{id}", self.base());
        let Some(answer) = self.answer(&url).await? else {
            return Ok(Err(format!("schema id {id} is not in the schema registry")));
        };
        if let Some(kind) = answer.schema_type.filter(|k| !k.eq_ignore_ascii_case("AVRO")) {
            return Ok(Err(format!("schema id {id} is a {kind} schema, and the table reads Avro")));
        }
        Ok(apache_avro::Schema::parse_str(&answer.schema)
            .map(Arc::new)
            .map_err(|e| format!("schema id {id} is not a valid Avro schema: {e}")))
    }
}

/// The certificates in `pem` (none when it is empty), or why they cannot be read.
pub fn authorities(pem: &[u8]) -> std::result::Result<Vec<reqwest::Certificate>, String> {
    if pem.is_empty() {
        return Ok(Vec::new());
    }
    let found = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("not PEM certificates: {e}"))?;
    if found.is_empty() {
        return Err("holds no PEM certificate".to_string());
    }
    Ok(found)
}
