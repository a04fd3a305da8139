//! The e-mail texts: approval requests, break-glass alerts and audit reports, plain text with
//! subjects SNS accepts.

use crate::catalog::Entry;
use crate::request::AccessRequest;
use crate::time::format_duration;

/// The plain-text approval e-mail. SNS subjects must be printable ASCII under 100 characters.
pub fn approval_message(request: &AccessRequest, entry: &Entry, url: &str) -> (String, String) {
    let subject = sanitize_subject(&format!(
        "trailgate: {} requests {} for {}",
        request.requester_identity,
        entry.id,
        format_duration(request.duration())
    ));
    let mut body = String::new();
    body.push_str(&format!(
        "{} asks for temporary access.\n\n",
        request.requester
    ));
    push_facts(&mut body, request, entry, "");
    body.push_str("What the requester has been doing:\n");
    push_context(&mut body, request);
    body.push_str(&format!(
        "\nReview and decide (the page asks you to confirm; opening it changes nothing):\n{url}\n\nThis link is yours alone and stops working at {}.\n",
        request.approval_expires_at
    ));
    (subject, body)
}

fn sanitize_subject(text: &str) -> String {
    let mut subject: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    subject.truncate(99);
    subject
}

/// The alert sent when break-glass access starts.
pub fn break_glass_message(request: &AccessRequest, entry: &Entry) -> (String, String) {
    let subject = sanitize_subject(&format!(
        "trailgate BREAK-GLASS: {} took {} for {}",
        request.requester_identity,
        entry.id,
        format_duration(request.duration())
    ));
    let mut body = String::new();
    body.push_str(&format!(
        "{} used break-glass access. Nobody approved it; it starts now.\n\n",
        request.requester
    ));
    let cap = format!(
        " (break-glass is capped at {})",
        format_duration(crate::catalog::BREAK_GLASS_MAX_DURATION)
    );
    push_facts(&mut body, request, entry, &cap);
    body.push_str("What the requester had been doing:\n");
    push_context(&mut body, request);
    body.push_str(&format!(
        "\nTo end it now:        jitctl revoke {id}\nAfter reviewing it:   jitctl ack {id} --comment \"...\"\nThe session audit is sent to you after it ends; the request stays flagged for review until an approver acknowledges it.\n",
        id = request.id
    ));
    (subject, body)
}

/// The message to a person an entry notifies (`notify`): the request and its context, and no
/// link, since they cannot decide.
pub fn notify_message(request: &AccessRequest, entry: &Entry) -> (String, String) {
    let subject = sanitize_subject(&format!(
        "trailgate (for your information): {} requests {} for {}",
        request.requester_identity,
        entry.id,
        format_duration(request.duration())
    ));
    let mut body = String::new();
    body.push_str(&format!(
        "{} asks for temporary access. You are told of requests for {}; you cannot approve them.\n\n",
        request.requester, entry.id
    ));
    push_facts(&mut body, request, entry, "");
    body.push_str("What the requester has been doing:\n");
    push_context(&mut body, request);
    body.push_str(&format!(
        "\nThe approvers decide until {}.\n",
        request.approval_expires_at
    ));
    (subject, body)
}

/// The facts every message about a request starts with; `duration_note` follows the duration.
fn push_facts(body: &mut String, request: &AccessRequest, entry: &Entry, duration_note: &str) {
    match &request.assignment {
        Some(a) => body.push_str(&format!(
            "Permission set: {} in account {} (Identity Center user {})\n",
            a.permission_set_arn, a.account, a.user_id
        )),
        None => body.push_str(&format!("Role:      {}\n", request.role_arn)),
    }
    body.push_str(&format!(
        "Catalog:   {} ({})\n",
        entry.id, entry.description
    ));
    body.push_str(&format!(
        "Duration:  {}{duration_note}\n",
        format_duration(request.duration())
    ));
    body.push_str(&format!(
        "Starts:    {}\n",
        request
            .start_at
            .as_deref()
            .map_or("when approved".to_owned(), |at| format!(
                "{at} (scheduled: approve now, the grant waits for it)"
            ))
    ));
    body.push_str(&format!("Reason:    {}\n", request.reason));
    body.push_str(&format!(
        "Ticket:    {}\n",
        request.ticket.as_deref().unwrap_or("none")
    ));
    body.push_str(&format!("Request:   {}\n\n", request.id));
}

