//! `jitctl export --format ocsf` against OCSF's own schema, offline: every kind of ledger event
//! trailgate writes, mapped by `trailgate_domain::ocsf`, must validate against the pinned OCSF
//! 1.8.0 schema (class 3005 User Access Management and 3002 Authentication, cloud profile); and
//! an event the schema forbids must fail, so the check is known to bite. The exported events
//! of a real run are checked the same way in `tamper.rs`. The lifecycle events for the event
//! bus (`trailgate_domain::lifecycle`) are checked the same way against their published schema,
//! `schemas/lifecycle-event.schema.json`.

use anyhow::{Result, ensure};
use serde_json::Value;
use trailgate_domain::ledger::Event;
use trailgate_domain::lifecycle;
use trailgate_domain::ocsf;
use trailgate_domain::request::{Assignment, Status};
use trailgate_domain::testing::ledger_fixture;
use trailgate_system_tests::ocsf::{
    VERSION, require_valid, require_valid_against, validate, validate_against,
};

fn write(name: &str, events: &[Value]) -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("trailgate-ocsf-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    let text: String = events
        .iter()
        .map(|event| serde_json::to_string(event).map(|line| line + "\n"))
        .collect::<Result<_, _>>()?;
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Every action the ledger records, as events shaped like `base` (a real run's).
fn every_action(base: &Event) -> Vec<Event> {
    let actions: [(&str, Option<Status>, Status, Option<&str>); 17] = [
        ("Requested", None, Status::Pending, None),
        (
            "WorkflowStartFailed",
            Some(Status::Pending),
            Status::Pending,
            Some("states:StartExecution throttled"),
        ),
        (
            "ContextGathered",
            Some(Status::Pending),
            Status::Pending,
            Some("3 warnings"),
        ),
        (
            "ApprovalRequested",
            Some(Status::Pending),
            Status::Pending,
            Some("notifying bob, carol"),
        ),
        ("Approved", Some(Status::Pending), Status::Pending, None),
        ("Denied", Some(Status::Pending), Status::Denied, None),
        ("Expired", Some(Status::Pending), Status::Expired, None),
        ("Cancelled", Some(Status::Pending), Status::Cancelled, None),
        (
            "BreakGlassActivated",
            Some(Status::Pending),
            Status::Approved,
            Some("break-glass"),
        ),
        (
            "Activated",
            Some(Status::Approved),
            Status::Active,
            Some("until 2026-12-07T10:35:24Z"),
        ),
        (
            "CredentialsIssued",
            Some(Status::Active),
            Status::Active,
            Some("session tg-alice-x for 900s"),
        ),
        (
            "Revoked",
            Some(Status::Active),
            Status::Revoked,
            Some("expired"),
        ),
        (
            "Revoked",
            Some(Status::Approved),
            Status::Revoked,
            Some("failed"),
        ),
        (
            "Revoked",
            Some(Status::Active),
            Status::Revoked,
            Some("early"),
        ),
        ("Audited", Some(Status::Revoked), Status::Audited, None),
        (
            "AuditUpdated",
            Some(Status::Audited),
            Status::Audited,
            Some("nothing new since the first pass"),
        ),
        (
            "Acknowledged",
            Some(Status::Audited),
            Status::Audited,
            Some("checked the session"),
        ),
    ];
    actions
        .iter()
        .enumerate()
        .map(|(index, (action, from, to, detail))| {
            let mut event = base.clone();
            event.seq = index as u64 + 1;
            event.action = (*action).into();
            event.from = *from;
            event.to = *to;
            event.detail = detail.map(str::to_owned);
            if *action == "Denied" {
                event.actor = "approver:carol".into();
                event.source_ip = Some("198.51.100.7".into());
                event.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64)".into());
            }
            event
        })
        .collect()
}

#[test]
fn every_ledger_event_validates_against_the_ocsf_schema() -> Result<()> {
    let (record, events) = ledger_fixture("audited.json");
    let mut all = ocsf::events(&record, &events, "0.1.0")?;
    all.extend(ocsf::events(&record, &every_action(&events[3]), "0.1.0")?);

    // The same actions on a permission-set request of an Identity Center user.
    let mut set = record.clone();
    set.role_arn = String::new();
    set.assignment = Some(Assignment {
        instance_arn: "arn:aws:sso:::instance/ssoins-1234567890abcdef".into(),
        permission_set_arn:
            "arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/ps-1234567890abcdef".into(),
        account: "210987654321".into(),
        user_id: "90676b2d0a-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901".into(),
    });
    set.permission_set_name = Some("ProdAccess".into());
    set.requester =
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b2c3d/alice@example.com"
            .into();
    let set_events = every_action(&events[3]);
    let mapped = ocsf::events(&set, &set_events, "0.1.0")?;
    ensure!(
        mapped
            .iter()
            .all(|e| e["cloud"]["account"]["uid"] == "210987654321"),
        "{mapped:?}"
    );
    all.extend(mapped);

    let path = write("every-action.ndjson", &all)?;
    let summary = require_valid(&path)?;
    ensure!(summary["lines"] == all.len(), "{summary}");
    ensure!(
        summary["classes"] == serde_json::json!([3002, 3005]),
        "{summary}"
    );
    Ok(())
}

#[test]
fn an_event_the_schema_forbids_fails_the_check() -> Result<()> {
    let (record, events) = ledger_fixture("audited.json");
    let good = ocsf::events(&record, &events, "0.1.0")?;
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut wrong_activity = good[4].clone();
    wrong_activity["activity_id"] = 7.into();
    cases.push(("activity_id", wrong_activity));
    let mut no_privileges = good[4].clone();
    no_privileges.as_object_mut().unwrap().remove("privileges");
    cases.push(("privileges", no_privileges));
    let mut unknown_field = good[0].clone();
    unknown_field["request_id"] = record.id.clone().into();
    cases.push(("request_id", unknown_field));
    let mut string_time = good[0].clone();
    string_time["time"] = events[0].at.clone().into();
    cases.push(("time", string_time));
    for (what, event) in cases {
        let path = write(&format!("bad-{what}.ndjson"), &[event])?;
        let (summary, printed) = validate(&path)?;
        ensure!(
            summary["failures"].as_u64().unwrap_or(0) > 0,
            "{what}: passed: {printed}"
        );
        ensure!(printed.contains(what), "{what}: {printed}");
    }
    ensure!(VERSION == ocsf::OCSF_VERSION);
    Ok(())
}

fn lifecycle_schema() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/lifecycle-event.schema.json")
}

