//! Behaviour tests of the activation use cases against the in-memory ports.

use super::*;
use crate::ErrorKind;
use crate::service::test_support::*;
use crate::testing::*;
use ::time::Duration;
use futures_executor::executor::block_on;

#[test]
fn activation_requires_a_managed_role_and_is_idempotent() {
    let (ledger, id) = approved();
    let unmanaged = MemoryRoles::default();
    unmanaged.add_role("sample-target-trailgate", &[]);
    let err = block_on(activate(
        &ledger,
        &unmanaged,
        &catalog(),
        contract(),
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
        contract(),
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
            contract(),
            &id,
            later
        ))
        .unwrap(),
        expires
    );
    assert_eq!(ledger.record(&id).unwrap().status, Status::Active);
}

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
        contract(),
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
        RoleContract {
            protected: &PROTECTED,
            broker_role_arn: other_broker,
            protection_policy_arn: PROTECTION_POLICY,
        },
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
            contract(),
            &id,
            now()
        ))
        .is_ok()
    );
}

#[test]
fn activation_refuses_a_role_without_the_protection_policy() {
    // Without it a granted session could delete its own revocation deny.
    let (ledger, id) = approved();
    let roles = MemoryRoles::with_sample_role();
    roles.detach_all("sample-target-trailgate");
    let err = block_on(activate(
        &ledger,
        &roles,
        &catalog(),
        contract(),
        &id,
        now(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotGrantable);
    assert!(err.message.contains("does not have"), "{err}");
    assert!(err.message.contains(PROTECTION_POLICY), "{err}");
    assert_eq!(ledger.record(&id).unwrap().status, Status::Approved);
}

#[test]
fn a_scheduled_grant_is_not_activated_before_its_start() {
    let start = now() + Duration::hours(2);
    let (ledger, id) = approved_scheduled(&crate::time::format_utc(start));
    let roles = MemoryRoles::with_sample_role();
    // The workflow waits for start_at; if it did not, activation still refuses: a workflow
    // an hour early is a failure, one a second early (clock skew) is told to retry.
    let early = block_on(activate(
        &ledger,
        &roles,
        &catalog(),
        contract(),
        &id,
        start - Duration::hours(1),
    ))
    .unwrap_err();
    assert_eq!(early.kind, ErrorKind::Internal, "{early:?}");
    assert!(
        early.message.contains("it is not activated before"),
        "{}",
        early.message
    );
    let skewed = block_on(activate(
        &ledger,
        &roles,
        &catalog(),
        contract(),
        &id,
        start - Duration::seconds(1),
    ))
    .unwrap_err();
    assert_eq!(skewed.kind, ErrorKind::Retryable, "{skewed:?}");
    assert_eq!(ledger.record(&id).unwrap().status, Status::Approved);
    let expires = block_on(activate(
        &ledger,
        &roles,
        &catalog(),
        contract(),
        &id,
        start,
    ))
    .unwrap();
    // The duration runs from the start, not from the approval.
    assert_eq!(expires, crate::time::format_utc(start + Duration::hours(2)));
}
