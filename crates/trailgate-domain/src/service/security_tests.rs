//! The security review's attacks on the use cases (issue 20): requests and decisions that compared
//! ARN strings where they had to compare people, or trusted a record someone else could write.

use super::*;
use crate::ErrorKind;
use crate::request::{NewRequest, Status};
use crate::service::test_support::*;
use crate::testing::*;
use futures_executor::executor::block_on;

/// The sample catalog with bob's Identity Center session listed as his, and a SAML role whose
/// session names the identity provider pins.
fn people_catalog() -> Catalog {
    let json = sample_catalog_json().replacen(
        r#"{"entries""#,
        r#"{"people": [
            {"id": "bob", "principals": ["arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/bob@example.com"]},
            {"id": "dave", "principals": ["arn:aws:sts::123456789012:assumed-role/Engineers/dave"]}
        ],
        "trusted_session_roles": ["arn:aws:iam::123456789012:role/saml/Engineers"],
        "entries""#,
        1,
    );
    let json = json.replace(
        r#""requesters": ["arn:aws:iam::123456789012:user/*"]"#,
        r#""requesters": ["arn:aws:iam::123456789012:user/*", "arn:aws:sts::123456789012:assumed-role/*"]"#,
    );
    Catalog::load(&json, "trailgate-").unwrap()
}

fn submit_as(catalog: &Catalog, ledger: &MemoryLedger, arn: &str) -> Result<AccessRequest> {
    block_on(submit(
        ledger,
        &MemoryWorkflow::default(),
        Submission {
            catalog,
            settings: settings(),
            caller: &Caller::from_arn(arn),
            input: &new_request(),
            target: &sample_target(),
            id: "r-bbbbbbbbbbbbbbbbbbbbbbbbbb".into(),
            now: now(),
        },
    ))
}

/// Submits as `arn` and runs the approval step: the request id and who got a link.
fn asked(catalog: &Catalog, arn: &str) -> (MemoryLedger, String, Vec<String>) {
    let ledger = MemoryLedger::default();
    let request = submit_as(catalog, &ledger, arn).unwrap();
    let notified = block_on(request_approval(
        &ledger,
        &MemoryNotifier::default(),
        catalog,
        &ApprovalSettings {
            key: &key(),
            decision_base_url: "https://x",
        },
        ApprovalTask {
            id: &request.id,
            task_token: "t",
            now: now(),
        },
    ))
    .unwrap();
    (ledger, request.id, notified)
}

fn verdict() -> Verdict {
    Verdict {
        approve: true,
        comment: None,
        now: now(),
        origin: Default::default(),
    }
}

#[test]
fn an_approver_spelled_another_way_is_still_the_requester() {
    // IAM user names are unique regardless of case, and the path is not part of the name.
    for spelling in [
        "arn:aws:iam::123456789012:user/Bob",
        "arn:aws:iam::123456789012:user/BOB",
        "arn:aws:iam::123456789012:user/ops/bob",
    ] {
        let catalog = catalog();
        let (ledger, id, notified) = asked(&catalog, spelling);
        assert_eq!(ledger.record(&id).unwrap().requester_person, "bob");
        assert_eq!(notified, vec!["carol".to_owned()], "{spelling}");
        let link = link_for(&ledger, &id, "bob");
        let by_link = block_on(decide(
            &ledger,
            &MemoryWorkflow::default(),
            &catalog,
            &key(),
            &link,
            verdict(),
        ))
        .unwrap_err();
        assert_eq!(by_link.message, "you cannot approve your own request");
        let signed = block_on(decide_by_principal(
            &ledger,
            &MemoryWorkflow::default(),
            &catalog,
            &Caller::from_arn("arn:aws:iam::123456789012:user/bob"),
            &id,
            verdict(),
        ))
        .unwrap_err();
        assert_eq!(signed.message, "you cannot approve your own request");
        assert_eq!(ledger.record(&id).unwrap().status, Status::Pending);
    }
}

#[test]
fn an_approver_requesting_through_their_identity_center_session_gets_no_link() {
    let catalog = people_catalog();
    let sso = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/bob@example.com";
    let (ledger, id, notified) = asked(&catalog, sso);
    assert_eq!(notified, vec!["carol".to_owned()]);
    let err = block_on(decide_by_principal(
        &ledger,
        &MemoryWorkflow::default(),
        &catalog,
        &user("BOB"),
        &id,
        verdict(),
    ))
    .unwrap_err();
    assert_eq!(err.message, "you cannot approve your own request");
    // Carol is another person and decides as usual.
    let decided = block_on(decide_by_principal(
        &ledger,
        &MemoryWorkflow::default(),
        &catalog,
        &user("carol"),
        &id,
        verdict(),
    ))
    .unwrap();
    assert_eq!(decided.status, Status::Approved);
}

