//! Reviewer context and session reports as findings, not dumps: ranking warnings, stating
//! coverage plainly, and suggesting a least-privilege policy from the actions a session used.
//!
//! Pure logic: the context and audit functions turn runbook results into [`Finding`]s and
//! action counts; everything a reviewer reads is shaped here so it is tested without AWS.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::request::ContextSummary;

/// How much a finding matters, lowest first (so `Ord` ranks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// One thing a reviewer should know: severity, what, how many events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub count: u64,
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
}

/// Most lines the e-mail shows under the summary.
pub const MAX_LINES: usize = 19;

/// Orders findings for a reviewer: highest severity first, then most events, then by text.
pub fn rank(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| {
        b.level
            .cmp(&a.level)
            .then(b.count.cmp(&a.count))
            .then(a.what.cmp(&b.what))
    });
    findings
}

/// One line per finding; warnings (low and above) start with `!` so the confirm page highlights
/// them, context lines with `-`.
pub fn line(finding: &Finding) -> String {
    let mark = if finding.level >= Level::Low {
        '!'
    } else {
        '-'
    };
    format!(
        "{mark} {} {} ({} event{})",
        finding.level.label(),
        finding.what,
        finding.count,
        if finding.count == 1 { "" } else { "s" }
    )
}

/// The reviewer context: a one-line summary with the coverage, then the ranked findings.
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
            " INCOMPLETE: the {} s budget cut the scan short; older activity was not checked.",
            coverage.budget_seconds
        ));
    }
    let mut lines: Vec<String> = ranked.iter().map(line).collect();
    if lines.len() > MAX_LINES {
        let dropped = lines.len() - (MAX_LINES - 1);
        lines.truncate(MAX_LINES - 1);
        lines.push(format!("- … {dropped} more findings in the ledger"));
    }
    ContextSummary {
        available: true,
        summary,
        lines,
    }
}

/// The context when it could not be gathered: the approval goes on and says why.
pub fn unavailable(reason: &str) -> ContextSummary {
    ContextSummary {
        available: false,
        summary: format!(
            "context unavailable: {reason}. The requester's recent activity was NOT checked."
        ),
        lines: Vec::new(),
    }
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
        }
    }

    fn coverage(truncated: bool) -> Coverage {
        Coverage {
            window_start: "2026-11-14T00:00:00Z".into(),
            window_end: "2026-11-21T00:00:00Z".into(),
            regions: vec!["us-east-1".into()],
            events_scanned: 42,
            truncated,
            budget_seconds: 10,
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
