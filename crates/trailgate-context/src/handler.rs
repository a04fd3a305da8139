//! Translates the `Gather Context` step: gathers and records what reviewers will be shown.
//!
//! The step never blocks a request: a missing request is an error (nothing to approve), but a
//! CloudTrail failure becomes `available: false` with the reason, and the approval goes out.

use serde::Deserialize;
use serde_json::Value;
use trailgate_aws::LambdaError;
use trailgate_domain::error::Error;
use trailgate_domain::ports::Ledger;
use trailgate_domain::service;
use trailgate_runbooks::source::lookup::LookupEventsApi;

use crate::gather::{Settings, gather};

#[derive(Deserialize)]
struct Input {
    request_id: String,
}

pub async fn handle<L: Ledger, A: LookupEventsApi + Sync>(
    payload: Value,
    ledger: &L,
    api: &A,
    settings: &Settings,
) -> Result<Value, LambdaError> {
    let input: Input = serde_json::from_value(payload)
        .map_err(|err| Error::internal(format!("bad Gather Context input: {err}")))?;
    let request = ledger
        .get(&input.request_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("request {} not found", input.request_id)))?;
    let now = time::OffsetDateTime::now_utc();
    let context = gather(api, ledger, settings, &request, now).await;
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
        LookupCallError, LookupEvent, LookupPage, LookupRequest,
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
        let out = handle(input, &ledger, &api, &settings()).await.unwrap();
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
            &api,
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

/// The context on a realistic LookupEvents: the real limits (2 calls per second per Region,
/// 50-event pages, newest first, one attribute per call) on tokio's paused clock, so a 10 s
/// budget runs in milliseconds and every call is counted.
#[cfg(test)]
mod paced {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::Duration;
    use time::OffsetDateTime;
    use tokio::time::Instant;
    use trailgate_domain::findings::{Level, MAX_CONTEXT_BYTES};
    use trailgate_domain::request::{AccessRequest, Status};
    use trailgate_domain::testing::*;
    use trailgate_runbooks::source::lookup::{
        LookupCallError, LookupEvent, LookupPage, LookupRequest,
    };
    use trailgate_runbooks::spec::LookupAttribute;

    /// An account's history behind LookupEvents with the real API's rules.
    #[derive(Default)]
    struct PacedApi {
        /// Newest first.
        records: Vec<(i64, Value)>,
        /// Recent call instants per Region, for the rate limit.
        calls: Mutex<BTreeMap<String, Vec<Instant>>>,
        /// Pages answered, by attribute.
        answered: Mutex<BTreeMap<&'static str, u32>>,
        throttled: Mutex<u32>,
    }

    impl PacedApi {
        fn new(mut records: Vec<Value>) -> PacedApi {
            let mut dated: Vec<(i64, Value)> = records
                .drain(..)
                .map(|record| {
                    let at =
                        trailgate_domain::time::parse_utc(record["eventTime"].as_str().unwrap())
                            .unwrap()
                            .unix_timestamp();
                    (at, record)
                })
                .collect();
            dated.sort_by_key(|entry| std::cmp::Reverse(entry.0));
            PacedApi {
                records: dated,
                ..PacedApi::default()
            }
        }

        fn answered(&self, attribute: LookupAttribute) -> u32 {
            self.answered
                .lock()
                .unwrap()
                .get(attribute.as_str())
                .copied()
                .unwrap_or(0)
        }
    }

    impl LookupEventsApi for PacedApi {
        async fn lookup(&self, request: LookupRequest) -> Result<LookupPage, LookupCallError> {
            {
                let now = Instant::now();
                let mut calls = self.calls.lock().unwrap();
                let recent = calls.entry(request.region.clone()).or_default();
                recent.retain(|at| now.duration_since(*at) < Duration::from_secs(1));
                if recent.len() >= 2 {
                    *self.throttled.lock().unwrap() += 1;
                    return Err(LookupCallError::Throttled);
                }
                recent.push(now);
            }
            let (start, end) = (request.start.unix_timestamp(), request.end.unix_timestamp());
            let offset: usize = request
                .next_token
                .as_deref()
                .map_or(0, |token| token.parse().unwrap());
            let matching: Vec<&Value> = self
                .records
                .iter()
                .filter(|(at, _)| (start..=end).contains(at))
                .map(|(_, record)| record)
                .filter(|record| match request.attribute {
                    LookupAttribute::Username => {
                        record["userIdentity"]["userName"] == request.value.as_str()
                    }
                    LookupAttribute::EventName => record["eventName"] == request.value.as_str(),
                    _ => false,
                })
                .collect();
            let page: Vec<LookupEvent> = matching
                .iter()
                .skip(offset)
                .take(50)
                .map(|record| LookupEvent {
                    event_id: record["eventID"].as_str().map(str::to_owned),
                    cloud_trail_event: Some(record.to_string()),
                })
                .collect();
            let next = offset + page.len();
            *self
                .answered
                .lock()
                .unwrap()
                .entry(request.attribute.as_str())
                .or_default() += 1;
            Ok(LookupPage {
                events: page,
                next_token: (next < matching.len()).then(|| next.to_string()),
            })
        }

