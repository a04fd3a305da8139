//! Exporting a closed request's events to the archive: the copy of the ledger that nobody,
//! trailgate included, can change or delete within its retention.

use super::load;
use crate::error::{Error, Result};
use crate::ledger::{archive_key, to_ndjson, verify_chain};
use crate::ports::{Archive, Ledger};
use crate::request::Status;

/// What the export step returns to the state machine (its `Closed?` choice routes on `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub status: Status,
    pub events: usize,
    pub key: String,
}

/// Whether no transition leads out of `status`: what is exported is final. An AUDITED
/// break-glass request may still gain an `Acknowledged` event, which `jitctl verify` reports
/// as after the export.
pub fn is_closed(status: Status) -> bool {
    matches!(
        status,
        Status::Denied | Status::Expired | Status::Cancelled | Status::Audited
    )
}

/// Verifies the closed request's chain with the chain key and writes its events as NDJSON to
/// `requests/<id>.ndjson`. A chain that does not verify is not exported (`Internal`): the
/// archive only ever holds ledgers trailgate itself checked, and the failed step alerts.
/// Idempotent: a retried step writes the same events again, a new version of the same key
/// (the bucket is versioned and every version is locked).
pub async fn export<L: Ledger, A: Archive>(ledger: &L, archive: &A, id: &str) -> Result<Exported> {
    let record = load(ledger, id).await?;
    if !is_closed(record.status) {
        return Err(Error::conflict(format!(
            "the request is {}: only closed requests are exported",
            record.status
        )));
    }
    let events = ledger.events(id).await?;
    verify_chain(&record, &events, Some(ledger.chain_key()))?;
    let key = archive_key(id);
    archive.put(&key, &to_ndjson(&events)?).await?;
    Ok(Exported {
        status: record.status,
        events: events.len(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::ledger::from_ndjson;
    use crate::service::test_support::*;
    use crate::testing::*;
    use futures_executor::executor::block_on;

    #[test]
    fn a_closed_request_is_exported_as_its_verified_events() {
        let (ledger, _, id) = awaiting_approval();
        let archive = MemoryArchive::default();
        // Still open: nothing is written.
        let err = block_on(export(&ledger, &archive, &id)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert!(archive.objects.lock().unwrap().is_empty());

        deny_as_bob(&ledger, &id);
        let exported = block_on(export(&ledger, &archive, &id)).unwrap();
        assert_eq!(exported.status, Status::Denied);
        assert_eq!(exported.key, format!("requests/{id}.ndjson"));
        let objects = archive.objects.lock().unwrap().clone();
        let events = from_ndjson(&objects[&exported.key]).unwrap();
        assert_eq!(events, block_on(ledger.events(&id)).unwrap());
        assert_eq!(events.len(), exported.events);
    }

    #[test]
    fn a_tampered_ledger_is_not_exported() {
        let (ledger, _, id) = awaiting_approval();
        deny_as_bob(&ledger, &id);
        ledger.tamper_event(&id, 1, |event| event.actor = "someone else".into());
        let archive = MemoryArchive::default();
        let err = block_on(export(&ledger, &archive, &id)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message.contains("tampered with"), "{}", err.message);
        assert!(archive.objects.lock().unwrap().is_empty());
    }

    fn deny_as_bob(ledger: &MemoryLedger, id: &str) {
        let link = link_for(ledger, id, "bob");
        block_on(crate::service::decide(
            ledger,
            &MemoryWorkflow::default(),
            &catalog(),
            &key(),
            &link,
            crate::service::Verdict {
                approve: false,
                comment: None,
                now: now(),
                origin: Default::default(),
            },
        ))
        .unwrap();
    }
}
