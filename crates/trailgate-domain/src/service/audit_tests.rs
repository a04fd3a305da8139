//! Behaviour tests of the audit and acknowledgement use cases against the in-memory ports.

use super::*;
use crate::ErrorKind;
use crate::service::test_support::*;
use crate::service::*;
use crate::testing::*;
use futures_executor::executor::block_on;

#[test]
fn the_audit_verifies_the_chain_and_records_the_report() {
    let (ledger, roles, id) = active();
    block_on(vend(
        &ledger,
        &MemoryIssuer::default(),
        &catalog(),
        &alice(),
        &id,
        now(),
    ))
    .unwrap();
    block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap();
    let notifier = MemoryNotifier::default();
    let report = block_on(audit(
        &ledger,
        &notifier,
        &catalog(),
        &id,
        json!({"analysed": true, "events": 3, "writes": 1, "reads": 2, "actions_by_service": {"s3": {"GetObject": 2, "PutObject": 1}}}),
        now(),
    ))
    .unwrap();
    // Every approver but the requester gets the report; nobody else does.
    let sent = notifier.sent.lock().unwrap().clone();
    let recipients: Vec<_> = sent.iter().map(|m| (m.0, m.3.clone())).collect();
    assert_eq!(
        recipients,
        [
            (Topic::Approvals, Some("bob@example.com".to_owned())),
            (Topic::Approvals, Some("carol@example.com".to_owned()))
        ]
    );
    assert!(
        sent[0].2.contains("3 calls (1 writes, 2 reads)"),
        "{}",
        sent[0].2
    );
    assert!(
        sent[0].2.contains("s3: GetObject x2, PutObject x1"),
        "{}",
        sent[0].2
    );
    assert!(!sent[0].1.contains("NEEDS REVIEW"));
    // A retried step returns the stored report and sends nothing more.
    block_on(audit(&ledger, &notifier, &catalog(), &id, json!({}), now())).unwrap();
    assert_eq!(notifier.sent.lock().unwrap().len(), 2);
    assert_eq!(report["credentials_issued"], 1);
    assert_eq!(report["ledger_chain_verified"], true);
    let actions: Vec<_> = report["ledger_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "Requested",
            "ApprovalRequested",
            "Approved",
            "Activated",
            "CredentialsIssued",
            "Revoked"
        ]
    );
    assert_eq!(ledger.record(&id).unwrap().status, Status::Audited);
}

