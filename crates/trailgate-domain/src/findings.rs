//! Reviewer context and session reports as findings, not dumps: ranking warnings with their
//! evidence, stating coverage plainly, spotting Regions and source IPs new to the requester,
//! summarising their previous trailgate requests, bounding what is stored, and suggesting a
//! least-privilege policy from the actions a session used.
//!
//! Pure logic: the context and audit functions turn runbook results and records into
//! [`Finding`]s and action counts; everything a reviewer reads is shaped (and bounded) here so it
//! is tested without AWS.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::request::{AccessRequest, ContextSummary, Status};

/// How much a finding matters, lowest first (so `Ord` ranks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Context, not a warning.
    Info,
    /// Worth a look.
    Low,
    /// Needs review.
    Medium,
    /// Likely dangerous.
    High,
    /// Act now.
    Critical,
}

impl Level {
    /// Upper-case label used in the e-mail and on the confirm page.
    pub fn label(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Low => "LOW",
            Level::Medium => "MEDIUM",
            Level::High => "HIGH",
            Level::Critical => "CRITICAL",
        }
    }
}

/// One thing a reviewer should know: severity, what, how many events, and a few of the events
/// themselves (newest first) so the reviewer can check the claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub count: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

/// One CloudTrail event behind a finding, cut to the fields a reviewer checks. Every field is
/// bounded (see [`Evidence::from_record`]) because records can carry anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub event_time: String,
    pub event_name: String,
    pub event_source: String,
    pub aws_region: String,
    pub source_ip: String,
    /// `errorCode: errorMessage`, when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub event_id: String,
}

/// Most characters kept of each evidence field except the error.
const MAX_FIELD_CHARS: usize = 128;
/// Most characters kept of an evidence item's error.
const MAX_ERROR_CHARS: usize = 200;

impl Evidence {
    /// The evidence of one CloudTrail record; missing fields are empty.
    pub fn from_record(record: &Value) -> Evidence {
        let field = |name: &str, max: usize| {
            record
                .get(name)
                .and_then(Value::as_str)
                .map(|text| clip(text, max))
                .unwrap_or_default()
        };
        let code = record.get("errorCode").and_then(Value::as_str);
        let message = record.get("errorMessage").and_then(Value::as_str);
        let error = match (code, message) {
            (None, None) => None,
            (Some(code), None) => Some(clip(code, MAX_ERROR_CHARS)),
            (None, Some(message)) => Some(clip(message, MAX_ERROR_CHARS)),
            (Some(code), Some(message)) => {
                Some(clip(&format!("{code}: {message}"), MAX_ERROR_CHARS))
            }
        };
        Evidence {
            event_time: field("eventTime", 40),
            event_name: field("eventName", MAX_FIELD_CHARS),
            event_source: field("eventSource", MAX_FIELD_CHARS),
            aws_region: field("awsRegion", 32),
            source_ip: field("sourceIPAddress", 64),
            error,
            event_id: field("eventID", 64),
        }
    }
}

/// What was looked at, so "nothing found" is never confused with "nothing checked".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Window start and end, RFC 3339 UTC.
    pub window_start: String,
    pub window_end: String,
    pub regions: Vec<String>,
    pub events_scanned: u64,
    /// The time budget (or a failed query) cut the scan short.
    pub truncated: bool,
    /// The budget in seconds, for the truncation note.
    pub budget_seconds: u64,
    /// High-risk event names looked up across the account (and kept when the requester's)
    /// before the rest of the history, because the budget might not reach them otherwise.
    pub looked_up_first: Vec<String>,
    /// Those of them whose account-wide events were not all read in the budget: the
    /// requester's may be among the unread ones.
    pub looked_up_in_part: Vec<String>,
}

/// Most lines the e-mail shows under the summary.
pub const MAX_LINES: usize = 19;
/// Most findings stored with the context (each with its evidence).
pub const MAX_FINDINGS: usize = 30;
/// Most evidence items per finding.
pub const MAX_EVIDENCE: usize = 5;
/// Most characters of a finding's text.
pub const MAX_WHAT_CHARS: usize = 300;
/// Most characters of the summary line.
pub const MAX_SUMMARY_CHARS: usize = 1500;
/// Most bytes the stored context takes as JSON: a hostile or huge history must never grow the
/// ledger item (DynamoDB's limit is 400 KB for the whole request).
pub const MAX_CONTEXT_BYTES: usize = 32 * 1024;

