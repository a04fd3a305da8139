//! Behaviour tests of the use cases against the in-memory ports.

use super::*;
use crate::ErrorKind;
use crate::testing::*;
use futures_executor::executor::block_on;

fn catalog() -> Catalog {
    Catalog::load(&sample_catalog_json(), "trailgate-").unwrap()
}

fn key() -> LinkKey {
    LinkKey::new(vec![42u8; 32]).unwrap()
}

fn settings() -> IntakeSettings {
    IntakeSettings {
        audit_delay: Duration::seconds(900),
    }
}

fn new_request() -> NewRequest {
    NewRequest {
        catalog_id: "sandbox-admin".into(),
        duration: "PT2H".into(),
        reason: "fix prod".into(),
        ticket: None,
    }
}

/// A request waiting for approval, with the messages sent to the approvers.
fn awaiting_approval() -> (MemoryLedger, MemoryNotifier, String) {
    let ledger = MemoryLedger::default();
    let request = seed(&ledger, pending_request());
    let notifier = MemoryNotifier::default();
    let approval = ApprovalSettings {
        key: &key(),
        decision_base_url: "https://api.example/v1",
    };
    block_on(request_approval(
        &ledger,
        &notifier,
        &catalog(),
        &approval,
        &request.id,
        "token-1",
        now(),
    ))
    .unwrap();
    (ledger, notifier, request.id)
}

fn link_for(ledger: &MemoryLedger, id: &str, approver: &str) -> LinkParams {
    let record = ledger.record(id).unwrap();
    let expires = parse_utc(&record.approval_expires_at)
        .unwrap()
        .unix_timestamp();
    key().sign(id, approver, expires, &record.content_hash)
}

#[test]
fn submit_records_pending_and_starts_the_execution_named_by_the_id() {
    let (ledger, workflow) = (MemoryLedger::default(), MemoryWorkflow::default());
    let id = "r-bbbbbbbbbbbbbbbbbbbbbbbbbb".to_owned();
    let request = block_on(submit(
        &ledger,
        &workflow,
        &catalog(),
        settings(),
        &alice(),
        &new_request(),
        id.clone(),
        now(),
    ))
    .unwrap();
    assert_eq!(request.status, Status::Pending);
    assert_eq!(ledger.record(&id).unwrap().status, Status::Pending);
    let started = workflow.started.lock().unwrap();
    assert_eq!(started[0].0, id);
    assert_eq!(started[0].1["request"]["approval_window_seconds"], 3600);
    // The execution input carries no reason, e-mail or requester: it lands in execution history.
    assert!(!started[0].1.to_string().contains("fix prod"));
}

#[test]
fn submit_closes_the_record_when_the_workflow_cannot_start() {
    let (ledger, workflow) = (
        MemoryLedger::default(),
        MemoryWorkflow {
            fail_start: true,
            ..Default::default()
        },
    );
    let id = "r-cccccccccccccccccccccccccc".to_owned();
    let err = block_on(submit(
        &ledger,
        &workflow,
        &catalog(),
        settings(),
        &alice(),
        &new_request(),
        id.clone(),
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert_eq!(ledger.record(&id).unwrap().status, Status::Cancelled);
}

#[test]
fn unknown_catalog_entries_are_invalid_requests() {
    let mut input = new_request();
    input.catalog_id = "nope".into();
    let err = block_on(submit(
        &MemoryLedger::default(),
        &MemoryWorkflow::default(),
        &catalog(),
        settings(),
        &alice(),
        &input,
        "r-x".into(),
        now(),
    ))
    .unwrap_err();
    assert_eq!(
        (err.kind, err.field.as_deref()),
        (ErrorKind::InvalidRequest, Some("catalog_id"))
    );
}

#[test]
fn approval_stores_the_token_and_sends_one_signed_link_per_approver() {
    let (ledger, notifier, id) = awaiting_approval();
    assert_eq!(
        ledger.record(&id).unwrap().task_token.as_deref(),
        Some("token-1")
    );
    let sent = notifier.sent.lock().unwrap();
    let approvers: Vec<_> = sent.iter().map(|(_, _, _, a)| a.clone().unwrap()).collect();
    assert_eq!(approvers, ["bob@example.com", "carol@example.com"]);
    for (topic, subject, body, _) in sent.iter() {
        assert_eq!(*topic, Topic::Approvals);
        assert!(subject.starts_with("trailgate: alice requests sandbox-admin"));
        assert!(body.contains("/decisions/r-") && body.contains("fix prod"));
        assert!(
            !body.contains("token-1"),
            "the task token must never leave the server"
        );
    }
    assert!(sent[0].2.contains("a=bob&") && sent[1].2.contains("a=carol&"));
}

#[test]
fn the_requester_gets_no_link_for_their_own_request() {
    let ledger = MemoryLedger::default();
    let mut request = pending_request();
    request.requester = "arn:aws:iam::123456789012:user/bob".into();
    let request = seed(&ledger, request);
    let notifier = MemoryNotifier::default();
    let approval = ApprovalSettings {
        key: &key(),
        decision_base_url: "https://x",
    };
    block_on(request_approval(
        &ledger,
        &notifier,
        &catalog(),
        &approval,
        &request.id,
        "t",
        now(),
    ))
    .unwrap();
    let sent = notifier.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].3.as_deref(), Some("carol@example.com"));
    // And a link signed for bob is refused anyway.
    let link = link_for(&ledger, &request.id, "bob");
    let err = block_on(decide(
        &ledger,
        &MemoryWorkflow::default(),
        &catalog(),
        &key(),
        &link,
        true,
        None,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.message, "you cannot approve your own request");
}

#[test]
fn an_approval_reaching_quorum_completes_the_task_once() {
    let (ledger, _, id) = awaiting_approval();
    let workflow = MemoryWorkflow::default();
    let link = link_for(&ledger, &id, "bob");
    let decided = block_on(decide(
        &ledger,
        &workflow,
        &catalog(),
        &key(),
        &link,
        true,
        Some(" ok ".into()),
        now(),
    ))
    .unwrap();
    assert_eq!(decided.status, Status::Approved);
    assert_eq!(decided.decisions["bob"].comment.as_deref(), Some("ok"));
    assert_eq!(
        workflow.completed.lock().unwrap().as_slice(),
        [("token-1".to_owned(), json!({"outcome": "APPROVED"}))]
    );

    // A second click, and a click by the other approver after the decision, change nothing.
    let again = block_on(decide(
        &ledger,
        &workflow,
        &catalog(),
        &key(),
        &link,
        false,
        None,
        now(),
    ))
    .unwrap_err();
    assert!(again.message.starts_with("you already approved"), "{again}");
    let carol = link_for(&ledger, &id, "carol");
    let late = block_on(decide(
        &ledger,
        &workflow,
        &catalog(),
        &key(),
        &carol,
        false,
        None,
        now(),
    ))
    .unwrap_err();
    assert_eq!(
        late.message,
        "this request is already APPROVED: approved by bob"
    );
    assert_eq!(workflow.completed.lock().unwrap().len(), 1);
    assert_eq!(ledger.record(&id).unwrap().status, Status::Approved);
}

#[test]
fn a_deny_ends_the_request() {
    let (ledger, _, id) = awaiting_approval();
    let workflow = MemoryWorkflow::default();
    let decided = block_on(decide(
        &ledger,
        &workflow,
        &catalog(),
        &key(),
        &link_for(&ledger, &id, "carol"),
        false,
        None,
        now(),
    ))
    .unwrap();
    assert_eq!(
        (decided.status, decided.outcome.as_deref()),
        (Status::Denied, Some("denied by carol"))
    );
    assert_eq!(
        workflow.completed.lock().unwrap()[0].1,
        json!({"outcome": "DENIED"})
    );
}

#[test]
fn bad_links_are_forbidden_and_change_nothing() {
    let (ledger, _, id) = awaiting_approval();
    let workflow = MemoryWorkflow::default();
    let before = ledger.record(&id).unwrap();
    let good = link_for(&ledger, &id, "bob");
    let mut tampered = good.clone();
    tampered.approver_id = "carol".into();
    let forged =
        LinkKey::new(vec![1u8; 32])
            .unwrap()
            .sign(&id, "bob", good.expires, &before.content_hash);
    let mut unknown_request = good.clone();
    unknown_request.request_id = "r-zzzzzzzzzzzzzzzzzzzzzzzzzz".into();
    let expired_at = OffsetDateTime::from_unix_timestamp(good.expires).unwrap();
    for (link, at) in [
        (tampered, now()),
        (forged, now()),
        (unknown_request, now()),
        (good.clone(), expired_at),
    ] {
        let err = block_on(decide(
            &ledger,
            &workflow,
            &catalog(),
            &key(),
            &link,
            true,
            None,
            at,
        ))
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden, "{err}");
    }
    assert_eq!(ledger.record(&id).unwrap(), before);
    assert!(workflow.completed.lock().unwrap().is_empty());
}

