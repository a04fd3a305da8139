//! The ledger's events as OCSF 1.8.0 events, for a SIEM (`jitctl export --format ocsf`).
//!
//! One ledger event becomes one OCSF event, so a consumer can count them against the chain:
//! `metadata.uid` is `<request id>:<seq>`, `metadata.correlation_uid` the request id and
//! `metadata.sequence` the event's place in the request's chain.
//!
//! The classes (Identity & Access Management, category 3):
//! - **User Access Management (3005)** for what changes a user's access: `Activated` is
//!   *Assign Privileges* (1), `Revoked` *Revoke Privileges* (2); the request's other steps
//!   (requested, context, approval asked, approved, denied, expired, cancelled, break-glass,
//!   audited, acknowledged) are *Other* (99) with the ledger's action as `activity_name`, since
//!   OCSF has no access-request class. `privileges` is what the request is for: the role ARN,
//!   or the permission set ARN.
//! - **Authentication (3002)** for `CredentialsIssued`: trailgate vended an STS session, a
//!   credential issued on an earlier authentication, which OCSF calls *Authentication Ticket*
//!   (3); `session` carries the STS session name and its expiry bound.
//!
//! Account Change (3001) does not fit anything trailgate records: it never creates, enables or
//! changes accounts or users; its deny statements change a role's policy, which the revoke's
//! class already says.
//!
//! `user` is always the requester (whose access it is), `actor` whoever did the step (a
//! principal ARN, an approver, or a trailgate function), and `unmapped.trailgate` keeps what OCSF
//! has no field for (the statuses, the chain hashes), so nothing of the event is lost.
//! The mapping is checked against the OCSF 1.8.0 JSON schema in `tests/tests/ocsf.rs`.

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::ledger::Event;
use crate::request::{AccessRequest, Status};
use crate::time::parse_utc;

/// The OCSF schema version the events follow.
pub const OCSF_VERSION: &str = "1.8.0";
/// Identity & Access Management.
const CATEGORY_IAM: u64 = 3;
/// User Access Management.
pub const CLASS_USER_ACCESS: u64 = 3005;
/// Authentication.
pub const CLASS_AUTHENTICATION: u64 = 3002;

const SEVERITY_INFORMATIONAL: u64 = 1;
const SEVERITY_MEDIUM: u64 = 3;
const SEVERITY_HIGH: u64 = 4;

/// The class, activity and severity of a ledger action.
fn classify(event: &Event) -> (u64, u64, &'static str, u64) {
    let severity = match event.action.as_str() {
        // Nobody approved a break-glass grant beforehand: a SIEM should raise it.
        "BreakGlassActivated" => SEVERITY_HIGH,
        "WorkflowStartFailed" => SEVERITY_MEDIUM,
        "Revoked" if event.detail.as_deref() == Some("failed") => SEVERITY_MEDIUM,
        _ => SEVERITY_INFORMATIONAL,
    };
    match event.action.as_str() {
        "Activated" => (CLASS_USER_ACCESS, 1, "Assign Privileges", severity),
        "Revoked" => (CLASS_USER_ACCESS, 2, "Revoke Privileges", severity),
        "CredentialsIssued" => (CLASS_AUTHENTICATION, 3, "Authentication Ticket", severity),
        _ => (CLASS_USER_ACCESS, 99, "Other", severity),
    }
}

