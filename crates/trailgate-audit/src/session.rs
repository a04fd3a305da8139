//! Runs the jit-session-audit runbook for one request over LookupEvents and turns the session's
//! records into the report's `cloudtrail` part.
//!
//! The window runs from the request's creation (no session can be older) to now, which the
//! state machine's Await Trail step has put past the revoke by the CloudTrail delivery delay.
//! Failures do not fail the audit: the report says the calls were not analysed, and why.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use trailgate_domain::findings::session_report;
use trailgate_domain::request::AccessRequest;
use trailgate_domain::time::{format_utc, parse_utc};
use trailgate_runbooks::source::lookup::{LookupBudget, LookupEventsApi, LookupSource, run_lookup};
use trailgate_runbooks::source::recording::Recording;
use trailgate_runbooks::{Params, Runbook};

const RUNBOOK: &str = include_str!("../../../runbooks/jit-session-audit.yaml");

/// Settings read once at cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Regions to query (us-east-1 is always added).
    pub regions: Vec<String>,
    /// Wall-clock limit for the scan.
    pub budget: Duration,
}

/// The `cloudtrail` part of the audit report; never an error.
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
) -> Result<Value, String> {
    let runbook = Runbook::parse(RUNBOOK, "jit-session-audit.yaml")
        .map_err(|error| format!("runbook jit-session-audit: {error}"))?;
    let created = parse_utc(&request.created_at).map_err(|error| error.to_string())?;
    // A clock ahead of ours must not leave an empty window.
    let start = created.min(now - time::Duration::hours(1));
    let params = Params::new()
        .set("requester", &request.requester_identity)
        .set("request_id", &request.id)
        .window(start, now);
    let compiled = runbook
        .compile(&params)
        .map_err(|error| error.to_string())?;
    let budget = LookupBudget {
        max_pages_per_query: u32::MAX,
        deadline: Some(settings.budget),
        ..LookupBudget::default()
    };
    let regions: Vec<&str> = settings.regions.iter().map(String::as_str).collect();
    let source = LookupSource::new(Recording::new(api), &regions).budget(budget);
    let result = run_lookup(&runbook, &params, &source)
        .await
        .map_err(|error| format!("LookupEvents failed: {error}"))?;
    let coverage = &result.coverage;
    if let Some(why) = coverage.nothing_read() {
        return Err(format!("LookupEvents failed: {why}"));
    }
    let session: Vec<Value> = source
        .api()
        .records()
        .into_iter()
        .filter(|record| compiled.matches(record))
        .collect();
    let mut report = session_report(&session, &request.requester_identity);
    if let Some(object) = report.as_object_mut() {
        object.insert("analysed".into(), Value::Bool(true));
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