#[test]
fn expiry_closes_a_pending_request_and_leaves_decided_ones_alone() {
    let (ledger, _, id) = awaiting_approval();
    assert_eq!(
        block_on(expire(&ledger, &id, now())).unwrap(),
        Status::Expired
    );
    let record = ledger.record(&id).unwrap();
    assert_eq!(record.task_token, None);
    assert_eq!(
        record.outcome.as_deref(),
        Some("no decision within the approval window")
    );
    assert_eq!(
        block_on(expire(&ledger, &id, now())).unwrap(),
        Status::Expired
    );
    assert_eq!(
        ledger
            .event_actions(&id)
            .iter()
            .filter(|a| *a == "Expired")
            .count(),
        1
    );
}

fn quorum_two_catalog() -> Catalog {
    Catalog::load(
        &sample_catalog_json().replace("\"quorum\": 1", "\"quorum\": 2"),
        "trailgate-",
    )
    .unwrap()
}

fn user(name: &str) -> Caller {
    Caller {
        arn: format!("arn:aws:iam::123456789012:user/{name}"),
    }
}

#[test]
fn signed_callers_decide_by_their_arn_under_the_same_rules() {
    let (ledger, _, id) = awaiting_approval();
    let workflow = MemoryWorkflow::default();
    let by = |caller: Caller, approve: bool| {
        block_on(decide_by_principal(
            &ledger,
            &workflow,
            &catalog(),
            &caller,
            &id,
            approve,
            None,
            now(),
        ))
    };
    let own = by(alice(), true).unwrap_err();
    assert_eq!(
        (own.kind, own.message.as_str()),
        (ErrorKind::Forbidden, "you cannot approve your own request")
    );
    let stranger = by(user("mallory"), true).unwrap_err();
    assert_eq!(stranger.kind, ErrorKind::Forbidden, "{stranger}");
    let missing = block_on(decide_by_principal(
        &ledger,
        &workflow,
        &catalog(),
        &user("bob"),
        "r-zzzzzzzzzzzzzzzzzzzzzzzzzz",
        true,
        None,
        now(),
    ))
    .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);
    assert_eq!(
        ledger.event_actions(&id).len(),
        2,
        "a refusal wrote an event"
    );

    let decided = by(user("bob"), true).unwrap();
    assert_eq!(
        (decided.status, decided.outcome.as_deref()),
        (Status::Approved, Some("approved by bob"))
    );
    // The same approver through the link path, and the other approver, are now conflicts.
    let again = block_on(decide(
        &ledger,
        &workflow,
        &catalog(),
        &key(),
        &link_for(&ledger, &id, "bob"),
        true,
        None,
        now(),
    ))
    .unwrap_err();
    assert!(again.message.starts_with("you already approved"), "{again}");
    assert_eq!(
        by(user("carol"), false).unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(workflow.completed.lock().unwrap().len(), 1);
}