/// `text` with control characters (newlines included, so a record cannot forge lines in the
/// plain-text e-mail) turned into spaces, cut to `max` characters with `…` when longer.
pub fn clip(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    for (index, ch) in text.chars().enumerate() {
        if index == max {
            out.pop();
            out.push('…');
            break;
        }
        out.push(if ch.is_control() { ' ' } else { ch });
    }
    out
}

/// Orders findings for a reviewer: highest severity first, then most events, then in the order
/// they were found (the gatherer adds them in a meaningful order, e.g. newest request first).
pub fn rank(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| b.level.cmp(&a.level).then(b.count.cmp(&a.count)));
    findings
}

/// One line per finding; warnings (low and above) start with `!` so the confirm page highlights
/// them, context lines with `-`. A warning names its newest event, so the e-mail alone says
/// when and from where.
pub fn line(finding: &Finding) -> String {
    let warning = finding.level >= Level::Low;
    let mark = if warning { '!' } else { '-' };
    let mut counted = String::new();
    if finding.count > 0 {
        counted = format!(
            " ({} event{}",
            finding.count,
            if finding.count == 1 { "" } else { "s" }
        );
        if let Some(newest) = finding.evidence.first().filter(|_| warning) {
            counted.push_str(&format!(", latest {}", newest.event_time));
            if !newest.source_ip.is_empty() {
                counted.push_str(&format!(" from {}", newest.source_ip));
            }
        }
        counted.push(')');
    }
    format!(
        "{mark} {} {}{counted}",
        finding.level.label(),
        clip(&finding.what, MAX_WHAT_CHARS)
    )
}

/// The reviewer context: a one-line summary with the coverage, the ranked lines for the e-mail,
/// and the ranked findings with their evidence for the confirm page, within
/// [`MAX_CONTEXT_BYTES`].
pub fn summarise(findings: Vec<Finding>, coverage: &Coverage) -> ContextSummary {
    let ranked = rank(findings);
    let warnings = ranked.iter().filter(|f| f.level >= Level::Low).count();
    let mut summary = format!(
        "{} warning{} from {} CloudTrail events of the requester ({} to {}, {}).",
        warnings,
        if warnings == 1 { "" } else { "s" },
        coverage.events_scanned,
        coverage.window_start,
        coverage.window_end,
        coverage.regions.join(", ")
    );
    if coverage.truncated {
        summary.push_str(&format!(
            " INCOMPLETE: the {} s budget cut the scan short; older activity was not checked",
            coverage.budget_seconds
        ));
        if coverage.looked_up_first.is_empty() {
            summary.push('.');
        } else {
            summary.push_str(&format!(
                " except {} (looked up first",
                coverage.looked_up_first.join(", ")
            ));
            if coverage.looked_up_in_part.is_empty() {
                summary.push_str(").");
            } else {
                summary.push_str(&format!(
                    "; {} only in part, too frequent across the account to read in the budget).",
                    coverage.looked_up_in_part.join(", ")
                ));
            }
        }
    }
    let mut lines: Vec<String> = ranked.iter().map(line).collect();
    if lines.len() > MAX_LINES {
        let dropped = lines.len() - (MAX_LINES - 1);
        lines.truncate(MAX_LINES - 1);
        lines.push(format!("- … {dropped} more findings on the confirm page"));
    }
    let findings = ranked
        .into_iter()
        .take(MAX_FINDINGS)
        .map(|mut finding| {
            finding.what = clip(&finding.what, MAX_WHAT_CHARS);
            finding.evidence.truncate(MAX_EVIDENCE);
            finding
        })
        .collect();
    fit(ContextSummary {
        available: true,
        summary: clip(&summary, MAX_SUMMARY_CHARS),
        lines,
        findings,
    })
}

