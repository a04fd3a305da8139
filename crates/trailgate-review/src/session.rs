//! The end-of-session audit: runs the jit-session-audit runbook for one request over
//! LookupEvents and turns the session's records into the report's `cloudtrail` part (see
//! [`crate::report`]), with the incident runbooks' findings over the same records.
//!
//! The window runs from the request's creation (no session can be older) to now, which the
//! state machine's Await Trail step has put past the revoke by the CloudTrail delivery delay.
//! Failures do not fail the audit: the report says the calls were not analysed, and why.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use trailgate_domain::request::AccessRequest;
use trailgate_domain::time::{format_utc, parse_utc};
use trailgate_runbooks::source::MemorySource;
use trailgate_runbooks::source::lookup::{
    AccountLookups, LookupBudget, LookupEventsApi, LookupSource, run_lookup,
};
use trailgate_runbooks::source::recording::Recording;
use trailgate_runbooks::{Params, Runbook, run};

use crate::error::ReviewError;
use crate::gather::accounts_to_read;
use crate::report::session_report;

const RUNBOOK: &str = include_str!("../../../runbooks/jit-session-audit.yaml");

/// The incident runbooks every session's records are checked against: what an approver would
/// want to hear about even if the session was meant to do it.
const INCIDENT_RUNBOOKS: [(&str, &str); 10] = [
    (
        "logging-tampering.yaml",
        include_str!("../../../runbooks/logging-tampering.yaml"),
    ),
    (
        "iam-privilege-escalation.yaml",
        include_str!("../../../runbooks/iam-privilege-escalation.yaml"),
    ),
    (
        "iam-credential-persistence.yaml",
        include_str!("../../../runbooks/iam-credential-persistence.yaml"),
    ),
    (
        "iam-backdoor-other-user.yaml",
        include_str!("../../../runbooks/iam-backdoor-other-user.yaml"),
    ),
    (
        "federation-changes.yaml",
        include_str!("../../../runbooks/federation-changes.yaml"),
    ),
    (
        "sharing-exfiltration.yaml",
        include_str!("../../../runbooks/sharing-exfiltration.yaml"),
    ),
    (
        "network-exposure.yaml",
        include_str!("../../../runbooks/network-exposure.yaml"),
    ),
    (
        "destructive-activity.yaml",
        include_str!("../../../runbooks/destructive-activity.yaml"),
    ),
    (
        "bucket-policy-exposure.yaml",
        include_str!("../../../runbooks/bucket-policy-exposure.yaml"),
    ),
    (
        "account-changes.yaml",
        include_str!("../../../runbooks/account-changes.yaml"),
    ),
];

/// Settings read once at cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Regions to query (us-east-1 is always added).
    pub regions: Vec<String>,
    /// Wall-clock limit for the scan.
    pub budget: Duration,
}