fn push_context(body: &mut String, request: &AccessRequest) {
    match &request.context {
        Some(context) => {
            body.push_str(&format!("  {}\n", context.summary));
            for line in context.lines.iter().take(crate::findings::MAX_LINES) {
                body.push_str(&format!("  {line}\n"));
            }
        }
        None => body.push_str("  context unavailable\n"),
    }
}

/// The audit e-mail: what the session did, in a few lines, with the way to the full report.
pub fn audit_message(request: &AccessRequest, report: &serde_json::Value) -> (String, String) {
    let flag = if request.needs_review() {
        " [NEEDS REVIEW]"
    } else {
        ""
    };
    let subject = sanitize_subject(&format!(
        "trailgate audit{flag}: {} on {} ({})",
        request.requester_identity, request.catalog_id, request.id
    ));
    let number = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let mut body = String::new();
    if request.needs_review() {
        body.push_str(&format!(
            "NEEDS REVIEW: this was break-glass access that nobody approved. After reviewing it, run:\n  jitctl ack {} --comment \"...\"\n\n",
            request.id
        ));
    }
    body.push_str(&format!(
        "{} had {} ({}).\n",
        request.requester,
        request.target_label(),
        request.catalog_id
    ));
    body.push_str(&format!(
        "Granted until {}, revoked at {}, {} credential set(s) issued.\n\n",
        request.expires_at.as_deref().unwrap_or("?"),
        request.revoked_at.as_deref().unwrap_or("?"),
        request.credentials_issued
    ));
    let cloudtrail = &report["cloudtrail"];
    if cloudtrail["analysed"].as_bool() == Some(true) {
        body.push_str(&format!(
            "CloudTrail: {} calls ({} writes, {} reads), {} resources touched.\n",
            number("/cloudtrail/events"),
            number("/cloudtrail/writes"),
            number("/cloudtrail/reads"),
            number("/cloudtrail/resources_total"),
        ));
        if let Some(services) = cloudtrail["actions_by_service"].as_object() {
            for (service, actions) in services.iter().take(10) {
                let names: Vec<String> = actions
                    .as_object()
                    .into_iter()
                    .flatten()
                    .take(8)
                    .map(|(name, count)| format!("{name} x{count}"))
                    .collect();
                body.push_str(&format!("  {service}: {}\n", names.join(", ")));
            }
        }
        for error in cloudtrail["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .take(5)
        {
            body.push_str(&format!(
                "  ! {} on {} x{}\n",
                error["code"].as_str().unwrap_or("?"),
                error["action"].as_str().unwrap_or("?"),
                error["count"].as_u64().unwrap_or(0)
            ));
        }
        for finding in cloudtrail["incident_findings"]
            .as_array()
            .into_iter()
            .flatten()
            .take(10)
        {
            body.push_str(&format!("  ! {}\n", finding.as_str().unwrap_or("?")));
        }
        // Whether CloudTrail had delivered everything up to the session's end when the audit
        // read it (`trailgate_review::session::completeness`): said either way, so an approver
        // never takes a quiet report for a complete one.
        match (
            cloudtrail["coverage"]["complete"].as_bool(),
            cloudtrail["coverage"]["completeness"].as_str(),
        ) {
            (Some(true), _) => body.push_str("  Complete: CloudTrail had delivered past the session's end in every Region read.\n"),
            (Some(false), Some(why)) => body.push_str(&format!("  MAY BE INCOMPLETE: {}\n", why.trim_start_matches("incomplete: "))),
            _ if cloudtrail["coverage"]["truncated"].as_bool() == Some(true) => body.push_str(
                "  (INCOMPLETE: the scan was cut short; see the coverage notes in the report)\n",
            ),
            _ => {}
        }
    } else {
        body.push_str(&format!(
            "CloudTrail: not analysed: {}\n",
            cloudtrail["reason"].as_str().unwrap_or("no reason given")
        ));
    }
    body.push_str(&format!(
        "\nFull report, with a least-privilege policy built from the calls made:\n  jitctl status {} --json\n",
        request.id
    ));
    (subject, body)
}

/// The approvers' mail when the audit's second pass found what the first did not.
pub fn reaudit_message(
    request: &AccessRequest,
    report: &serde_json::Value,
    news: &[String],
) -> (String, String) {
    let (subject, body) = audit_message(request, report);
    let subject =
        sanitize_subject(&subject.replacen("trailgate audit", "trailgate audit update", 1));
    let mut text = String::from(
        "UPDATE: the audit read CloudTrail again, after its late deliveries, and found what the first report did not show:\n",
    );
    for line in news {
        text.push_str(&format!("  * {line}\n"));
    }
    text.push('\n');
    text.push_str(&body);
    (subject, text)
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
