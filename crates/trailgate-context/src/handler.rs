//! Translates the `Gather Context` step: gathers and records what reviewers will be shown.
//!
//! The step never blocks a request: a missing request is an error (nothing to approve), but a
//! CloudTrail failure becomes `available: false` with the reason, and the approval goes out.
//! What is gathered, and how within the budget, is `trailgate-review`'s ([`gather`]).

use serde::Deserialize;
use serde_json::Value;
use trailgate_aws::LambdaError;
use trailgate_domain::error::Error;
use trailgate_domain::ports::Ledger;
use trailgate_domain::service;
use trailgate_runbooks::source::lookup::AccountLookups;

use trailgate_review::gather::{Settings, gather};

#[derive(Deserialize)]
struct Input {
    request_id: String,
}

pub async fn handle<L: Ledger, P: AccountLookups + Sync>(
    payload: Value,
    ledger: &L,
    lookups: &P,
    settings: &Settings,
) -> Result<Value, LambdaError> {
    let input: Input = serde_json::from_value(payload)
        .map_err(|err| Error::internal(format!("bad Gather Context input: {err}")))?;
    let request = ledger
        .get(&input.request_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("request {} not found", input.request_id)))?;
    let now = time::OffsetDateTime::now_utc();
    let context = gather(lookups, ledger, settings, &request, now).await;
    tracing::info!(
        request_id = %input.request_id,
        available = context.available,
        findings = context.lines.len(),
        "context gathered"
    );
    let context = service::record_context(ledger, &input.request_id, context, now).await?;
    // Only `available` and `summary` (bounded by `findings::MAX_SUMMARY_CHARS`) go back: the
    // state machine payload stays small whatever the history; lines, findings and evidence live
    // in the ledger (capped by `findings::MAX_CONTEXT_BYTES`).
    Ok(serde_json::json!({"available": context.available, "summary": context.summary}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use trailgate_domain::testing::*;
    use trailgate_runbooks::source::lookup::{
        LookupCallError, LookupEvent, LookupEventsApi, LookupPage, LookupRequest, OneAccount,
    };

    /// LookupEvents over fixed records (all for the requester), or failing every call.
    struct FakeApi {
        records: Vec<Value>,
        fail: Option<LookupCallError>,
    }

    impl LookupEventsApi for FakeApi {
        async fn lookup(&self, request: LookupRequest) -> Result<LookupPage, LookupCallError> {
            if let Some(error) = &self.fail {
                return Err(error.clone());
            }
            if request.region != "us-east-1" {
                return Ok(LookupPage::default());
            }
            Ok(LookupPage {
                events: self
                    .records
                    .iter()
                    .map(|r| LookupEvent {
                        event_id: r["eventID"].as_str().map(str::to_owned),
                        cloud_trail_event: Some(r.to_string()),
                    })
                    .collect(),
                next_token: None,
            })
        }

        async fn sleep(&self, _duration: Duration) {}
    }

    fn event(i: u32, name: &str, source: &str, extra: Value) -> Value {
        let at = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        let mut record = serde_json::json!({
            "eventID": format!("e{i}"),
            "eventTime": trailgate_domain::time::format_utc(at),
            "eventName": name,
            "eventSource": source,
            "awsRegion": "us-east-1",
            "sourceIPAddress": "198.51.100.7",
            "userIdentity": {"type": "IAMUser", "userName": "alice",
                "arn": "arn:aws:iam::123456789012:user/alice"},
        });
        if let (Some(target), Some(more)) = (record.as_object_mut(), extra.as_object()) {
            target.extend(more.clone());
        }
        record
    }

    fn settings() -> Settings {
        Settings {
            regions: vec!["us-east-1".into(), "eu-west-1".into()],
            budget: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn findings_are_ranked_with_coverage() {
        let ledger = MemoryLedger::default();
        let mut request = pending_request();
        request.requester_identity = "alice".into();
        let id = seed(&ledger, request).id;
        // The step's input as the state machine sends it.
        let input: Value =
            serde_json::from_str(include_str!("../../../events/context/gather_context.json"))
                .unwrap();
        assert_eq!(input["request_id"], id.as_str());
        let api = FakeApi {
            records: vec![
                event(1, "ListBuckets", "s3.amazonaws.com", Value::Null),
                event(2, "StopLogging", "cloudtrail.amazonaws.com", Value::Null),
                event(
                    3,
                    "AttachRolePolicy",
                    "iam.amazonaws.com",
                    serde_json::json!({"requestParameters": {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}}),
                ),
                event(
                    4,
                    "ConsoleLogin",
                    "signin.amazonaws.com",
                    serde_json::json!({"responseElements": {"ConsoleLogin": "Failure"}, "errorMessage": "Failed authentication"}),
                ),
                event(
                    5,
                    "ConsoleLogin",
                    "signin.amazonaws.com",
                    serde_json::json!({"responseElements": {"ConsoleLogin": "Failure"}, "errorMessage": "Failed authentication"}),
                ),
            ],
            fail: None,
        };
        let out = handle(input, &ledger, &OneAccount(&api), &settings())
            .await
            .unwrap();
        assert_eq!(out["available"], true, "{out}");
        assert_eq!(out.as_object().unwrap().len(), 2, "small payload: {out}");
        let summary = out["summary"].as_str().unwrap();
        assert!(summary.contains("from 5 CloudTrail events"), "{summary}");
        assert!(summary.contains("us-east-1, eu-west-1"), "{summary}");
        let context = ledger.record(&id).unwrap().context.unwrap();
        let lines = context.lines.join("\n");
        assert!(context.lines[0].starts_with("! HIGH"), "{lines}");
        assert!(lines.contains("StopLogging"), "{lines}");
        assert!(lines.contains("AttachRolePolicy"), "{lines}");
        assert!(
            lines.contains("! MEDIUM Failed console sign-ins"),
            "{lines}"
        );
        assert!(lines.contains("- INFO activity"), "{lines}");
        assert_eq!(
            context.lines.last().unwrap(),
            "- INFO no previous trailgate requests",
            "{lines}"
        );
        // Every finding carries its evidence for the confirm page.
        let tampering = context
            .findings
            .iter()
            .find(|f| f.what.contains("StopLogging"))
            .expect("a StopLogging finding");
        assert_eq!(tampering.evidence.len(), 1);
        assert_eq!(tampering.evidence[0].event_id, "e2");
        assert_eq!(
            tampering.evidence[0].event_source,
            "cloudtrail.amazonaws.com"
        );
        assert_eq!(tampering.evidence[0].source_ip, "198.51.100.7");
        let logins = context
            .findings
            .iter()
            .find(|f| f.what.starts_with("Failed console sign-ins"))
            .expect("a sign-in finding");
        assert_eq!(logins.evidence.len(), 2);
        assert_eq!(
            logins.evidence[0].error.as_deref(),
            Some("Failed authentication")
        );
    }

    #[tokio::test]
    async fn a_lookup_failure_never_blocks() {
        let ledger = MemoryLedger::default();
        let id = seed(&ledger, pending_request()).id;
        let api = FakeApi {
            records: Vec::new(),
            fail: Some(LookupCallError::Failed("AccessDeniedException: no".into())),
        };
        let out = handle(
            serde_json::json!({"request_id": id}),
            &ledger,
            &OneAccount(&api),
            &settings(),
        )
        .await
        .unwrap();
        assert_eq!(out["available"], false);
        let summary = out["summary"].as_str().unwrap();
        assert!(summary.starts_with("context unavailable"), "{summary}");
        assert!(summary.contains("AccessDeniedException"), "{summary}");
        assert!(summary.contains("NOT checked"), "{summary}");
    }
}
