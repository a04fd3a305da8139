//! Behaviour tests of the decision use cases against the in-memory ports.

use super::*;
use crate::ErrorKind;
use crate::service::test_support::*;
use crate::testing::*;
use futures_executor::executor::block_on;

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
        Verdict {
            approve: true,
            comment: Some(" ok ".into()),
            now: now(),
            origin: Default::default(),
        },
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
        Verdict {
            approve: false,
            comment: None,
            now: now(),
            origin: Default::default(),
        },
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
        Verdict {
            approve: false,
            comment: None,
            now: now(),
            origin: Default::default(),
        },
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
        Verdict {
            approve: false,
            comment: None,
            now: now(),
            origin: Default::default(),
        },
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
            Verdict {
                approve: true,
                comment: None,
                now: at,
                origin: Default::default(),
            },
        ))
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden, "{err}");
    }
    assert_eq!(ledger.record(&id).unwrap(), before);
    assert!(workflow.completed.lock().unwrap().is_empty());
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
            Verdict {
                approve,
                comment: None,
                now: now(),
                origin: Default::default(),
            },
        ))
    };
    let own = by(alice(), true).unwrap_err();
    assert_eq!(
        (own.kind, own.message.as_str()),
        (ErrorKind::Forbidden, "you cannot approve your own request")
    );
    // Someone who may not decide is not told the request exists.
    let stranger = by(user("mallory"), true).unwrap_err();
    assert_eq!(stranger.kind, ErrorKind::NotFound, "{stranger}");
    let missing = block_on(decide_by_principal(
        &ledger,
        &workflow,
        &catalog(),
        &user("bob"),
        "r-zzzzzzzzzzzzzzzzzzzzzzzzzz",
        Verdict {
            approve: true,
            comment: None,
            now: now(),
            origin: Default::default(),
        },
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
        Verdict {
            approve: true,
            comment: None,
            now: now(),
            origin: Default::default(),
        },
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
            Verdict {
                approve: true,
                comment: None,
                now: now(),
                origin: Default::default(),
            },
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
            Verdict {
                approve: second_approves,
                comment: None,
                now: now(),
                origin: Default::default(),
            },
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
        Verdict {
            approve: true,
            comment: None,
            now: now(),
            origin: Default::default(),
        },
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
        Verdict {
            approve: true,
            comment: None,
            now: closed,
            origin: Default::default(),
        },
    ))
    .unwrap_err();
    assert_eq!(late.kind, ErrorKind::Conflict, "{late}");
    assert_eq!(ledger.record(&id).unwrap().status, Status::Pending);
    assert!(workflow.completed.lock().unwrap().is_empty());
}

#[test]
fn a_decision_event_records_where_it_came_from() {
    let (ledger, _, id) = awaiting_approval();
    let link = link_for(&ledger, &id, "bob");
    block_on(decide(
        &ledger,
        &MemoryWorkflow::default(),
        &catalog(),
        &key(),
        &link,
        Verdict {
            approve: true,
            comment: None,
            now: now(),
            origin: crate::ledger::Origin::new(
                Some("198.51.100.7"),
                Some("Mozilla/5.0\r\nX-Forged: yes"),
            ),
        },
    ))
    .unwrap();
    let events = block_on(ledger.events(&id)).unwrap();
    let decided = events.last().unwrap();
    assert_eq!(decided.action, "Approved");
    assert_eq!(decided.source_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(
        decided.user_agent.as_deref(),
        Some("Mozilla/5.0X-Forged: yes")
    );
    // The origin is part of the keyed chain.
    let record = ledger.record(&id).unwrap();
    crate::ledger::verify_chain(&record, &events, Some(ledger.chain_key())).unwrap();
    ledger.tamper_event(&id, decided.seq, |event| {
        event.source_ip = Some("10.0.0.1".into())
    });
    let events = block_on(ledger.events(&id)).unwrap();
    assert!(crate::ledger::verify_chain(&record, &events, Some(ledger.chain_key())).is_err());
    // Events that are not decisions carry no origin.
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e.source_ip.is_none())
    );
}

/// The sample catalog with Slack users: bob and carol, and carol also calling as alice (so a
/// press by carol on alice's request is a self-approval).
fn slack_catalog(carol_is_alice: bool) -> Catalog {
    let mut json: serde_json::Value = serde_json::from_str(&sample_catalog_json()).unwrap();
    let mut carol = vec!["arn:aws:iam::123456789012:user/carol"];
    if carol_is_alice {
        carol.push("arn:aws:iam::123456789012:user/alice");
    }
    json["people"] = json!([
        {"id": "bob", "principals": ["arn:aws:iam::123456789012:user/bob"],
         "slack": {"team_id": "T0TEAM0001", "user_id": "U0BOB00001"}},
        {"id": "carol", "principals": carol,
         "slack": {"team_id": "T0TEAM0001", "user_id": "U0CAROL001"}},
        // A person of the catalog who approves nothing.
        {"id": "dave", "principals": ["arn:aws:iam::123456789012:user/dave"],
         "slack": {"team_id": "T0TEAM0001", "user_id": "U0DAVE0001"}},
    ]);
    Catalog::load(&json.to_string(), "trailgate-").unwrap()
}

