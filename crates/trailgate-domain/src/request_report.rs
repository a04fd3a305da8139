//! One request as an auditor keeps it (`jitctl report ID --format html|json`): who asked and
//! why, the context the reviewers saw, every decision, the credentials issued, what the access
//! was used for, the revoke and whether it holds, and the checks of the ledger's chain.
//!
//! [`build`] assembles a [`Report`] from the record, its events and the checks the caller ran
//! (the chain and export checks are `jitctl verify`'s, the revoke check [`judge_revoke`] over
//! the role's policy as IAM returned it); [`html`] renders it as one self-contained page: inline
//! CSS, no script, no external resource, and a Content-Security-Policy that forbids loading
//! anything, so the file shows the same wherever it is opened, years later, offline. Everything
//! shown is escaped with [`crate::html::escape`]: reasons, comments and CloudTrail values are
//! written by people an auditor should not trust.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::findings::ContextSummary;
use crate::html::escape;
use crate::ledger::Event;
use crate::policy;
use crate::request::{AccessRequest, Acknowledgement, Status};
use crate::service::GC_MARGIN;
use crate::time::{format_duration, format_utc, parse_utc};

/// The `format` of the JSON report; a change to its meaning gets a new number.
pub const REPORT_FORMAT: &str = "trailgate-request-report/1";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    /// Not run, with the reason in the lines: never shown as passed.
    NotChecked,
}

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub lines: Vec<String>,
}

impl Check {
    pub fn new(name: &str, outcome: Outcome, lines: Vec<String>) -> Check {
        Check {
            name: name.to_owned(),
            outcome,
            lines,
        }
    }
}

/// One approver's decision, with where it came from when the ledger kept that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRow {
    pub approver: String,
    pub decision: String,
    pub at: String,
    pub comment: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One STS session vended for the grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRow {
    pub at: String,
    pub by: String,
    pub session: String,
}

/// How the grant ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeSection {
    pub at: String,
    pub by: String,
    pub reason: String,
    pub check: Check,
}

/// One ledger event as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRow {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub from: Option<Status>,
    pub to: Status,
    pub detail: Option<String>,
    pub hash: String,
}

/// The whole report; its JSON is `jitctl report --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub generated_at: String,
    pub id: String,
    pub status: Status,
    pub catalog_id: String,
    pub target: String,
    pub requester: String,
    pub requester_identity: String,
    pub requester_person: String,
    pub reason: String,
    pub ticket: Option<String>,
    pub duration: String,
    /// The scheduled start, if the request had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    pub break_glass: bool,
    pub created_at: String,
    pub approval_expires_at: String,
    pub expires_at: Option<String>,
    pub outcome: Option<String>,
    pub context: Option<ContextSummary>,
    pub decisions: Vec<DecisionRow>,
    pub credentials: Vec<CredentialRow>,
    pub audit: Option<Value>,
    pub revoke: Option<RevokeSection>,
    pub acknowledgement: Option<Acknowledgement>,
    pub checks: Vec<Check>,
    pub timeline: Vec<TimelineRow>,
}

impl Report {
    /// Whether any check failed: what `jitctl report` exits 1 on.
    pub fn has_failures(&self) -> bool {
        self.all_checks()
            .any(|check| check.outcome == Outcome::Failed)
    }

    fn all_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .chain(self.revoke.as_ref().map(|revoke| &revoke.check))
    }
}