#[test]
fn a_break_glass_session_needs_an_approvers_acknowledgement() {
    let ledger = MemoryLedger::default();
    let catalog = glass_catalog();
    let id = glass_request(&ledger, &catalog);
    let plain = self::catalog();
    let bob = Caller::from_arn("arn:aws:iam::123456789012:user/bob");
    // Nothing to acknowledge before the session starts.
    let err = block_on(acknowledge(&ledger, &catalog, &bob, &id, None, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err}");

    block_on(break_glass(
        &ledger,
        &MemoryNotifier::default(),
        &catalog,
        &id,
        now(),
    ))
    .unwrap();
    let roles = MemoryRoles::with_sample_role();
    block_on(activate(&ledger, &roles, &catalog, contract(), &id, now())).unwrap();
    block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap();
    let notifier = MemoryNotifier::default();
    block_on(audit(
        &ledger,
        &notifier,
        &catalog,
        &id,
        json!({"analysed": false, "reason": "test"}),
        now(),
    ))
    .unwrap();
    let sent = notifier.sent.lock().unwrap().clone();
    assert!(sent[0].1.contains("[NEEDS REVIEW]"), "{}", sent[0].1);
    assert!(sent[0].2.contains("jitctl ack r-glass"));
    assert_eq!(
        ledger.record(&id).unwrap().view()["review"]["required"],
        true
    );

    // The requester cannot sign off their own emergency access; a stranger sees nothing.
    let err = block_on(acknowledge(&ledger, &catalog, &alice(), &id, None, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    let mallory = Caller::from_arn("arn:aws:iam::123456789012:user/mallory");
    let err = block_on(acknowledge(&ledger, &catalog, &mallory, &id, None, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    let err = block_on(acknowledge(
        &ledger,
        &catalog,
        &bob,
        &id,
        Some("a\u{7}"),
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("comment"));

    let acked = block_on(acknowledge(
        &ledger,
        &catalog,
        &bob,
        &id,
        Some(" looked fine "),
        now(),
    ))
    .unwrap();
    assert!(!acked.needs_review());
    let ack = acked.acknowledgement.clone().unwrap();
    assert_eq!(
        (ack.by.as_str(), ack.comment.as_deref()),
        ("bob", Some("looked fine"))
    );
    assert_eq!(acked.view()["review"]["required"], false);
    // A second acknowledgement (carol, later) changes nothing.
    let carol = Caller::from_arn("arn:aws:iam::123456789012:user/carol");
    let again = block_on(acknowledge(&ledger, &catalog, &carol, &id, None, now())).unwrap();
    assert_eq!(again.acknowledgement.unwrap().by, "bob");
    let last = block_on(ledger.events(&id)).unwrap().pop().unwrap();
    assert_eq!(last.action, "Acknowledged");
    assert!(
        crate::ledger::verify_chain(
            &ledger.record(&id).unwrap(),
            &block_on(ledger.events(&id)).unwrap(),
            Some(ledger.chain_key())
        )
        .is_ok()
    );

    // A normal request has nothing to acknowledge.
    let (normal_ledger, _, normal) = awaiting_approval();
    let err = block_on(acknowledge(
        &normal_ledger,
        &plain,
        &bob,
        &normal,
        None,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
}

#[test]
fn the_audit_refuses_a_ledger_edited_behind_its_back() {
    // An event edited in the table: the keyed hash no longer matches.
    let (ledger, roles, id) = active();
    block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap();
    ledger.tamper_event(&id, 2, |event| event.actor = "approver:mallory".into());
    let err = block_on(audit(
        &ledger,
        &MemoryNotifier::default(),
        &catalog(),
        &id,
        json!({}),
        now(),
    ))
    .unwrap_err();
    assert!(err.message.contains("tampered with"), "{}", err.message);

    // A record field edited without an event: the last event no longer covers the record.
    let (ledger, roles, id) = active();
    block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap();
    let mut record = ledger.record(&id).unwrap();
    record.duration_seconds *= 84;
    ledger.overwrite(record);
    let notifier = MemoryNotifier::default();
    let err = block_on(audit(&ledger, &notifier, &catalog(), &id, json!({}), now())).unwrap_err();
    assert!(
        err.message.contains("the record differs"),
        "{}",
        err.message
    );
    assert!(
        notifier.sent.lock().unwrap().is_empty(),
        "no report for a tampered ledger"
    );
}

/// A revoked grant audited once (first pass), with `first` as its CloudTrail part.
fn audited_once(first: serde_json::Value) -> (MemoryLedger, String) {
    let (ledger, roles, id) = active();
    block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap();
    block_on(audit(
        &ledger,
        &MemoryNotifier::default(),
        &catalog(),
        &id,
        first,
        now(),
    ))
    .unwrap();
    (ledger, id)
}

#[test]
fn the_second_pass_makes_the_report_final_and_writes_only_when_it_found_more() {
    let first = json!({"analysed": true, "events": 2, "errors": [], "incident_findings": [],
        "coverage": {"complete": false, "window_end": "2026-11-21T10:00:00Z"}});
    let (ledger, id) = audited_once(first.clone());
    let record = ledger.record(&id).unwrap();
    assert_eq!(record.audit.as_ref().unwrap()["final"], false);
    assert!(
        !record.is_final() && record.closed_seq.is_none(),
        "final after one pass"
    );

    // Nothing new: final, recorded, nobody written to.
    let notifier = MemoryNotifier::default();
    let report = block_on(reaudit(
        &ledger,
        &notifier,
        &catalog(),
        &id,
        first.clone(),
        now(),
    ))
    .unwrap();
    assert_eq!(
        (report["final"].as_bool(), report["passes"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(report["late_findings"], json!([]));
    assert!(notifier.sent.lock().unwrap().is_empty());
    let record = ledger.record(&id).unwrap();
    assert!(record.is_final());
    assert_eq!(
        record.closed_seq,
        Some(record.event_seq),
        "the AuditUpdated event closes it"
    );
    let events = block_on(ledger.events(&id)).unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.detail.as_deref()),
        ("AuditUpdated", Some("nothing new since the first pass"))
    );
    crate::ledger::verify_chain(&record, &events, Some(ledger.chain_key())).unwrap();
    // A retried step changes nothing.
    let again = block_on(reaudit(
        &ledger,
        &notifier,
        &catalog(),
        &id,
        json!({"analysed": true, "events": 9}),
        now(),
    ))
    .unwrap();
    assert_eq!(again, report);
    assert_eq!(block_on(ledger.events(&id)).unwrap().len(), events.len());

    // Late events: the approvers (not the requester) are told what is new.
    let (ledger, id) = audited_once(first.clone());
    let notifier = MemoryNotifier::default();
    let later = json!({"analysed": true, "events": 3, "errors": [{"code": "AccessDenied", "action": "CreateUser", "count": 1}],
        "incident_findings": ["high: IAM privilege escalation (1 events)"], "coverage": {"complete": true}});
    let report = block_on(reaudit(&ledger, &notifier, &catalog(), &id, later, now())).unwrap();
    assert_eq!(report["first_pass"]["events"], 2);
    assert_eq!(report["cloudtrail"]["events"], 3);
    let news = report["late_findings"].as_array().unwrap();
    assert_eq!(news.len(), 3, "{news:?}");
    assert!(
        news[0]
            .as_str()
            .unwrap()
            .starts_with("1 CloudTrail event(s) delivered after the first audit")
    );
    let sent = notifier.sent.lock().unwrap().clone();
    let to: Vec<_> = sent.iter().map(|m| m.3.clone().unwrap()).collect();
    assert_eq!(to, ["bob@example.com", "carol@example.com"]);
    assert!(
        sent[0].1.starts_with("trailgate audit update: "),
        "{}",
        sent[0].1
    );
    assert!(
        sent[0]
            .2
            .starts_with("UPDATE: the audit read CloudTrail again"),
        "{}",
        sent[0].2
    );
    assert!(
        sent[0]
            .2
            .contains("new finding: high: IAM privilege escalation"),
        "{}",
        sent[0].2
    );
}

#[test]
fn the_second_pass_refuses_a_request_not_audited() {
    let (ledger, roles, id) = active();
    let err = block_on(reaudit(
        &ledger,
        &MemoryNotifier::default(),
        &catalog(),
        &id,
        json!({}),
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap();
    let err = block_on(reaudit(
        &ledger,
        &MemoryNotifier::default(),
        &catalog(),
        &id,
        json!({}),
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err}");
}

#[test]
fn late_findings_name_what_the_second_pass_adds_and_nothing_else() {
    let first = json!({"analysed": true, "events": 2, "errors": [], "incident_findings": ["medium: x (1 events)"]});
    assert!(late_findings(&first, &first).is_empty());
    // Fewer events (a Region not read this time) is no news, nor is a second pass that failed.
    assert!(late_findings(&first, &json!({"analysed": true, "events": 1})).is_empty());
    assert!(late_findings(&first, &json!({"analysed": false, "reason": "throttled"})).is_empty());
    let unread = json!({"analysed": false, "reason": "AccessDenied"});
    let now_read = late_findings(&unread, &json!({"analysed": true, "events": 4}));
    assert_eq!(
        now_read,
        ["the session's calls could be read this time: 4 CloudTrail events"]
    );
}

#[test]
fn break_glass_is_final_after_both_the_second_pass_and_the_acknowledgement_in_either_order() {
    for ack_first in [true, false] {
        let ledger = MemoryLedger::default();
        let catalog = glass_catalog();
        let id = glass_request(&ledger, &catalog);
        block_on(break_glass(
            &ledger,
            &MemoryNotifier::default(),
            &catalog,
            &id,
            now(),
        ))
        .unwrap();
        let roles = MemoryRoles::with_sample_role();
        block_on(activate(&ledger, &roles, &catalog, contract(), &id, now())).unwrap();
        block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap();
        let pass = json!({"analysed": false, "reason": "test"});
        block_on(audit(
            &ledger,
            &MemoryNotifier::default(),
            &catalog,
            &id,
            pass.clone(),
            now(),
        ))
        .unwrap();
        let bob = Caller::from_arn("arn:aws:iam::123456789012:user/bob");
        let second = || {
            block_on(reaudit(
                &ledger,
                &MemoryNotifier::default(),
                &catalog,
                &id,
                pass.clone(),
                now(),
            ))
            .unwrap()
        };
        let ack = || block_on(acknowledge(&ledger, &catalog, &bob, &id, None, now())).unwrap();
        if ack_first {
            ack();
            assert!(
                ledger.record(&id).unwrap().closed_seq.is_none(),
                "closed before the second pass"
            );
            second();
        } else {
            second();
            assert!(
                ledger.record(&id).unwrap().closed_seq.is_none(),
                "closed before the sign-off"
            );
            ack();
        }
        let record = ledger.record(&id).unwrap();
        let events = block_on(ledger.events(&id)).unwrap();
        assert_eq!(
            record.closed_seq,
            Some(events.len() as u64),
            "ack first: {ack_first}"
        );
        let closing = &events.last().unwrap().action;
        assert_eq!(
            closing,
            if ack_first {
                "AuditUpdated"
            } else {
                "Acknowledged"
            }
        );
    }
}
