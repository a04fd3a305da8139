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

/// How many days back the export sweep looks for closed requests: a missed export is found
/// by the next runs, each a few minutes apart.
pub const EXPORT_LOOKBACK_DAYS: i64 = 7;

/// The reconciler's export sweep, the backstop for an execution that closed a request without
/// its `Export Ledger` step (stopped, or the step's retries spent): every request that closed
/// (denied, expired, cancelled, audited) today or in the [`EXPORT_LOOKBACK_DAYS`] before, and
/// that the archive does not hold, is exported (its chain verified first, as always), and the
/// alerts topic says which. Returns the requests exported and, per request, what failed (the
/// next run tries again).
pub async fn sweep_exports<L: Ledger, A: Archive, N: crate::ports::Notifier>(
    ledger: &L,
    archive: &A,
    notifier: &N,
    now: ::time::OffsetDateTime,
) -> Result<(Vec<String>, Vec<(String, String)>)> {
    let mut closed = Vec::new();
    for back in 0..=EXPORT_LOOKBACK_DAYS {
        let day = crate::time::format_utc(now - ::time::Duration::days(back));
        closed.extend(ledger.closed_on(&day[..10]).await?);
    }
    let (mut exported, mut failed) = (Vec::new(), Vec::new());
    for request in &closed {
        let outcome = async {
            if archive.exists(&archive_key(&request.id)).await? {
                return Ok(false);
            }
            export(ledger, archive, &request.id).await.map(|_| true)
        };
        match outcome.await {
            Ok(true) => exported.push(request.id.clone()),
            Ok(false) => {}
            Err(err) => failed.push((request.id.clone(), err.message)),
        }
    }
    if !exported.is_empty() || !failed.is_empty() {
        let message = format!(
            "The reconciler exported closed requests the state machine had not archived (its Export Ledger step did not run or failed).\nExported: {exported:?}\nNot exported (will retry; a chain that does not verify is never exported): {failed:?}\n"
        );
        notifier
            .publish(
                crate::ports::Topic::Alerts,
                "trailgate: reconciler archived requests the state machine did not",
                &message,
                None,
            )
            .await?;
    }
    Ok((exported, failed))
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

    #[test]
    fn the_sweep_exports_closed_requests_the_state_machine_did_not_and_only_once() {
        let ledger = MemoryLedger::default();
        let mut request = pending_request();
        request.status = Status::Audited;
        request.expires_at = Some(crate::time::format_utc(now() - ::time::Duration::hours(1)));
        let id = seed(&ledger, request).id;
        // Denied, so never granted: swept as well.
        let (denied_ledger, _, denied) = awaiting_approval();
        deny_as_bob(&denied_ledger, &denied);
        let archive_of_denied = MemoryArchive::default();
        let (swept, _) = block_on(sweep_exports(
            &denied_ledger,
            &archive_of_denied,
            &MemoryNotifier::default(),
            now(),
        ))
        .unwrap();
        assert_eq!(swept, vec![denied.clone()]);
        // One exported by its execution already, one closed long ago: neither is touched.
        let mut done = pending_request();
        done.id = "r-bbbbbbbbbbbbbbbbbbbbbbbbbb".into();
        done.status = Status::Audited;
        done.expires_at = Some(crate::time::format_utc(now() - ::time::Duration::hours(2)));
        let done = seed(&ledger, done).id;
        let archive = MemoryArchive::default();
        block_on(archive.put(&archive_key(&done), "exported by its execution")).unwrap();
        let notifier = MemoryNotifier::default();
        let (exported, failed) =
            block_on(sweep_exports(&ledger, &archive, &notifier, now())).unwrap();
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(exported, vec![id.clone()]);
        let objects = archive.objects.lock().unwrap().clone();
        assert_eq!(
            from_ndjson(&objects[&archive_key(&id)]).unwrap(),
            block_on(ledger.events(&id)).unwrap()
        );
        assert_eq!(objects[&archive_key(&done)], "exported by its execution");
        assert_eq!(notifier.sent.lock().unwrap().len(), 1);
        // The next run finds nothing to do and says nothing.
        let (again, _) = block_on(sweep_exports(&ledger, &archive, &notifier, now())).unwrap();
        assert!(again.is_empty());
        assert_eq!(notifier.sent.lock().unwrap().len(), 1);

        // A tampered chain is reported, never archived.
        let mut broken = pending_request();
        broken.id = "r-cccccccccccccccccccccccccc".into();
        broken.status = Status::Audited;
        broken.expires_at = Some(crate::time::format_utc(now() - ::time::Duration::hours(1)));
        let broken = seed(&ledger, broken).id;
        ledger.tamper_event(&broken, 1, |event| event.actor = "someone else".into());
        let (exported, failed) =
            block_on(sweep_exports(&ledger, &archive, &notifier, now())).unwrap();
        assert!(exported.is_empty());
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(
            !archive
                .objects
                .lock()
                .unwrap()
                .contains_key(&archive_key(&broken))
        );
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
