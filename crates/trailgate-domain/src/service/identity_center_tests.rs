//! Permission-set grants against in-memory Identity Center: who is granted, the assignment's
//! asynchrony and failures, two grants sharing one assignment, and the live-session deny.

use super::*;
use crate::catalog::Protected;
use crate::error::ErrorKind;
use crate::request::{Assignment, NewRequest};
use crate::service::test_support::settings;
use crate::service::{Submission, Verdict, decide_as, resolve_target, submit};
use crate::testing::*;
use crate::user_deny::denies_user;
use futures_executor::executor::block_on;

fn input() -> NewRequest {
    NewRequest {
        catalog_id: "prod-admin-ps".into(),
        account: Some(PS_ACCOUNT.into()),
        duration: "PT1H".into(),
        reason: "rotate the prod keys".into(),
        ticket: None,
        start_at: None,
    }
}

/// A PENDING permission-set request by `caller`, with the given id.
fn submitted(
    ledger: &MemoryLedger,
    identity_center: &MemoryIdentityCenter,
    caller: &Caller,
    id: &str,
) -> Result<AccessRequest> {
    let catalog = identity_center_catalog();
    let target = block_on(resolve_target(
        &MemoryAccounts::default(),
        &catalog,
        &Protected::default(),
        &input(),
    ))?;
    let target = block_on(resolve_user(identity_center, caller, target))?;
    block_on(submit(
        ledger,
        &MemoryWorkflow::default(),
        Submission {
            catalog: &catalog,
            settings: settings(),
            caller,
            input: &input(),
            target: &target,
            id: id.into(),
            now: now(),
        },
    ))
}

/// The approval step has run (the links are out) and `approver` decides.
fn approve(ledger: &MemoryLedger, id: &str, approver: &str) -> Result<AccessRequest> {
    if ledger.record(id).is_some_and(|r| r.task_token.is_none()) {
        block_on(crate::service::request_approval(
            ledger,
            &MemoryNotifier::default(),
            &identity_center_catalog(),
            &crate::service::ApprovalSettings {
                key: &crate::service::test_support::key(),
                decision_base_url: "https://api.example/v1",
            },
            crate::service::ApprovalTask {
                id,
                task_token: "token-1",
                now: now(),
            },
        ))?;
    }
    block_on(decide_as(
        ledger,
        &MemoryWorkflow::default(),
        &identity_center_catalog(),
        id,
        approver,
        Verdict {
            approve: true,
            comment: None,
            now: now(),
            origin: Default::default(),
        },
    ))
}

fn activate(
    ledger: &MemoryLedger,
    identity_center: &MemoryIdentityCenter,
    id: &str,
) -> Result<String> {
    block_on(activate_assignment(
        ledger,
        identity_center,
        &identity_center_catalog(),
        &Protected::default(),
        id,
        now(),
    ))
}

/// An ACTIVE permission-set grant for alice.
fn active(
    ledger: &MemoryLedger,
    identity_center: &MemoryIdentityCenter,
    id: &str,
) -> AccessRequest {
    submitted(ledger, identity_center, &alice_sso(), id).unwrap();
    approve(ledger, id, "carol").unwrap();
    activate(ledger, identity_center, id).unwrap();
    ledger.record(id).unwrap()
}

fn revoke(
    ledger: &MemoryLedger,
    identity_center: &MemoryIdentityCenter,
    id: &str,
) -> Result<(Status, AssignmentRevoked)> {
    let later = now() + ::time::Duration::minutes(30);
    {
        let mut clock = identity_center.clock.lock().unwrap();
        *clock = (*clock).max(later);
    }
    block_on(revoke_assignment(
        ledger,
        identity_center,
        id,
        "expired",
        later,
    ))
}

#[test]
fn the_requester_is_the_identity_center_user_id_and_callers_it_cannot_name_are_refused() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    let request = submitted(&ledger, &identity_center, &alice_sso(), "r-ps1").unwrap();
    let assignment = request.assignment.clone().unwrap();
    assert_eq!(assignment.user_id, ALICE_USER_ID);
    assert_eq!(assignment.account, PS_ACCOUNT);
    assert_eq!(request.role_arn, "");
    assert_eq!(
        request.requester_person,
        format!("arn:aws:identitystore:::user/{ALICE_USER_ID}")
    );
    assert_eq!(request.target_account(), PS_ACCOUNT);

    // An IAM user is no Identity Center user.
    let err = submitted(&ledger, &identity_center, &alice(), "r-ps2").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err:?}");
    assert!(
        err.message.contains("Identity Center session"),
        "{}",
        err.message
    );

    // A session of an Identity Center role whose user the identity store does not know.
    let stranger = Caller::from_arn(
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ReadOnly_0a1b2c3d4e5f6a7b/mallory@example.com",
    );
    let err = submitted(&ledger, &identity_center, &stranger, "r-ps3").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert!(
        err.message.contains("no user named `mallory@example.com`"),
        "{}",
        err.message
    );
    assert!(ledger.record("r-ps2").is_none() && ledger.record("r-ps3").is_none());
}

