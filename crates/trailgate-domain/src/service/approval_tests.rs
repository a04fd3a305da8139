//! Behaviour tests of the approval use cases against the in-memory ports.

use super::*;
use crate::ErrorKind;
use crate::service::test_support::*;
use crate::service::*;
use crate::testing::*;
use futures_executor::executor::block_on;

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
    request.content_hash = request.compute_content_hash();
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
        ApprovalTask {
            id: &request.id,
            task_token: "t",
            now: now(),
        },
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
        Verdict {
            approve: true,
            comment: None,
            now: now(),
            origin: Default::default(),
        },
    ))
    .unwrap_err();
    assert_eq!(err.message, "you cannot approve your own request");
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
        Submission {
            catalog: &glass_catalog(),
            settings: settings(),
            caller: &alice(),
            input: &input,
            target: &sample_target(),
            id: "r-long".into(),
            now: now(),
        },
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("duration"), "{err}");
}

/// The sample catalog with dave (and alice, the requester) to be told of sandbox-admin's
/// requests.
fn watched_catalog() -> Catalog {
    let json = sample_catalog_json().replace(
        r#""break_glass": false"#,
        r#""break_glass": false,
        "notify": [{"id": "dave", "email": "dave@example.com"},
                   {"id": "alice", "email": "alice@example.com"}]"#,
    );
    Catalog::load(&json, "trailgate-").expect("the watched catalog loads")
}

#[test]
fn people_an_entry_notifies_are_told_without_a_link_and_never_the_requester() {
    let mut request = pending_request();
    // alice is listed in notify; as the requester she is not told of her own request.
    request.requester_person = "alice".into();
    let (ledger, notifier, id) = awaiting_approval_in(request, &watched_catalog());

    let sent = notifier.sent.lock().unwrap().clone();
    let to = |email: &'static str| sent.iter().filter(move |m| m.3.as_deref() == Some(email));
    // The approvers, bob and carol, each have their linked e-mail.
    assert_eq!(to("bob@example.com").count(), 1);
    assert_eq!(to("carol@example.com").count(), 1);
    assert!(
        to("bob@example.com")
            .chain(to("carol@example.com"))
            .all(|m| m.2.contains("/decisions/"))
    );
    let told: Vec<_> = to("dave@example.com").collect();
    assert_eq!(told.len(), 1, "{sent:?}");
    assert!(told[0].1.contains("for your information"), "{}", told[0].1);
    assert!(
        told[0].2.contains("you cannot approve them"),
        "{}",
        told[0].2
    );
    assert!(
        !told[0].2.contains("/decisions/"),
        "a watcher got a link: {}",
        told[0].2
    );
    assert_eq!(to("alice@example.com").count(), 0, "the requester was told");
    let events = block_on(crate::ports::Ledger::events(&ledger, &id)).unwrap();
    let requested = events
        .iter()
        .find(|e| e.action == "ApprovalRequested")
        .expect("the event");
    assert_eq!(
        requested.detail.as_deref(),
        Some("notifying bob, carol; informing dave")
    );
}

#[test]
fn notify_is_for_people_who_cannot_approve() {
    for (notify, needle) in [
        (
            r#"[{"id": "bob", "email": "bob@example.com"}]"#,
            "`bob` approves this entry",
        ),
        (
            r#"[{"id": "dave", "email": "carol@example.com"}]"#,
            "belongs to both `carol` and `dave`",
        ),
        (r#"[{"id": "dave", "email": "nobody"}]"#, "no valid e-mail"),
        (
            r#"[{"id": "dave", "email": "d@example.com"}, {"id": "dave", "email": "d@example.com"}]"#,
            "listed twice",
        ),
    ] {
        let json = sample_catalog_json().replace(
            r#""break_glass": false"#,
            &format!(r#""break_glass": false, "notify": {notify}"#),
        );
        let err = Catalog::load(&json, "trailgate-").unwrap_err();
        assert!(err.message.contains(needle), "{notify}: {}", err.message);
    }
}
