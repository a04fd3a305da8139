//! trailgate's lifecycle events for an event bus (issue 18, item 2): what a consumer receives
//! for each ledger transition, and the `closed` event that tells it it has everything.
//!
//! One ledger event becomes one lifecycle event, named for what happened (`requested`,
//! `approved`, `granted`, `credentials_issued`, `revoked`, `audited`, ...), with the request's
//! unchanging facts (entry, requester, target) so a rule can match on them. A transition into a
//! final status adds a `closed` event carrying the number of events and the last hash of the
//! chain: a consumer holding events 1 to `events` of the request, ending at that hash, has the
//! whole request. A granted request is final after the audit's second pass (late CloudTrail
//! delivery), a break-glass one only once an approver also acknowledged it, so its `closed`
//! follows whichever of the two came last.
//!
//! The schema is `schemas/lifecycle-event.schema.json`; `tests/tests/ocsf.rs` checks every event
//! made here against it. The events function (`service::publish_lifecycle`) sends them to
//! EventBridge from the ledger's DynamoDB stream.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ledger::Event;
use crate::request::{AccessRequest, Status};

/// The `source` of every entry on the bus.
pub const SOURCE: &str = "trailgate";
/// The version of the detail's shape; a change to its meaning gets a new number.
pub const DETAIL_VERSION: u64 = 1;
/// EventBridge's `PutEvents` takes at most ten entries.
pub const MAX_ENTRIES_PER_PUT: usize = 10;

/// One entry for the bus: EventBridge's `Source`, `DetailType` and `Detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    pub source: String,
    pub detail_type: String,
    pub detail: Value,
}

/// The lifecycle name of a ledger action.
pub fn name_of(action: &str) -> Option<&'static str> {
    Some(match action {
        "Requested" => "requested",
        "WorkflowStartFailed" => "workflow_start_failed",
        "ContextGathered" => "context_gathered",
        "ApprovalRequested" => "approval_requested",
        "Approved" => "approved",
        "Denied" => "denied",
        "Expired" => "expired",
        "Cancelled" => "cancelled",
        "BreakGlassActivated" => "break_glass_activated",
        "Activated" => "granted",
        "CredentialsIssued" => "credentials_issued",
        "Revoked" => "revoked",
        "Audited" => "audited",
        "AuditUpdated" => "audit_updated",
        "Acknowledged" => "acknowledged",
        _ => return None,
    })
}

/// What a rule matches on: the entry, the requester, and what is granted where.
fn facts(record: &AccessRequest) -> Value {
    json!({
        "catalog_id": record.catalog_id,
        "requester": record.requester,
        "account": record.target_account(),
        "role_arn": (!record.role_arn.is_empty()).then_some(&record.role_arn),
        "permission_set_arn": record.assignment.as_ref().map(|a| &a.permission_set_arn),
        "break_glass": record.break_glass,
    })
}

/// Whether `event` is the one after which nothing more is recorded for `record`: the change
/// that made the record final names its event (`closed_seq`, set by `ledger::change`), so the
/// answer does not depend on how far the record has moved since.
fn closes(record: &AccessRequest, event: &Event) -> bool {
    record.closed_seq == Some(event.seq)
}

/// The bus entries for one ledger event of `record`: its lifecycle event, and `closed` when it
/// is the request's last. An action this version does not know is sent as `other` with the
/// action, never dropped: a consumer counting events must see every one.
pub fn entries(record: &AccessRequest, event: &Event) -> Vec<LifecycleEvent> {
    let name = name_of(&event.action).unwrap_or("other");
    let mut detail = json!({
        "version": DETAIL_VERSION,
        "id": format!("{}:{}", event.request_id, event.seq),
        "event": name,
        "request_id": event.request_id,
        "seq": event.seq,
        "at": event.at,
        "action": event.action,
        "actor": event.actor,
        "from": event.from.map(Status::as_str),
        "to": event.to.as_str(),
        "detail": event.detail,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
    });
    if let (Some(out), Value::Object(facts)) = (detail.as_object_mut(), facts(record)) {
        out.extend(facts);
    }
    let mut out = vec![LifecycleEvent {
        source: SOURCE.to_owned(),
        detail_type: format!("trailgate.{name}"),
        detail,
    }];
    if closes(record, event) {
        let mut closed = json!({
            "version": DETAIL_VERSION,
            "id": format!("{}:closed", event.request_id),
            "event": "closed",
            "request_id": event.request_id,
            "at": event.at,
            "status": event.to.as_str(),
            "events": event.seq,
            "last_event_hash": event.hash,
        });
        if let (Some(out), Value::Object(facts)) = (closed.as_object_mut(), facts(record)) {
            out.extend(facts);
        }
        out.push(LifecycleEvent {
            source: SOURCE.to_owned(),
            detail_type: "trailgate.closed".to_owned(),
            detail: closed,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ledger_fixture;

    #[test]
    fn each_transition_is_one_event_and_the_closing_one_adds_closed_with_the_chain_end() {
        let (mut record, events) = ledger_fixture("audited.json");
        record.closed_seq = Some(events.len() as u64);
        let all: Vec<LifecycleEvent> = events.iter().flat_map(|e| entries(&record, e)).collect();
        let names: Vec<&str> = all
            .iter()
            .map(|e| e.detail["event"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "requested",
                "context_gathered",
                "approval_requested",
                "approved",
                "granted",
                "credentials_issued",
                "credentials_issued",
                "revoked",
                "audited",
                "closed"
            ]
        );
        let closed = &all.last().unwrap().detail;
        assert_eq!(closed["events"], events.len());
        assert_eq!(closed["last_event_hash"], events.last().unwrap().hash);
        assert_eq!(closed["status"], "AUDITED");
        assert_eq!(all[4].detail_type, "trailgate.granted");
        assert_eq!(all[4].detail["role_arn"], record.role_arn);
        assert!(
            all.iter()
                .all(|e| e.source == "trailgate" && e.detail["catalog_id"] == "sandbox-admin")
        );
    }

    #[test]
    fn only_the_event_the_record_names_closes_and_unknown_actions_are_kept() {
        let (mut record, events) = ledger_fixture("audited.json");
        // Not final yet (the audit's second pass is to come): nothing closes.
        assert!(events.iter().all(|e| entries(&record, e).len() == 1));
        // Final at a later event: the events before it do not close, whatever their status.
        record.closed_seq = Some(events.len() as u64 + 1);
        assert!(events.iter().all(|e| entries(&record, e).len() == 1));
        let mut updated = events.last().unwrap().clone();
        updated.seq += 1;
        updated.action = "AuditUpdated".into();
        updated.from = Some(Status::Audited);
        let both = entries(&record, &updated);
        assert_eq!(
            (both[0].detail_type.as_str(), both.len()),
            ("trailgate.audit_updated", 2)
        );
        assert_eq!(both[1].detail["events"], updated.seq);
        let mut odd = updated.clone();
        odd.seq += 1;
        odd.action = "SomethingNew".into();
        let kept = entries(&record, &odd);
        assert_eq!(
            (kept.len(), kept[0].detail["event"].as_str()),
            (1, Some("other"))
        );
        assert_eq!(kept[0].detail["action"], "SomethingNew");
    }
}