/// The `cloudtrail` part of the audit report, read where the session acted: the target role's
/// account (through its agent role when that is a member account), which the report names.
/// Never an error.
pub async fn audit_session<P: AccountLookups + Sync>(
    lookups: &P,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Value {
    let target = accounts_to_read(request, lookups.home_account())
        .into_iter()
        .next()
        .map(|(account, _)| account)
        .unwrap_or_default();
    let mut report = match lookups.in_account(&target).await {
        Ok(api) => analyse(&api, settings, request, now).await,
        Err(why) => json!({
            "analysed": false,
            "reason": format!(
                "the session's API calls were not analysed: account {target} could not be read: {why}"
            ),
        }),
    };
    if let Some(object) = report.as_object_mut() {
        object.insert("account".into(), Value::String(target));
    }
    report
}

/// The `cloudtrail` part of the audit report from one account's LookupEvents; never an error.
pub async fn analyse<A: LookupEventsApi + Sync>(
    api: &A,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Value {
    match try_analyse(api, settings, request, now).await {
        Ok(report) => report,
        Err(reason) => json!({
            "analysed": false,
            "reason": format!("the session's API calls were not analysed: {reason}"),
        }),
    }
}

async fn try_analyse<A: LookupEventsApi + Sync>(
    api: &A,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Result<Value, ReviewError> {
    let runbook =
        Runbook::parse(RUNBOOK, "jit-session-audit.yaml").map_err(|source| ReviewError::Load {
            runbook: "jit-session-audit".into(),
            source,
        })?;
    let created = parse_utc(&request.created_at).map_err(ReviewError::CreatedAt)?;
    // A clock ahead of ours must not leave an empty window.
    let start = created.min(now - time::Duration::hours(1));
    let params = Params::new()
        .set("requester", &request.requester_identity)
        .set("request_id", &request.id)
        .window(start, now);
    let compiled = runbook.compile(&params).map_err(ReviewError::Window)?;
    let budget = LookupBudget {
        max_pages_per_query: u32::MAX,
        deadline: Some(settings.budget),
        ..LookupBudget::default()
    };
    let regions: Vec<&str> = settings.regions.iter().map(String::as_str).collect();
    let source = LookupSource::new(Recording::new(api), &regions).budget(budget);
    let result = run_lookup(&runbook, &params, &source)
        .await
        .map_err(ReviewError::LookupRun)?;
    let coverage = &result.coverage;
    if let Some(why) = coverage.nothing_read() {
        return Err(ReviewError::NothingRead(why));
    }
    let session: Vec<Value> = source
        .api()
        .records()
        .into_iter()
        .filter(|record| compiled.matches(record))
        .collect();
    let mut report = session_report(&session, &request.requester_identity);
    let incidents = incident_findings(&session, start, now)?;
    if let Some(object) = report.as_object_mut() {
        object.insert("analysed".into(), Value::Bool(true));
        object.insert("incident_findings".into(), json!(incidents));
        object.insert(
            "coverage".into(),
            json!({
                "window_start": format_utc(coverage.window.start_time()),
                "window_end": format_utc(coverage.window.end_time()),
                "regions": source.regions(),
                "events_scanned": coverage.events_scanned,
                "truncated": coverage.truncated,
                "notes": coverage.notes,
            }),
        );
    }
    Ok(report)
}

/// Runs the incident runbooks over the session's records (already in memory): one line per
/// runbook that matched, e.g. `high: Logging and monitoring tampering (2 events)`, most severe
/// first.
fn incident_findings(
    session: &[Value],
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> Result<Vec<String>, ReviewError> {
    let params = Params::new().window(start, end);
    let mut found = Vec::new();
    for (name, text) in INCIDENT_RUNBOOKS {
        let runbook = Runbook::parse(text, name).map_err(|source| ReviewError::Load {
            runbook: name.to_owned(),
            source,
        })?;
        let result =
            run(&runbook, &params, &mut MemorySource::new(session.to_vec())).map_err(|source| {
                ReviewError::Run {
                    runbook: name.to_owned(),
                    source,
                }
            })?;
        let matched = result.coverage.events_matched;
        if matched > 0 {
            found.push((result.severity, result.title, matched));
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(b.2.cmp(&a.2)));
    Ok(found
        .into_iter()
        .map(|(severity, title, count)| format!("{severity}: {title} ({count} events)"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_incident_runbook_runs_without_parameters_and_finds_its_events() {
        let now = time::OffsetDateTime::now_utc();
        let at = format_utc(now - time::Duration::minutes(5));
        let record = |name: &str, source: &str| json!({"eventTime": at, "eventName": name, "eventSource": source, "userIdentity": {"type": "AssumedRole"}});
        let session = vec![
            record("StopLogging", "cloudtrail.amazonaws.com"),
            record("DeleteTrail", "cloudtrail.amazonaws.com"),
            record("AttachRolePolicy", "iam.amazonaws.com"),
            record("GetObject", "s3.amazonaws.com"),
        ];
        let found = incident_findings(&session, now - time::Duration::hours(1), now).unwrap();
        assert!(
            found
                .iter()
                .any(|line| line.contains("Logging and monitoring tampering (2 events)")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|line| line.contains("(1 events)")),
            "{found:?}"
        );
        // Reads only: nothing to report.
        let quiet = incident_findings(&session[3..], now - time::Duration::hours(1), now).unwrap();
        assert!(quiet.is_empty(), "{quiet:?}");
    }
}