/// The context cut to [`MAX_CONTEXT_BYTES`]: the evidence of the lowest-ranked findings goes
/// first, then those findings, then e-mail lines; the summary says when anything was cut.
pub fn fit(mut context: ContextSummary) -> ContextSummary {
    const NOTE: &str = " Evidence was cut to keep the stored context under 32 KB.";
    let size = |context: &ContextSummary| {
        serde_json::to_vec(context).map_or(usize::MAX, |bytes| bytes.len())
    };
    // Room for the note itself.
    let limit = MAX_CONTEXT_BYTES - NOTE.len();
    let mut cut = false;
    while size(&context) > limit {
        cut = true;
        if let Some(finding) = context
            .findings
            .iter_mut()
            .rev()
            .find(|finding| !finding.evidence.is_empty())
        {
            finding.evidence.pop();
        } else if context.findings.pop().is_some() || context.lines.pop().is_some() {
            continue;
        } else {
            context.summary = clip(&context.summary, MAX_SUMMARY_CHARS);
            break;
        }
    }
    if cut {
        context.summary.push_str(NOTE);
    }
    context
}

/// The context when it could not be gathered: the approval goes on and says why.
pub fn unavailable(reason: &str) -> ContextSummary {
    ContextSummary {
        available: false,
        summary: clip(
            &format!(
                "context unavailable: {reason}. The requester's recent activity was NOT checked."
            ),
            MAX_SUMMARY_CHARS,
        ),
        lines: Vec::new(),
        findings: Vec::new(),
    }
}

/// The newest `MAX_EVIDENCE` of `records` as evidence.
pub fn newest_evidence<'a>(records: impl IntoIterator<Item = &'a Value>) -> Vec<Evidence> {
    let mut dated: Vec<(i64, &Value)> = records
        .into_iter()
        .map(|record| (event_time(record).unwrap_or(i64::MIN), record))
        .collect();
    dated.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    dated
        .into_iter()
        .take(MAX_EVIDENCE)
        .map(|(_, record)| Evidence::from_record(record))
        .collect()
}

