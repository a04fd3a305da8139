//! trailgate's lifecycle events for an event bus (issue 18, item 2): what a consumer receives
//! for each ledger transition, and the `closed` event that tells it it has everything.
//!
//! One ledger event becomes one lifecycle event, named for what happened (`requested`,
//! `approved`, `granted`, `credentials_issued`, `revoked`, `audited`, ...), with the request's
//! unchanging facts (entry, requester, target) so a rule can match on them. A transition into a
//! final status adds a `closed` event carrying the number of events and the last hash of the
//! chain: a consumer holding events 1 to `events` of the request, ending at that hash, has the
//! whole request. A break-glass request is final only once an approver acknowledged it, so its
//! `closed` follows `acknowledged`, not `audited`.
//!
//! The schema is `schemas/lifecycle-event.schema.json`; `tests/tests/ocsf.rs` checks every event
//! made here against it. The events function (`service::publish_lifecycle`) sends them to
//! EventBridge from the ledger's DynamoDB stream.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ledger::Event;
use crate::request::{AccessRequest, Status};
use crate::service::is_closed;

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

/// Whether `event` is the one after which nothing more is recorded for `record`.
fn closes(record: &AccessRequest, event: &Event) -> bool {
    if record.break_glass && event.to == Status::Audited {
        return event.action == "Acknowledged";
    }
    is_closed(event.to) && event.from != Some(event.to)
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
    fn each_transition_is_one_event_and_the_last_adds_closed_with_the_chain_end() {
        let (record, events) = ledger_fixture("audited.json");
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
    fn break_glass_closes_at_its_acknowledgement_and_unknown_actions_are_kept() {
        let (mut record, events) = ledger_fixture("audited.json");
        record.break_glass = true;
        let audited = events.last().unwrap();
        assert_eq!(
            entries(&record, audited).len(),
            1,
            "closed before the sign-off"
        );
        let mut ack = audited.clone();
        ack.seq += 1;
        ack.action = "Acknowledged".into();
        ack.from = Some(Status::Audited);
        let both = entries(&record, &ack);
        assert_eq!(both.len(), 2);
        assert_eq!(both[1].detail["events"], ack.seq);
        let mut odd = audited.clone();
        odd.action = "SomethingNew".into();
        odd.to = Status::Revoked;
        let kept = entries(&record, &odd);
        assert_eq!(
            (kept.len(), kept[0].detail["event"].as_str()),
            (1, Some("other"))
        );
        assert_eq!(kept[0].detail["action"], "SomethingNew");
    }

    #[test]
    fn a_denial_or_expiry_closes_and_a_partial_approval_does_not() {
        let (record, events) = ledger_fixture("audited.json");
        let mut denied = events[3].clone();
        denied.action = "Denied".into();
        denied.to = Status::Denied;
        assert_eq!(entries(&record, &denied).len(), 2);
        let mut partial = events[3].clone();
        partial.to = Status::Pending;
        assert_eq!(entries(&record, &partial).len(), 1);
        let mut expired = events[3].clone();
        expired.action = "Expired".into();
        expired.to = Status::Expired;
        assert_eq!(entries(&record, &expired)[1].detail["status"], "EXPIRED");
    }
}
