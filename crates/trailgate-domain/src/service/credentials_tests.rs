//! Behaviour tests of the credential vending use cases against the in-memory ports.

use super::*;
use crate::ErrorKind;
use crate::service::test_support::*;
use crate::service::*;
use crate::testing::*;
use ::time::Duration;
use futures_executor::executor::block_on;

#[test]
fn credentials_are_vended_only_to_the_requester_while_active_and_never_past_expiry() {
    let (ledger, roles, id) = active();
    let issuer = MemoryIssuer::default();
    let bob = Caller::from_arn("arn:aws:iam::123456789012:user/bob");
    assert_eq!(
        block_on(vend(&ledger, &issuer, &catalog(), &bob, &id, now()))
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );

    block_on(vend(&ledger, &issuer, &catalog(), &alice(), &id, now())).unwrap();
    let call = issuer.calls.lock().unwrap()[0].clone();
    assert_eq!(call.duration_seconds, 3600);
    assert_eq!(call.source_identity, "alice");
    assert_eq!(call.tags, [("trailgate-request".to_owned(), id.clone())]);
    assert_eq!(call.session_name, format!("tg-alice-{id}"));
    assert!(call.session_policy.contains("2026-11-21T12:00:00Z"));

    // Ten minutes before expiry STS still issues 15 minutes; the reported expiry is capped.
    let late = now() + Duration::minutes(110);
    *issuer.clock.lock().unwrap() = Some(late);
    let credentials = block_on(vend(&ledger, &issuer, &catalog(), &alice(), &id, late)).unwrap();
    assert_eq!(issuer.calls.lock().unwrap()[1].duration_seconds, 900);
    assert_eq!(credentials.expiration, "2026-11-21T12:00:00Z");
    assert_eq!(ledger.record(&id).unwrap().credentials_issued, 2);

    block_on(revoke(&ledger, &roles, &id, "expired", now())).unwrap();
    let err = block_on(vend(&ledger, &issuer, &catalog(), &alice(), &id, now())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
}