#[test]
fn a_quorum_of_two_needs_both_and_a_deny_after_one_approval_ends_it() {
    let catalog = quorum_two_catalog();
    for second_approves in [true, false] {
        let (ledger, _, id) = awaiting_approval();
        let workflow = MemoryWorkflow::default();
        let first = block_on(decide(
            &ledger,
            &workflow,
            &catalog,
            &key(),
            &link_for(&ledger, &id, "bob"),
            true,
            None,
            now(),
        ))
        .unwrap();
        assert_eq!((first.status, first.outcome), (Status::Pending, None));
        assert!(workflow.completed.lock().unwrap().is_empty());
        let second = block_on(decide_by_principal(
            &ledger,
            &workflow,
            &catalog,
            &user("carol"),
            &id,
            second_approves,
            None,
            now(),
        ))
        .unwrap();
        let (status, outcome, output) = if second_approves {
            (Status::Approved, "approved by bob, carol", "APPROVED")
        } else {
            (Status::Denied, "denied by carol", "DENIED")
        };
        assert_eq!(
            (second.status, second.outcome.as_deref()),
            (status, Some(outcome))
        );
        assert_eq!(
            workflow.completed.lock().unwrap().as_slice(),
            [("token-1".to_owned(), json!({"outcome": output}))]
        );
    }
}

#[test]
fn no_decision_lands_before_the_token_is_stored_or_after_the_window() {
    let ledger = MemoryLedger::default();
    let id = seed(&ledger, pending_request()).id;
    let workflow = MemoryWorkflow::default();
    let early = block_on(decide_by_principal(
        &ledger,
        &workflow,
        &catalog(),
        &user("bob"),
        &id,
        true,
        None,
        now(),
    ))
    .unwrap_err();
    assert_eq!(early.kind, ErrorKind::Conflict, "{early}");

    let (ledger, _, id) = awaiting_approval();
    let closed = parse_utc(&ledger.record(&id).unwrap().approval_expires_at).unwrap();
    let late = block_on(decide_by_principal(
        &ledger,
        &workflow,
        &catalog(),
        &user("bob"),
        &id,
        true,
        None,
        closed,
    ))
    .unwrap_err();
    assert_eq!(late.kind, ErrorKind::Conflict, "{late}");
    assert_eq!(ledger.record(&id).unwrap().status, Status::Pending);
    assert!(workflow.completed.lock().unwrap().is_empty());
}

