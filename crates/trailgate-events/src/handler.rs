//! Translates a DynamoDB stream batch of the ledger into `service::publish_lifecycle`, and its
//! outcome into Lambda's partial batch response (`ReportBatchItemFailures`).
//!
//! Only new event items (`INSERT` of `sk = EVT#…`) are ledger events; the record, rate,
//! idempotency and claim items are skipped here as the mapping's filter skips them on AWS.

use serde_json::{Value, json};
use trailgate_aws::LambdaError;
use trailgate_domain::error::Error;
use trailgate_domain::ledger::Event;
use trailgate_domain::ports::{EventBus, RecordReader};
use trailgate_domain::service::{self, StreamedEvent};

pub struct Deps<R, B> {
    pub records: R,
    pub bus: B,
}

/// The ledger events of a stream batch, in order, each with its sequence number.
fn ledger_events(payload: &Value) -> Result<Vec<StreamedEvent>, Error> {
    let records = payload
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::internal("not a DynamoDB stream event: no Records"))?;
    let mut events = Vec::with_capacity(records.len());
    for record in records {
        let text = |pointer: &str| record.pointer(pointer).and_then(Value::as_str);
        let position = text("/dynamodb/SequenceNumber")
            .ok_or_else(|| Error::internal("a stream record without a SequenceNumber"))?;
        let is_event = text("/eventName") == Some("INSERT")
            && text("/dynamodb/Keys/sk/S").is_some_and(|sk| sk.starts_with("EVT#"));
        if !is_event {
            continue;
        }
        // Only trailgate's functions write the ledger (its resource policy): an event item that
        // does not read is logged loudly and passed over rather than blocking the stream.
        let parsed = text("/dynamodb/NewImage/doc/S")
            .ok_or_else(|| "no doc attribute (is the stream's view NEW_IMAGE?)".to_owned())
            .and_then(|doc| serde_json::from_str::<Event>(doc).map_err(|err| err.to_string()));
        match parsed {
            Ok(event) => events.push(StreamedEvent {
                position: position.to_owned(),
                event,
            }),
            Err(why) => {
                tracing::error!(position, %why, "a ledger event item that does not read: not published")
            }
        }
    }
    Ok(events)
}

pub async fn handle<R: RecordReader, B: EventBus>(
    payload: Value,
    deps: &Deps<R, B>,
) -> Result<Value, LambdaError> {
    let events = ledger_events(&payload)?;
    let published = service::publish_lifecycle(&deps.records, &deps.bus, &events).await?;
    tracing::info!(events = events.len(), entries = published.entries, failed = ?published.failed, "lifecycle events published");
    let failures: Vec<Value> = published
        .failed
        .iter()
        .map(|(position, _)| json!({ "itemIdentifier": position }))
        .collect();
    Ok(json!({ "batchItemFailures": failures }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailgate_domain::testing::*;

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../../../events/events/ledger_stream.json")).unwrap()
    }

    #[tokio::test]
    async fn the_stream_batch_becomes_the_requests_events_and_closed() {
        let (mut record, events) = ledger_fixture("audited.json");
        record.closed_seq = Some(events.len() as u64);
        let records = MemoryLedger::default();
        seed(&records, record);
        let deps = Deps {
            records,
            bus: MemoryBus::default(),
        };
        let answer = handle(fixture(), &deps).await.unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
        let names: Vec<String> = deps
            .bus
            .entries()
            .iter()
            .map(|e| e.detail_type.clone())
            .collect();
        // The fixture holds the first event, the record's update (skipped), and the last.
        assert_eq!(
            names,
            [
                "trailgate.requested",
                "trailgate.audited",
                "trailgate.closed"
            ]
        );
    }

    #[tokio::test]
    async fn a_refused_entry_is_reported_as_the_batch_item_to_resume_at() {
        let (mut record, events) = ledger_fixture("audited.json");
        record.closed_seq = Some(events.len() as u64);
        let records = MemoryLedger::default();
        seed(&records, record);
        let deps = Deps {
            records,
            bus: MemoryBus::default(),
        };
        deps.bus.refuse_at(1, "ThrottlingException");
        let answer = handle(fixture(), &deps).await.unwrap();
        assert_eq!(
            answer,
            json!({"batchItemFailures": [{"itemIdentifier": "300"}]})
        );
    }

    #[tokio::test]
    async fn a_batch_that_is_not_a_stream_event_fails_the_invocation() {
        let deps = Deps {
            records: MemoryLedger::default(),
            bus: MemoryBus::default(),
        };
        let err = handle(json!({"detail": {}}), &deps).await.unwrap_err();
        assert!(format!("{err:?}").contains("no Records"), "{err:?}");
    }
}
