//! Publishing the ledger's events to the event bus, in order, from the ledger's stream: the
//! events function's use case.
//!
//! The stream delivers each event once or more, in order per request (one partition key, one
//! shard). Each becomes its lifecycle entries (`crate::lifecycle::entries`), put ten at a time.
//! On the first entry the bus refuses, publishing stops and that event's stream position is
//! returned: Lambda's `ReportBatchItemFailures` restarts the batch there, so no event is lost.
//! EventBridge takes each entry of a put on its own and keeps no order, so a consumer may see
//! an event twice or out of order: it orders by `seq` and deduplicates on the detail's `id`,
//! and `closed` says how many events there are.

use std::collections::HashMap;

use crate::error::Result;
use crate::ledger::Event;
use crate::lifecycle::{LifecycleEvent, MAX_ENTRIES_PER_PUT, entries};
use crate::ports::{EventBus, RecordReader};
use crate::request::AccessRequest;

/// One ledger event as the stream delivered it, with its position in the stream.
#[derive(Debug, Clone)]
pub struct StreamedEvent {
    /// The stream record's sequence number (Lambda's `itemIdentifier`).
    pub position: String,
    pub event: Event,
}

/// What a batch published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Entries the bus took.
    pub entries: usize,
    /// The position of the first event not (wholly) published, and why: the stream resumes
    /// there.
    pub failed: Option<(String, String)>,
}

/// Publishes `events` (in stream order) to `bus`; the records come from `records`.
pub async fn publish_lifecycle<R: RecordReader, B: EventBus>(
    records: &R,
    bus: &B,
    events: &[StreamedEvent],
) -> Result<Published> {
    let mut known: HashMap<String, AccessRequest> = HashMap::new();
    let mut published = Published::default();
    // Entries waiting to be put, each with the position of the event it came from.
    let mut pending: Vec<(String, LifecycleEvent)> = Vec::new();
    for streamed in events {
        let id = &streamed.event.request_id;
        if !known.contains_key(id) {
            let found = match records.record(id).await {
                Ok(Some(record)) => Ok(record),
                // The event and its record are written in one transaction: a missing record is
                // a ledger trailgate did not write. Stop here rather than skip it.
                Ok(None) => Err(format!("the ledger has no record of {id}")),
                Err(err) => Err(err.to_string()),
            };
            match found {
                Ok(record) => {
                    known.insert(id.clone(), record);
                }
                Err(why) => {
                    flush(bus, &mut pending, &mut published).await;
                    if published.failed.is_none() {
                        published.failed = Some((streamed.position.clone(), why));
                    }
                    return Ok(published);
                }
            }
        }
        let record = &known[id];
        for entry in entries(record, &streamed.event) {
            pending.push((streamed.position.clone(), entry));
        }
        if pending.len() >= MAX_ENTRIES_PER_PUT {
            flush(bus, &mut pending, &mut published).await;
            if published.failed.is_some() {
                return Ok(published);
            }
        }
    }
    flush(bus, &mut pending, &mut published).await;
    Ok(published)
}

