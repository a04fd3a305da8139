//! Behaviour tests of the intake use cases against the in-memory ports.

use super::*;
use crate::ErrorKind;
use crate::service::test_support::*;
use crate::service::*;
use crate::testing::*;
use crate::time::format_utc;
use futures_executor::executor::block_on;

#[test]
fn submit_records_pending_and_starts_the_execution_named_by_the_id() {
    let (ledger, workflow) = (MemoryLedger::default(), MemoryWorkflow::default());
    let id = "r-bbbbbbbbbbbbbbbbbbbbbbbbbb".to_owned();
    let request = block_on(submit(
        &ledger,
        &workflow,
        Submission {
            catalog: &catalog(),
            settings: settings(),
            caller: &alice(),
            input: &new_request(),
            target: &sample_target(),
            id: id.clone(),
            now: now(),
        },
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
        Submission {
            catalog: &catalog(),
            settings: settings(),
            caller: &alice(),
            input: &new_request(),
            target: &sample_target(),
            id: id.clone(),
            now: now(),
        },
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
        Submission {
            catalog: &catalog(),
            settings: settings(),
            caller: &alice(),
            input: &input,
            target: &sample_target(),
            id: "r-x".into(),
            now: now(),
        },
    ))
    .unwrap_err();
    assert_eq!(
        (err.kind, err.field.as_deref()),
        (ErrorKind::InvalidRequest, Some("catalog_id"))
    );
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
        Submission {
            catalog: &catalog(),
            settings: settings(),
            caller: &alice(),
            input: &new_request(),
            target: &sample_target(),
            id: "r-3".into(),
            now: now(),
        },
        RequestPolicy {
            one_open_per_role: false,
            ..RequestPolicy::default()
        },
        None,
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
    let stranger = Caller::from_arn("arn:aws:iam::123456789012:user/mallory");
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
        Verdict {
            approve: true,
            comment: None,
            now: now(),
            origin: Default::default(),
        },
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

#[test]
fn a_scheduled_request_carries_its_start_to_the_workflow_and_can_be_cancelled_until_then() {
    let (ledger, workflow) = (MemoryLedger::default(), MemoryWorkflow::default());
    let start = now() + ::time::Duration::hours(3);
    let input = NewRequest {
        start_at: Some(format_utc(start)),
        ..new_request()
    };
    let id = "r-ssssssssssssssssssssssssss".to_owned();
    let request = block_on(submit(
        &ledger,
        &workflow,
        Submission {
            catalog: &catalog(),
            settings: settings(),
            caller: &alice(),
            input: &input,
            target: &sample_target(),
            id: id.clone(),
            now: now(),
        },
    ))
    .unwrap();
    assert_eq!(
        request.start_at.as_deref(),
        Some(format_utc(start).as_str())
    );
    let started = workflow.started.lock().unwrap().clone();
    assert_eq!(
        started[0].1["request"]["start_at"],
        format_utc(start).as_str()
    );
    // Without a start the key is absent, not null (the Wait state needs a time).
    let plain = MemoryWorkflow::default();
    block_on(submit(
        &MemoryLedger::default(),
        &plain,
        Submission {
            catalog: &catalog(),
            settings: settings(),
            caller: &alice(),
            input: &new_request(),
            target: &sample_target(),
            id: "r-tttttttttttttttttttttttttt".into(),
            now: now(),
        },
    ))
    .unwrap();
    assert!(
        plain.started.lock().unwrap()[0].1["request"]
            .get("start_at")
            .is_none()
    );

    // APPROVED and waiting: alice may still cancel, until the start.
    let (ledger, id) = approved_scheduled(&format_utc(start));
    let late = block_on(cancel(
        &ledger,
        &catalog(),
        &alice(),
        &id,
        start - ::time::Duration::seconds(59),
    ))
    .unwrap_err();
    assert_eq!(late.kind, ErrorKind::Conflict, "{late:?}");
    assert!(!block_on(cancelled_before_start(&ledger, &id)).unwrap());
    let cancelled = block_on(cancel(
        &ledger,
        &catalog(),
        &alice(),
        &id,
        start - ::time::Duration::minutes(2),
    ))
    .unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    // The grant step finds it cancelled, and activation would refuse it anyway.
    assert!(block_on(cancelled_before_start(&ledger, &id)).unwrap());
    let refused = block_on(activate(
        &ledger,
        &MemoryRoles::with_sample_role(),
        &catalog(),
        contract(),
        &id,
        start,
    ))
    .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Conflict);
    // An APPROVED request that was not scheduled cannot be cancelled (revoke it instead).
    let (ledger, id) = approved();
    let err = block_on(cancel(&ledger, &catalog(), &alice(), &id, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(
        err.message.contains("before its start_at"),
        "{}",
        err.message
    );
}

#[test]
fn nobody_but_the_requester_cancels_a_scheduled_grant_and_a_refused_cancel_changes_nothing() {
    let start = now() + ::time::Duration::hours(3);
    let (ledger, id) = approved_scheduled(&format_utc(start));
    let before = ledger.record(&id).unwrap();
    // bob approves sandbox-admin; he still may not withdraw alice's request.
    let err = block_on(cancel(&ledger, &catalog(), &bob(), &id, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err:?}");
    let after = ledger.record(&id).unwrap();
    assert_eq!(after.status, Status::Approved);
    assert_eq!(after.event_seq, before.event_seq);
    assert!(!block_on(cancelled_before_start(&ledger, &id)).unwrap());
}
