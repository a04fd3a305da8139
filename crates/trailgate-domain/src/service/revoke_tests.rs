//! Behaviour tests of the revoke use cases against the in-memory ports.

use super::*;
use crate::ErrorKind;
use crate::service::test_support::*;
use crate::service::*;
use crate::testing::*;
use futures_executor::executor::block_on;

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
    block_on(roles.delete_inline_policy(SAMPLE_ROLE, REVOCATIONS_POLICY_NAME)).unwrap();
    block_on(revoke(&ledger, &roles, &id, "reconciler", now())).unwrap();
    assert!(
        roles
            .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
            .is_some()
    );
}

#[test]
fn a_failed_iam_write_stops_vending_first_and_a_retry_or_the_reconciler_writes_the_deny() {
    let denied = |roles: &MemoryRoles, id: &str| {
        roles
            .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
            .is_some_and(|doc| policy::denies_request(&doc, id))
    };
    let vend_now = |ledger: &MemoryLedger, id: &str| {
        block_on(vend(
            ledger,
            &MemoryIssuer::default(),
            &catalog(),
            &alice(),
            id,
            now(),
        ))
    };
    for finish_by_reconciler in [false, true] {
        let (ledger, roles, id) = active();
        *roles.fail_puts.lock().unwrap() = 1;
        let err = block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Retryable);
        // The ledger said REVOKED before IAM was asked: nothing is vended while the deny is
        // missing, and nothing depends on IAM coming back for that.
        assert_eq!(ledger.record(&id).unwrap().status, Status::Revoked);
        assert_eq!(
            vend_now(&ledger, &id).unwrap_err().kind,
            ErrorKind::Conflict
        );
        assert!(!denied(&roles, &id));
        if finish_by_reconciler {
            let notifier = MemoryNotifier::default();
            let report = block_on(reconcile(
                &ledger,
                &roles,
                &MemoryIdentityCenter::default(),
                &notifier,
                now(),
            ))
            .unwrap();
            assert_eq!(report.reapplied, vec![id.clone()], "{report:?}");
        } else {
            assert_eq!(
                block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap(),
                Status::Revoked
            );
        }
        assert!(denied(&roles, &id), "reconciler: {finish_by_reconciler}");
    }
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
fn early_revoke_ends_one_grant_and_leaves_an_overlapping_one_alone() {
    let (ledger, roles, first) = active();
    let second = second_active(&ledger, &roles);
    let mallory = Caller::from_arn("arn:aws:iam::123456789012:user/mallory");
    let err = block_on(revoke_early(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
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

    let bob = Caller::from_arn("arn:aws:iam::123456789012:user/bob");
    let soon = now() + Duration::minutes(10);
    let revoked = block_on(revoke_early(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
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
        &catalog(),
        &alice(),
        &second,
        soon,
    ))
    .unwrap();
    assert_eq!(
        block_on(vend(
            &ledger,
            &MemoryIssuer::default(),
            &catalog(),
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
        &MemoryIdentityCenter::default(),
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
        &MemoryIdentityCenter::default(),
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

    // Never visible: fails Retryable once the pauses reach the bound, with vending stopped.
    let (ledger, roles, id) = active();
    *roles.stale_reads.lock().unwrap() = u32::MAX;
    let err = block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(err.message.contains("not visible"), "{err}");
    let waited: std::time::Duration = roles.pauses.lock().unwrap().iter().sum();
    assert_eq!(waited, VISIBILITY_BOUND);
    assert_eq!(ledger.record(&id).unwrap().status, Status::Revoked);
}