/// Whether the revoke of `record` still holds, from the role's `trailgate-revocations` document
/// as IAM returns it now (`None`: the role has none). A deny stays on the role until
/// [`GC_MARGIN`] after the grant's end; after that its absence is expected (every
/// session's own policy denies everything past `expires_at`, and the longest STS session has
/// ended), so the check says it can no longer be made rather than pass.
pub fn judge_revoke(record: &AccessRequest, document: Option<&str>, now: OffsetDateTime) -> Check {
    const NAME: &str = "revoke in effect";
    let Some(revoked_at) = record.revoked_at.as_deref() else {
        return Check::new(
            NAME,
            Outcome::NotChecked,
            vec![format!(
                "the request is {} and was never revoked",
                record.status
            )],
        );
    };
    let Some(expires_at) = record.expires_at.as_deref() else {
        return Check::new(
            NAME,
            Outcome::Passed,
            vec!["the grant never became active: no session was ever issued".to_owned()],
        );
    };
    let (Ok(revoked), Ok(expires)) = (parse_utc(revoked_at), parse_utc(expires_at)) else {
        return Check::new(
            NAME,
            Outcome::Failed,
            vec![format!(
                "the record's times do not parse: revoked {revoked_at}, expires {expires_at}"
            )],
        );
    };
    let role = &record.role_arn;
    if document.is_some_and(|doc| policy::covers(doc, &record.id, revoked.unix_timestamp())) {
        return Check::new(
            NAME,
            Outcome::Passed,
            vec![format!(
                "{role}'s {} denies every session of {} issued before {revoked_at}",
                policy::REVOCATIONS_POLICY_NAME,
                record.id
            )],
        );
    }
    let kept_until = expires + GC_MARGIN;
    if now < kept_until {
        return Check::new(
            NAME,
            Outcome::Failed,
            vec![format!(
                "{role}'s {} does not deny {}, and its sessions may live until {}",
                policy::REVOCATIONS_POLICY_NAME,
                record.id,
                format_utc(kept_until)
            )],
        );
    }
    Check::new(
        NAME,
        Outcome::NotChecked,
        vec![format!(
            "the deny is kept until {} and has been removed since: every session's policy denies everything after {expires_at} and the longest STS session has ended",
            format_utc(kept_until)
        )],
    )
}

/// The report of `record` and its `events`, with the checks the caller ran (`checks`: the
/// chain, the export) and the revoke's (`revoke_check`).
pub fn build(
    record: &AccessRequest,
    events: &[Event],
    checks: Vec<Check>,
    revoke_check: Check,
    now: OffsetDateTime,
) -> Report {
    let decision_event = |approver: &str| {
        events.iter().rev().find(|event| {
            matches!(event.action.as_str(), "Approved" | "Denied")
                && event
                    .actor
                    .strip_prefix("approver:")
                    .unwrap_or(&event.actor)
                    == approver
        })
    };
    let decisions = record
        .decisions
        .iter()
        .map(|(approver, decision)| {
            let origin = decision_event(approver);
            DecisionRow {
                approver: approver.clone(),
                decision: if decision.approve { "approve" } else { "deny" }.to_owned(),
                at: decision.at.clone(),
                comment: decision.comment.clone(),
                source_ip: origin.and_then(|event| event.source_ip.clone()),
                user_agent: origin.and_then(|event| event.user_agent.clone()),
            }
        })
        .collect();
    let credentials = events
        .iter()
        .filter(|event| event.action == "CredentialsIssued")
        .map(|event| CredentialRow {
            at: event.at.clone(),
            by: event.actor.clone(),
            session: event.detail.clone().unwrap_or_default(),
        })
        .collect();
    let revoke = events
        .iter()
        .find(|event| event.action == "Revoked")
        .map(|event| RevokeSection {
            at: event.at.clone(),
            by: event.actor.clone(),
            reason: event.detail.clone().unwrap_or_default(),
            check: revoke_check.clone(),
        });
    let mut checks = checks;
    if revoke.is_none() && revoke_check.outcome != Outcome::NotChecked {
        checks.push(revoke_check);
    }
    Report {
        format: REPORT_FORMAT.to_owned(),
        generated_at: format_utc(now),
        id: record.id.clone(),
        status: record.status,
        catalog_id: record.catalog_id.clone(),
        target: record.target_label(),
        requester: record.requester.clone(),
        requester_identity: record.requester_identity.clone(),
        requester_person: record.requester_person.clone(),
        reason: record.reason.clone(),
        ticket: record.ticket.clone(),
        duration: format_duration(record.duration()),
        start_at: record.start_at.clone(),
        break_glass: record.break_glass,
        created_at: record.created_at.clone(),
        approval_expires_at: record.approval_expires_at.clone(),
        expires_at: record.expires_at.clone(),
        outcome: record.outcome.clone(),
        context: record.context.clone(),
        decisions,
        credentials,
        audit: record.audit.clone(),
        revoke,
        acknowledgement: record.acknowledgement.clone(),
        checks,
        timeline: events
            .iter()
            .map(|event| TimelineRow {
                seq: event.seq,
                at: event.at.clone(),
                actor: event.actor.clone(),
                action: event.action.clone(),
                from: event.from,
                to: event.to,
                detail: event.detail.clone(),
                hash: event.hash.clone(),
            })
            .collect(),
    }
}