#[test]
fn an_approver_who_is_the_requesting_identity_center_user_cannot_approve() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    identity_center.users.lock().unwrap().insert(
        "bob@example.com".into(),
        "b0b00000-0000-4000-8000-000000000001".into(),
    );
    let bob_sso = Caller::from_arn(
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ReadOnly_0a1b2c3d4e5f6a7b/bob@example.com",
    );
    let request = submitted(&ledger, &identity_center, &bob_sso, "r-bob").unwrap();
    assert_eq!(
        request.requester_person, "bob",
        "the catalog lists bob's user id under bob"
    );
    let err = approve(&ledger, "r-bob", "bob").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err:?}");
    assert_eq!(ledger.record("r-bob").unwrap().status, Status::Pending);
    assert_eq!(
        approve(&ledger, "r-bob", "carol").unwrap().status,
        Status::Approved
    );
}

#[test]
fn grant_polls_the_creation_and_revoke_removes_the_assignment_and_denies_live_sessions() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    *identity_center.in_progress_polls.lock().unwrap() = 3;
    let request = active(&ledger, &identity_center, "r-ps1");
    let assignment = request.assignment.clone().unwrap();
    assert_eq!(request.status, Status::Active);
    assert!(identity_center.assigned(&assignment));
    // The name the audit looks for (`AWSReservedSSO_<name>_*`), covered by the record digest.
    assert_eq!(request.permission_set_name.as_deref(), Some("ProdAdmin"));
    let mut renamed = request.clone();
    renamed.permission_set_name = Some("ReadOnly".into());
    assert_ne!(
        crate::ledger::record_digest(&renamed),
        crate::ledger::record_digest(&request)
    );
    let polls = identity_center
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| *c == "Describe*Status")
        .count();
    assert_eq!(polls, 4, "three IN_PROGRESS answers, then SUCCEEDED");
    assert_eq!(
        ledger.holders(&assignment.holders_key()).0,
        vec!["r-ps1".to_owned()]
    );

    let (status, what) = revoke(&ledger, &identity_center, "r-ps1").unwrap();
    assert_eq!(
        (status, what),
        (Status::Revoked, AssignmentRevoked::Removed)
    );
    assert!(!identity_center.assigned(&assignment));
    let inline = identity_center
        .inline(PERMISSION_SET_ARN)
        .expect("the deny was written");
    // Every session issued while the grant lived is denied; one issued after the revoke had
    // finished (say, under a later grant) is not.
    let granted_at = now().unix_timestamp();
    let finished = identity_center.now().unix_timestamp();
    assert!(
        denies_user(&inline, ALICE_USER_ID, PS_ACCOUNT, granted_at + 60),
        "{inline}"
    );
    assert!(
        !denies_user(&inline, ALICE_USER_ID, PS_ACCOUNT, finished + 2),
        "{inline}"
    );
    assert!(!denies_user(&inline, "someone-else", PS_ACCOUNT, 0));
    let calls = identity_center.calls.lock().unwrap().clone();
    let put = calls
        .iter()
        .position(|c| c == "PutInlinePolicyToPermissionSet")
        .unwrap();
    let delete = calls
        .iter()
        .position(|c| c == "DeleteAccountAssignment")
        .unwrap();
    let provision = calls
        .iter()
        .position(|c| c == "ProvisionPermissionSet")
        .unwrap();
    assert!(
        delete < put && put < provision,
        "delete, then deny, then provision: {calls:?}"
    );
    assert_eq!(
        ledger.holders(&assignment.holders_key()),
        (vec![], None),
        "fence cleared"
    );

    // Again (a retried step): nothing breaks, the request stays REVOKED.
    let (status, _) = revoke(&ledger, &identity_center, "r-ps1").unwrap();
    assert_eq!(status, Status::Revoked);
}

