//! The server-rendered pages approvers see: no JavaScript, every value escaped, readable on a phone.

use trailgate_domain::link::LinkParams;
use trailgate_domain::request::AccessRequest;
use trailgate_domain::service::Review;
use trailgate_domain::time::format_duration;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:1rem auto;padding:0 1rem;line-height:1.4}}\
dt{{font-weight:600;margin-top:.5rem}}dd{{margin:0}}.warn{{background:#fff3cd;padding:.5rem;border-left:4px solid #e0a800}}\
button{{font-size:1.1rem;padding:.6rem 1.2rem;margin:.3rem .5rem .3rem 0}}textarea{{width:100%}}</style></head>\
<body><h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title)
    )
}

fn details(request: &AccessRequest, description: &str) -> String {
    let mut out = String::from("<dl>");
    let rows = [
        ("Request", request.id.clone()),
        ("Requester", request.requester.clone()),
        ("Role", request.role_arn.clone()),
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
            if !context.lines.is_empty() {
                out.push_str("<ul>");
                for line in &context.lines {
                    out.push_str(&format!("<li>{}</li>", escape(line)));
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

/// The confirm page: the request, the context, and the Approve/Deny form (POST).
pub fn confirm(review: &Review, link: &LinkParams) -> String {
    let request = &review.request;
    let body = format!(
        "<p>You are deciding as <strong>{approver}</strong>. Opening this page changed nothing.</p>{details}{context}\
<form method=\"post\"><input type=\"hidden\" name=\"a\" value=\"{a}\"><input type=\"hidden\" name=\"e\" value=\"{e}\">\
<input type=\"hidden\" name=\"s\" value=\"{s}\"><label for=\"comment\">Comment (optional)</label>\
<textarea id=\"comment\" name=\"comment\" rows=\"3\" maxlength=\"500\"></textarea><br>\
<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>\
<p><small>This link works until {until}.</small></p>",
        approver = escape(&review.approver_id),
        details = details(request, &review.entry_description),
        context = context(request),
        a = escape(&link.approver_id),
        e = link.expires,
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
            "<p>{} {verb} request {}.</p><p>{}</p>",
            escape(approver_id),
            escape(&request.id),
            escape(&status)
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

    #[test]
    fn everything_is_escaped() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        let page = refusal("t", "<img src=x onerror=alert(1)>");
        assert!(!page.contains("<img"));
    }
}
