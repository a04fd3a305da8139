//! Gathers the reviewer context: the requester's recent CloudTrail history (fetched most
//! relevant first, see [`crate::scan`]), the approval-context runbooks over those records in
//! memory, Regions and source IPs new in the last day, and the requester's previous trailgate
//! requests from the ledger.
//!
//! Fetching once and running every runbook on the same records keeps the call count near one
//! LookupEvents query per Region instead of one per runbook: at 2 calls per second that is the
//! difference between fitting the budget and not.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;
use trailgate_domain::findings::{self, Coverage, Finding, Level};
use trailgate_domain::ports::Ledger;
use trailgate_domain::request::{AccessRequest, ContextSummary};
use trailgate_domain::time::format_utc;
use trailgate_runbooks::output::RunbookResult;
use trailgate_runbooks::source::MemorySource;
use trailgate_runbooks::source::lookup::{GLOBAL_REGION, LookupEventsApi};
use trailgate_runbooks::{Params, Runbook, Severity, run, timefmt};

use crate::scan::{self, Plan};

/// How far back the context looks.
pub const LOOKBACK: time::Duration = time::Duration::days(7);

/// The runbook that says which records are the requester's, and summarises their activity.
const ACTIVITY: (&str, &str) = (
    "requester-activity.yaml",
    include_str!("../../../runbooks/requester-activity.yaml"),
);

/// The approval-context set, run over the fetched records.
const CHECKS: [(&str, &str); 5] = [
    (
        "access-denied.yaml",
        include_str!("../../../runbooks/access-denied.yaml"),
    ),
    (
        "console-login-failures.yaml",
        include_str!("../../../runbooks/console-login-failures.yaml"),
    ),
    (
        "console-login-without-mfa.yaml",
        include_str!("../../../runbooks/console-login-without-mfa.yaml"),
    ),
    (
        "iam-privilege-escalation.yaml",
        include_str!("../../../runbooks/iam-privilege-escalation.yaml"),
    ),
    (
        "logging-tampering.yaml",
        include_str!("../../../runbooks/logging-tampering.yaml"),
    ),
];

/// Settings read once at cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Regions to query (us-east-1 is always added).
    pub regions: Vec<String>,
    /// Whole budget for the step.
    pub budget: Duration,
}

fn parse((name, text): (&str, &str)) -> Result<Runbook, String> {
    Runbook::parse(text, name).map_err(|error| format!("runbook {name}: {error}"))
}

fn level(severity: Severity) -> Level {
    match severity {
        Severity::Info => Level::Info,
        Severity::Low => Level::Low,
        Severity::Medium => Level::Medium,
        Severity::High => Level::High,
        Severity::Critical => Level::Critical,
    }
}

/// Up to three values of `field` from the result's counts, most frequent first.
fn top_values(result: &RunbookResult, field: &str) -> Vec<String> {
    let Some(counts) = &result.counts else {
        return Vec::new();
    };
    let Some(index) = counts.fields.iter().position(|f| f == field) else {
        return Vec::new();
    };
    let mut totals: Vec<(String, u64)> = Vec::new();
    for group in &counts.groups {
        let Some(value) = group.key.get(index) else {
            continue;
        };
        match totals.iter_mut().find(|(known, _)| known == value) {
            Some((_, count)) => *count += group.count,
            None => totals.push((value.clone(), group.count)),
        }
    }
    totals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    // Values come from records: bounded before they reach a line.
    totals
        .into_iter()
        .take(3)
        .map(|(value, _)| findings::clip(&value, 64))
        .collect()
}

/// The finding a runbook result stands for, if it matched anything (without evidence).
pub fn finding(result: &RunbookResult) -> Option<Finding> {
    let matched = result.coverage.events_matched;
    if matched == 0 {
        return None;
    }
    let names = top_values(result, "eventName");
    let detail = if names.is_empty() {
        String::new()
    } else {
        format!(": {}", names.join(", "))
    };
    let mut level = level(result.severity);
    let mut what = format!("{}{detail}", result.title);
    match result.runbook.as_str() {
        "requester-activity" => {
            what = format!("activity, most frequent: {}", names.join(", "));
        }
        "access-denied" => {
            // Many distinct denied actions is probing; a few denials are everyday friction.
            let distinct: HashSet<&str> = result
                .counts
                .iter()
                .flat_map(|c| {
                    let index = c.fields.iter().position(|f| f == "eventName");
                    c.groups
                        .iter()
                        .filter_map(move |g| index.and_then(|i| g.key.get(i)))
                })
                .map(String::as_str)
                .collect();
            level = if distinct.len() > 10 {
                Level::High
            } else if matched >= 5 {
                Level::Medium
            } else {
                Level::Low
            };
            what = format!(
                "denied calls on {} distinct actions{detail}",
                distinct.len()
            );
        }
        _ => {}
    }
    Some(Finding {
        level,
        what,
        count: matched,
        evidence: Vec::new(),
    })
}