        async fn sleep(&self, duration: Duration) {
            tokio::time::sleep(duration).await;
        }
    }

    fn record(user: &str, id: String, ago: time::Duration, name: &str, extra: Value) -> Value {
        let at = OffsetDateTime::now_utc() - ago;
        let mut record = serde_json::json!({
            "eventID": id,
            "eventTime": trailgate_domain::time::format_utc(at),
            "eventName": name,
            "eventSource": if name == "StopLogging" { "cloudtrail.amazonaws.com" } else { "s3.amazonaws.com" },
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.9",
            "userIdentity": {"type": "IAMUser", "userName": user,
                "arn": format!("arn:aws:iam::123456789012:user/{user}")},
        });
        if let (Some(target), Some(more)) = (record.as_object_mut(), extra.as_object()) {
            target.extend(more.clone());
        }
        record
    }

    /// `count` GetObject calls of alice spread evenly over the week (the first is the newest).
    fn week_of_reads(count: u32, extra: impl Fn(u32) -> Value) -> Vec<Value> {
        (0..count)
            .map(|i| {
                let ago = time::Duration::seconds(
                    60 + i64::from(i) * (7 * 24 * 3600 - 7200) / i64::from(count),
                );
                record("alice", format!("read-{i}"), ago, "GetObject", extra(i))
            })
            .collect()
    }

    fn settings() -> Settings {
        Settings {
            regions: vec!["us-east-1".into()],
            budget: Duration::from_secs(10),
        }
    }

    fn alice_request(ledger: &MemoryLedger) -> String {
        let mut request = pending_request();
        request.requester_identity = "alice".into();
        seed(ledger, request).id
    }

    #[tokio::test(start_paused = true)]
    async fn a_high_risk_event_at_the_bottom_of_a_10k_history_is_found_within_the_budget() {
        // GIVEN 10,000 calls of alice over the week, her StopLogging the oldest of all, and a
        // more recent StopLogging by bob that is not alice's business
        let mut records = week_of_reads(10_000, |_| Value::Null);
        records.push(record(
            "alice",
            "alice-stop".into(),
            time::Duration::days(7) - time::Duration::minutes(30),
            "StopLogging",
            serde_json::json!({"sourceIPAddress": "192.0.2.44"}),
        ));
        records.push(record(
            "bob",
            "bob-stop".into(),
            time::Duration::days(2),
            "StopLogging",
            Value::Null,
        ));
        let api = PacedApi::new(records);
        let ledger = MemoryLedger::default();
        let id = alice_request(&ledger);

        // WHEN the context step runs with the default 10 s budget
        let started = Instant::now();
        let out = handle(
            serde_json::json!({"request_id": id}),
            &ledger,
            &api,
            &settings(),
        )
        .await
        .unwrap();
        let elapsed = started.elapsed();

        // THEN it stays inside the budget and the real limits, the scan is cut...
        assert!(elapsed <= Duration::from_secs(10), "took {elapsed:?}");
        assert_eq!(*api.throttled.lock().unwrap(), 0, "paced under the quota");
        let by_user = api.answered(LookupAttribute::Username);
        let by_name = api.answered(LookupAttribute::EventName);
        assert!(
            by_user * 50 < 10_000,
            "the Username scan could not reach it: {by_user} pages"
        );
        assert!(by_name >= 1, "no priority lookup");
        assert!(
            by_user + by_name <= 19,
            "{by_user} + {by_name} calls at 2/s in 10 s"
        );
        let summary = out["summary"].as_str().unwrap();
        assert!(summary.contains("INCOMPLETE"), "{summary}");
        assert!(
            summary.contains("except StopLogging, DeleteTrail"),
            "{summary}"
        );
        // ...and alice's oldest event is still the top finding, with bob's left out.
        let context = ledger.record(&id).unwrap().context.unwrap();
        let top = &context.findings[0];
        assert_eq!(top.level, Level::High, "{:?}", context.lines);
        assert!(top.what.contains("StopLogging"), "{}", top.what);
        assert_eq!(top.count, 1, "bob's StopLogging is not alice's");
        assert_eq!(top.evidence[0].event_id, "alice-stop");
        assert!(
            context.lines[0].starts_with(
                "! HIGH Logging and monitoring tampering: StopLogging (1 event, latest "
            ),
            "{}",
            context.lines[0]
        );
        assert!(
            context.lines[0].ends_with(" from 192.0.2.44)"),
            "{}",
            context.lines[0]
        );
    }