#[test]
fn a_session_name_the_caller_chose_names_nobody() {
    let catalog = people_catalog();
    let ledger = MemoryLedger::default();
    // Anyone who can assume `shared-admin` can call their session `bob`.
    let err = submit_as(
        &catalog,
        &ledger,
        "arn:aws:sts::123456789012:assumed-role/shared-admin/bob",
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert!(err.message.contains("whose name its caller chose"), "{err}");
    // An Identity Center session nobody listed could be any approver's: refused too.
    let err = submit_as(
        &catalog,
        &ledger,
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/eve@example.com",
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert!(
        err.message.contains("not a principal of any person"),
        "{err}"
    );
    assert!(
        ledger.record("r-bbbbbbbbbbbbbbbbbbbbbbbbbb").is_none(),
        "a refusal wrote a record"
    );
    // A listed session of a role whose session name the identity provider pins is its person.
    let dave = submit_as(
        &catalog,
        &ledger,
        "arn:aws:sts::123456789012:assumed-role/Engineers/dave",
    )
    .unwrap();
    assert_eq!(dave.requester_person, "dave");
}

#[test]
fn credentials_go_only_to_the_principal_id_that_asked() {
    let catalog = catalog();
    let ledger = MemoryLedger::default();
    let mut alice = alice();
    alice.principal_id = Some("AIDAALICEFIRST0000001".into());
    let mut request = AccessRequest::create(
        "r-cccccccccccccccccccccccccc".into(),
        &alice,
        &new_request(),
        catalog.entry("sandbox-admin").unwrap(),
        now(),
    )
    .unwrap();
    request.requester_person = catalog.resolve_requester(&alice.arn).unwrap();
    request.status = Status::Active;
    request.expires_at = Some(crate::time::format_utc(now() + ::time::Duration::hours(1)));
    let request = seed(&ledger, request);
    // alice's user was deleted and a new `alice` created: same ARN, new principal id.
    let mut namesake = alice.clone();
    namesake.principal_id = Some("AIDAALICESECOND000002".into());
    let err = block_on(vend(
        &ledger,
        &MemoryIssuer::default(),
        &catalog,
        &namesake,
        &request.id,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    block_on(vend(
        &ledger,
        &MemoryIssuer::default(),
        &catalog,
        &alice,
        &request.id,
        now(),
    ))
    .unwrap();
}

#[test]
fn a_link_does_not_approve_a_record_edited_in_the_table() {
    // Whoever can write the table stretches the grant from two hours to seven days, or points
    // it at another role, and leaves `content_hash` as it was.
    for edit in [
        (|r: &mut AccessRequest| r.duration_seconds = 7 * 24 * 3600) as fn(&mut AccessRequest),
        |r| r.role_arn = "arn:aws:iam::123456789012:role/trailgate-GrantRole".into(),
        |r| r.requester = "arn:aws:iam::123456789012:user/mallory".into(),
    ] {
        let (ledger, _, id) = awaiting_approval();
        let link = link_for(&ledger, &id, "bob");
        let mut edited = ledger.record(&id).unwrap();
        edit(&mut edited);
        ledger.overwrite(edited);
        let err = block_on(decide(
            &ledger,
            &MemoryWorkflow::default(),
            &catalog(),
            &key(),
            &link,
            verdict(),
        ))
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden, "{err}");
        assert!(err.message.starts_with("this link is not valid"), "{err}");
        assert_eq!(ledger.record(&id).unwrap().status, Status::Pending);
    }
}

#[test]
fn the_task_token_is_cleared_once_the_request_is_decided() {
    let (ledger, _, id) = awaiting_approval();
    assert!(ledger.record(&id).unwrap().task_token.is_some());
    let workflow = MemoryWorkflow::default();
    block_on(decide(
        &ledger,
        &workflow,
        &catalog(),
        &key(),
        &link_for(&ledger, &id, "bob"),
        verdict(),
    ))
    .unwrap();
    let decided = ledger.record(&id).unwrap();
    assert_eq!(decided.status, Status::Approved);
    assert_eq!(decided.task_token, None);
    // The execution still got it.
    assert_eq!(workflow.completed.lock().unwrap().len(), 1);
}

#[test]
fn a_reason_cannot_forge_lines_or_reverse_text() {
    let catalog = catalog();
    for reason in [
        "fix prod\nApproved-By: carol",
        "fix prod\r\nx",
        "fix\u{2028}prod",
        "fix prod \u{202E}dorp xif",
        "fix \u{2066}prod\u{2069}",
    ] {
        let input = NewRequest {
            reason: reason.into(),
            ..new_request()
        };
        let err = AccessRequest::create(
            "r-dddddddddddddddddddddddddd".into(),
            &alice(),
            &input,
            catalog.entry("sandbox-admin").unwrap(),
            now(),
        )
        .unwrap_err();
        assert_eq!(
            (err.kind, err.field.as_deref()),
            (ErrorKind::InvalidRequest, Some("reason")),
            "{reason:?}"
        );
    }
}

#[test]
fn an_edited_record_is_neither_activated_nor_vended_for() {
    // Approved for two hours, then stretched to seven days in the table before activation.
    let (ledger, id) = approved();
    let mut edited = ledger.record(&id).unwrap();
    edited.duration_seconds = 7 * 24 * 3600;
    ledger.overwrite(edited);
    let err = block_on(activate(
        &ledger,
        &MemoryRoles::with_sample_role(),
        &catalog(),
        contract(),
        &id,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotGrantable, "{err}");
    assert_eq!(ledger.record(&id).unwrap().status, Status::Approved);

    // ACTIVE, then pointed at trailgate's own role, or given a week more, in the table.
    for edit in [
        (|r: &mut AccessRequest| {
            r.role_arn = "arn:aws:iam::123456789012:role/trailgate-GrantFunctionRole".into()
        }) as fn(&mut AccessRequest),
        |r| r.expires_at = Some(crate::time::format_utc(now() + ::time::Duration::days(7))),
    ] {
        let (ledger, _, id) = active();
        let mut edited = ledger.record(&id).unwrap();
        edit(&mut edited);
        ledger.overwrite(edited);
        let issuer = MemoryIssuer::default();
        let err = block_on(vend(&ledger, &issuer, &catalog(), &alice(), &id, now())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotGrantable, "{err}");
        assert!(issuer.calls.lock().unwrap().is_empty(), "STS was asked");
    }
}