/// How recent "new" is for Regions and source IPs: the last day against the rest of the window.
pub const RECENT: time::Duration = time::Duration::hours(24);

/// Gathers the reviewer context for `request` within the budget. Never fails: every failure
/// becomes an unavailable context that says why.
pub async fn gather<A: LookupEventsApi + Sync, L: Ledger>(
    api: &A,
    ledger: &L,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> ContextSummary {
    match try_gather(api, ledger, settings, request, now).await {
        Ok(summary) => summary,
        Err(reason) => findings::unavailable(&reason),
    }
}

/// The Regions queried: the configured ones, then us-east-1 (where global events land).
pub fn regions(settings: &Settings) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    for region in settings
        .regions
        .iter()
        .map(String::as_str)
        .chain([GLOBAL_REGION])
    {
        if !list.iter().any(|known| known == region) {
            list.push(region.to_owned());
        }
    }
    list
}

async fn try_gather<A: LookupEventsApi + Sync, L: Ledger>(
    api: &A,
    ledger: &L,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Result<ContextSummary, String> {
    let started = Instant::now();
    let activity = parse(ACTIVITY)?;
    let checks = CHECKS
        .into_iter()
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    let requester = request.requester_identity.as_str();
    let (start, end) = (now - LOOKBACK, now);
    let params = Params::new().set("requester", requester).window(start, end);
    let check_params = Params::new().window(start, end);
    let compiled_activity = activity
        .compile(&params)
        .map_err(|error| format!("runbook requester-activity: {error}"))?;

    // The ledger first: one query, and a failure is a finding, not a lost context.
    let mut found: Vec<Finding> = match ledger
        .by_requester(
            &request.requester,
            findings::MAX_PREVIOUS_REQUESTS + 1,
            None,
        )
        .await
    {
        Ok(page) => findings::previous_requests(&page.requests, &request.id),
        Err(error) => vec![Finding {
            level: Level::Low,
            what: format!("previous trailgate requests could not be read: {error}"),
            count: 0,
            evidence: Vec::new(),
        }],
    };

    // Leave a little of the budget for the runbooks, the ledger write and the reply.
    let margin = Duration::from_millis(1500).min(settings.budget / 5);
    let deadline = started + settings.budget.saturating_sub(margin);
    let queried = regions(settings);
    let is_requester = |record: &Value| compiled_activity.matches(record);
    let plan = Plan {
        regions: &queried,
        requester,
        start,
        end,
        is_requester: &is_requester,
    };
    let fetched = scan::fetch(api, &plan, started, deadline)
        .await
        .map_err(|why| format!("LookupEvents failed: {why}"))?;
    let records = fetched.records;

    let mut memory = MemorySource::new(records.clone());
    let summary = run(&activity, &params, &mut memory)
        .map_err(|error| format!("runbook requester-activity: {error}"))?;
    if let Some(mut finding) = finding(&summary) {
        finding.evidence = evidence(&compiled_activity, &records);
        found.push(finding);
    }
    for check in &checks {
        let mut memory = MemorySource::new(records.clone());
        // The records are already the requester's: the checks take only the window.
        let checked = run(check, &check_params, &mut memory)
            .map_err(|error| format!("runbook {}: {error}", check.id()))?;
        if let Some(mut finding) = finding(&checked) {
            let compiled = check
                .compile(&check_params)
                .map_err(|error| format!("runbook {}: {error}", check.id()))?;
            finding.evidence = evidence(&compiled, &records);
            found.push(finding);
        }
    }
    found.extend(findings::new_origins(&records, now - RECENT));

    let truncated = !fetched.complete;
    for note in &fetched.notes {
        tracing::info!(note = %note, "context scan");
    }
    Ok(findings::summarise(
        found,
        &Coverage {
            window_start: format_utc(start),
            window_end: format_utc(end),
            regions: queried,
            events_scanned: summary.coverage.events_scanned,
            truncated,
            budget_seconds: settings.budget.as_secs(),
            looked_up_first: if truncated {
                fetched.looked_up_first
            } else {
                Vec::new()
            },
            looked_up_in_part: if truncated {
                fetched.looked_up_in_part
            } else {
                Vec::new()
            },
        },
    ))
}

/// The newest records in the window that `compiled` matches, as evidence.
fn evidence(
    compiled: &trailgate_runbooks::Compiled<'_>,
    records: &[Value],
) -> Vec<findings::Evidence> {
    let window = compiled.window();
    findings::newest_evidence(records.iter().filter(|record| {
        let at = record
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(timefmt::parse_event_time);
        at.is_some_and(|at| window.contains(at)) && compiled.matches(record)
    }))
}
