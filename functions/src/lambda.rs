//! The AWS Lambda entry point: a Kafka event (MSK or self-managed Kafka event source mapping) becomes a
//! [`KafkaBatch`] and goes to the same [`Ingestor`] the local poller uses.

use aws_lambda_events::kafka::KafkaEvent;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use lambda_runtime::LambdaEvent;
use tidelake_lake::batch::TopicNames;
use tidelake_lake::{KafkaBatch, KafkaRecord};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::ingest::{BatchReport, Ingestor};

/// Turns a Lambda Kafka event into a batch: keys and values are base64, headers are lists of
/// single-entry maps of byte arrays, and the records are grouped by `topic-partition`.
pub fn batch_from_event(event: &KafkaEvent) -> Result<KafkaBatch> {
    let (mut records, mut names) = (Vec::new(), TopicNames::default());
    for (group, list) in &event.records {
        for r in list {
            let topic = match &r.topic {
                Some(topic) => topic.as_str(),
                None => group
                    .rsplit_once('-')
                    .map(|(topic, _)| topic)
                    .ok_or_else(|| Error::Event(format!("record group `{group}` is not `topic-partition`")))?,
            };
            let position = format!("{topic}-{}@{}", r.partition, r.offset);
            let bytes = |field: &str, text: &Option<String>| -> Result<Option<Vec<u8>>> {
                text.as_deref()
                    .map(|t| STANDARD.decode(t))
                    .transpose()
                    .map_err(|e| Error::Event(format!("record {position}: {field} is not base64: {e}")))
            };
            let headers = r
                .headers
                .iter()
                .flat_map(|map| map.iter())
                .map(|(key, value)| (key.clone(), Some(value.iter().map(|b| *b as u8).collect())))
                .collect();
            records.push(KafkaRecord {
                partition: i32::try_from(r.partition)
                    .map_err(|_| Error::Event(format!("record {position}: partition out of range")))?,
                offset: r.offset,
                timestamp_ms: Some(r.timestamp.0.timestamp_millis()),
                key: bytes("key", &r.key)?,
                value: bytes("value", &r.value)?,
                headers,
                topic: names.get(topic),
            });
        }
    }
    Ok(KafkaBatch::new(records))
}

/// The Lambda handler: decode the event, ingest it, report what was written.
///
/// An error that a retry may fix (storage, commit races) fails the invocation so the event source
/// mapping delivers the batch again, which is safe; an error that would repeat forever is reported
/// the same way, with a message that says what to fix.
///
/// After each batch it prints the batch's metrics as CloudWatch embedded metric format lines on
/// stdout (see [`metrics`](crate::metrics)).
///
/// A table whose columns follow the schema registry (`columns = "registry"`) meets a record of a
/// newer schema as [`SchemaChanged`](tidelake_lake::Error::SchemaChanged): the handler reads the
/// config at `config` again (which asks the registry), reopens the tables (which adds the new
/// columns) and takes the batch again, so a warm function follows the producer without a restart.
pub async fn handle(event: LambdaEvent<KafkaEvent>, ingestor: &Mutex<Ingestor>, config: &str) -> Result<BatchReport> {
    let batch = batch_from_event(&event.payload)?;
    let started = std::time::Instant::now();
    let mut current = ingestor.lock().await;
    let mut report = current.handle(&batch).await;
    if let Err(Error::Lake(changed @ tidelake_lake::Error::SchemaChanged { .. })) = &report {
        tracing::warn!(request_id = %event.context.request_id, error = %changed, "reading the config and the registry again");
        current.reopen(config).await?;
        report = current.handle(&batch).await;
    }
    drop(current);
    match &report {
        Ok(r) => {
            tracing::info!(
                request_id = %event.context.request_id,
                records = r.records,
                rows_written = r.rows_written(),
                dead_letters = r.dead_letters(),
                "batch ingested"
            );
            let now_ms = chrono::Utc::now().timestamp_millis();
            let oldest = batch.records.iter().filter_map(|r| r.timestamp_ms).min();
            let duration_ms = tidelake_lake::logging::ms_since(started);
            for line in crate::metrics::emf_lines(r, duration_ms, oldest.map(|t| now_ms - t), now_ms) {
                println!("{line}");
            }
        }
        Err(e) => {
            tracing::error!(request_id = %event.context.request_id, retryable = e.is_retryable(), error = %e, "batch failed")
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_recorded_msk_event() {
        let event: KafkaEvent = serde_json::from_str(include_str!("../fixtures/msk-event.json")).unwrap();
        let batch = batch_from_event(&event).unwrap();
        assert_eq!(batch.len(), 3);
        let first = batch.records.iter().find(|r| r.offset == 15).unwrap();
        assert_eq!(&*first.topic, "ad_events");
        assert_eq!(first.partition, 0);
        assert!(first.value.as_deref().unwrap().starts_with(b"{\"event_id\""));
        assert_eq!(first.headers[0].0, "source");
        assert_eq!(first.headers[0].1.as_deref(), Some(&b"web"[..]));
    }
}
