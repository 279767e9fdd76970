//! A schema registry client (the Confluent REST API, which Confluent Schema Registry, Apicurio's
//! `ccompat` API, Karapace and Redpanda all serve): the writer schema of each id a record names,
//! asked once and kept.
//!
//! A registry that does not answer is a fault (the batch fails and is retried); an id the registry
//! does not know, or a schema tidelake cannot use, is the record's own problem (a dead letter).

use std::collections::HashMap;
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

/// A registry client with its cache of schemas by id. Ids are immutable in every registry, so an
/// answer (a schema, or "no such id") is kept for the life of the process.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    client: reqwest::Client,
    schemas: Mutex<HashMap<u32, Lookup>>,
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
        Ok(Registry { config, client, schemas: Mutex::default() })
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
        #[derive(serde::Deserialize)]
        struct Version {
            id: u32,
        }
        let base = format!("{}/subjects/{subject}/versions", self.config.url.as_str().trim_end_matches('/'));
        let unreadable = |url: &str, e: serde_json::Error| Error::Registry {
            url: url.to_string(),
            reason: format!("an answer that is not a version list: {e}"),
        };
        let Some(body) = self.get(&base).await? else {
            return Ok(Err(format!("subject `{subject}` is not in the schema registry")));
        };
        let mut versions: Vec<u32> = serde_json::from_slice(&body).map_err(|e| unreadable(&base, e))?;
        versions.sort_unstable();
        let mut history = Vec::with_capacity(versions.len());
        for version in versions {
            let url = format!("{base}/{version}");
            let Some(body) = self.get(&url).await? else { continue };
            let found: Version = serde_json::from_slice(&body).map_err(|e| unreadable(&url, e))?;
            match self.avro_schema(found.id).await? {
                Ok(schema) => history.push((version, schema)),
                Err(reason) => return Ok(Err(format!("version {version} of subject `{subject}`: {reason}"))),
            }
        }
        if history.is_empty() {
            return Ok(Err(format!("subject `{subject}` has no schema in the schema registry")));
        }
        Ok(Ok(history))
    }

    /// The body of a GET of `url`; `None` when the registry answers 404.
    async fn get(&self, url: &str) -> Result<Option<bytes::Bytes>> {
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
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            // Signing in refused, the registry failing: not the record's fault; retried.
            return Err(fault(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]))));
        }
        Ok(Some(body))
    }

    async fn fetch(&self, id: u32) -> Result<Lookup> {
        let url = format!("{}/schemas/ids/{id}", self.config.url.as_str().trim_end_matches('/'));
        let fault = |reason: String| Error::Registry { url: url.clone(), reason };
        let Some(body) = self.get(&url).await? else {
            return Ok(Err(format!("schema id {id} is not in the schema registry")));
        };
        #[derive(serde::Deserialize)]
        struct Answer {
            schema: String,
            #[serde(rename = "schemaType")]
            schema_type: Option<String>,
        }
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|e| fault(format!("an answer that is not a schema: {e}")))?;
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