/// A record's `eventTime` in unix seconds.
fn event_time(record: &Value) -> Option<i64> {
    let text = record.get("eventTime").and_then(Value::as_str)?;
    crate::time::parse_utc(text)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Regions and source IPs the requester used since `recent_since` but not before it in the
/// fetched history: the classic sign of a stolen key used from somewhere new. Nothing is
/// reported without a baseline (no earlier record), since then everything would look new.
/// Source "IPs" that are service names (`s3.amazonaws.com`, `AWS Internal`) are ignored.
pub fn new_origins(records: &[Value], recent_since: OffsetDateTime) -> Vec<Finding> {
    let since = recent_since.unix_timestamp();
    let checks: [(&str, &str, Level); 2] = [
        ("awsRegion", "Regions", Level::Medium),
        ("sourceIPAddress", "source IPs", Level::Low),
    ];
    let mut found = Vec::new();
    for (field, label, level) in checks {
        let value = |record: &Value| {
            let text = record.get(field).and_then(Value::as_str)?;
            if field == "sourceIPAddress" && text.parse::<IpAddr>().is_err() {
                return None;
            }
            Some(text.to_owned())
        };
        let mut baseline: HashSet<String> = HashSet::new();
        let mut baseline_events: u64 = 0;
        let mut recent: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for record in records {
            let (Some(at), Some(value)) = (event_time(record), value(record)) else {
                continue;
            };
            if at < since {
                baseline.insert(value);
                baseline_events += 1;
            } else {
                recent.entry(value).or_default().push(record);
            }
        }
        if baseline.is_empty() {
            continue;
        }
        let new: Vec<(&String, &Vec<&Value>)> = recent
            .iter()
            .filter(|(value, _)| !baseline.contains(*value))
            .collect();
        if new.is_empty() {
            continue;
        }
        let count = new.iter().map(|(_, records)| records.len() as u64).sum();
        let mut names: Vec<String> = new
            .iter()
            .take(3)
            .map(|(value, _)| clip(value, 64))
            .collect();
        if new.len() > 3 {
            names.push(format!("and {} more", new.len() - 3));
        }
        found.push(Finding {
            level,
            what: format!(
                "{label} not seen before in the window: {} (compared with {baseline_events} earlier events)",
                names.join(", ")
            ),
            count,
            evidence: newest_evidence(new.iter().flat_map(|(_, records)| records.iter().copied())),
        });
    }
    found
}

/// Most previous requests summarised.
pub const MAX_PREVIOUS_REQUESTS: usize = 5;

/// The requester's previous trailgate requests (newest first, `current` left out) and what each
/// grant did according to its session audit. A denied request, or a session whose calls were
/// refused, is worth a look; the rest is context. No previous request at all is said too.
pub fn previous_requests(requests: &[AccessRequest], current: &str) -> Vec<Finding> {
    let previous: Vec<&AccessRequest> = requests
        .iter()
        .filter(|request| request.id != current)
        .take(MAX_PREVIOUS_REQUESTS)
        .collect();
    if previous.is_empty() {
        return vec![Finding {
            level: Level::Info,
            what: "no previous trailgate requests".into(),
            count: 0,
            evidence: Vec::new(),
        }];
    }
    previous
        .into_iter()
        .map(|request| {
            let mut what = format!(
                "previous request {} for {}: {} (asked {}",
                request.id, request.catalog_id, request.status, request.created_at
            );
            if let Some(until) = &request.expires_at {
                what.push_str(&format!(", granted until {until}"));
            }
            what.push(')');
            if let Some(outcome) = &request.outcome {
                what.push_str(&format!(", {outcome}"));
            }
            let (session, errors) = session_summary(request.audit.as_ref());
            what.push_str(&session);
            let level = if request.status == Status::Denied || errors > 0 {
                Level::Low
            } else {
                Level::Info
            };
            Finding {
                level,
                what: clip(&what, MAX_WHAT_CHARS),
                count: 0,
                evidence: Vec::new(),
            }
        })
        .collect()
}

/// What a session audit says the grant did, and how many of its calls failed.
fn session_summary(audit: Option<&Value>) -> (String, u64) {
    let Some(cloudtrail) = audit.and_then(|audit| audit.get("cloudtrail")) else {
        return (String::new(), 0);
    };
    if cloudtrail.get("analysed") != Some(&Value::Bool(true)) {
        return ("; its session was not analysed".into(), 0);
    }
    let number = |key: &str| cloudtrail.get(key).and_then(Value::as_u64).unwrap_or(0);
    let errors: u64 = cloudtrail
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|error| error.get("count").and_then(Value::as_u64))
        .sum();
    let mut services: Vec<(u64, &str)> = cloudtrail
        .get("actions_by_service")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(service, actions)| {
            let calls = actions
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(_, count)| count.as_u64())
                .sum();
            (calls, service.as_str())
        })
        .collect();
    services.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let top: Vec<&str> = services
        .iter()
        .take(3)
        .map(|(_, service)| *service)
        .collect();
    let mut text = format!(
        "; its session made {} calls ({} writes, {errors} failed)",
        number("events"),
        number("writes")
    );
    if !top.is_empty() {
        text.push_str(&format!(" on {}", top.join(", ")));
    }
    (text, errors)
}

/// IAM service prefix of a CloudTrail `eventSource` (`s3.amazonaws.com` → `s3`).
pub fn service_prefix(event_source: &str) -> &str {
    event_source
        .strip_suffix(".amazonaws.com")
        .unwrap_or(event_source)
}

