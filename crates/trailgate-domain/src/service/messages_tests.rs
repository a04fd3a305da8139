//! Behaviour tests of the e-mail texts use cases against the in-memory ports.

use super::*;
use crate::request::ContextSummary;
use crate::service::test_support::*;
use crate::testing::*;

#[test]
fn the_approval_email_is_plain_text_with_everything_an_approver_needs() {
    let mut request = pending_request();
    request.ticket = Some("OPS-42".into());
    request.reason = "fix prod <b>now</b>".into();
    request.context = Some(ContextSummary {
        available: true,
        summary: "40 calls in the last 24 h".into(),
        lines: (1..=40).map(|n| format!("event {n}")).collect(),
        findings: Vec::new(),
    });
    let entry = catalog().entry("sandbox-admin").unwrap().clone();
    let (subject, body) = approval_message(&request, &entry, "https://x/v1/decisions/r-1?a=bob");
    assert_eq!(subject, "trailgate: alice requests sandbox-admin for PT2H");
    for needle in [
        "Reason:    fix prod <b>now</b>",
        "Ticket:    OPS-42",
        "Duration:  PT2H",
        &request.role_arn,
        "https://x/v1/decisions/r-1?a=bob",
    ] {
        assert!(body.contains(needle), "no `{needle}` in\n{body}");
    }
    let context: Vec<&str> = body
        .lines()
        .skip_while(|l| !l.starts_with("What the requester has been doing"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(context.len(), 20, "{context:?}");
    assert_eq!(context[0], "  40 calls in the last 24 h");
    assert!(!body.contains("event 20\n"));
    // Subjects stay printable ASCII under SNS's 100 characters, whatever the requester is called.
    request.requester_identity = format!("ä\n{}", "x".repeat(200));
    let (subject, _) = approval_message(&request, &entry, "u");
    assert!(subject.len() < 100 && subject.chars().all(|c| c.is_ascii_graphic() || c == ' '));
}

#[test]
fn the_audit_email_says_whether_cloudtrail_had_delivered_everything() {
    let mut request = pending_request();
    request.status = crate::request::Status::Revoked;
    let report = |complete: bool, why: &str| {
        serde_json::json!({"cloudtrail": {"analysed": true, "events": 2,
            "coverage": {"truncated": false, "complete": complete, "completeness": why}}})
    };
    let (_, body) = audit_message(&request, &report(true, "complete: ..."));
    assert!(
        body.contains("Complete: CloudTrail had delivered past the session's end"),
        "{body}"
    );
    let (_, body) = audit_message(
        &request,
        &report(
            false,
            "incomplete: CloudTrail has not yet delivered events after the session's end (2026-12-07T10:00:00Z) in every Region: eu-west-1 has delivered up to 2026-12-07T09:57:00Z",
        ),
    );
    assert!(
        body.contains("MAY BE INCOMPLETE: CloudTrail has not yet delivered"),
        "{body}"
    );
    assert!(body.contains("eu-west-1 has delivered up to"), "{body}");
}