#[test]
fn the_approval_email_is_plain_text_with_everything_an_approver_needs() {
    let mut request = pending_request();
    request.ticket = Some("OPS-42".into());
    request.reason = "fix prod <b>now</b>".into();
    request.context = Some(ContextSummary {
        available: true,
        summary: "40 calls in the last 24 h".into(),
        lines: (1..=40).map(|n| format!("event {n}")).collect(),
        findings: Vec::new(),
    });
    let entry = catalog().entry("sandbox-admin").unwrap().clone();
    let (subject, body) = approval_message(&request, &entry, "https://x/v1/decisions/r-1?a=bob");
    assert_eq!(subject, "trailgate: alice requests sandbox-admin for PT2H");
    for needle in [
        "Reason:    fix prod <b>now</b>",
        "Ticket:    OPS-42",
        "Duration:  PT2H",
        &request.role_arn,
        "https://x/v1/decisions/r-1?a=bob",
    ] {
        assert!(body.contains(needle), "no `{needle}` in\n{body}");
    }
    let context: Vec<&str> = body
        .lines()
        .skip_while(|l| !l.starts_with("What the requester has been doing"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(context.len(), 20, "{context:?}");
    assert_eq!(context[0], "  40 calls in the last 24 h");
    assert!(!body.contains("event 20\n"));
    // Subjects stay printable ASCII under SNS's 100 characters, whatever the requester is called.
    request.requester_identity = format!("ä\n{}", "x".repeat(200));
    let (subject, _) = approval_message(&request, &entry, "u");
    assert!(subject.len() < 100 && subject.chars().all(|c| c.is_ascii_graphic() || c == ' '));
}

fn approved() -> (MemoryLedger, String) {
    let (ledger, _, id) = awaiting_approval();
    block_on(decide(
        &ledger,
        &MemoryWorkflow::default(),
        &catalog(),
        &key(),
        &link_for(&ledger, &id, "bob"),
        true,
        None,
        now(),
    ))
    .unwrap();
    (ledger, id)
}

#[test]
fn activation_requires_a_managed_role_and_is_idempotent() {
    let (ledger, id) = approved();
    let unmanaged = MemoryRoles::default();
    unmanaged.add_role("sample-target-trailgate", &[]);
    let err = block_on(activate(
        &ledger,
        &unmanaged,
        &catalog(),
        "trailgate-",
        BROKER_ROLE,
        &id,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotGrantable);
    assert_eq!(ledger.record(&id).unwrap().status, Status::Approved);

    let roles = MemoryRoles::with_sample_role();
    let expires = block_on(activate(
        &ledger,
        &roles,
        &catalog(),
        "trailgate-",
        BROKER_ROLE,
        &id,
        now(),
    ))
    .unwrap();
    assert_eq!(expires, "2026-11-21T12:00:00Z");
    let later = now() + Duration::minutes(3);
    assert_eq!(
        block_on(activate(
            &ledger,
            &roles,
            &catalog(),
            "trailgate-",
            BROKER_ROLE,
            &id,
            later
        ))
        .unwrap(),
        expires
    );
    assert_eq!(ledger.record(&id).unwrap().status, Status::Active);
}

fn active() -> (MemoryLedger, MemoryRoles, String) {
    let (ledger, id) = approved();
    let roles = MemoryRoles::with_sample_role();
    block_on(activate(
        &ledger,
        &roles,
        &catalog(),
        "trailgate-",
        BROKER_ROLE,
        &id,
        now(),
    ))
    .unwrap();
    (ledger, roles, id)
}

#[test]
fn credentials_are_vended_only_to_the_requester_while_active_and_never_past_expiry() {
    let (ledger, roles, id) = active();
    let issuer = MemoryIssuer::default();
    let bob = Caller {
        arn: "arn:aws:iam::123456789012:user/bob".into(),
    };
    assert_eq!(
        block_on(vend(&ledger, &issuer, &bob, &id, now()))
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );

    block_on(vend(&ledger, &issuer, &alice(), &id, now())).unwrap();
    let call = issuer.calls.lock().unwrap()[0].clone();
    assert_eq!(call.duration_seconds, 3600);
    assert_eq!(call.source_identity, "alice");
    assert_eq!(call.tags, [("trailgate-request".to_owned(), id.clone())]);
    assert_eq!(call.session_name, format!("tg-alice-{id}"));
    assert!(call.session_policy.contains("2026-11-21T12:00:00Z"));

    // Ten minutes before expiry STS still issues 15 minutes; the reported expiry is capped.
    let late = now() + Duration::minutes(110);
    *issuer.clock.lock().unwrap() = Some(late);
    let credentials = block_on(vend(&ledger, &issuer, &alice(), &id, late)).unwrap();
    assert_eq!(issuer.calls.lock().unwrap()[1].duration_seconds, 900);
    assert_eq!(credentials.expiration, "2026-11-21T12:00:00Z");
    assert_eq!(ledger.record(&id).unwrap().credentials_issued, 2);

    block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap();
    let err = block_on(vend(&ledger, &issuer, &alice(), &id, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
}

#[test]
fn revoke_writes_a_verified_deny_once_and_marks_revoked() {
    let (ledger, roles, id) = active();
    assert_eq!(
        block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap(),
        Status::Revoked
    );
    let document = roles
        .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
        .unwrap();
    assert!(policy::denies_request(&document, &id));
    // The timer's revoke after an early revoke is a no-op.
    assert_eq!(
        block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap(),
        Status::Revoked
    );
    assert_eq!(
        ledger
            .event_actions(&id)
            .iter()
            .filter(|a| *a == "Revoked")
            .count(),
        1
    );
    // A deny removed out of band is put back by the next revoke.
    block_on(roles.delete_inline_policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME))
        .unwrap();
    block_on(revoke(&ledger, &roles, &id, "reconciler", now())).unwrap();
    assert!(
        roles
            .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
            .is_some()
    );
}

#[test]
fn a_failed_iam_write_is_retryable_and_leaves_the_grant_active() {
    let (ledger, roles, id) = active();
    *roles.fail_puts.lock().unwrap() = 1;
    let err = block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert_eq!(ledger.record(&id).unwrap().status, Status::Active);
    assert_eq!(
        block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap(),
        Status::Revoked
    );
}

#[test]
fn revoking_a_never_activated_request_touches_no_role() {
    let (ledger, id) = approved();
    let roles = MemoryRoles::with_sample_role();
    assert_eq!(
        block_on(revoke(&ledger, &roles, &id, "activation failed", now())).unwrap(),
        Status::Revoked
    );
    assert!(
        roles
            .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
            .is_none()
    );
    assert!(
        ledger
            .record(&id)
            .unwrap()
            .outcome
            .unwrap()
            .starts_with("never activated")
    );
}

#[test]
fn the_reconciler_revokes_overdue_grants_and_alerts() {
    let (ledger, roles, id) = active();
    let notifier = MemoryNotifier::default();
    let report = block_on(reconcile(
        &ledger,
        &roles,
        &notifier,
        now() + Duration::minutes(30),
    ))
    .unwrap();
    assert!(report.revoked.is_empty());
    assert!(notifier.sent.lock().unwrap().is_empty());
    let report = block_on(reconcile(
        &ledger,
        &roles,
        &notifier,
        now() + Duration::hours(3),
    ))
    .unwrap();
    assert_eq!(report.revoked, std::slice::from_ref(&id));
    assert_eq!(notifier.sent.lock().unwrap()[0].0, Topic::Alerts);
    assert_eq!(ledger.record(&id).unwrap().status, Status::Revoked);
}

#[test]
fn the_audit_verifies_the_chain_and_records_the_report() {
    let (ledger, roles, id) = active();
    block_on(vend(
        &ledger,
        &MemoryIssuer::default(),
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

// ---------------------------------------------------------------------------------------------
// Issue 5: the trust contract at grant, early revoke, bounded read-back, the reconciler.

#[test]
fn activation_refuses_a_role_whose_trust_breaks_the_contract() {
    let (ledger, id) = approved();
    let roles = MemoryRoles::with_sample_role();
    let open_trust = broker_trust_policy().replace(BROKER_ROLE, "arn:aws:iam::123456789012:root");
    roles.set_trust("sample-target-trailgate", &open_trust);
    let err = block_on(activate(
        &ledger,
        &roles,
        &catalog(),
        "trailgate-",
        BROKER_ROLE,
        &id,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotGrantable);
    assert!(err.message.contains("trust contract"), "{err}");
    // The broker named in the trust policy must be this deployment's credentials role.
    roles.set_trust("sample-target-trailgate", &broker_trust_policy());
    let other_broker = "arn:aws:iam::123456789012:role/someone-else";
    let err = block_on(activate(
        &ledger,
        &roles,
        &catalog(),
        "trailgate-",
        other_broker,
        &id,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotGrantable);
    assert_eq!(ledger.record(&id).unwrap().status, Status::Approved);
    assert!(
        block_on(activate(
            &ledger,
            &roles,
            &catalog(),
            "trailgate-",
            BROKER_ROLE,
            &id,
            now()
        ))
        .is_ok()
    );
}

/// A second ACTIVE request from alice on the same role, activated at `now()`.
fn second_active(ledger: &MemoryLedger, roles: &MemoryRoles) -> String {
    let mut request = pending_request();
    request.id = "r-bbbbbbbbbbbbbbbbbbbbbbbbbb".into();
    request.status = Status::Approved;
    let id = seed(ledger, request).id;
    block_on(activate(
        ledger,
        roles,
        &catalog(),
        "trailgate-",
        BROKER_ROLE,
        &id,
        now(),
    ))
    .unwrap();
    id
}

#[test]
fn early_revoke_ends_one_grant_and_leaves_an_overlapping_one_alone() {
    let (ledger, roles, first) = active();
    let second = second_active(&ledger, &roles);
    let mallory = Caller {
        arn: "arn:aws:iam::123456789012:user/mallory".into(),
    };
    let err = block_on(revoke_early(
        &ledger,
        &roles,
        &catalog(),
        &mallory,
        &first,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        roles
            .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
            .is_none()
    );

    let bob = Caller {
        arn: "arn:aws:iam::123456789012:user/bob".into(),
    };
    let soon = now() + Duration::minutes(10);
    let revoked = block_on(revoke_early(
        &ledger,
        &roles,
        &catalog(),
        &bob,
        &first,
        soon,
    ))
    .unwrap();
    assert_eq!(revoked.status, Status::Revoked);
    assert!(revoked.outcome.unwrap().contains("an approver"));
    let document = roles
        .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
        .unwrap();
    assert!(policy::denies_request(&document, &first));
    assert!(!policy::denies_request(&document, &second), "{document}");
    // The overlapping grant still gets credentials.
    block_on(vend(
        &ledger,
        &MemoryIssuer::default(),
        &alice(),
        &second,
        soon,
    ))
    .unwrap();
    assert_eq!(
        block_on(vend(
            &ledger,
            &MemoryIssuer::default(),
            &alice(),
            &first,
            soon
        ))
        .unwrap_err()
        .kind,
        ErrorKind::Conflict
    );
    // The timer's revoke later is a no-op: no second event, the deny stays as it is.
    let writes = *roles.writes.lock().unwrap();
    block_on(revoke(
        &ledger,
        &roles,
        &first,
        "expired",
        now() + Duration::hours(2),
    ))
    .unwrap();
    assert_eq!(*roles.writes.lock().unwrap(), writes);
    assert_eq!(
        ledger
            .event_actions(&first)
            .iter()
            .filter(|a| *a == "Revoked")
            .count(),
        1
    );
    // Requester may revoke too; a request never granted cannot be.
    block_on(revoke_early(
        &ledger,
        &roles,
        &catalog(),
        &alice(),
        &second,
        soon,
    ))
    .unwrap();
    let (pending_ledger, _, pending) = awaiting_approval();
    let err = block_on(revoke_early(
        &pending_ledger,
        &roles,
        &catalog(),
        &alice(),
        &pending,
        soon,
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
}

#[test]
fn revoke_waits_boundedly_for_iam_to_show_the_deny() {
    // Visible after three stale reads: success, after three growing pauses.
    let (ledger, roles, id) = active();
    *roles.stale_reads.lock().unwrap() = 3;
    assert_eq!(
        block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap(),
        Status::Revoked
    );
    let pauses = roles.pauses.lock().unwrap().clone();
    assert_eq!(pauses.len(), 3);
    assert!(pauses.windows(2).all(|w| w[0] < w[1]), "{pauses:?}");

    // Never visible: fails Retryable once the pauses reach the bound, and stays ACTIVE.
    let (ledger, roles, id) = active();
    *roles.stale_reads.lock().unwrap() = u32::MAX;
    let err = block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(err.message.contains("not visible"), "{err}");
    let waited: std::time::Duration = roles.pauses.lock().unwrap().iter().sum();
    assert_eq!(waited, VISIBILITY_BOUND);
    assert_eq!(ledger.record(&id).unwrap().status, Status::Active);
}

#[test]
fn the_reconciler_reapplies_missing_denies_and_collects_expired_ones() {
    let (ledger, roles, first) = active();
    let second = second_active(&ledger, &roles);
    block_on(revoke(&ledger, &roles, &first, "expired", now())).unwrap();
    block_on(revoke(&ledger, &roles, &second, "expired", now())).unwrap();
    // Someone (or a lost concurrent write) removes the deny policy while it is still needed.
    block_on(roles.delete_inline_policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME))
        .unwrap();
    let notifier = MemoryNotifier::default();
    let at = now() + Duration::minutes(30);
    let report = block_on(reconcile(&ledger, &roles, &notifier, at)).unwrap();
    let mut reapplied = report.reapplied.clone();
    reapplied.sort();
    assert_eq!(reapplied, [first.clone(), second.clone()]);
    let document = roles
        .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
        .unwrap();
    assert!(
        policy::denies_request(&document, &first) && policy::denies_request(&document, &second)
    );
    assert_eq!(notifier.sent.lock().unwrap().len(), 1);

    // Idempotent: a second run finds nothing to do and writes nothing.
    let writes = *roles.writes.lock().unwrap();
    let report = block_on(reconcile(&ledger, &roles, &notifier, at)).unwrap();
    assert_eq!(report, ReconcileReport::default());
    assert_eq!(*roles.writes.lock().unwrap(), writes);
    assert_eq!(notifier.sent.lock().unwrap().len(), 1);

    // An AUDITED request's deny is re-applied as well.
    block_on(audit(
        &ledger,
        &MemoryNotifier::default(),
        &catalog(),
        &first,
        json!({}),
        at,
    ))
    .unwrap();
    block_on(roles.delete_inline_policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME))
        .unwrap();
    let report = block_on(reconcile(&ledger, &roles, &notifier, at)).unwrap();
    assert_eq!(report.reapplied.len(), 2, "{report:?}");

    // Past expiry + margin the denies are no longer needed: collected, the policy deleted.
    // A third grant still ACTIVE past its expiry on the same role is revoked in the same run.
    let mut late = pending_request();
    late.id = "r-cccccccccccccccccccccccccc".into();
    late.status = Status::Approved;
    let late = seed(&ledger, late).id;
    block_on(activate(
        &ledger,
        &roles,
        &catalog(),
        "trailgate-",
        BROKER_ROLE,
        &late,
        now() + Duration::minutes(1),
    ))
    .unwrap();
    // An old statement whose removal time has passed is collected on the same role.
    let current = roles
        .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
        .unwrap();
    let with_old = current.replace(
        "\"Statement\":[",
        &format!("\"Statement\":[{{\"Sid\":\"{}\",\"Effect\":\"Deny\",\"Action\":\"*\",\"Resource\":\"*\",\"Condition\":{{\"StringEquals\":{{\"aws:PrincipalTag/trailgate-request\":\"r-old\"}}}}}},", policy::revocation_sid("r-old", 0)),
    );
    roles.put_policy(
        "sample-target-trailgate",
        REVOCATIONS_POLICY_NAME,
        &with_old,
    );
    assert!(policy::denies_request(&with_old, "r-old"));
    let after = now() + Duration::hours(2) + Duration::minutes(3);
    let report = block_on(reconcile(&ledger, &roles, &notifier, after)).unwrap();
    assert_eq!(report.revoked, std::slice::from_ref(&late));
    assert_eq!(report.collected, ["sample-target-trailgate"]);
    assert!(report.reapplied.is_empty(), "{report:?}");
    let document = roles
        .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
        .unwrap();
    assert!(!policy::denies_request(&document, "r-old"));
    for id in [&first, &second, &late] {
        assert!(
            policy::denies_request(&document, id),
            "{id} lost its deny: {document}"
        );
    }
    // Once every credential they cover has expired (expiry + margin), the denies go and the
    // empty policy is deleted.
    let much_later = now() + Duration::hours(3);
    let report = block_on(reconcile(&ledger, &roles, &notifier, much_later)).unwrap();
    assert_eq!(report.collected, ["sample-target-trailgate"], "{report:?}");
    assert!(
        roles
            .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------
// Request policy (issue 3)

fn bob() -> Caller {
    Caller {
        arn: "arn:aws:iam::123456789012:user/bob".into(),
    }
}

fn policy_submit(
    ledger: &MemoryLedger,
    workflow: &MemoryWorkflow,
    input: &NewRequest,
    key: Option<&str>,
    id: &str,
    at: OffsetDateTime,
) -> Result<Submitted> {
    block_on(submit_with_policy(
        ledger,
        workflow,
        &catalog(),
        settings(),
        RequestPolicy::default(),
        &alice(),
        input,
        key,
        id.into(),
        at,
    ))
}

#[test]
fn a_repeat_for_the_same_role_returns_the_open_request() {
    let ledger = MemoryLedger::default();
    let workflow = MemoryWorkflow::default();
    let first = policy_submit(&ledger, &workflow, &new_request(), None, "r-1", now()).unwrap();
    assert!(first.created);
    assert_eq!(first.http_status(), 201);
    let mut other_reason = new_request();
    other_reason.reason = "again".into();
    let repeat = policy_submit(&ledger, &workflow, &other_reason, None, "r-2", now()).unwrap();
    assert!(!repeat.created);
    assert_eq!(repeat.http_status(), 200);
    assert_eq!(repeat.request.id, "r-1");
    assert!(ledger.record("r-2").is_none());
    assert_eq!(workflow.started.lock().unwrap().len(), 1);
}

#[test]
fn a_submission_racing_another_for_the_same_role_returns_the_winner() {
    let ledger = MemoryLedger::default();
    let workflow = MemoryWorkflow::default();
    // The rival commits after this submission saw the role free and before it commits.
    ledger.after_claim_read(|ledger| {
        let mut rival = pending_request();
        rival.id = "r-rival".into();
        seed(ledger, rival);
    });
    let lost = policy_submit(&ledger, &workflow, &new_request(), None, "r-1", now()).unwrap();
    assert!(!lost.created);
    assert_eq!(lost.request.id, "r-rival");
    assert!(ledger.record("r-1").is_none(), "no second open request");
    assert!(workflow.started.lock().unwrap().is_empty());
}

#[test]
fn a_racing_submission_may_take_over_a_claim_only_from_a_closed_request() {
    let ledger = MemoryLedger::default();
    let workflow = MemoryWorkflow::default();
    policy_submit(&ledger, &workflow, &new_request(), None, "r-1", now()).unwrap();
    block_on(cancel(&ledger, &catalog(), &alice(), "r-1", now())).unwrap();
    // Two submissions both see r-1 closed; the rival takes the claim over first.
    ledger.after_claim_read(|ledger| {
        let mut rival = pending_request();
        rival.id = "r-rival".into();
        seed(ledger, rival);
    });
    let lost = policy_submit(&ledger, &workflow, &new_request(), None, "r-2", now()).unwrap();
    assert_eq!(lost.request.id, "r-rival");
    assert!(ledger.record("r-2").is_none());
    // Without the rule, the claim only follows the newest request.
    let free = block_on(submit_with_policy(
        &ledger,
        &workflow,
        &catalog(),
        settings(),
        RequestPolicy {
            one_open_per_role: false,
            ..RequestPolicy::default()
        },
        &alice(),
        &new_request(),
        None,
        "r-3".into(),
        now(),
    ))
    .unwrap();
    assert!(free.created);
    let again = policy_submit(&ledger, &workflow, &new_request(), None, "r-4", now()).unwrap();
    assert_eq!(
        again.request.id, "r-3",
        "the rule, turned back on, sees the newest"
    );
}

#[test]
fn a_closed_request_does_not_block_a_new_one() {
    let ledger = MemoryLedger::default();
    let workflow = MemoryWorkflow::default();
    policy_submit(&ledger, &workflow, &new_request(), None, "r-1", now()).unwrap();
    block_on(cancel(&ledger, &catalog(), &alice(), "r-1", now())).unwrap();
    let again = policy_submit(&ledger, &workflow, &new_request(), None, "r-2", now()).unwrap();
    assert!(again.created);
}

#[test]
fn an_invalid_repeat_is_still_refused() {
    let ledger = MemoryLedger::default();
    let workflow = MemoryWorkflow::default();
    policy_submit(&ledger, &workflow, &new_request(), None, "r-1", now()).unwrap();
    let mut too_long = new_request();
    too_long.duration = "PT9H".into();
    let err = policy_submit(&ledger, &workflow, &too_long, None, "r-2", now()).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("duration"));
}

#[test]
fn an_idempotency_key_replays_and_refuses_a_different_body() {
    let ledger = MemoryLedger::default();
    let workflow = MemoryWorkflow::default();
    let first = policy_submit(
        &ledger,
        &workflow,
        &new_request(),
        Some("k-1"),
        "r-1",
        now(),
    )
    .unwrap();
    // A retry after the request was cancelled would otherwise create a new one: the key pins it.
    block_on(cancel(&ledger, &catalog(), &alice(), "r-1", now())).unwrap();
    let replay = policy_submit(
        &ledger,
        &workflow,
        &new_request(),
        Some("k-1"),
        "r-2",
        now(),
    )
    .unwrap();
    assert_eq!(
        (replay.request.id.as_str(), replay.http_status()),
        ("r-1", first.http_status())
    );
    assert!(ledger.record("r-2").is_none());

    let mut different = new_request();
    different.reason = "something else".into();
    let err = policy_submit(&ledger, &workflow, &different, Some("k-1"), "r-3", now()).unwrap_err();
    assert_eq!(
        (err.kind, err.field.as_deref()),
        (ErrorKind::Conflict, Some("Idempotency-Key"))
    );
    for bad in ["", "has space", &"k".repeat(129)] {
        let err =
            policy_submit(&ledger, &workflow, &new_request(), Some(bad), "r-4", now()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("Idempotency-Key"), "{bad:?}");
    }
}

#[test]
fn idempotency_keys_are_scoped_to_their_requester() {
    assert_ne!(
        idempotency_scope(&alice(), "k"),
        idempotency_scope(&bob(), "k")
    );
}

#[test]
fn the_rate_limit_allows_ten_a_minute_then_429_until_the_next_minute() {
    let ledger = MemoryLedger::default();
    let workflow = MemoryWorkflow::default();
    let mut bad = new_request();
    bad.catalog_id = "nope".into();
    // Failed attempts count too: the limit protects the ledger, not only the approvers.
    for n in 0..10 {
        let err =
            policy_submit(&ledger, &workflow, &bad, None, &format!("r-{n}"), now()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
    }
    let at = now() + Duration::seconds(15);
    let err = policy_submit(&ledger, &workflow, &new_request(), None, "r-x", at).unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.kind.http_status(), 429);
    assert_eq!(retry_after(at), 45);
    let next_minute = now() + Duration::seconds(60);
    assert!(policy_submit(&ledger, &workflow, &new_request(), None, "r-y", next_minute).is_ok());
}

#[test]
fn list_pages_newest_first_and_only_the_callers_own() {
    let ledger = MemoryLedger::default();
    for n in 0..5 {
        let mut request = pending_request();
        request.id = format!("r-{n}");
        request.created_at = format_utc(now() + Duration::minutes(n));
        seed(&ledger, request);
    }
    let mut bobs = pending_request();
    bobs.id = "r-bob".into();
    bobs.requester = bob().arn;
    seed(&ledger, bobs);

    let first = block_on(list_mine(&ledger, &alice(), 2, None)).unwrap();
    let ids: Vec<&str> = first.requests.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r-4", "r-3"]);
    let second = block_on(list_mine(&ledger, &alice(), 2, first.next.as_deref())).unwrap();
    let third = block_on(list_mine(&ledger, &alice(), 2, second.next.as_deref())).unwrap();
    assert_eq!(third.requests.len(), 1);
    assert_eq!(third.next, None);
    assert_eq!(parse_limit(None).unwrap(), DEFAULT_PAGE);
    assert_eq!(parse_limit(Some("50")).unwrap(), 50);
    for bad in ["0", "51", "-1", "x", ""] {
        assert_eq!(
            parse_limit(Some(bad)).unwrap_err().field.as_deref(),
            Some("limit")
        );
    }
    let err = block_on(list_mine(&ledger, &alice(), 2, Some("garbage"))).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("next"));
}

#[test]
fn cancel_is_for_the_requester_while_pending_and_then_nothing_is_granted() {
    let (ledger, _notifier, id) = awaiting_approval();
    let workflow = MemoryWorkflow::default();
    let stranger = Caller {
        arn: "arn:aws:iam::123456789012:user/mallory".into(),
    };
    let err = block_on(cancel(&ledger, &catalog(), &stranger, &id, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    let err = block_on(cancel(&ledger, &catalog(), &bob(), &id, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);

    let cancelled = block_on(cancel(&ledger, &catalog(), &alice(), &id, now())).unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    assert!(cancelled.task_token.is_none());
    // A double click answers the same.
    let again = block_on(cancel(&ledger, &catalog(), &alice(), &id, now())).unwrap();
    assert_eq!(again.event_seq, cancelled.event_seq);

    // An approver's late click is refused and the execution is never told to grant.
    let err = block_on(decide_by_principal(
        &ledger,
        &workflow,
        &catalog(),
        &bob(),
        &id,
        true,
        None,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(workflow.completed.lock().unwrap().is_empty());
    // The approval window's timeout records nothing new.
    let events = ledger.event_actions(&id).len();
    assert_eq!(
        block_on(expire(&ledger, &id, now() + Duration::hours(2))).unwrap(),
        Status::Cancelled
    );
    assert_eq!(ledger.event_actions(&id).len(), events);
    assert_eq!(ledger.event_actions(&id).last().unwrap(), "Cancelled");
}

#[test]
fn only_pending_requests_can_be_cancelled() {
    let ledger = MemoryLedger::default();
    let mut active = pending_request();
    active.status = Status::Active;
    let id = seed(&ledger, active).id;
    let err = block_on(cancel(&ledger, &catalog(), &alice(), &id, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
}

#[test]
fn the_catalog_view_names_no_approver() {
    let catalog = catalog();
    let entries = catalog.requestable_by(&alice().arn);
    assert_eq!(entries.len(), 1);
    let text = entries[0].public_view().to_string();
    assert!(
        !text.contains("bob@example.com") && !text.contains("user/bob"),
        "{text}"
    );
    assert!(
        catalog
            .requestable_by("arn:aws:iam::999999999999:user/eve")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Break-glass

fn glass_catalog() -> Catalog {
    let json = sample_catalog_json()
        .replace("\"break_glass\": false", "\"break_glass\": true")
        .replace("\"PT4H\"", "\"PT1H\"");
    Catalog::load(&json, "trailgate-").unwrap()
}

fn glass_request(ledger: &MemoryLedger, catalog: &Catalog) -> String {
    let input = NewRequest {
        duration: "PT30M".into(),
        ..new_request()
    };
    let workflow = MemoryWorkflow::default();
    let created = block_on(submit(
        ledger,
        &workflow,
        catalog,
        settings(),
        &alice(),
        &input,
        "r-glass".into(),
        now(),
    ))
    .unwrap();
    let started = workflow.started.lock().unwrap().clone();
    assert_eq!(started[0].1["request"]["break_glass"], true);
    assert!(created.break_glass && created.needs_review());
    created.id
}

#[test]
fn break_glass_skips_approval_and_alerts_everyone_at_once() {
    let ledger = MemoryLedger::default();
    let catalog = glass_catalog();
    let id = glass_request(&ledger, &catalog);
    let notifier = MemoryNotifier::default();
    let alerted = block_on(break_glass(&ledger, &notifier, &catalog, &id, now())).unwrap();
    assert_eq!(alerted, ["bob", "carol"]);
    let record = ledger.record(&id).unwrap();
    assert_eq!(record.status, Status::Approved);
    assert!(record.task_token.is_none());
    assert!(record.decisions[BREAK_GLASS_DECISION].approve);
    let sent = notifier.sent.lock().unwrap().clone();
    let recipients: Vec<_> = sent.iter().map(|m| (m.0, m.3.clone())).collect();
    assert_eq!(
        recipients,
        [
            (Topic::Alerts, None),
            (Topic::Approvals, Some("bob@example.com".to_owned())),
            (Topic::Approvals, Some("carol@example.com".to_owned()))
        ]
    );
    assert!(
        sent[0]
            .1
            .starts_with("trailgate BREAK-GLASS: alice took sandbox-admin")
    );
    assert!(sent[0].2.contains("jitctl ack r-glass"), "{}", sent[0].2);
    // No approval link is ever made for break-glass.
    assert!(!sent.iter().any(|m| m.2.contains("/decisions/")));
    let actions: Vec<_> = block_on(ledger.events(&id))
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["Requested", "BreakGlassActivated"]);
}

#[test]
fn break_glass_refuses_a_normal_request_or_an_entry_no_longer_break_glass() {
    let ledger = MemoryLedger::default();
    let normal = seed(&ledger, pending_request());
    let notifier = MemoryNotifier::default();
    let err = block_on(break_glass(
        &ledger,
        &notifier,
        &catalog(),
        &normal.id,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);

    // The record says break-glass but today's catalog does not: approval is needed again.
    let id = glass_request(&ledger, &glass_catalog());
    let err = block_on(break_glass(&ledger, &notifier, &catalog(), &id, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err}");
    assert_eq!(ledger.record(&id).unwrap().status, Status::Pending);
    assert!(notifier.sent.lock().unwrap().is_empty());
}

#[test]
fn break_glass_entries_cap_the_duration() {
    let ledger = MemoryLedger::default();
    let input = NewRequest {
        duration: "PT2H".into(),
        ..new_request()
    };
    let err = block_on(submit(
        &ledger,
        &MemoryWorkflow::default(),
        &glass_catalog(),
        settings(),
        &alice(),
        &input,
        "r-long".into(),
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("duration"), "{err}");
}

#[test]
fn a_break_glass_session_needs_an_approvers_acknowledgement() {
    let ledger = MemoryLedger::default();
    let catalog = glass_catalog();
    let id = glass_request(&ledger, &catalog);
    let plain = self::catalog();
    let bob = Caller {
        arn: "arn:aws:iam::123456789012:user/bob".into(),
    };
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
    block_on(activate(
        &ledger,
        &roles,
        &catalog,
        "trailgate-",
        BROKER_ROLE,
        &id,
        now(),
    ))
    .unwrap();
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
    let mallory = Caller {
        arn: "arn:aws:iam::123456789012:user/mallory".into(),
    };
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
    let carol = Caller {
        arn: "arn:aws:iam::123456789012:user/carol".into(),
    };
    let again = block_on(acknowledge(&ledger, &catalog, &carol, &id, None, now())).unwrap();
    assert_eq!(again.acknowledgement.unwrap().by, "bob");
    let last = block_on(ledger.events(&id)).unwrap().pop().unwrap();
    assert_eq!(last.action, "Acknowledged");
    assert!(
        crate::ledger::verify_chain(
            &ledger.record(&id).unwrap(),
            &block_on(ledger.events(&id)).unwrap()
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