/// A least-privilege policy allowing exactly the actions a session used, one statement per
/// service, like IAM Access Analyzer's policy generation. Resources are `*`: CloudTrail does not
/// name the resource of every call, so narrowing them is left to the reviewer.
pub fn least_privilege_policy<'a>(actions: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let mut by_service: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (source, name) in actions {
        let service = service_prefix(source);
        if service.is_empty() || name.is_empty() {
            continue;
        }
        by_service
            .entry(service.to_owned())
            .or_default()
            .insert(format!("{service}:{name}"));
    }
    let statements: Vec<Value> = by_service
        .iter()
        .map(|(service, actions)| {
            let sid: String = service
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            json!({
                "Sid": format!("Used{sid}"),
                "Effect": "Allow",
                "Action": actions.iter().collect::<Vec<_>>(),
                "Resource": "*",
            })
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Fields of `requestParameters` that name the resource of calls whose record has no
/// `resources` list (most of them).
const RESOURCE_PARAMETERS: &[&str] = &[
    "bucketName",
    "roleName",
    "userName",
    "policyArn",
    "functionName",
    "tableName",
    "secretId",
    "instanceId",
    "name",
    "trailName",
];

/// Most resources listed in a session report.
pub const MAX_RESOURCES: usize = 50;

/// What a session did, from the CloudTrail records of the session: actions by service, reads
/// versus writes, errors, resources touched, and a least-privilege policy built from the calls
/// that succeeded in the session itself (those carrying `source_identity`).
pub fn session_report(records: &[Value], source_identity: &str) -> Value {
    let text = |record: &Value, pointer: &str| {
        record
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut by_service: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut errors: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut resources: BTreeSet<String> = BTreeSet::new();
    let mut used: Vec<(String, String)> = Vec::new();
    let (mut reads, mut writes, mut unknown) = (0u64, 0u64, 0u64);
    for record in records {
        let source = text(record, "/eventSource").unwrap_or_default();
        let name = text(record, "/eventName").unwrap_or_default();
        let service = service_prefix(&source).to_owned();
        *by_service
            .entry(service)
            .or_default()
            .entry(name.clone())
            .or_default() += 1;
        match record.get("readOnly") {
            Some(Value::Bool(true)) => reads += 1,
            Some(Value::Bool(false)) => writes += 1,
            Some(Value::String(flag)) if flag == "true" => reads += 1,
            Some(Value::String(flag)) if flag == "false" => writes += 1,
            _ => unknown += 1,
        }
        let error = text(record, "/errorCode");
        if let Some(code) = &error {
            *errors.entry((code.clone(), name.clone())).or_default() += 1;
        }
        for resource in record
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(arn) = resource.get("ARN").and_then(Value::as_str) {
                resources.insert(arn.to_owned());
            }
        }
        for field in RESOURCE_PARAMETERS {
            if let Some(value) = text(record, &format!("/requestParameters/{field}")) {
                resources.insert(format!("{}:{value}", service_prefix(&source)));
            }
        }
        let in_session = text(record, "/userIdentity/sessionContext/sourceIdentity").as_deref()
            == Some(source_identity);
        if in_session && error.is_none() {
            used.push((source, name));
        }
    }
    let resources_total = resources.len();
    json!({
        "events": records.len(),
        "actions_by_service": by_service,
        "reads": reads,
        "writes": writes,
        "read_only_unknown": unknown,
        "errors": errors.iter().map(|((code, action), count)| json!({"code": code, "action": action, "count": count})).collect::<Vec<_>>(),
        "resources": resources.into_iter().take(MAX_RESOURCES).collect::<Vec<_>>(),
        "resources_total": resources_total,
        "suggested_policy": least_privilege_policy(used.iter().map(|(s, n)| (s.as_str(), n.as_str()))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(level: Level, what: &str, count: u64) -> Finding {
        Finding {
            level,
            what: what.into(),
            count,
            evidence: Vec::new(),
        }
    }

    /// A CloudTrail record of alice `hours_ago` before 2026-11-21T00:00:00Z.
    fn record(id: &str, hours_ago: i64, region: &str, ip: &str) -> Value {
        let at = time::macros::datetime!(2026-11-21 00:00 UTC) - time::Duration::hours(hours_ago);
        json!({"eventID": id, "eventTime": crate::time::format_utc(at), "eventName": "ListBuckets",
               "eventSource": "s3.amazonaws.com", "awsRegion": region, "sourceIPAddress": ip})
    }

    fn coverage(truncated: bool) -> Coverage {
        Coverage {
            window_start: "2026-11-14T00:00:00Z".into(),
            window_end: "2026-11-21T00:00:00Z".into(),
            regions: vec!["us-east-1".into()],
            events_scanned: 42,
            truncated,
            budget_seconds: 10,
            looked_up_first: Vec::new(),
            looked_up_in_part: Vec::new(),
        }
    }

    #[test]
    fn warnings_rank_by_severity_then_count_and_are_marked() {
        let out = summarise(
            vec![
                finding(Level::Info, "activity", 40),
                finding(Level::Medium, "failed console logins", 3),
                finding(Level::High, "logging tampering: StopLogging", 1),
                finding(Level::Medium, "denied calls", 9),
            ],
            &coverage(false),
        );
        assert!(out.available);
        assert!(
            out.summary
                .starts_with("3 warnings from 42 CloudTrail events")
        );
        assert!(
            out.summary
                .contains("2026-11-14T00:00:00Z to 2026-11-21T00:00:00Z, us-east-1")
        );
        assert!(!out.summary.contains("INCOMPLETE"));
        assert_eq!(
            out.lines[0],
            "! HIGH logging tampering: StopLogging (1 event)"
        );
        assert_eq!(out.lines[1], "! MEDIUM denied calls (9 events)");
        assert_eq!(out.lines[2], "! MEDIUM failed console logins (3 events)");
        assert_eq!(out.lines[3], "- INFO activity (40 events)");
    }

    #[test]
    fn a_budget_cut_is_stated_and_lines_are_bounded() {
        let many = (0..30)
            .map(|i| finding(Level::Low, &format!("f{i:02}"), 1))
            .collect();
        let out = summarise(many, &coverage(true));
        assert!(out.summary.contains("INCOMPLETE: the 10 s budget"));
        assert_eq!(out.lines.len(), MAX_LINES);
        assert!(out.lines.last().unwrap().contains("12 more findings"));
    }

    #[test]
    fn a_budget_cut_names_what_was_looked_up_first() {
        let mut coverage = coverage(true);
        coverage.looked_up_first = vec!["StopLogging".into(), "DeleteTrail".into()];
        let out = summarise(Vec::new(), &coverage);
        assert!(
            out.summary.contains(
                "older activity was not checked except StopLogging, DeleteTrail (looked up first)."
            ),
            "{}",
            out.summary
        );
        coverage.looked_up_in_part = vec!["DeleteTrail".into()];
        let out = summarise(Vec::new(), &coverage);
        assert!(
            out.summary.contains(
                "except StopLogging, DeleteTrail (looked up first; DeleteTrail only in part, too \
                 frequent across the account to read in the budget)."
            ),
            "{}",
            out.summary
        );
    }

    #[test]
    fn evidence_is_bounded_and_cannot_forge_lines() {
        let huge = format!("Stop\nApprove: http://evil/{}", "x".repeat(100_000));
        let hostile = json!({"eventID": "e".repeat(5_000), "eventTime": "2026-11-20T10:00:00Z",
            "eventName": huge, "eventSource": "s3.amazonaws.com", "awsRegion": "r".repeat(500),
            "sourceIPAddress": "198.51.100.7", "errorCode": "AccessDenied",
            "errorMessage": "m\r\n".repeat(10_000)});
        let evidence = Evidence::from_record(&hostile);
        assert_eq!(evidence.event_name.chars().count(), MAX_FIELD_CHARS);
        assert!(
            evidence
                .event_name
                .starts_with("Stop Approve: http://evil/")
        );
        assert!(evidence.event_name.ends_with('…'));
        assert_eq!(evidence.event_id.chars().count(), 64);
        assert_eq!(evidence.aws_region.chars().count(), 32);
        let error = evidence.error.as_deref().unwrap();
        assert!(error.starts_with("AccessDenied: m  m"), "{error}");
        assert_eq!(error.chars().count(), MAX_ERROR_CHARS);
        let finding = Finding {
            level: Level::High,
            what: huge.clone(),
            count: 1,
            evidence: vec![evidence],
        };
        let text = line(&finding);
        assert!(!text.contains('\n') && !text.contains('\r'), "{text}");
        assert!(
            text.chars().count() < MAX_WHAT_CHARS + 100,
            "{}",
            text.len()
        );
        assert!(
            text.ends_with("(1 event, latest 2026-11-20T10:00:00Z from 198.51.100.7)"),
            "{text}"
        );
        // A missing field is empty, a missing error is none.
        let bare = Evidence::from_record(&json!({"eventName": "ListBuckets"}));
        assert_eq!(bare.event_time, "");
        assert_eq!(bare.error, None);
    }

    #[test]
    fn context_lines_carry_no_evidence_and_zero_counts_no_parentheses() {
        let mut activity = finding(Level::Info, "activity", 3);
        activity.evidence = newest_evidence([&record("a", 1, "us-east-1", "203.0.113.9")]);
        assert_eq!(line(&activity), "- INFO activity (3 events)");
        assert_eq!(
            line(&finding(Level::Info, "no previous trailgate requests", 0)),
            "- INFO no previous trailgate requests"
        );
    }

    #[test]
    fn the_stored_context_stays_under_its_cap_and_says_it_was_cut() {
        let wide = json!({"eventID": "e".repeat(500), "eventTime": "2026-11-20T10:00:00Z",
            "eventName": "n".repeat(500), "eventSource": "s".repeat(500), "awsRegion": "r".repeat(500),
            "sourceIPAddress": "i".repeat(500), "errorCode": "c".repeat(500), "errorMessage": "m".repeat(500)});
        let many: Vec<Finding> = (0..60)
            .map(|i| Finding {
                level: if i == 0 { Level::Critical } else { Level::Low },
                what: format!("{i:02} {}", "w".repeat(1_000)),
                count: 100 - i,
                evidence: vec![Evidence::from_record(&wide); 20],
            })
            .collect();
        let out = summarise(many, &coverage(false));
        let size = serde_json::to_vec(&out).unwrap().len();
        assert!(size <= MAX_CONTEXT_BYTES, "{size} bytes");
        assert!(
            out.summary
                .ends_with("cut to keep the stored context under 32 KB."),
            "{}",
            out.summary
        );
        assert!(out.findings.len() <= MAX_FINDINGS);
        // The highest-ranked finding keeps its evidence; the cut starts at the bottom.
        assert_eq!(out.findings[0].level, Level::Critical);
        assert_eq!(out.findings[0].evidence.len(), MAX_EVIDENCE);
        assert!(out.findings.last().unwrap().evidence.len() < MAX_EVIDENCE);
        assert!(
            out.findings
                .iter()
                .all(|f| f.what.chars().count() <= MAX_WHAT_CHARS)
        );
        assert_eq!(out.lines.len(), MAX_LINES);
    }

    #[test]
    fn a_context_stored_before_findings_still_loads() {
        let old: ContextSummary = serde_json::from_value(
            json!({"available": true, "summary": "s", "lines": ["- INFO x"]}),
        )
        .unwrap();
        assert!(old.findings.is_empty());
        // And an empty list is not written, so old readers see the same shape.
        assert!(
            serde_json::to_value(&old)
                .unwrap()
                .get("findings")
                .is_none()
        );
        let stored = summarise(vec![finding(Level::High, "x", 1)], &coverage(false));
        let back: ContextSummary =
            serde_json::from_value(serde_json::to_value(&stored).unwrap()).unwrap();
        assert_eq!(back, stored);
        assert_eq!(
            serde_json::to_value(&stored).unwrap()["findings"][0]["level"],
            "HIGH"
        );
    }

    #[test]
    fn regions_and_ips_new_in_the_last_day_are_flagged_against_the_earlier_baseline() {
        let since = time::macros::datetime!(2026-11-20 00:00 UTC);
        let mut records: Vec<Value> = (0..10)
            .map(|i| record(&format!("old{i}"), 48 + i, "us-east-1", "203.0.113.9"))
            .collect();
        records.push(record("same", 2, "us-east-1", "203.0.113.9"));
        records.push(record("new1", 3, "ap-southeast-1", "198.51.100.66"));
        records.push(record("new2", 1, "ap-southeast-1", "198.51.100.66"));
        // Calls a service made for the requester carry its name, not an IP: never "new".
        records.push(record("svc", 1, "us-east-1", "AWS Internal"));
        let found = new_origins(&records, since);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].level, Level::Medium);
        assert_eq!(
            found[0].what,
            "Regions not seen before in the window: ap-southeast-1 (compared with 10 earlier events)"
        );
        assert_eq!(found[0].count, 2);
        assert_eq!(found[0].evidence[0].event_id, "new2", "newest first");
        assert_eq!(found[1].level, Level::Low);
        assert!(
            found[1]
                .what
                .starts_with("source IPs not seen before in the window: 198.51.100.66")
        );
        // Without a baseline nothing is new; with only known origins nothing is flagged.
        assert!(new_origins(&records[10..], since).is_empty());
        assert!(new_origins(&records[..11], since).is_empty());
    }

    #[test]
    fn previous_requests_are_summarised_newest_first_with_what_each_session_did() {
        use crate::testing::pending_request;
        let current = pending_request();
        assert_eq!(
            previous_requests(std::slice::from_ref(&current), &current.id)[0].what,
            "no previous trailgate requests"
        );
        let mut audited = pending_request();
        audited.id = "r-audited".into();
        audited.status = Status::Audited;
        audited.expires_at = Some("2026-11-20T12:00:00Z".into());
        audited.audit = Some(
            json!({"cloudtrail": {"analysed": true, "events": 12, "writes": 3,
            "actions_by_service": {"s3": {"GetObject": 9}, "iam": {"CreateUser": 2, "GetRole": 1}},
            "errors": [{"code": "AccessDenied", "action": "CreateUser", "count": 2}]}}),
        );
        let mut denied = pending_request();
        denied.id = "r-denied".into();
        denied.status = Status::Denied;
        denied.outcome = Some("denied by carol".into());
        let mut quiet = pending_request();
        quiet.id = "r-quiet".into();
        quiet.status = Status::Audited;
        quiet.audit = Some(json!({"cloudtrail": {"analysed": false, "reason": "throttled"}}));
        let found = previous_requests(&[current.clone(), audited, denied, quiet], &current.id);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].level, Level::Low, "its session had refused calls");
        assert!(
            found[0]
                .what
                .starts_with("previous request r-audited for sandbox-admin: AUDITED (asked "),
            "{}",
            found[0].what
        );
        assert!(
            found[0]
                .what
                .ends_with(", granted until 2026-11-20T12:00:00Z); its session made 12 calls (3 writes, 2 failed) on s3, iam"),
            "{}",
            found[0].what
        );
        assert_eq!(found[1].level, Level::Low);
        assert!(found[1].what.contains("DENIED") && found[1].what.ends_with(", denied by carol"));
        assert_eq!(found[2].level, Level::Info);
        assert!(found[2].what.ends_with("; its session was not analysed"));
        let many: Vec<AccessRequest> = (0..9)
            .map(|i| {
                let mut request = pending_request();
                request.id = format!("r-{i}");
                request
            })
            .collect();
        assert_eq!(previous_requests(&many, "r-0").len(), MAX_PREVIOUS_REQUESTS);
    }

    #[test]
    fn unavailable_says_why_and_not_checked() {
        let out = unavailable("LookupEvents failed: AccessDenied");
        assert!(!out.available);
        assert!(
            out.summary
                .starts_with("context unavailable: LookupEvents failed")
        );
        assert!(out.summary.contains("NOT checked"));
    }

    #[test]
    fn the_policy_allows_exactly_the_actions_used() {
        let policy = least_privilege_policy([
            ("s3.amazonaws.com", "ListBuckets"),
            ("s3.amazonaws.com", "GetObject"),
            ("s3.amazonaws.com", "ListBuckets"),
            ("iam.amazonaws.com", "GetRole"),
        ]);
        assert_eq!(
            policy,
            json!({"Version": "2012-10-17", "Statement": [
                {"Sid": "Usediam", "Effect": "Allow", "Action": ["iam:GetRole"], "Resource": "*"},
                {"Sid": "Useds3", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBuckets"], "Resource": "*"},
            ]})
        );
    }

    #[test]
    fn the_session_report_names_what_the_session_did() {
        let session = json!({"sourceIdentity": "alice"});
        let records = vec![
            json!({"eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "readOnly": true,
                   "userIdentity": {"sessionContext": session}}),
            json!({"eventSource": "s3.amazonaws.com", "eventName": "PutObject", "readOnly": false,
                   "requestParameters": {"bucketName": "data"},
                   "userIdentity": {"sessionContext": session}}),
            json!({"eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "readOnly": false,
                   "errorCode": "AccessDenied", "userIdentity": {"sessionContext": session}}),
            json!({"eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "readOnly": false,
                   "resources": [{"ARN": "arn:aws:iam::123456789012:role/sandbox"}]}),
        ];
        let report = session_report(&records, "alice");
        assert_eq!(report["events"], 4);
        assert_eq!(report["actions_by_service"]["s3"]["PutObject"], 1);
        assert_eq!(report["reads"], 1);
        assert_eq!(report["writes"], 3);
        assert_eq!(
            report["errors"][0],
            json!({"code": "AccessDenied", "action": "CreateUser", "count": 1})
        );
        assert_eq!(
            report["resources"],
            json!(["arn:aws:iam::123456789012:role/sandbox", "s3:data"])
        );
        assert_eq!(
            report["suggested_policy"]["Statement"],
            json!([{"Sid": "Useds3", "Effect": "Allow", "Action": ["s3:ListBuckets", "s3:PutObject"], "Resource": "*"}])
        );
    }
}
