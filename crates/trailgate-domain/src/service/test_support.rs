//! Fixtures the use cases' tests share: the sample catalog, a link key, requests at each stage.

use crate::catalog::Catalog;
use crate::link::{LinkKey, LinkParams};
use crate::request::{Caller, NewRequest, Status};
use crate::service::*;
use crate::testing::*;
use crate::time::parse_utc;
use ::time::{Duration, OffsetDateTime};
use futures_executor::executor::block_on;

pub(crate) fn catalog() -> Catalog {
    Catalog::load(&sample_catalog_json(), "trailgate-").unwrap()
}

pub(crate) fn key() -> LinkKey {
    LinkKey::new(vec![42u8; 32]).unwrap()
}

pub(crate) fn settings() -> IntakeSettings {
    IntakeSettings {
        audit_delay: Duration::seconds(900),
        reaudit_delay: Duration::seconds(3600),
    }
}

pub(crate) fn new_request() -> NewRequest {
    NewRequest {
        catalog_id: "sandbox-admin".into(),
        account: None,
        duration: "PT2H".into(),
        reason: "fix prod".into(),
        ticket: None,
        start_at: None,
    }
}

/// A request waiting for approval, with the messages sent to the approvers.
pub(crate) fn awaiting_approval() -> (MemoryLedger, MemoryNotifier, String) {
    awaiting_approval_of(pending_request())
}

fn awaiting_approval_of(request: AccessRequest) -> (MemoryLedger, MemoryNotifier, String) {
    awaiting_approval_in(request, &catalog())
}

/// `request` seeded and its approval requested under `catalog`.
pub(crate) fn awaiting_approval_in(
    request: AccessRequest,
    catalog: &Catalog,
) -> (MemoryLedger, MemoryNotifier, String) {
    let ledger = MemoryLedger::default();
    let request = seed(&ledger, request);
    let notifier = MemoryNotifier::default();
    let approval = ApprovalSettings {
        key: &key(),
        decision_base_url: "https://api.example/v1",
    };
    block_on(request_approval(
        &ledger,
        &notifier,
        catalog,
        &approval,
        ApprovalTask {
            id: &request.id,
            task_token: "token-1",
            now: now(),
        },
    ))
    .unwrap();
    (ledger, notifier, request.id)
}

pub(crate) fn link_for(ledger: &MemoryLedger, id: &str, approver: &str) -> LinkParams {
    let record = ledger.record(id).unwrap();
    let expires = parse_utc(&record.approval_expires_at)
        .unwrap()
        .unix_timestamp();
    key().sign(id, approver, expires, &record.content_hash)
}

pub(crate) fn quorum_two_catalog() -> Catalog {
    Catalog::load(
        &sample_catalog_json().replace("\"quorum\": 1", "\"quorum\": 2"),
        "trailgate-",
    )
    .unwrap()
}

pub(crate) fn user(name: &str) -> Caller {
    Caller::from_arn(format!("arn:aws:iam::123456789012:user/{name}"))
}

pub(crate) fn approved() -> (MemoryLedger, String) {
    approved_with(pending_request())
}

/// [`approved`] for a request scheduled to start at `start_at`.
pub(crate) fn approved_scheduled(start_at: &str) -> (MemoryLedger, String) {
    let mut request = pending_request();
    request.start_at = Some(start_at.to_owned());
    request.content_hash = request.compute_content_hash();
    approved_with(request)
}

fn approved_with(request: AccessRequest) -> (MemoryLedger, String) {
    let (ledger, _, id) = awaiting_approval_of(request);
    block_on(decide(
        &ledger,
        &MemoryWorkflow::default(),
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
    .unwrap();
    (ledger, id)
}

pub(crate) fn active() -> (MemoryLedger, MemoryRoles, String) {
    let (ledger, id) = approved();
    let roles = MemoryRoles::with_sample_role();
    block_on(activate(
        &ledger,
        &roles,
        &catalog(),
        contract(),
        &id,
        now(),
    ))
    .unwrap();
    (ledger, roles, id)
}

/// A second ACTIVE request from alice on the same role, activated at `now()`.
pub(crate) fn second_active(ledger: &MemoryLedger, roles: &MemoryRoles) -> String {
    let mut request = pending_request();
    request.id = "r-bbbbbbbbbbbbbbbbbbbbbbbbbb".into();
    request.status = Status::Approved;
    let id = seed(ledger, request).id;
    block_on(activate(ledger, roles, &catalog(), contract(), &id, now())).unwrap();
    id
}

pub(crate) fn bob() -> Caller {
    Caller::from_arn("arn:aws:iam::123456789012:user/bob")
}

/// The sample entry's one role, as `resolve_target` would resolve it.
pub(crate) fn sample_target() -> Target {
    Target::single(catalog().entry("sandbox-admin").unwrap()).unwrap()
}

pub(crate) fn policy_submit(
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
        Submission {
            catalog: &catalog(),
            settings: settings(),
            caller: &alice(),
            input,
            target: &sample_target(),
            id: id.into(),
            now: at,
        },
        RequestPolicy::default(),
        key,
    ))
}

pub(crate) fn glass_catalog() -> Catalog {
    let json = sample_catalog_json()
        .replace("\"break_glass\": false", "\"break_glass\": true")
        .replace("\"PT4H\"", "\"PT1H\"");
    Catalog::load(&json, "trailgate-").unwrap()
}

pub(crate) fn glass_request(ledger: &MemoryLedger, catalog: &Catalog) -> String {
    let input = NewRequest {
        duration: "PT30M".into(),
        ..new_request()
    };
    let workflow = MemoryWorkflow::default();
    let created = block_on(submit(
        ledger,
        &workflow,
        Submission {
            catalog,
            settings: settings(),
            caller: &alice(),
            input: &input,
            target: &sample_target(),
            id: "r-glass".into(),
            now: now(),
        },
    ))
    .unwrap();
    let started = workflow.started.lock().unwrap().clone();
    assert_eq!(started[0].1["request"]["break_glass"], true);
    assert!(created.break_glass && created.needs_review());
    created.id
}
