//! The server-rendered pages approvers see: no JavaScript, every value escaped, readable on a phone.

use trailgate_domain::findings::{self, Finding, Level};
use trailgate_domain::html::escape;
use trailgate_domain::link::LinkParams;
use trailgate_domain::request::AccessRequest;
use trailgate_domain::service::Review;
use trailgate_domain::time::format_duration;

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:1rem auto;padding:0 1rem;line-height:1.4}}\
dt{{font-weight:600;margin-top:.5rem}}dd{{margin:0}}.warn{{background:#fff3cd;padding:.5rem;border-left:4px solid #e0a800}}\
button{{font-size:1.1rem;padding:.6rem 1.2rem;margin:.3rem .5rem .3rem 0}}textarea{{width:100%}}\
summary{{cursor:pointer}}.scroll{{overflow-x:auto}}table{{border-collapse:collapse;font-size:.85rem;margin:.3rem 0}}\
th,td{{border:1px solid #ccc;padding:.2rem .4rem;text-align:left;vertical-align:top}}</style></head>\
<body><h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title)
    )
}

fn details(request: &AccessRequest, description: &str) -> String {
    let mut out = String::from("<dl>");
    let rows = [
        ("Request", request.id.clone()),
        ("Requester", request.requester.clone()),
        match &request.assignment {
            Some(_) => ("Grant", request.target_label()),
            None => ("Role", request.role_arn.clone()),
        },
        (
            "Catalog entry",
            format!("{} — {}", request.catalog_id, description),
        ),
        ("Duration", format_duration(request.duration())),
        ("Reason", request.reason.clone()),
        (
            "Ticket",
            request.ticket.clone().unwrap_or_else(|| "none".into()),
        ),
        ("Status", request.status.to_string()),
    ];
    for (name, value) in rows {
        out.push_str(&format!(
            "<dt>{}</dt><dd>{}</dd>",
            escape(name),
            escape(&value)
        ));
    }
    out.push_str("</dl>");
    out
}

fn context(request: &AccessRequest) -> String {
    match &request.context {
        Some(context) => {
            let class = if context.available {
                ""
            } else {
                " class=\"warn\""
            };
            let mut out = format!(
                "<h2>What the requester has been doing</h2><p{class}>{}</p>",
                escape(&context.summary)
            );
            if !context.findings.is_empty() {
                out.push_str(&findings(&context.findings));
            } else if !context.lines.is_empty() {
                // A context stored before findings carried evidence: its lines only.
                out.push_str("<ul>");
                for line in &context.lines {
                    let class = if is_warning(line) {
                        " class=\"warn\""
                    } else {
                        ""
                    };
                    out.push_str(&format!("<li{class}>{}</li>", escape(line)));
                }
                out.push_str("</ul>");
            }
            out
        }
        None => {
            "<h2>What the requester has been doing</h2><p class=\"warn\">Context unavailable.</p>"
                .into()
        }
    }
}

/// The ranked findings, each with its evidence one click away (`<details>`, no JavaScript).
fn findings(findings: &[Finding]) -> String {
    let mut out = String::from("<ul class=\"findings\">");
    for finding in findings {
        let class = if finding.level >= Level::Low {
            " class=\"warn\""
        } else {
            ""
        };
        let text = escape(&findings::line(finding));
        if finding.evidence.is_empty() {
            out.push_str(&format!("<li{class}>{text}</li>"));
            continue;
        }
        out.push_str(&format!(
            "<li{class}><details><summary>{text}</summary><div class=\"scroll\"><table>\
<tr><th>Time (UTC)</th><th>Event</th><th>Source</th><th>Region</th><th>Source IP</th><th>Error</th><th>Event ID</th></tr>"
        ));
        for evidence in &finding.evidence {
            let cells = [
                evidence.event_time.as_str(),
                evidence.event_name.as_str(),
                evidence.event_source.as_str(),
                evidence.aws_region.as_str(),
                evidence.source_ip.as_str(),
                evidence.error.as_deref().unwrap_or(""),
                evidence.event_id.as_str(),
            ];
            out.push_str("<tr>");
            for cell in cells {
                out.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            out.push_str("</tr>");
        }
        let shown = finding.evidence.len() as u64;
        let more = if finding.count > shown {
            format!(
                "<p><small>The newest {shown} of {} events; the rest are in CloudTrail.</small></p>",
                finding.count
            )
        } else {
            String::new()
        };
        out.push_str(&format!("</table></div>{more}</details></li>"));
    }
    out.push_str("</ul>");
    out
}

/// Context lines the reviewer must not miss: runbook findings marked `!` or `warning`.
fn is_warning(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with('!') || line.to_ascii_lowercase().starts_with("warning")
}

/// Who decided what so far, with their comments.
fn decisions(request: &AccessRequest) -> String {
    if request.decisions.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Decisions</h2><ul>");
    for (approver, decision) in &request.decisions {
        let verb = if decision.approve {
            "approved"
        } else {
            "denied"
        };
        let comment = decision
            .comment
            .as_deref()
            .map(|c| format!(": “{}”", escape(c)))
            .unwrap_or_default();
        out.push_str(&format!(
            "<li><strong>{}</strong> {verb} at {}{comment}</li>",
            escape(approver),
            escape(&decision.at)
        ));
    }
    out.push_str("</ul>");
    out
}

/// The confirm page: the request, the context, and the Approve/Deny form (POST). Once the
/// request is decided, or this approver has decided, it shows the outcome instead of a form.
pub fn confirm(review: &Review, link: &LinkParams) -> String {
    let request = &review.request;
    if request.status.is_decided() || request.decisions.contains_key(&review.approver_id) {
        let outcome = request
            .outcome
            .as_deref()
            .map(|o| format!(" ({})", escape(o)))
            .unwrap_or_default();
        let body = format!(
            "<p class=\"outcome\">The request is <strong>{}</strong>{outcome}. There is nothing left for you to decide.</p>{}{}{}",
            escape(request.status.as_str()),
            decisions(request),
            details(request, &review.entry_description),
            context(request),
        );
        return layout("Already decided", &body);
    }
    let body = format!(
        "<p>You are deciding as <strong>{approver}</strong>. Opening this page changed nothing.</p>{details}{context}{decisions}\
<form method=\"post\"><input type=\"hidden\" name=\"a\" value=\"{a}\"><input type=\"hidden\" name=\"e\" value=\"{e}\">\
<input type=\"hidden\" name=\"h\" value=\"{h}\"><input type=\"hidden\" name=\"s\" value=\"{s}\"><label for=\"comment\">Comment (optional)</label>\
<textarea id=\"comment\" name=\"comment\" rows=\"3\" maxlength=\"500\"></textarea><br>\
<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>\
<p><small>This link works until {until}.</small></p>",
        approver = escape(&review.approver_id),
        details = details(request, &review.entry_description),
        context = context(request),
        decisions = decisions(request),
        a = escape(&link.approver_id),
        e = link.expires,
        h = escape(&link.content_hash),
        s = escape(&link.signature),
        until = escape(&request.approval_expires_at),
    );
    layout("Approve temporary access?", &body)
}

/// The page after a decision.
pub fn outcome(request: &AccessRequest, approver_id: &str, approve: bool) -> String {
    let verb = if approve { "approved" } else { "denied" };
    let status = match request.outcome.as_deref() {
        Some(outcome) => format!("The request is now {} ({}).", request.status, outcome),
        None => format!(
            "The request is still {}: more approvals are needed.",
            request.status
        ),
    };
    layout(
        "Decision recorded",
        &format!(
            "<p>{} {verb} request {}.</p><p class=\"outcome\">{}</p>{}",
            escape(approver_id),
            escape(&request.id),
            escape(&status),
            decisions(request)
        ),
    )
}

/// A refusal: what was wrong, and that nothing changed.
pub fn refusal(title: &str, reason: &str) -> String {
    layout(
        title,
        &format!("<p>{}</p><p>Nothing was changed.</p>", escape(reason)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailgate_domain::request::ContextSummary;

    #[test]
    fn everything_is_escaped() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        let page = refusal("t", "<img src=x onerror=alert(1)>");
        assert!(!page.contains("<img"));
    }

    fn review_of(request: AccessRequest) -> Review {
        Review {
            request,
            approver_id: "bob".into(),
            entry_description: "<desc>".into(),
        }
    }

    fn link() -> LinkParams {
        LinkParams {
            request_id: "r-1".into(),
            approver_id: "bob\"><x".into(),
            expires: 1,
            content_hash: "cd".repeat(32),
            signature: "ab".repeat(32),
        }
    }

    #[test]
    fn the_confirm_page_escapes_every_value_and_highlights_warnings() {
        let mut request = trailgate_domain::testing::pending_request();
        request.reason = "<script>alert(1)</script>".into();
        request.ticket = Some("\"><img src=x onerror=alert(2)>".into());
        request.context = Some(ContextSummary {
            available: true,
            summary: "<b>3 calls</b>".into(),
            lines: vec!["! DeleteTrail <i>x</i>".into(), "ListBuckets".into()],
            findings: Vec::new(),
        });
        let page = confirm(&review_of(request), &link());
        for raw in ["<script", "<img", "<i>", "<b>3", "<desc>", "bob\"><x"] {
            assert!(!page.contains(raw), "`{raw}` is not escaped");
        }
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("<li class=\"warn\">! DeleteTrail &lt;i&gt;x&lt;/i&gt;</li>"));
        assert!(page.contains("<li>ListBuckets</li>"));
        // No JavaScript needed: a plain form whose buttons post the decision.
        assert!(page.contains("<form method=\"post\">"));
        assert!(page.contains("name=\"decision\" value=\"approve\""));
        assert!(page.contains("name=\"viewport\""));
    }

    #[test]
    fn findings_show_their_evidence_one_click_away_and_escaped() {
        use trailgate_domain::findings::{Evidence, Finding, Level};
        let hostile = Evidence::from_record(&serde_json::json!({
            "eventID": "e-1\"><script>", "eventTime": "2026-11-20T10:00:00Z",
            "eventName": "StopLogging<img src=x onerror=alert(3)>",
            "eventSource": "cloudtrail.amazonaws.com", "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.9", "errorCode": "AccessDenied",
            "errorMessage": "<b>no</b>"}));
        let mut request = trailgate_domain::testing::pending_request();
        request.context = Some(ContextSummary {
            available: true,
            summary: "2 warnings".into(),
            lines: vec!["! HIGH ...".into()],
            findings: vec![
                Finding {
                    level: Level::High,
                    what: "Logging tampering: <u>StopLogging</u>".into(),
                    count: 7,
                    evidence: vec![hostile],
                },
                Finding {
                    level: Level::Info,
                    what: "no previous trailgate requests".into(),
                    count: 0,
                    evidence: Vec::new(),
                },
            ],
        });
        let page = confirm(&review_of(request), &link());
        for raw in ["<script", "<img", "<u>", "<b>no"] {
            assert!(!page.contains(raw), "`{raw}` is not escaped");
        }
        assert!(page.contains(
            "<li class=\"warn\"><details><summary>! HIGH Logging tampering: &lt;u&gt;StopLogging&lt;/u&gt; (7 events, latest 2026-11-20T10:00:00Z from 203.0.113.9)</summary>"
        ), "{page}");
        assert!(page.contains("<td>StopLogging&lt;img src=x onerror=alert(3)&gt;</td><td>cloudtrail.amazonaws.com</td><td>us-east-1</td><td>203.0.113.9</td><td>AccessDenied: &lt;b&gt;no&lt;/b&gt;</td><td>e-1&quot;&gt;&lt;script&gt;</td>"), "{page}");
        assert!(page.contains("The newest 1 of 7 events"), "{page}");
        // A finding without events is a plain item, and the e-mail lines are not repeated.
        assert!(
            page.contains("<li>- INFO no previous trailgate requests</li>"),
            "{page}"
        );
        assert!(!page.contains("! HIGH ...</li>"), "{page}");
    }

    #[test]
    fn a_decided_request_shows_the_outcome_and_who_decided_instead_of_a_form() {
        let mut request = trailgate_domain::testing::pending_request();
        request.status = trailgate_domain::request::Status::Denied;
        request.outcome = Some("denied by carol".into());
        request.decisions.insert(
            "carol".into(),
            trailgate_domain::request::Decision {
                approve: false,
                at: "2026-11-21T10:00:00Z".into(),
                comment: Some("<no>".into()),
            },
        );
        let page = confirm(&review_of(request.clone()), &link());
        assert!(!page.contains("<form"), "{page}");
        assert!(page.contains("DENIED") && page.contains("denied by carol"));
        assert!(page.contains("<strong>carol</strong> denied") && page.contains("&lt;no&gt;"));
        let after = outcome(&request, "carol", false);
        assert!(after.contains("carol denied request") && after.contains("denied by carol"));
    }
}