#[test]
fn the_first_of_two_overlapping_grants_to_end_leaves_the_assignment_to_the_other() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    let first = active(&ledger, &identity_center, "r-first");
    active(&ledger, &identity_center, "r-second");
    let assignment = first.assignment.unwrap();

    let (_, what) = revoke(&ledger, &identity_center, "r-first").unwrap();
    assert_eq!(what, AssignmentRevoked::StillHeld);
    assert!(
        identity_center.assigned(&assignment),
        "the second grant still holds it"
    );
    assert!(
        identity_center.inline(PERMISSION_SET_ARN).is_none(),
        "and its sessions live"
    );

    let (_, what) = revoke(&ledger, &identity_center, "r-second").unwrap();
    assert_eq!(what, AssignmentRevoked::Removed);
    assert!(!identity_center.assigned(&assignment));
}

#[test]
fn a_grant_waits_while_a_revoke_removes_the_assignment_it_would_share() {
    let ledger = MemoryLedger::default();
    block_on(ledger.hold_assignment("k", "r-a")).unwrap();
    assert!(
        block_on(ledger.release_assignment("k", "r-a")).unwrap(),
        "the last holder fences"
    );
    let err = block_on(ledger.hold_assignment("k", "r-b")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(
        block_on(ledger.release_assignment("k", "r-a")).unwrap(),
        "idempotent for the fence holder"
    );
    let err = block_on(ledger.release_assignment("k", "r-b")).unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Retryable,
        "nobody else removes it meanwhile"
    );
    block_on(ledger.unfence_assignment("k", "r-b")).unwrap();
    assert_eq!(
        ledger.holders("k").1.as_deref(),
        Some("r-a"),
        "only the fence holder clears it"
    );
    block_on(ledger.unfence_assignment("k", "r-a")).unwrap();
    block_on(ledger.hold_assignment("k", "r-b")).unwrap();
    assert!(
        !block_on(ledger.release_assignment("k", "r-a")).unwrap()
            || ledger.holders("k").0.is_empty()
    );
    assert_eq!(ledger.holders("k").0, vec!["r-b".to_owned()]);
}

#[test]
fn a_failed_creation_is_not_grantable_with_aws_reason_and_its_revoke_writes_nothing() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    identity_center
        .fail_creations
        .lock()
        .unwrap()
        .push("Received a 404 status error: permission set not provisioned".into());
    submitted(&ledger, &identity_center, &alice_sso(), "r-fail").unwrap();
    approve(&ledger, "r-fail", "carol").unwrap();
    let err = activate(&ledger, &identity_center, "r-fail").unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotGrantable);
    assert!(
        err.message.contains("permission set not provisioned"),
        "{}",
        err.message
    );
    assert_eq!(ledger.record("r-fail").unwrap().status, Status::Approved);

    // The Activate step's Catch revokes it: the holder is released, nothing was assigned, and
    // no deny is written for a grant that never was.
    let (status, what) = revoke(&ledger, &identity_center, "r-fail").unwrap();
    assert_eq!(
        (status, what),
        (Status::Revoked, AssignmentRevoked::Nothing)
    );
    assert!(identity_center.inline(PERMISSION_SET_ARN).is_none());
}

#[test]
fn an_untagged_or_missing_permission_set_and_an_edited_record_are_never_granted() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    submitted(&ledger, &identity_center, &alice_sso(), "r-1").unwrap();
    approve(&ledger, "r-1", "carol").unwrap();
    identity_center
        .permission_sets
        .lock()
        .unwrap()
        .get_mut(PERMISSION_SET_ARN)
        .unwrap()
        .0
        .tags
        .clear();
    let err = activate(&ledger, &identity_center, "r-1").unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotGrantable);
    assert!(err.message.contains("not tagged"), "{}", err.message);
    assert!(identity_center.assignments.lock().unwrap().is_empty());

    // A table writer moves the grant to an account the entry does not cover.
    let mut edited = ledger.record("r-1").unwrap();
    edited.assignment.as_mut().unwrap().account = "999999999999".into();
    ledger.overwrite(edited);
    let err = activate(&ledger, &identity_center, "r-1").unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotGrantable);
    assert!(identity_center.assignments.lock().unwrap().is_empty());
}

