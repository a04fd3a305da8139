//! Gathers the reviewer context: one paced LookupEvents scan of the requester's history
//! (`Username` = the requester), then the approval-context runbooks over those records in memory.
//!
//! Fetching once and running every runbook on the same records keeps the call count at one
//! LookupEvents query per Region instead of one per runbook: at 2 calls per second that is the
//! difference between fitting the budget and not.

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;
use trailgate_domain::findings::{self, Coverage, Finding, Level};
use trailgate_domain::request::ContextSummary;
use trailgate_domain::time::format_utc;
use trailgate_runbooks::output::RunbookResult;
use trailgate_runbooks::source::MemorySource;
use trailgate_runbooks::source::lookup::{LookupBudget, LookupEventsApi, LookupSource, run_lookup};
use trailgate_runbooks::source::recording::Recording;
use trailgate_runbooks::{Params, Runbook, Severity, run};

/// How far back the context looks.
pub const LOOKBACK: time::Duration = time::Duration::days(7);

/// The runbook that fetches (its lookup hint is `Username = requester`).
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
    totals.into_iter().take(3).map(|(value, _)| value).collect()
}

/// The finding a runbook result stands for, if it matched anything.
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
            let actions = top_values(result, "eventName");
            what = format!("activity, most frequent: {}", actions.join(", "));
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
    })
}

/// Runs the approval-context runbooks on `requester`'s recent history within the budget.
/// Never fails: every failure becomes an unavailable context that says why.
pub async fn gather<A: LookupEventsApi + Sync>(
    api: &A,
    settings: &Settings,
    requester: &str,
    now: OffsetDateTime,
) -> ContextSummary {
    match try_gather(api, settings, requester, now).await {
        Ok(summary) => summary,
        Err(reason) => findings::unavailable(&reason),
    }
}

async fn try_gather<A: LookupEventsApi + Sync>(
    api: &A,
    settings: &Settings,
    requester: &str,
    now: OffsetDateTime,
) -> Result<ContextSummary, String> {
    let activity = parse(ACTIVITY)?;
    let checks = CHECKS
        .into_iter()
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    let params = Params::new()
        .set("requester", requester)
        .window(now - LOOKBACK, now);
    let check_params = Params::new().window(now - LOOKBACK, now);
    // Leave a little of the budget for the runbooks, the ledger write and the reply.
    let margin = Duration::from_millis(1500).min(settings.budget / 5);
    // Throttle backoff is checked against the deadline only between calls, so it is kept short
    // (0.25 + 0.5 + 1 s at most per call) to stay inside the budget.
    let budget = LookupBudget {
        max_pages_per_query: u32::MAX,
        deadline: Some(settings.budget.saturating_sub(margin)),
        max_retries: 3,
        backoff: Duration::from_millis(250),
        ..LookupBudget::default()
    };
    let recording = Recording::new(api);
    let regions: Vec<&str> = settings.regions.iter().map(String::as_str).collect();
    let source = LookupSource::new(recording, &regions).budget(budget);
    let result = run_lookup(&activity, &params, &source)
        .await
        .map_err(|error| format!("LookupEvents failed: {error}"))?;
    let coverage = &result.coverage;
    let queried = source.regions().to_vec();
    // A scan that read no page at all failed outright: say so rather than "0 events, all clear".
    if let Some(why) = coverage.nothing_read() {
        return Err(format!("LookupEvents failed: {why}"));
    }
    let records = source.api().records();
    let mut found: Vec<Finding> = finding(&result).into_iter().collect();
    for check in &checks {
        let mut memory = MemorySource::new(records.clone());
        // The records are already the requester's: the checks take only the window.
        let checked = run(check, &check_params, &mut memory)
            .map_err(|error| format!("runbook {}: {error}", check.id()))?;
        found.extend(finding(&checked));
    }
    let window = coverage.window;
    Ok(findings::summarise(
        found,
        &Coverage {
            window_start: format_utc(window.start_time()),
            window_end: format_utc(window.end_time()),
            regions: queried,
            events_scanned: coverage.events_scanned,
            truncated: coverage.truncated,
            budget_seconds: settings.budget.as_secs(),
        },
    ))
}
