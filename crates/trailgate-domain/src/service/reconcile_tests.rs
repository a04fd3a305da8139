//! Behaviour tests of the reconciler use cases against the in-memory ports.

use super::*;
use crate::service::test_support::*;
use crate::service::*;
use crate::testing::*;
use ::time::Duration;
use futures_executor::executor::block_on;
use serde_json::json;

#[test]
fn the_reconciler_revokes_overdue_grants_and_alerts() {
    let (ledger, roles, id) = active();
    let notifier = MemoryNotifier::default();
    let report = block_on(reconcile(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
        &notifier,
        now() + Duration::minutes(30),
    ))
    .unwrap();
    assert!(report.revoked.is_empty());
    assert!(notifier.sent.lock().unwrap().is_empty());
    let report = block_on(reconcile(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
        &notifier,
        now() + Duration::hours(3),
    ))
    .unwrap();
    assert_eq!(report.revoked, std::slice::from_ref(&id));
    assert_eq!(notifier.sent.lock().unwrap()[0].0, Topic::Alerts);
    assert_eq!(ledger.record(&id).unwrap().status, Status::Revoked);
}

#[test]
fn the_reconciler_reapplies_missing_denies_and_collects_expired_ones() {
    let (ledger, roles, first) = active();
    let second = second_active(&ledger, &roles);
    block_on(revoke(&ledger, &roles, &first, "expired", now())).unwrap();
    block_on(revoke(&ledger, &roles, &second, "expired", now())).unwrap();
    // Someone (or a lost concurrent write) removes the deny policy while it is still needed.
    block_on(roles.delete_inline_policy(SAMPLE_ROLE, REVOCATIONS_POLICY_NAME)).unwrap();
    let notifier = MemoryNotifier::default();
    let at = now() + Duration::minutes(30);
    let report = block_on(reconcile(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
        &notifier,
        at,
    ))
    .unwrap();
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
    let report = block_on(reconcile(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
        &notifier,
        at,
    ))
    .unwrap();
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
    block_on(roles.delete_inline_policy(SAMPLE_ROLE, REVOCATIONS_POLICY_NAME)).unwrap();
    let report = block_on(reconcile(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
        &notifier,
        at,
    ))
    .unwrap();
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
        contract(),
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
    let report = block_on(reconcile(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
        &notifier,
        after,
    ))
    .unwrap();
    assert_eq!(report.revoked, std::slice::from_ref(&late));
    assert_eq!(report.collected, [SAMPLE_ROLE]);
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
    let report = block_on(reconcile(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
        &notifier,
        much_later,
    ))
    .unwrap();
    assert_eq!(report.collected, [SAMPLE_ROLE], "{report:?}");
    assert!(
        roles
            .policy("sample-target-trailgate", REVOCATIONS_POLICY_NAME)
            .is_none()
    );
}