/// Puts the pending entries, ten at a time, until one is refused; records the position of the
/// first refused entry's event. The entries after it are dropped: the stream sends them again.
async fn flush<B: EventBus>(
    bus: &B,
    pending: &mut Vec<(String, LifecycleEvent)>,
    published: &mut Published,
) {
    let all = std::mem::take(pending);
    for chunk in all.chunks(MAX_ENTRIES_PER_PUT) {
        let batch: Vec<LifecycleEvent> = chunk.iter().map(|(_, entry)| entry.clone()).collect();
        let outcome = match bus.put(&batch).await {
            Ok(outcome) if outcome.len() == batch.len() => outcome,
            Ok(outcome) => vec![
                Some(format!(
                    "the bus answered for {} of {} entries",
                    outcome.len(),
                    batch.len()
                ));
                batch.len()
            ],
            Err(err) => vec![Some(err.to_string()); batch.len()],
        };
        match outcome.iter().position(Option::is_some) {
            None => published.entries += batch.len(),
            Some(first) => {
                // Entries before the first refused one were taken; those of the same event
                // after it go again with the event (a consumer deduplicates on `id`).
                published.entries += first;
                let why = outcome[first].clone().unwrap_or_default();
                published.failed = Some((chunk[first].0.clone(), why));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Status;
    use crate::testing::{MemoryBus, MemoryLedger, ledger_fixture, seed};
    use futures_executor::executor::block_on;

    fn streamed(events: &[Event]) -> Vec<StreamedEvent> {
        events
            .iter()
            .map(|event| StreamedEvent {
                position: format!("{}", 1000 + event.seq),
                event: event.clone(),
            })
            .collect()
    }

    #[test]
    fn every_event_is_put_in_order_with_closed_last() {
        let (mut record, events) = ledger_fixture("audited.json");
        // Final at its last event (as the audit's second pass would have made it).
        record.closed_seq = Some(events.len() as u64);
        let ledger = MemoryLedger::default();
        seed(&ledger, record.clone());
        let bus = MemoryBus::default();
        let published = block_on(publish_lifecycle(&ledger, &bus, &streamed(&events))).unwrap();
        assert_eq!(
            published,
            Published {
                entries: 10,
                failed: None
            }
        );
        let put = bus.entries();
        assert_eq!(put.len(), 10);
        let seqs: Vec<u64> = put
            .iter()
            .filter_map(|e| e.detail["seq"].as_u64())
            .collect();
        assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
        assert_eq!(put.last().unwrap().detail_type, "trailgate.closed");
        assert_eq!(bus.calls(), vec![10]);
    }

    #[test]
    fn a_refused_entry_restarts_the_stream_at_its_event_and_no_event_is_lost() {
        let (mut record, events) = ledger_fixture("audited.json");
        // Final at its last event (as the audit's second pass would have made it).
        record.closed_seq = Some(events.len() as u64);
        let ledger = MemoryLedger::default();
        seed(&ledger, record.clone());
        let bus = MemoryBus::default();
        // The fourth entry (event 4, Approved) is throttled; EventBridge takes the others.
        bus.refuse_at(3, "ThrottlingException");
        let published = block_on(publish_lifecycle(&ledger, &bus, &streamed(&events))).unwrap();
        assert_eq!(published.entries, 3);
        assert_eq!(
            published.failed,
            Some(("1004".to_owned(), "ThrottlingException".to_owned()))
        );
        let ids = |bus: &MemoryBus| -> std::collections::BTreeSet<String> {
            bus.entries()
                .iter()
                .map(|e| e.detail["id"].as_str().unwrap().to_owned())
                .collect()
        };
        assert!(!ids(&bus).contains(&format!("{}:4", record.id)));
        // Lambda restarts at event 4: afterwards every event and closed are there, some twice.
        let again = block_on(publish_lifecycle(&ledger, &bus, &streamed(&events[3..]))).unwrap();
        assert_eq!((again.entries, again.failed), (7, None));
        let mut expected: std::collections::BTreeSet<String> =
            (1..=9).map(|seq| format!("{}:{seq}", record.id)).collect();
        expected.insert(format!("{}:closed", record.id));
        assert_eq!(ids(&bus), expected);
    }

    #[test]
    fn an_event_without_its_record_stops_there_after_the_events_before_it() {
        let (mut record, events) = ledger_fixture("audited.json");
        // Final at its last event (as the audit's second pass would have made it).
        record.closed_seq = Some(events.len() as u64);
        let ledger = MemoryLedger::default();
        seed(&ledger, record.clone());
        let bus = MemoryBus::default();
        let mut orphan = events[1].clone();
        orphan.request_id = "r-aaaaaaaaaaaaaaaaaaaaaaaaaa".into();
        let batch = streamed(&[events[0].clone(), orphan, events[2].clone()]);
        let published = block_on(publish_lifecycle(&ledger, &bus, &batch)).unwrap();
        assert_eq!(published.entries, 1);
        let (position, why) = published.failed.unwrap();
        assert_eq!(position, "1002");
        assert!(why.contains("no record of r-aaaa"), "{why}");
        assert_eq!(bus.entries()[0].detail["to"], Status::Pending.as_str());
    }
}