/// No script, no remote resource, no form: the page can only show itself.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:60rem;padding:1.5rem;color:#1b1f24}
h1{font-size:1.5rem;margin:0 0 .25rem} h2{font-size:1.1rem;margin:1.75rem 0 .5rem;border-bottom:1px solid #d0d7de;padding-bottom:.25rem}
.id{font-family:ui-monospace,monospace;color:#57606a}
.verdict{padding:.6rem .9rem;border-radius:6px;margin:1rem 0;font-weight:600}
.ok{background:#dafbe1;color:#116329} .bad{background:#ffebe9;color:#a40e26} .na{background:#fff8c5;color:#7d4e00}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0} dt{color:#57606a} dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;font-size:.9rem} th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eaeef2;vertical-align:top;overflow-wrap:anywhere}
th{color:#57606a;font-weight:600} .events td:nth-child(-n+2),.events td:nth-child(4),.events td:nth-child(5),.events td:nth-child(7){white-space:nowrap} .events td:nth-child(3){min-width:11rem} code,pre{font-family:ui-monospace,monospace;font-size:.85rem}
pre{background:#f6f8fa;padding:.75rem;overflow:auto;white-space:pre-wrap} .none{color:#57606a;font-style:italic}
.badge{display:inline-block;padding:0 .45rem;border-radius:1rem;font-size:.8rem;font-weight:600}
@media print{body{max-width:none} .verdict{border:1px solid currentColor}}
";

fn text(value: &str) -> String {
    escape(value)
}

fn opt(value: Option<&str>) -> String {
    value.map_or_else(|| "<span class=\"none\">none</span>".to_owned(), escape)
}

fn badge(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "<span class=\"badge ok\">passed</span>",
        Outcome::Failed => "<span class=\"badge bad\">FAILED</span>",
        Outcome::NotChecked => "<span class=\"badge na\">not checked</span>",
    }
}

fn table(head: &[&str], rows: Vec<Vec<String>>, empty: &str) -> String {
    table_with_class("", head, rows, empty)
}

/// A table of already-escaped cells under `head`, or `empty` when there are no rows.
fn table_with_class(class: &str, head: &[&str], rows: Vec<Vec<String>>, empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"none\">{}</p>", text(empty));
    }
    let mut out = format!("<table class=\"{class}\"><thead><tr>");
    for cell in head {
        out.push_str(&format!("<th>{}</th>", text(cell)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{cell}</td>"));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn check_html(check: &Check) -> String {
    let lines: String = check
        .lines
        .iter()
        .map(|line| format!("<li>{}</li>", text(line)))
        .collect();
    format!(
        "<p>{} <strong>{}</strong></p><ul>{lines}</ul>",
        badge(check.outcome),
        text(&check.name)
    )
}

/// What the session did, from the audit's CloudTrail section: counts, actions by service,
/// errors, resources and findings; the whole audit JSON follows in a collapsed block.
fn audit_html(audit: &Value) -> String {
    let trail = audit.get("cloudtrail").unwrap_or(audit);
    let mut out = String::new();
    if trail.get("analysed").and_then(Value::as_bool) == Some(false) {
        let reason = trail
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        out.push_str(&format!(
            "<p class=\"verdict na\">Not analysed: {}</p>",
            text(reason)
        ));
    }
    // Whether CloudTrail had delivered past the session's end when the audit read it.
    let coverage = trail.get("coverage");
    let completeness = coverage
        .and_then(|c| c.get("completeness"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    match coverage
        .and_then(|c| c.get("complete"))
        .and_then(Value::as_bool)
    {
        Some(true) => out.push_str(&format!(
            "<p class=\"verdict ok\">{}</p>",
            text(completeness)
        )),
        Some(false) => out.push_str(&format!(
            "<p class=\"verdict na\">May be incomplete: {}</p>",
            text(completeness.trim_start_matches("incomplete: "))
        )),
        None => {}
    }
    let number = |key: &str| {
        trail
            .get(key)
            .and_then(Value::as_u64)
            .map_or("–".to_owned(), |n| n.to_string())
    };
    out.push_str(&format!(
        "<dl><dt>CloudTrail events</dt><dd>{}</dd><dt>reads / writes</dt><dd>{} / {}</dd><dt>resources</dt><dd>{}</dd>",
        number("events"),
        number("reads"),
        number("writes"),
        number("resources_total"),
    ));
    if let Some(coverage) = trail.get("coverage") {
        let field = |key: &str| coverage.get(key).and_then(Value::as_str).unwrap_or("?");
        for mark in coverage
            .get("watermarks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let part = |key: &str| mark.get(key).and_then(Value::as_str);
            // `source` (LookupEvents or the trail bucket) since the audit read both.
            let source = part("source").map_or_else(String::new, |s| format!(" ({})", text(s)));
            out.push_str(&format!(
                "<dt>delivered in {}{source}</dt><dd>{}</dd>",
                text(part("region").unwrap_or("?")),
                part("newest_event").map_or_else(
                    || format!(
                        "nothing yet{}",
                        part("error")
                            .map(|e| format!(" ({})", text(e)))
                            .unwrap_or_default()
                    ),
                    |newest| format!("up to {}", text(newest))
                ),
            ));
        }
        out.push_str(&format!(
            "<dt>read</dt><dd>{} to {}, {} records scanned{}</dd>",
            text(field("window_start")),
            text(field("window_end")),
            coverage
                .get("events_scanned")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            if coverage.get("truncated").and_then(Value::as_bool) == Some(true) {
                " (truncated)"
            } else {
                ""
            },
        ));
    }
    out.push_str("</dl>");
    let mut actions = Vec::new();
    if let Some(services) = trail.get("actions_by_service").and_then(Value::as_object) {
        for (service, calls) in services {
            for (action, count) in calls.as_object().into_iter().flatten() {
                actions.push(vec![text(service), text(action), count.to_string()]);
            }
        }
    }
    out.push_str("<h3>Actions</h3>");
    out.push_str(&table(
        &["service", "action", "calls"],
        actions,
        "No API call of the session was found.",
    ));
    let errors: Vec<Vec<String>> = trail
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|error| {
            let field = |key: &str| {
                error
                    .get(key)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .unwrap_or_default()
            };
            vec![
                text(&field("code")),
                text(&field("action")),
                text(&field("count")),
            ]
        })
        .collect();
    if !errors.is_empty() {
        out.push_str("<h3>Errors</h3>");
        out.push_str(&table(&["code", "action", "count"], errors, ""));
    }
    let resources: Vec<Vec<String>> = trail
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|resource| vec![format!("<code>{}</code>", text(resource))])
        .collect();
    if !resources.is_empty() {
        out.push_str("<h3>Resources</h3>");
        out.push_str(&table(&["resource"], resources, ""));
    }
    let findings: Vec<Vec<String>> = trail
        .get("incident_findings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|finding| {
            let field = |key: &str| {
                finding
                    .get(key)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .unwrap_or_default()
            };
            vec![
                text(&field("level")),
                text(&field("what")),
                text(&field("count")),
            ]
        })
        .collect();
    out.push_str("<h3>Findings in the session</h3>");
    out.push_str(&table(
        &["level", "finding", "events"],
        findings,
        "No runbook found anything in the session.",
    ));
    let whole = serde_json::to_string_pretty(audit).unwrap_or_default();
    out.push_str(&format!(
        "<details><summary>The whole audit (JSON)</summary><pre>{}</pre></details>",
        text(&whole)
    ));
    out
}

/// The report as one self-contained HTML page.
pub fn html(report: &Report) -> String {
    let failed = report
        .all_checks()
        .filter(|check| check.outcome == Outcome::Failed)
        .count();
    let unchecked = report
        .all_checks()
        .filter(|check| check.outcome == Outcome::NotChecked)
        .count();
    let verdict = match (failed, unchecked) {
        (0, 0) => "<p class=\"verdict ok\">Every check passed.</p>".to_owned(),
        (0, n) => format!(
            "<p class=\"verdict na\">No check failed; {n} could not be made (see below).</p>"
        ),
        (n, _) => format!(
            "<p class=\"verdict bad\">{n} check(s) FAILED: this record is not what trailgate wrote, or the revoke does not hold.</p>"
        ),
    };
    let review = if report.break_glass {
        match &report.acknowledgement {
            Some(ack) => format!("<dt>break-glass review</dt><dd>signed off by {} at {}{}</dd>", text(&ack.by), text(&ack.at), ack.comment.as_deref().map(|c| format!(": {}", text(c))).unwrap_or_default()),
            None => "<dt>break-glass review</dt><dd><span class=\"badge bad\">NEEDS REVIEW</span> no approver has signed this session off</dd>".to_owned(),
        }
    } else {
        String::new()
    };
    let mut out = String::with_capacity(16 * 1024);
    out.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\"><meta name=\"referrer\" content=\"no-referrer\"><title>trailgate request {id}</title><style>{STYLE}</style></head><body>",
        id = text(&report.id)
    ));
    out.push_str(&format!(
        "<h1>Access request</h1><p class=\"id\">{} · {} · report made {}</p>{verdict}",
        text(&report.id),
        text(report.status.as_str()),
        text(&report.generated_at)
    ));
    out.push_str("<h2>Who asked, for what, and why</h2><dl>");
    for (name, value) in [
        ("requester", text(&report.requester)),
        (
            "person",
            opt(Some(report.requester_person.as_str()).filter(|p| !p.is_empty())),
        ),
        ("catalog entry", text(&report.catalog_id)),
        ("target", text(&report.target)),
        ("duration", text(&report.duration)),
        ("scheduled start", opt(report.start_at.as_deref())),
        ("reason", text(&report.reason)),
        ("ticket", opt(report.ticket.as_deref())),
        ("asked at", text(&report.created_at)),
        ("approval window until", text(&report.approval_expires_at)),
        ("granted until", opt(report.expires_at.as_deref())),
        ("outcome", opt(report.outcome.as_deref())),
        (
            "break-glass",
            if report.break_glass {
                "<strong>yes</strong>".to_owned()
            } else {
                "no".to_owned()
            },
        ),
    ] {
        out.push_str(&format!("<dt>{}</dt><dd>{value}</dd>", text(name)));
    }
    out.push_str(&review);
    out.push_str("</dl>");
    out.push_str("<h2>What the reviewers were shown</h2>");
    match &report.context {
        Some(context) => {
            out.push_str(&format!("<p>{}</p>", text(&context.summary)));
            let lines: String = context
                .lines
                .iter()
                .map(|line| format!("<li>{}</li>", text(line)))
                .collect();
            out.push_str(&format!("<ul>{lines}</ul>"));
        }
        None => out.push_str("<p class=\"none\">No reviewer context was recorded.</p>"),
    }
    out.push_str("<h2>Decisions</h2>");
    out.push_str(&table(
        &["approver", "decision", "at", "comment", "from"],
        report
            .decisions
            .iter()
            .map(|row| {
                vec![
                    text(&row.approver),
                    format!("<strong>{}</strong>", text(&row.decision)),
                    text(&row.at),
                    opt(row.comment.as_deref()),
                    opt(row.source_ip.as_deref()),
                ]
            })
            .collect(),
        if report.break_glass {
            "Nobody decided beforehand: break-glass."
        } else {
            "Nobody decided."
        },
    ));
    out.push_str("<h2>Credentials issued</h2>");
    out.push_str(&table(
        &["at", "to", "session"],
        report
            .credentials
            .iter()
            .map(|row| vec![text(&row.at), text(&row.by), text(&row.session)])
            .collect(),
        "No credentials were issued.",
    ));
    out.push_str("<h2>What the access was used for</h2>");
    match &report.audit {
        Some(audit) => out.push_str(&audit_html(audit)),
        None => out.push_str("<p class=\"none\">No audit has been recorded yet.</p>"),
    }
    out.push_str("<h2>Revoke</h2>");
    match &report.revoke {
        Some(revoke) => {
            out.push_str(&format!(
                "<dl><dt>at</dt><dd>{}</dd><dt>by</dt><dd>{}</dd><dt>reason</dt><dd>{}</dd></dl>",
                text(&revoke.at),
                text(&revoke.by),
                text(&revoke.reason)
            ));
            out.push_str(&check_html(&revoke.check));
        }
        None => out.push_str("<p class=\"none\">The grant was not revoked.</p>"),
    }
    out.push_str("<h2>Integrity</h2>");
    for check in &report.checks {
        out.push_str(&check_html(check));
    }
    out.push_str("<h2>Ledger events</h2>");
    out.push_str(&table_with_class(
        "events",
        &["#", "at", "actor", "action", "status", "detail", "hash"],
        report
            .timeline
            .iter()
            .map(|row| {
                vec![
                    row.seq.to_string(),
                    text(&row.at),
                    text(&row.actor),
                    text(&row.action),
                    format!(
                        "{} → {}",
                        row.from.map_or("–", Status::as_str),
                        row.to.as_str()
                    ),
                    opt(row.detail.as_deref()),
                    format!(
                        "<code title=\"{}\">{}</code>",
                        text(&row.hash),
                        text(row.hash.get(..12).unwrap_or(&row.hash))
                    ),
                ]
            })
            .collect(),
        "The ledger holds no event.",
    ));
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ledger_fixture;
    use ::time::macros::datetime;

    const AFTER: OffsetDateTime = datetime!(2026-12-07 12:00:00 UTC);

    fn passed(name: &str) -> Check {
        Check::new(name, Outcome::Passed, vec!["fine".into()])
    }

    #[test]
    fn the_report_has_every_decision_credential_and_the_revoke_of_the_ledger() {
        let (record, events) = ledger_fixture("audited.json");
        let report = build(
            &record,
            &events,
            vec![passed("ledger chain")],
            passed("revoke in effect"),
            AFTER,
        );
        assert_eq!(report.decisions.len(), 1);
        assert_eq!(report.decisions[0].approver, "bob");
        assert_eq!(report.decisions[0].source_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(report.credentials.len(), 2);
        let revoke = report.revoke.as_ref().unwrap();
        assert_eq!(
            (revoke.reason.as_str(), revoke.by.as_str()),
            ("expired", "trailgate:revoke")
        );
        assert_eq!(report.timeline.len(), 9);
        assert!(!report.has_failures());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["format"], REPORT_FORMAT);
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn a_missing_deny_fails_while_sessions_may_live_and_is_not_checked_afterwards() {
        let (record, _) = ledger_fixture("audited.json");
        // Expired 10:35:24; the deny is kept until 10:55:24.
        let during = datetime!(2026-12-07 10:40:00 UTC);
        let add = |doc: Option<&str>, id: &str| {
            policy::add_revocation(
                doc,
                id,
                2_000_000_000,
                1_800_000_000,
                policy::INLINE_POLICY_LIMIT,
            )
            .unwrap()
            .document
        };
        let other = add(None, "r-someoneelse");
        assert_eq!(judge_revoke(&record, None, during).outcome, Outcome::Failed);
        assert_eq!(
            judge_revoke(&record, Some(&other), during).outcome,
            Outcome::Failed
        );
        let ours = add(Some(&other), &record.id);
        assert_eq!(
            judge_revoke(&record, Some(&ours), during).outcome,
            Outcome::Passed
        );
        assert_eq!(
            judge_revoke(&record, None, AFTER).outcome,
            Outcome::NotChecked
        );
        let mut never = record.clone();
        never.expires_at = None;
        assert_eq!(judge_revoke(&never, None, during).outcome, Outcome::Passed);
        never.revoked_at = None;
        assert_eq!(
            judge_revoke(&never, None, during).outcome,
            Outcome::NotChecked
        );
    }

    #[test]
    fn the_page_escapes_what_people_wrote_loads_nothing_and_shows_a_failed_check() {
        let (mut record, events) = ledger_fixture("audited.json");
        record.reason = "<script>alert(1)</script><img src=x onerror=alert(2)>".into();
        record.decisions.get_mut("bob").unwrap().comment = Some("\"><a href=//evil>".into());
        let failed = Check::new(
            "ledger chain",
            Outcome::Failed,
            vec!["event 3 was changed".into()],
        );
        let report = build(
            &record,
            &events,
            vec![failed],
            passed("revoke in effect"),
            AFTER,
        );
        assert!(report.has_failures());
        let page = html(&report);
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"));
        assert!(!page.contains("<a href"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("default-src &#39;none&#39;") || page.contains("default-src 'none'"));
        assert!(page.contains("1 check(s) FAILED"));
        assert!(page.contains("event 3 was changed"));
        // The audit's completeness is said either way.
        let mut audited = record.clone();
        audited.audit = Some(
            serde_json::json!({"cloudtrail": {"analysed": true, "coverage": {
            "complete": false, "completeness": "incomplete: eu-west-1 has delivered up to <T>",
            "watermarks": [{"region": "eu-west-1", "newest_event": "2026-12-07T09:57:00Z", "error": null},
                           {"region": "us-east-1", "source": "trail bucket", "newest_event": null, "error": "AccessDenied"}]}}}),
        );
        let page = html(&build(
            &audited,
            &events,
            vec![],
            passed("revoke in effect"),
            AFTER,
        ));
        assert!(
            page.contains("May be incomplete: eu-west-1 has delivered up to &lt;T&gt;"),
            "{page}"
        );
        assert!(
            page.contains("<dt>delivered in eu-west-1</dt><dd>up to 2026-12-07T09:57:00Z</dd>")
        );
        assert!(
            page.contains(
                "<dt>delivered in us-east-1 (trail bucket)</dt><dd>nothing yet (AccessDenied)</dd>"
            ),
            "{}",
            &page[page.find("delivered in").unwrap_or(0)..][..400]
        );
        for remote in ["http://", "https://", "src=\"", "<link"] {
            assert!(!page.contains(remote), "the page loads {remote}");
        }
    }
}