/// The OCSF event of one ledger event of `record`. `product_version` is trailgate's version.
pub fn event(record: &AccessRequest, event: &Event, product_version: &str) -> Result<Value> {
    if event.request_id != record.id {
        return Err(Error::internal(format!(
            "event {} belongs to {}, not to {}",
            event.seq, event.request_id, record.id
        )));
    }
    let at = parse_utc(&event.at)?;
    let time_ms = at.unix_timestamp_nanos() / 1_000_000;
    let (class_uid, activity_id, activity_caption, severity_id) = classify(event);
    let class_name = if class_uid == CLASS_AUTHENTICATION {
        "Authentication"
    } else {
        "User Access Management"
    };
    let activity_name = if activity_id == 99 {
        event.action.clone()
    } else {
        activity_caption.to_owned()
    };
    let account = record.target_account().to_owned();
    let mut out = json!({
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": CATEGORY_IAM,
        "category_name": "Identity & Access Management",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": format!("{class_name}: {activity_name}"),
        "time": i64::try_from(time_ms).unwrap_or(i64::MAX),
        "severity_id": severity_id,
        "severity": severity_name(severity_id),
        "status_id": 1,
        "status": "Success",
        "message": message(record, event),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "trailgate", "vendor_name": "trailgate", "version": product_version},
            "uid": format!("{}:{}", record.id, event.seq),
            "correlation_uid": record.id,
            "sequence": event.seq,
            "event_code": event.action,
            "log_name": "trailgate-ledger",
            "original_time": event.at,
        },
        "cloud": {"provider": "AWS", "account": {"uid": account, "type_id": 10, "type": "AWS Account"}},
        "user": requester(record),
        "actor": actor(&event.actor),
        "unmapped": {"trailgate": {
            "request_id": record.id,
            "catalog_id": record.catalog_id,
            "action": event.action,
            "from": event.from.map(Status::as_str),
            "to": event.to.as_str(),
            "detail": event.detail,
            "chain_version": event.version,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
        }},
    });
    let object = out.as_object_mut().expect("a JSON object");
    if class_uid == CLASS_USER_ACCESS {
        object.insert("privileges".into(), json!([target(record)]));
        object.insert("resources".into(), json!([resource(record)]));
    } else {
        object.insert("session".into(), session(record, event));
        object.insert("service".into(), json!({"name": "sts.amazonaws.com"}));
    }
    if let Some(ip) = &event.source_ip {
        object.insert("src_endpoint".into(), json!({"ip": ip}));
    }
    if let Some(agent) = &event.user_agent {
        object.insert("http_request".into(), json!({"user_agent": agent}));
    }
    Ok(out)
}

/// Every event of `record`, in order.
pub fn events(
    record: &AccessRequest,
    events: &[Event],
    product_version: &str,
) -> Result<Vec<Value>> {
    events
        .iter()
        .map(|one| event(record, one, product_version))
        .collect()
}

fn severity_name(id: u64) -> &'static str {
    match id {
        SEVERITY_HIGH => "High",
        SEVERITY_MEDIUM => "Medium",
        _ => "Informational",
    }
}

/// What the request grants: the role ARN, or the permission set ARN.
fn target(record: &AccessRequest) -> String {
    match &record.assignment {
        Some(assignment) => assignment.permission_set_arn.clone(),
        None => record.role_arn.clone(),
    }
}

fn resource(record: &AccessRequest) -> Value {
    match &record.assignment {
        Some(assignment) => json!({
            "uid": assignment.permission_set_arn,
            "name": record.permission_set_name.clone().unwrap_or_default(),
            "type": "AWS::SSO::PermissionSet",
            "owner": {"account": {"uid": assignment.account, "type_id": 10, "type": "AWS Account"}},
        }),
        None => json!({
            "uid": record.role_arn,
            "name": crate::catalog::role_name(&record.role_arn).unwrap_or_default(),
            "type": "AWS::IAM::Role",
            "owner": {"account": {"uid": record.target_account(), "type_id": 10, "type": "AWS Account"}},
        }),
    }
}

/// The requester, whose access every event is about.
fn requester(record: &AccessRequest) -> Value {
    let mut user = Map::new();
    user.insert("uid".into(), json!(record.requester));
    user.insert("name".into(), json!(record.requester_identity));
    if let Some(principal) = &record.requester_principal_id {
        user.insert("uid_alt".into(), json!(principal));
    }
    if !record.requester_person.is_empty() {
        user.insert("display_name".into(), json!(record.requester_person));
    }
    if let Some(account) = arn_account(&record.requester) {
        user.insert(
            "account".into(),
            json!({"uid": account, "type_id": 10, "type": "AWS Account"}),
        );
    }
    if let Some(assignment) = &record.assignment {
        // The Identity Center user the grant is for, as the identity store names it.
        user.insert("uid_alt".into(), json!(assignment.user_id));
    }
    Value::Object(user)
}

