//! The `compact` function under AWS Lambda: an EventBridge schedule invokes it, it runs the
//! compaction jobs over every table of its pipeline and returns what they did.
//!
//! The schedule's input may narrow one invocation: `{"table": "ad_events", "jobs": ["optimize"],
//! "dry_run": true}` (each key optional); a plain scheduled event runs everything configured.

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tidelake_lake::PipelineConfig;

use crate::{compact_table, CompactOptions, Job};

/// What the function holds between invocations: the pipeline and the default job settings.
#[derive(Debug, Clone)]
pub struct CompactFunction {
    /// The pipeline whose tables are compacted.
    pub config: PipelineConfig,
    /// Jobs and settings of an invocation that does not narrow them.
    pub options: CompactOptions,
}

/// The optional narrowing an invocation's input may carry.
#[derive(Debug, Default, PartialEq)]
struct Narrowing {
    table: Option<String>,
    jobs: Option<Vec<Job>>,
    dry_run: Option<bool>,
}

/// The keys an input may have.
const KEYS: [&str; 3] = ["table", "jobs", "dry_run"];

impl Narrowing {
    /// Reads an invocation's input: nothing (`null`, `{}`) or an EventBridge scheduled event runs
    /// everything; otherwise an object of [`KEYS`], each of its type. Anything else is refused
    /// with the field at fault named, before any job runs: a mistyped input must not run every job
    /// on every table for real.
    fn from_input(input: &Value) -> Result<Self, String> {
        let map = match input {
            Value::Null => return Ok(Narrowing::default()),
            Value::Object(map)
                if map.contains_key("detail-type") && map.get("source").is_some_and(Value::is_string) =>
            {
                return Ok(Narrowing::default());
            }
            Value::Object(map) => map,
            other => {
                return Err(format!(
                "the input must be a JSON object like {{\"jobs\": [\"optimize\"], \"dry_run\": true}}, not `{other}`"
            ))
            }
        };
        if let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("unknown field `{key}` in the input (fields: {})", KEYS.join(", ")));
        }
        fn field<T: serde::de::DeserializeOwned>(
            map: &serde_json::Map<String, Value>,
            key: &str,
        ) -> Result<Option<T>, String> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => {
                    serde_json::from_value(value.clone()).map(Some).map_err(|e| format!("field `{key}`: {e}"))
                }
            }
        }
        let narrowing =
            Narrowing { table: field(map, "table")?, jobs: field(map, "jobs")?, dry_run: field(map, "dry_run")? };
        if narrowing.jobs.as_ref().is_some_and(Vec::is_empty) {
            return Err("field `jobs`: names no job; leave it out to run every job".into());
        }
        Ok(narrowing)
    }
}

/// Handles one invocation: runs the jobs and returns their metrics per Delta table. An input it
/// cannot read fails the invocation before anything runs.
pub async fn handle(event: LambdaEvent<Value>, function: &CompactFunction) -> Result<Value, lambda_runtime::Error> {
    let narrowing = Narrowing::from_input(&event.payload)?;
    let mut options = function.options.clone();
    if let Some(jobs) = narrowing.jobs {
        options.jobs = jobs;
    }
    if let Some(dry_run) = narrowing.dry_run {
        options.dry_run = dry_run;
    }
    let specs: Vec<_> =
        function.config.tables.iter().filter(|t| narrowing.table.as_ref().is_none_or(|name| &t.name == name)).collect();
    if specs.is_empty() {
        return Err(format!("no table `{}` in the pipeline config", narrowing.table.unwrap_or_default()).into());
    }
    let mut tables = Vec::new();
    for spec in specs {
        tables.extend(compact_table(spec, &function.config.storage_options, &options).await?);
    }
    Ok(serde_json::json!({ "dry_run": options.dry_run, "tables": tables }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_input_is_read_strictly_and_a_bad_one_names_its_field() {
        assert_eq!(Narrowing::from_input(&Value::Null).unwrap(), Narrowing::default());
        let scheduled = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(Narrowing::from_input(&scheduled).unwrap(), Narrowing::default());
        let narrow =
            Narrowing::from_input(&json!({"table": "ad_events", "jobs": ["optimize"], "dry_run": true})).unwrap();
        assert_eq!(
            narrow,
            Narrowing { table: Some("ad_events".into()), jobs: Some(vec![Job::Optimize]), dry_run: Some(true) }
        );

        for (input, says) in [
            (json!({"jobs": ["optimise"]}), "field `jobs`: unknown variant `optimise`"),
            (json!({"dry_run": "true"}), "field `dry_run`: invalid type: string \"true\""),
            (json!({"job": ["vacuum"]}), "unknown field `job`"),
            (json!({"jobs": []}), "field `jobs`: names no job"),
            (json!({"table": 3}), "field `table`"),
            (json!(["optimize"]), "must be a JSON object"),
        ] {
            let error = Narrowing::from_input(&input).unwrap_err();
            assert!(error.contains(says), "{input}: {error}");
        }
    }
}