#[test]
fn every_lifecycle_event_validates_against_its_published_schema() -> Result<()> {
    let (record, events) = ledger_fixture("audited.json");
    let mut details: Vec<Value> = Vec::new();
    for (break_glass, event) in events
        .iter()
        .map(|event| (false, event.clone()))
        .chain(
            every_action(&events[3])
                .into_iter()
                .map(|event| (false, event)),
        )
        .chain(
            every_action(&events[3])
                .into_iter()
                .map(|event| (true, event)),
        )
    {
        // Each event that can make a request final, as the record of a request it made final.
        let mut owner = record.clone();
        owner.break_glass = break_glass;
        if matches!(
            event.action.as_str(),
            "Denied" | "Expired" | "Cancelled" | "AuditUpdated" | "Acknowledged"
        ) {
            owner.closed_seq = Some(event.seq);
        }
        details.extend(
            lifecycle::entries(&owner, &event)
                .into_iter()
                .map(|entry| entry.detail),
        );
    }
    ensure!(
        details.iter().filter(|d| d["event"] == "closed").count() == 10,
        "too few closed events"
    );
    let path = write("lifecycle.ndjson", &details)?;
    let summary = require_valid_against(&lifecycle_schema(), &path)?;
    ensure!(summary["lines"] == details.len(), "{summary}");

    // The schema bites: an unknown field, a closed event without its count, a bad status.
    let mut extra = details[0].clone();
    extra["reason"] = "not published".into();
    let mut uncounted = details
        .iter()
        .find(|d| d["event"] == "closed")
        .cloned()
        .unwrap_or_default();
    uncounted.as_object_mut().map(|o| o.remove("events"));
    let mut status = details[1].clone();
    status["to"] = "GRANTED".into();
    for (what, bad) in [
        ("extra", extra),
        ("uncounted", uncounted),
        ("status", status),
    ] {
        let path = write(&format!("lifecycle-bad-{what}.ndjson"), &[bad])?;
        let (summary, printed) = validate_against(&lifecycle_schema(), &path)?;
        ensure!(
            summary["failures"].as_u64().unwrap_or(0) > 0,
            "{what} passed: {printed}"
        );
    }
    Ok(())
}
