//! The requester's previous trailgate requests as reviewer-context findings, each with what its
//! session audit found: a reviewer weighs a request by what the last grants were used for.

use serde_json::Value;
use trailgate_domain::findings::{Finding, Level, MAX_WHAT_CHARS, clip};
use trailgate_domain::request::{AccessRequest, Status};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn previous_requests_are_summarised_newest_first_with_what_each_session_did() {
        use trailgate_domain::testing::pending_request;
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
}