    /// alice's 10,000 reads, her one console login without MFA 6 days ago, and `others`
    /// console logins by bob, all newer than hers but older than the part of the window the
    /// `Username` scan reads first (the priority lookups cover only what it has not read).
    fn busy_console(others: u32) -> Vec<Value> {
        let login = serde_json::json!({
            "eventSource": "signin.amazonaws.com",
            "responseElements": {"ConsoleLogin": "Success"},
            "additionalEventData": {"MFAUsed": "No"},
        });
        let mut records = week_of_reads(10_000, |_| Value::Null);
        records.push(record(
            "alice",
            "alice-login".into(),
            time::Duration::days(6),
            "ConsoleLogin",
            login.clone(),
        ));
        records.extend((0..others).map(|i| {
            let ago = time::Duration::days(3) + time::Duration::seconds(60 * i64::from(i));
            record(
                "bob",
                format!("bob-login-{i}"),
                ago,
                "ConsoleLogin",
                login.clone(),
            )
        }));
        records
    }

    /// Whether any finding's evidence is the event `id`.
    fn evidence_of(context: &trailgate_domain::request::ContextSummary, id: &str) -> bool {
        context
            .findings
            .iter()
            .flat_map(|finding| &finding.evidence)
            .any(|evidence| evidence.event_id == id)
    }

    async fn run_with_budget(api: &PacedApi, budget: u64) -> (MemoryLedger, String, String) {
        let ledger = MemoryLedger::default();
        let id = alice_request(&ledger);
        let settings = Settings {
            budget: Duration::from_secs(budget),
            ..settings()
        };
        let out = handle(
            serde_json::json!({"request_id": id}),
            &ledger,
            api,
            &settings,
        )
        .await
        .unwrap();
        let summary = out["summary"].as_str().unwrap().to_owned();
        (ledger, id, summary)
    }