#[test]
fn the_role_paths_refuse_a_permission_set_request_before_writing_anything() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    let request = active(&ledger, &identity_center, "r-ps1");
    let roles = MemoryRoles::with_sample_role();
    let err = block_on(crate::service::revoke(
        &ledger,
        &roles,
        "r-ps1",
        "expired",
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert_eq!(
        ledger.record("r-ps1").unwrap().status,
        Status::Active,
        "nothing committed"
    );
    // Through the dispatcher it is revoked as a permission set.
    let status = block_on(revoke_target(
        &ledger,
        &roles,
        &identity_center,
        "r-ps1",
        "expired",
        now(),
    ))
    .unwrap();
    assert_eq!(status, Status::Revoked);
    assert!(!identity_center.assigned(request.assignment.as_ref().unwrap()));
}

#[test]
fn the_drift_sweep_removes_assignments_no_request_holds_and_leaves_held_ones() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    let held = active(&ledger, &identity_center, "r-held");
    let by_hand = Assignment {
        user_id: "d1d1d1d1-0000-4000-8000-00000000d1d1".into(),
        ..held.assignment.clone().unwrap()
    };
    identity_center.assignments.lock().unwrap().insert((
        by_hand.permission_set_arn.clone(),
        by_hand.account.clone(),
        by_hand.user_id.clone(),
    ));
    let catalog = identity_center_catalog();
    let scope = SweepScope {
        catalog: &catalog,
        organization: None,
    };
    let (swept, failed) = block_on(sweep_assignments(
        &ledger,
        &identity_center,
        scope,
        &[],
        now(),
    ));
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0].user_id, by_hand.user_id);
    assert!(
        !identity_center.assigned(&by_hand),
        "the hand-made assignment is gone"
    );
    assert!(
        identity_center.assigned(held.assignment.as_ref().unwrap()),
        "the grant's stays"
    );
    let inline = identity_center.inline(PERMISSION_SET_ARN).unwrap();
    assert!(denies_user(
        &inline,
        &by_hand.user_id,
        PS_ACCOUNT,
        now().unix_timestamp()
    ));
    assert!(
        !denies_user(&inline, ALICE_USER_ID, PS_ACCOUNT, 0),
        "alice's sessions live"
    );
    assert_eq!(
        ledger.holders(&by_hand.holders_key()).1,
        None,
        "the sweep's fence is cleared"
    );

    // A permission set not tagged as trailgate's is never swept.
    identity_center.assignments.lock().unwrap().insert((
        by_hand.permission_set_arn.clone(),
        by_hand.account.clone(),
        by_hand.user_id.clone(),
    ));
    identity_center
        .permission_sets
        .lock()
        .unwrap()
        .get_mut(PERMISSION_SET_ARN)
        .unwrap()
        .0
        .tags
        .clear();
    let (swept, _) = block_on(sweep_assignments(
        &ledger,
        &identity_center,
        scope,
        &[],
        now(),
    ));
    assert!(swept.is_empty());
    assert!(identity_center.assigned(&by_hand));
}

#[test]
fn the_reconciler_puts_back_a_lost_permission_set_deny_while_the_sessions_may_live() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    active(&ledger, &identity_center, "r-lost");
    revoke(&ledger, &identity_center, "r-lost").unwrap();
    let request = ledger.record("r-lost").unwrap();
    let revoked_at = crate::time::parse_utc(request.revoked_at.as_deref().unwrap()).unwrap();
    let lose = || {
        identity_center
            .permission_sets
            .lock()
            .unwrap()
            .get_mut(PERMISSION_SET_ARN)
            .unwrap()
            .1 = None;
    };
    let recheck = |at| block_on(recheck_user_deny(&ledger, &identity_center, &request, at));
    let denied = || {
        identity_center
            .inline(PERMISSION_SET_ARN)
            .is_some_and(|doc| {
                denies_user(&doc, ALICE_USER_ID, PS_ACCOUNT, revoked_at.unix_timestamp())
            })
    };
    assert!(denied(), "the revoke wrote it");
    assert!(
        !recheck(revoked_at + ::time::Duration::minutes(5)).unwrap(),
        "in place"
    );

    // Lost (a concurrent write, a hand edit): the reconciler puts it back, provisioned and
    // read back, and says so.
    lose();
    let notifier = MemoryNotifier::default();
    let report = block_on(crate::service::reconcile(
        &ledger,
        &MemoryRoles::default(),
        &identity_center,
        &notifier,
        revoked_at + ::time::Duration::minutes(10),
    ))
    .unwrap();
    assert_eq!(report.reapplied, vec!["r-lost".to_owned()], "{report:?}");
    assert_eq!(notifier.sent.lock().unwrap().len(), 1);
    assert!(denied());
    assert_eq!(
        ledger
            .holders(&request.assignment.as_ref().unwrap().holders_key())
            .1,
        None
    );

    // Lost while a new grant of the same assignment holds it: that grant's access stands.
    lose();
    active(&ledger, &identity_center, "r-again");
    assert!(!recheck(revoked_at + ::time::Duration::minutes(15)).unwrap());
    assert!(identity_center.inline(PERMISSION_SET_ARN).is_none());
    assert!(identity_center.assigned(request.assignment.as_ref().unwrap()));
    revoke(&ledger, &identity_center, "r-again").unwrap();

    // Once the permission set's sessions (an hour) have all expired, a collected deny stays
    // collected.
    lose();
    assert!(!recheck(revoked_at + ::time::Duration::minutes(61)).unwrap());
    assert!(identity_center.inline(PERMISSION_SET_ARN).is_none());
}

