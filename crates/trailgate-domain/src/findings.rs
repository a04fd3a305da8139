//! The reviewer context as findings, not dumps: the finding, evidence, coverage and summary
//! types, and their shaping: ranking warnings with their evidence, stating coverage plainly, and
//! bounding what is stored and e-mailed.
//!
//! The analysis that produces findings (runbooks over records, new origins, previous requests,
//! session reports) is `trailgate-review`'s; the types live here because the ledger record
//! ([`crate::request::AccessRequest::context`]) stores them and the confirm page reads them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

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

/// What was looked at, so "nothing found" is never confused with "nothing checked": the window
/// and budget, and each account whose history was read (the target account and the hub).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Window start and end, RFC 3339 UTC.
    pub window_start: String,
    pub window_end: String,
    /// The time budget in seconds, for the truncation note.
    pub budget_seconds: u64,
    /// In the order the reviewer should read them: the target account first.
    pub accounts: Vec<AccountCoverage>,
}

/// What was read of one account's CloudTrail history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountCoverage {
    pub account: String,
    /// Why the account matters to this request: `target`, `hub`, or `target, hub`.
    pub role: String,
    pub regions: Vec<String>,
    pub events_scanned: u64,
    /// The time budget (or a failed query) cut the scan short.
    pub truncated: bool,
    /// High-risk event names looked up across the account (and kept when the requester's)
    /// before the rest of the history, because the budget might not reach them otherwise.
    pub looked_up_first: Vec<String>,
    /// Those of them whose account-wide events were not all read in the budget: the
    /// requester's may be among the unread ones.
    pub looked_up_in_part: Vec<String>,
    /// Set when nothing of this account could be read, saying why.
    pub unread: Option<String>,
}

impl AccountCoverage {
    /// How the summary names the account: `account 111111111111 (target)`.
    pub fn name(&self) -> String {
        format!("account {} ({})", self.account, self.role)
    }

    /// The summary's note when the scan of this account was cut short or failed, else empty.
    fn note(&self, budget_seconds: u64) -> String {
        if let Some(why) = &self.unread {
            return format!(" NOT CHECKED in {}: {why}.", self.name());
        }
        if !self.truncated {
            return String::new();
        }
        let mut note = format!(
            " INCOMPLETE in {}: the {budget_seconds} s budget cut the scan short; older \
             activity was not checked",
            self.name()
        );
        if self.looked_up_first.is_empty() {
            note.push('.');
        } else {
            note.push_str(&format!(
                " except {} (looked up first",
                self.looked_up_first.join(", ")
            ));
            if self.looked_up_in_part.is_empty() {
                note.push_str(").");
            } else {
                note.push_str(&format!(
                    "; {} only in part, too frequent across the account to read in the budget).",
                    self.looked_up_in_part.join(", ")
                ));
            }
        }
        note
    }
}

/// What the reviewers were shown about the requester: the summary and top lines (e-mail), and
/// the ranked findings with their evidence (confirm page). Bounded by [`MAX_CONTEXT_BYTES`] when
/// built by [`summarise`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextSummary {
    pub available: bool,
    pub summary: String,
    #[serde(default)]
    pub lines: Vec<String>,
    /// Absent from records stored before findings carried evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
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
    let scanned: u64 = coverage.accounts.iter().map(|a| a.events_scanned).sum();
    let read: Vec<String> = coverage
        .accounts
        .iter()
        .filter(|account| account.unread.is_none())
        .map(|account| {
            format!(
                "{}: {} event{}, {}",
                account.name(),
                account.events_scanned,
                if account.events_scanned == 1 { "" } else { "s" },
                account.regions.join(", ")
            )
        })
        .collect();
    let mut summary = format!(
        "{} warning{} from {} CloudTrail events of the requester ({} to {}; {}).",
        warnings,
        if warnings == 1 { "" } else { "s" },
        scanned,
        coverage.window_start,
        coverage.window_end,
        read.join("; ")
    );
    for account in &coverage.accounts {
        summary.push_str(&account.note(coverage.budget_seconds));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    fn account(account: &str, role: &str, truncated: bool) -> AccountCoverage {
        AccountCoverage {
            account: account.into(),
            role: role.into(),
            regions: vec!["us-east-1".into()],
            events_scanned: 42,
            truncated,
            looked_up_first: Vec::new(),
            looked_up_in_part: Vec::new(),
            unread: None,
        }
    }

    fn coverage(truncated: bool) -> Coverage {
        Coverage {
            window_start: "2026-11-14T00:00:00Z".into(),
            window_end: "2026-11-21T00:00:00Z".into(),
            budget_seconds: 10,
            accounts: vec![account("123456789012", "target, hub", truncated)],
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
                .contains("2026-11-14T00:00:00Z to 2026-11-21T00:00:00Z; account 123456789012 (target, hub): 42 events, us-east-1).")
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
        assert!(
            out.summary
                .contains("INCOMPLETE in account 123456789012 (target, hub): the 10 s budget"),
            "{}",
            out.summary
        );
        assert_eq!(out.lines.len(), MAX_LINES);
        assert!(out.lines.last().unwrap().contains("12 more findings"));
    }

    #[test]
    fn a_budget_cut_names_what_was_looked_up_first() {
        let mut coverage = coverage(true);
        coverage.accounts[0].looked_up_first = vec!["StopLogging".into(), "DeleteTrail".into()];
        let out = summarise(Vec::new(), &coverage);
        assert!(
            out.summary.contains(
                "older activity was not checked except StopLogging, DeleteTrail (looked up first)."
            ),
            "{}",
            out.summary
        );
        coverage.accounts[0].looked_up_in_part = vec!["DeleteTrail".into()];
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
    fn each_account_read_is_named_and_an_unread_one_is_not_hidden() {
        let mut coverage = coverage(false);
        coverage.accounts = vec![
            AccountCoverage {
                events_scanned: 8,
                ..account("111111111111", "target", true)
            },
            AccountCoverage {
                events_scanned: 1,
                ..account("123456789012", "hub", false)
            },
        ];
        let out = summarise(Vec::new(), &coverage);
        assert!(
            out.summary.starts_with(
                "0 warnings from 9 CloudTrail events of the requester (2026-11-14T00:00:00Z to \
                 2026-11-21T00:00:00Z; account 111111111111 (target): 8 events, us-east-1; \
                 account 123456789012 (hub): 1 event, us-east-1). INCOMPLETE in account \
                 111111111111 (target): the 10 s budget"
            ),
            "{}",
            out.summary
        );
        coverage.accounts[0].unread = Some("its agent role refused the hub".into());
        let out = summarise(Vec::new(), &coverage);
        assert!(
            out.summary.contains(
                "(2026-11-14T00:00:00Z to 2026-11-21T00:00:00Z; account 123456789012 (hub): 1 \
                 event, us-east-1). NOT CHECKED in account 111111111111 (target): its agent role \
                 refused the hub."
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
    fn unavailable_says_why_and_not_checked() {
        let out = unavailable("LookupEvents failed: AccessDenied");
        assert!(!out.available);
        assert!(
            out.summary
                .starts_with("context unavailable: LookupEvents failed")
        );
        assert!(out.summary.contains("NOT checked"));
    }
}