    #[tokio::test(start_paused = true)]
    async fn a_priority_lookup_pages_past_other_users_events_while_its_slice_lasts() {
        // 120 newer logins of bob fill the first two account-wide ConsoleLogin pages.
        let api = PacedApi::new(busy_console(120));
        let (ledger, id, summary) = run_with_budget(&api, 30).await;
        assert_eq!(*api.throttled.lock().unwrap(), 0);
        let context = ledger.record(&id).unwrap().context.unwrap();
        let found = evidence_of(&context, "alice-login");
        assert!(found, "{summary} {:?}", context.lines);
        assert!(summary.contains("ConsoleLogin"), "{summary}");
        assert!(!summary.contains("only in part"), "{summary}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_priority_lookup_the_budget_cannot_finish_is_reported_as_partial() {
        // 2,000 logins of bob: 40 pages, far more than the priority slice of 30 s allows.
        let api = PacedApi::new(busy_console(2_000));
        let (ledger, id, summary) = run_with_budget(&api, 30).await;
        let context = ledger.record(&id).unwrap().context.unwrap();
        let found = evidence_of(&context, "alice-login");
        assert!(!found, "alice's login is beyond what the budget reads");
        assert!(
            summary.contains("ConsoleLogin only in part, too frequent across the account"),
            "{summary}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_history_is_read_whole_without_priority_lookups() {
        let api = PacedApi::new(week_of_reads(120, |_| Value::Null));
        let ledger = MemoryLedger::default();
        let id = alice_request(&ledger);
        let started = Instant::now();
        let out = handle(
            serde_json::json!({"request_id": id}),
            &ledger,
            &api,
            &settings(),
        )
        .await
        .unwrap();
        assert_eq!(api.answered(LookupAttribute::Username), 3);
        assert_eq!(api.answered(LookupAttribute::EventName), 0);
        assert!(started.elapsed() <= Duration::from_secs(2));
        let summary = out["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("0 warnings from 120 CloudTrail events"),
            "{summary}"
        );
        assert!(!summary.contains("INCOMPLETE"), "{summary}");
    }

    #[tokio::test(start_paused = true)]
    async fn new_regions_and_ips_and_previous_grants_are_findings() {
        // GIVEN a week from one Region and IP, then today calls from elsewhere
        let mut records = week_of_reads(60, |_| Value::Null)
            .into_iter()
            .filter(|r| r["eventID"] != "read-0")
            .collect::<Vec<_>>();
        records[0] = record(
            "alice",
            "today".into(),
            time::Duration::hours(2),
            "GetObject",
            serde_json::json!({"awsRegion": "ap-southeast-1", "sourceIPAddress": "198.51.100.66"}),
        );
        let api = PacedApi::new(records);
        // AND an earlier grant of alice whose session was audited
        let ledger = MemoryLedger::default();
        let mut earlier: AccessRequest = pending_request();
        earlier.id = "r-earlier".into();
        earlier.created_at = "2026-11-01T09:00:00Z".into();
        earlier.status = Status::Audited;
        earlier.audit = Some(
            serde_json::json!({"cloudtrail": {"analysed": true, "events": 4,
            "writes": 1, "errors": [], "actions_by_service": {"s3": {"GetObject": 3, "PutObject": 1}}}}),
        );
        seed(&ledger, earlier);
        let id = alice_request(&ledger);

        handle(
            serde_json::json!({"request_id": id}),
            &ledger,
            &api,
            &settings(),
        )
        .await
        .unwrap();

        let context = ledger.record(&id).unwrap().context.unwrap();
        let lines = context.lines.join("\n");
        assert!(
            // Of the 59 calls, those older than a day are the baseline.
            lines.contains("! MEDIUM Regions not seen before in the window: ap-southeast-1 (compared with 51 earlier events) (1 event, latest "),
            "{lines}"
        );
        assert!(
            lines.contains("! LOW source IPs not seen before in the window: 198.51.100.66"),
            "{lines}"
        );
        assert!(
            lines.contains("- INFO previous request r-earlier for sandbox-admin: AUDITED (asked 2026-11-01T09:00:00Z); its session made 4 calls (1 writes, 0 failed) on s3"),
            "{lines}"
        );
        let region = context
            .findings
            .iter()
            .find(|f| f.what.starts_with("Regions"))
            .unwrap();
        assert_eq!(region.evidence[0].event_id, "today");
        assert_eq!(region.evidence[0].aws_region, "ap-southeast-1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_hostile_history_keeps_the_payload_and_the_record_small() {
        // GIVEN 12,000 events of alice, every one with a 2 KB error message and a hostile
        // user agent, the newest 200 with 100 KB fields, failures of every kind and a new IP
        // for each
        let big = "<script>x</script>\n".repeat(100_000 / 19);
        let records = week_of_reads(12_000, |i| {
            let huge = i < 200;
            let field = |text: &str| {
                if huge {
                    format!("{text}{big}")
                } else {
                    text.to_owned()
                }
            };
            let mut extra = serde_json::json!({
                "errorCode": if i % 3 == 0 { "AccessDenied".to_owned() } else { field("Client.Boom") },
                "errorMessage": format!("{}{}", "m".repeat(2_000), if huge { big.as_str() } else { "" }),
                "userAgent": field("agent"),
                "sourceIPAddress": format!("198.51.{}.{}", i / 250, i % 250),
            });
            if i % 7 == 0 {
                extra["eventName"] = Value::String(field(&format!("Probe{i}")));
            }
            if i % 11 == 0 {
                extra["eventName"] = "ConsoleLogin".into();
                extra["responseElements"] = serde_json::json!({"ConsoleLogin": "Failure"});
            }
            if i % 13 == 0 {
                extra["eventName"] = "StopLogging".into();
            }
            extra
        });
        let api = PacedApi::new(records);
        let ledger = MemoryLedger::default();
        let id = alice_request(&ledger);

        let out = handle(
            serde_json::json!({"request_id": id}),
            &ledger,
            &api,
            &settings(),
        )
        .await
        .unwrap();

        // THEN the step's output is a tiny fraction of Step Functions' 256 KB...
        let payload = serde_json::to_vec(&out).unwrap().len();
        assert!(payload < 2_048, "state payload {payload} bytes: {out}");
        assert_eq!(out["available"], true, "{out}");
        // ...and the stored context stays within its cap, with findings and evidence kept.
        let context = ledger.record(&id).unwrap().context.unwrap();
        let stored = serde_json::to_vec(&context).unwrap().len();
        assert!(stored <= MAX_CONTEXT_BYTES, "stored context {stored} bytes");
        assert!(context.findings.len() >= 4, "{:?}", context.lines);
        assert!(!context.findings[0].evidence.is_empty());
        assert!(
            context
                .lines
                .iter()
                .all(|line| line.len() < 1_000 && !line.contains('\n'))
        );
    }
}