#[test]
fn the_drift_sweep_reaches_the_accounts_an_entry_covers_through_an_ou() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    // The entry lists only the OU; MEMBER_A is under it, MEMBER_B is not.
    let mut json: serde_json::Value = serde_json::to_value(identity_center_catalog()).unwrap();
    json["entries"][0]["accounts"] = serde_json::json!([PROD_OU]);
    let catalog = crate::catalog::Catalog::load(&json.to_string(), "trailgate-").unwrap();
    let by_hand = |account: &str| Assignment {
        instance_arn: INSTANCE_ARN.into(),
        permission_set_arn: PERMISSION_SET_ARN.into(),
        account: account.into(),
        user_id: "d1d1d1d1-0000-4000-8000-00000000d1d1".into(),
    };
    for account in [MEMBER_A, MEMBER_B] {
        let a = by_hand(account);
        identity_center.assignments.lock().unwrap().insert((
            a.permission_set_arn.clone(),
            a.account.clone(),
            a.user_id.clone(),
        ));
    }
    let organization = organization();
    // Without the Organization, an OU names no account.
    let blind = SweepScope {
        catalog: &catalog,
        organization: None,
    };
    let (swept, _) = block_on(sweep_assignments(
        &ledger,
        &identity_center,
        blind,
        &[],
        now(),
    ));
    assert!(swept.is_empty(), "{swept:?}");
    let scope = SweepScope {
        catalog: &catalog,
        organization: Some(&organization),
    };
    let (swept, failed) = block_on(sweep_assignments(
        &ledger,
        &identity_center,
        scope,
        &[],
        now(),
    ));
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0].account, MEMBER_A);
    assert!(!identity_center.assigned(&by_hand(MEMBER_A)));
    assert!(
        identity_center.assigned(&by_hand(MEMBER_B)),
        "not under the entry's OU: not trailgate's to sweep"
    );
}

#[test]
fn the_drift_sweep_removes_a_group_assignment_and_denies_its_members_but_a_granted_one() {
    let (ledger, identity_center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
    // alice holds a grant of the permission set; the ops group got it by hand as well.
    active(&ledger, &identity_center, "r-alice");
    let dave = "dddddddd-0000-4000-8000-00000000dddd".to_owned();
    identity_center
        .groups
        .lock()
        .unwrap()
        .insert("g-ops".into(), vec![ALICE_USER_ID.into(), dave.clone()]);
    identity_center.group_assignments.lock().unwrap().insert((
        PERMISSION_SET_ARN.into(),
        PS_ACCOUNT.into(),
        "g-ops".into(),
    ));
    let catalog = identity_center_catalog();
    let scope = SweepScope {
        catalog: &catalog,
        organization: None,
    };
    let (swept, failed) = block_on(sweep_assignments(
        &ledger,
        &identity_center,
        scope,
        &[],
        now(),
    ));
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0].group_id.as_deref(), Some("g-ops"));
    assert_eq!(swept[0].members, vec![dave.clone()]);
    assert!(identity_center.group_assignments.lock().unwrap().is_empty());
    let inline = identity_center.inline(PERMISSION_SET_ARN).unwrap();
    assert!(denies_user(
        &inline,
        &dave,
        PS_ACCOUNT,
        now().unix_timestamp()
    ));
    assert!(
        !denies_user(&inline, ALICE_USER_ID, PS_ACCOUNT, 0),
        "alice's granted sessions live"
    );
    let alice = Assignment {
        instance_arn: INSTANCE_ARN.into(),
        permission_set_arn: PERMISSION_SET_ARN.into(),
        account: PS_ACCOUNT.into(),
        user_id: ALICE_USER_ID.into(),
    };
    assert!(identity_center.assigned(&alice), "her own assignment stays");
    // Nothing left to sweep.
    let (again, _) = block_on(sweep_assignments(
        &ledger,
        &identity_center,
        scope,
        &[],
        now(),
    ));
    assert!(again.is_empty(), "{again:?}");
}