const SLACK_SECRET: &[u8] = b"slack-signing-secret-for-tests";

/// A block_actions body as Slack sends it, and its signature headers at `at`.
fn slack_press(user: &str, value: &str, at: i64, secret: &[u8]) -> (String, String, Vec<u8>) {
    slack_press_in("T0TEAM0001", user, value, at, secret)
}

/// [`slack_press`] from workspace `team`.
fn slack_press_in(
    team: &str,
    user: &str,
    value: &str,
    at: i64,
    secret: &[u8],
) -> (String, String, Vec<u8>) {
    use hmac::{Hmac, KeyInit, Mac};
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": team},
        "team": {"id": team, "domain": "example"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM0001/1/x",
        "actions": [{"action_id": "trailgate-decide", "type": "button", "value": value}]
    });
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
        .into_bytes();
    let timestamp = at.to_string();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(&body);
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    (timestamp, signature, body)
}

fn press(
    ledger: &MemoryLedger,
    workflow: &MemoryWorkflow,
    catalog: &Catalog,
    (timestamp, signature, body): &(String, String, Vec<u8>),
) -> Result<(AccessRequest, crate::slack::Interaction)> {
    block_on(decide_by_slack(
        ledger,
        workflow,
        catalog,
        SLACK_SECRET,
        SlackDelivery {
            timestamp: Some(timestamp),
            signature: Some(signature),
            body,
        },
        now(),
        Default::default(),
    ))
}

#[test]
fn a_slack_press_decides_as_the_catalog_person_through_the_same_core() {
    let (ledger, _, id) = awaiting_approval();
    let workflow = MemoryWorkflow::default();
    let catalog = slack_catalog(false);
    let at = now().unix_timestamp();
    let approve = slack_press("U0BOB00001", &format!("approve:{id}"), at, SLACK_SECRET);
    let (decided, interaction) = press(&ledger, &workflow, &catalog, &approve).unwrap();
    assert_eq!(decided.status, Status::Approved);
    assert!(decided.decisions.contains_key("bob"));
    assert_eq!(interaction.user_id, "U0BOB00001");
    assert_eq!(
        workflow.completed.lock().unwrap().as_slice(),
        [("token-1".to_owned(), json!({"outcome": "APPROVED"}))]
    );
    // The same signed press again (a replay inside the window) changes nothing.
    let again = press(&ledger, &workflow, &catalog, &approve).unwrap_err();
    assert!(again.message.starts_with("you already approved"), "{again}");
    assert_eq!(workflow.completed.lock().unwrap().len(), 1);
}

#[test]
fn forged_stale_unknown_and_self_approving_presses_change_nothing() {
    let (ledger, _, id) = awaiting_approval();
    let workflow = MemoryWorkflow::default();
    let at = now().unix_timestamp();
    let before = ledger.record(&id).unwrap();
    let cases = [
        // Signed with another secret.
        (
            slack_catalog(false),
            slack_press(
                "U0BOB00001",
                &format!("approve:{id}"),
                at,
                b"not-the-secret",
            ),
            "SignatureMismatch",
        ),
        // Signed, but ten minutes old.
        (
            slack_catalog(false),
            slack_press(
                "U0BOB00001",
                &format!("approve:{id}"),
                at - 600,
                SLACK_SECRET,
            ),
            "StaleRequest",
        ),
        // A Slack user no person lists.
        (
            slack_catalog(false),
            slack_press("U0EVE00001", &format!("approve:{id}"), at, SLACK_SECRET),
            "not a person",
        ),
        // A catalog person who is not an approver of this entry.
        (
            slack_catalog(false),
            slack_press("U0DAVE0001", &format!("approve:{id}"), at, SLACK_SECRET),
            "no longer an approver",
        ),
        // Bob's user id, signed by Slack, but from another workspace.
        (
            slack_catalog(false),
            slack_press_in(
                "T0OTHER001",
                "U0BOB00001",
                &format!("approve:{id}"),
                at,
                SLACK_SECRET,
            ),
            "not a person",
        ),
        // Carol is also alice, the requester.
        (
            slack_catalog(true),
            slack_press("U0CAROL001", &format!("approve:{id}"), at, SLACK_SECRET),
            "your own request",
        ),
    ];
    for (catalog, delivery, expected) in cases {
        let err = press(&ledger, &workflow, &catalog, &delivery).unwrap_err();
        assert!(err.message.contains(expected), "{expected}: {err}");
        assert_eq!(err.kind, ErrorKind::Forbidden, "{expected}");
    }
    // A press whose body was edited after signing (bob's press made carol's).
    let (timestamp, signature, body) =
        slack_press("U0BOB00001", &format!("deny:{id}"), at, SLACK_SECRET);
    let edited = String::from_utf8(body)
        .unwrap()
        .replace("U0BOB00001", "U0CAROL001");
    let err = press(
        &ledger,
        &workflow,
        &slack_catalog(false),
        &(timestamp, signature, edited.into_bytes()),
    )
    .unwrap_err();
    assert!(err.message.contains("SignatureMismatch"), "{err}");
    assert_eq!(ledger.record(&id).unwrap(), before);
    assert!(workflow.completed.lock().unwrap().is_empty());
}