/// The account of a principal ARN (`arn:aws:iam::<account>:user/alice`), if it names one.
fn arn_account(arn: &str) -> Option<&str> {
    let account = arn.strip_prefix("arn:")?.split(':').nth(3)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// Who did the step: a principal ARN, an approver (`approver:<id>`), or a trailgate function
/// (`trailgate:<step>`, or the reconciler).
fn actor(actor: &str) -> Value {
    if actor.starts_with("arn:") {
        json!({"user": {"uid": actor, "name": actor.rsplit('/').next().unwrap_or(actor)}})
    } else if let Some(approver) = actor.strip_prefix("approver:") {
        json!({"user": {"uid": actor, "name": approver}})
    } else {
        json!({"app_name": actor})
    }
}

/// The STS session of a `CredentialsIssued` event, from its detail (`session <name> for <n>s`).
fn session(record: &AccessRequest, event: &Event) -> Value {
    let mut session = Map::new();
    let detail = event.detail.as_deref().unwrap_or_default();
    if let Some(name) = detail
        .strip_prefix("session ")
        .and_then(|rest| rest.split_whitespace().next())
    {
        session.insert("uid".into(), json!(name));
    }
    session.insert("issuer".into(), json!("sts.amazonaws.com"));
    if let Some(expires) = record
        .expires_at
        .as_deref()
        .and_then(|at| parse_utc(at).ok())
    {
        // The session policy denies everything past the grant's end, whatever STS's expiry.
        let ms = expires.unix_timestamp_nanos() / 1_000_000;
        session.insert(
            "expiration_time".into(),
            json!(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
    }
    Value::Object(session)
}

fn message(record: &AccessRequest, event: &Event) -> String {
    let who = event.actor.as_str();
    let what = record.target_label();
    match event.action.as_str() {
        "Requested" => format!("{who} asked for {what} ({})", record.catalog_id),
        "Approved" => format!("{who} approved {}", record.id),
        "Denied" => format!("{who} denied {}", record.id),
        "Activated" => format!("{what} granted to {}", record.requester),
        "Revoked" => format!(
            "{what} revoked from {} ({})",
            record.requester,
            event.detail.as_deref().unwrap_or("revoked")
        ),
        "CredentialsIssued" => format!("credentials issued to {} for {what}", record.requester),
        other => match &event.detail {
            Some(detail) => format!("{other}: {detail}"),
            None => format!("{other} ({} to {})", record.id, event.to),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ledger_fixture;

    #[test]
    fn each_ledger_event_is_one_ocsf_event_in_the_class_its_action_belongs_to() {
        let (record, events) = ledger_fixture("audited.json");
        let out = super::events(&record, &events, "0.1.0").unwrap();
        assert_eq!(out.len(), events.len());
        let of = |action: &str| -> Vec<&Value> {
            out.iter()
                .filter(|e| e["metadata"]["event_code"] == action)
                .collect()
        };
        let granted = of("Activated")[0];
        assert_eq!(granted["class_uid"], 3005);
        assert_eq!(granted["type_uid"], 300501);
        assert_eq!(granted["privileges"], json!([record.role_arn]));
        let revoked = of("Revoked")[0];
        assert_eq!(
            (
                revoked["activity_id"].as_u64(),
                revoked["type_uid"].as_u64()
            ),
            (Some(2), Some(300502))
        );
        let issued = of("CredentialsIssued");
        assert_eq!(issued.len(), 2);
        assert_eq!(issued[0]["class_uid"], 3002);
        assert_eq!(
            issued[0]["session"]["uid"],
            format!("tg-alice-{}", record.id)
        );
        let approved = of("Approved")[0];
        assert_eq!(
            (
                approved["activity_id"].as_u64(),
                approved["activity_name"].as_str()
            ),
            (Some(99), Some("Approved"))
        );
        assert_eq!(approved["actor"]["user"]["name"], "bob");
        assert_eq!(approved["src_endpoint"]["ip"], "127.0.0.1");
        for (one, source) in out.iter().zip(&events) {
            assert_eq!(
                one["metadata"]["uid"],
                format!("{}:{}", record.id, source.seq)
            );
            assert_eq!(one["user"]["uid"], record.requester);
            assert_eq!(one["unmapped"]["trailgate"]["hash"], source.hash);
            assert_eq!(one["cloud"]["account"]["uid"], "123456789012");
        }
        assert_eq!(of("Requested")[0]["actor"]["user"]["uid"], record.requester);
        assert_eq!(of("Audited")[0]["actor"]["app_name"], "trailgate:audit");
    }

    #[test]
    fn break_glass_is_high_and_an_event_of_another_request_is_refused() {
        let (record, mut events) = ledger_fixture("audited.json");
        events[3].action = "BreakGlassActivated".into();
        let raised = event(&record, &events[3], "0.1.0").unwrap();
        assert_eq!(
            (raised["severity_id"].as_u64(), raised["severity"].as_str()),
            (Some(4), Some("High"))
        );
        events[0].request_id = "r-other".into();
        let err = event(&record, &events[0], "0.1.0").unwrap_err();
        assert!(err.to_string().contains("r-other"), "{err}");
    }
}
