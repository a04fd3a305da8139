//! Gathers the reviewer context: the requester's recent CloudTrail history (fetched most
//! relevant first, see [`crate::scan`]), the approval-context runbooks over those records in
//! memory, Regions and source IPs new in the last day ([`crate::origins`]), and the requester's
//! previous trailgate requests from the ledger ([`crate::history`]).
//!
//! Fetching once and running every runbook on the same records keeps the call count near one
//! LookupEvents query per Region instead of one per runbook: at 2 calls per second that is the
//! difference between fitting the budget and not.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use trailgate_domain::findings::{self, AccountCoverage, ContextSummary, Coverage, Finding, Level};
use trailgate_domain::ports::Ledger;
use trailgate_domain::request::AccessRequest;
use trailgate_domain::time::format_utc;
use trailgate_runbooks::output::RunbookResult;
use trailgate_runbooks::source::MemorySource;
use trailgate_runbooks::source::lookup::{AccountLookups, LookupEventsApi, LookupSource};
use trailgate_runbooks::{Params, Runbook, Severity, run, timefmt};

use crate::error::ReviewError;
use crate::history::{self, MAX_PREVIOUS_REQUESTS};
use crate::origins;
use crate::scan::{self, Plan};

/// How far back the context looks.
pub const LOOKBACK: time::Duration = time::Duration::days(7);

/// The runbook that says which records are the requester's, and summarises their activity.
const ACTIVITY: (&str, &str) = (
    "requester-activity.yaml",
    include_str!("../../../runbooks/requester-activity.yaml"),
);

/// The approval-context set, run over the fetched records.
const CHECKS: [(&str, &str); 5] = [
    (
        "access-denied.yaml",
        include_str!("../../../runbooks/access-denied.yaml"),
    ),
    (
        "console-login-failures.yaml",
        include_str!("../../../runbooks/console-login-failures.yaml"),
    ),
    (
        "console-login-without-mfa.yaml",
        include_str!("../../../runbooks/console-login-without-mfa.yaml"),
    ),
    (
        "iam-privilege-escalation.yaml",
        include_str!("../../../runbooks/iam-privilege-escalation.yaml"),
    ),
    (
        "logging-tampering.yaml",
        include_str!("../../../runbooks/logging-tampering.yaml"),
    ),
];

/// Settings read once at cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Regions to query (us-east-1 is always added).
    pub regions: Vec<String>,
    /// Whole budget for the step.
    pub budget: Duration,
}

fn parse((name, text): (&str, &str)) -> Result<Runbook, ReviewError> {
    Runbook::parse(text, name).map_err(|source| ReviewError::Load {
        runbook: name.to_owned(),
        source,
    })
}

fn level(severity: Severity) -> Level {
    match severity {
        Severity::Info => Level::Info,
        Severity::Low => Level::Low,
        Severity::Medium => Level::Medium,
        Severity::High => Level::High,
        Severity::Critical => Level::Critical,
    }
}

/// Up to three values of `field` from the result's counts, most frequent first.
fn top_values(result: &RunbookResult, field: &str) -> Vec<String> {
    let Some(counts) = &result.counts else {
        return Vec::new();
    };
    let Some(index) = counts.fields.iter().position(|f| f == field) else {
        return Vec::new();
    };
    let mut totals: Vec<(String, u64)> = Vec::new();
    for group in &counts.groups {
        let Some(value) = group.key.get(index) else {
            continue;
        };
        match totals.iter_mut().find(|(known, _)| known == value) {
            Some((_, count)) => *count += group.count,
            None => totals.push((value.clone(), group.count)),
        }
    }
    totals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    // Values come from records: bounded before they reach a line.
    totals
        .into_iter()
        .take(3)
        .map(|(value, _)| findings::clip(&value, 64))
        .collect()
}

/// The finding a runbook result stands for, if it matched anything (without evidence).
pub fn finding(result: &RunbookResult) -> Option<Finding> {
    let matched = result.coverage.events_matched;
    if matched == 0 {
        return None;
    }
    let names = top_values(result, "eventName");
    let detail = if names.is_empty() {
        String::new()
    } else {
        format!(": {}", names.join(", "))
    };
    let mut level = level(result.severity);
    let mut what = format!("{}{detail}", result.title);
    match result.runbook.as_str() {
        "requester-activity" => {
            what = format!("activity, most frequent: {}", names.join(", "));
        }
        "access-denied" => {
            // Many distinct denied actions is probing; a few denials are everyday friction.
            let distinct: HashSet<&str> = result
                .counts
                .iter()
                .flat_map(|c| {
                    let index = c.fields.iter().position(|f| f == "eventName");
                    c.groups
                        .iter()
                        .filter_map(move |g| index.and_then(|i| g.key.get(i)))
                })
                .map(String::as_str)
                .collect();
            level = if distinct.len() > 10 {
                Level::High
            } else if matched >= 5 {
                Level::Medium
            } else {
                Level::Low
            };
            what = format!(
                "denied calls on {} distinct actions{detail}",
                distinct.len()
            );
        }
        _ => {}
    }
    Some(Finding {
        level,
        what,
        count: matched,
        evidence: Vec::new(),
    })
}

/// How recent "new" is for Regions and source IPs: the last day against the rest of the window.
pub const RECENT: time::Duration = time::Duration::hours(24);

/// One account whose CloudTrail history the context reads: how it stands to the request
/// (`target`, `hub`, or both) and its LookupEvents, or why it could not be reached (an agent
/// role that refuses the hub): that account is then reported as not checked, and the others
/// are still read.
pub struct AccountHistory<A> {
    pub account: String,
    pub role: &'static str,
    pub api: Result<A, String>,
}

/// The accounts the context reads for `request`, target first: the account of the role asked
/// for, where the access will be used, and the hub, where the requester signs in and asks (its
/// recent activity there is part of who is asking). One account when they are the same, or
/// when no hub account is configured.
pub fn accounts_to_read(request: &AccessRequest, hub_account: &str) -> Vec<(String, &'static str)> {
    let target = Some(request.target_account())
        .filter(|a| !a.is_empty())
        .unwrap_or(hub_account)
        .to_owned();
    if hub_account.is_empty() || target == hub_account {
        return vec![(target, "target, hub")];
    }
    vec![(target, "target"), (hub_account.to_owned(), "hub")]
}

/// Gathers the reviewer context for `request` within the budget from the accounts
/// [`accounts_to_read`] names, each reached through `lookups`. Never fails (see
/// [`gather_accounts`]).
pub async fn gather<P: AccountLookups + Sync, L: Ledger>(
    lookups: &P,
    ledger: &L,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> ContextSummary {
    let mut accounts = Vec::new();
    for (account, role) in accounts_to_read(request, lookups.home_account()) {
        let api = lookups.in_account(&account).await;
        accounts.push(AccountHistory { account, role, api });
    }
    gather_accounts(&accounts, ledger, settings, request, now).await
}

/// Gathers the reviewer context for `request` within the budget, from each of `accounts` at
/// once: LookupEvents is paced per account and Region, so the accounts do not share a rate
/// limit. Never fails: every failure becomes an unavailable context, or an account reported as
/// not checked, that says why.
pub async fn gather_accounts<A: LookupEventsApi + Sync, L: Ledger>(
    accounts: &[AccountHistory<A>],
    ledger: &L,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> ContextSummary {
    match try_gather(accounts, ledger, settings, request, now).await {
        Ok(summary) => summary,
        Err(reason) => findings::unavailable(&reason.to_string()),
    }
}

/// The runbooks the context runs, parsed once per gather.
struct Runbooks {
    activity: Runbook,
    checks: Vec<Runbook>,
}

/// What was found in one account.
struct AccountRead {
    found: Vec<Finding>,
    coverage: AccountCoverage,
}

async fn try_gather<A: LookupEventsApi + Sync, L: Ledger>(
    accounts: &[AccountHistory<A>],
    ledger: &L,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Result<ContextSummary, ReviewError> {
    let runbooks = Runbooks {
        activity: parse(ACTIVITY)?,
        checks: CHECKS
            .into_iter()
            .map(parse)
            .collect::<Result<Vec<_>, _>>()?,
    };
    let (start, end) = (now - LOOKBACK, now);

    // The ledger first: one query, and a failure is a finding, not a lost context.
    let mut found: Vec<Finding> = match ledger
        .by_requester(&request.requester, MAX_PREVIOUS_REQUESTS + 1, None)
        .await
    {
        Ok(page) => history::previous_requests(&page.requests, &request.id),
        Err(error) => vec![Finding {
            level: Level::Low,
            what: format!("previous trailgate requests could not be read: {error}"),
            count: 0,
            evidence: Vec::new(),
        }],
    };

    let reads = futures_util::future::join_all(
        accounts
            .iter()
            .map(|history| read_account(history, &runbooks, settings, request, start, end)),
    )
    .await;
    let mut coverages = Vec::new();
    let several = accounts.len() > 1;
    for read in reads {
        let read = read?;
        let prefix = format!("in {}: ", read.coverage.name());
        found.extend(read.found.into_iter().map(|mut finding| {
            if several {
                finding.what = format!("{prefix}{}", finding.what);
            }
            finding
        }));
        coverages.push(read.coverage);
    }
    // "Nothing found" must never stand for "nothing read".
    if coverages.iter().all(|coverage| coverage.unread.is_some()) {
        let reasons: Vec<String> = coverages
            .iter()
            .filter_map(|coverage| {
                let why = coverage.unread.as_deref()?;
                Some(if several {
                    format!("{}: {why}", coverage.name())
                } else {
                    why.to_owned()
                })
            })
            .collect();
        return Err(ReviewError::NothingRead(reasons.join("; ")));
    }
    Ok(findings::summarise(
        found,
        &Coverage {
            window_start: format_utc(start),
            window_end: format_utc(end),
            budget_seconds: settings.budget.as_secs(),
            accounts: coverages,
        },
    ))
}

/// Reads one account's history in the budget and runs the context's runbooks over it. A failed
/// read is the account's `unread` reason; only a runbook defect is an error.
async fn read_account<A: LookupEventsApi + Sync>(
    history: &AccountHistory<A>,
    runbooks: &Runbooks,
    settings: &Settings,
    request: &AccessRequest,
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> Result<AccountRead, ReviewError> {
    let mut coverage = AccountCoverage {
        account: history.account.clone(),
        role: history.role.to_owned(),
        regions: Vec::new(),
        events_scanned: 0,
        truncated: false,
        looked_up_first: Vec::new(),
        looked_up_in_part: Vec::new(),
        unread: None,
    };
    let api = match &history.api {
        Ok(api) => api,
        Err(why) => {
            coverage.unread = Some(why.clone());
            return Ok(AccountRead {
                found: Vec::new(),
                coverage,
            });
        }
    };
    // The budget runs on the port's clock, the one its pacing sleeps on.
    let started = api.now();
    let requester = request.requester_identity.as_str();
    let mut params = Params::new()
        .set("requester", requester)
        .set("source_identities", &request.source_identity())
        .window(start, end);
    // A permission-set request knows the requester's Identity Center user id: records made on
    // the user's behalf (`onBehalfOf.userId`) are theirs too.
    if let Some(assignment) = &request.assignment {
        params = params.set("identity_center_user_ids", &assignment.user_id);
    }
    let check_params = Params::new().window(start, end);
    let compiled_activity = runbooks
        .activity
        .compile(&params)
        .map_err(|source| bind("requester-activity", source))?;

    // Leave a little of the budget for the runbooks, the ledger write and the reply.
    let margin = Duration::from_millis(1500).min(settings.budget / 5);
    let deadline = started + settings.budget.saturating_sub(margin);
    let configured: Vec<&str> = settings.regions.iter().map(String::as_str).collect();
    // The source adds us-east-1 (where global events land) after the configured Regions.
    let source = LookupSource::new(api, &configured).budget(scan::pacing());
    coverage.regions = source.regions().to_vec();
    let is_requester = |record: &Value| compiled_activity.matches(record);
    let plan = Plan {
        requester,
        start,
        end,
        is_requester: &is_requester,
    };
    let fetched = match scan::fetch(&source, &plan, started, deadline).await {
        Ok(fetched) => fetched,
        Err(why) => {
            coverage.unread = Some(why.0);
            return Ok(AccountRead {
                found: Vec::new(),
                coverage,
            });
        }
    };
    for note in &fetched.notes {
        tracing::info!(account = %history.account, note = %note, "context scan");
    }
    let records = fetched.records;
    let mut found = Vec::new();
    let mut memory = MemorySource::new(records.clone());
    let summary =
        run(&runbooks.activity, &params, &mut memory).map_err(|source| ReviewError::Run {
            runbook: "requester-activity".into(),
            source,
        })?;
    if let Some(mut finding) = finding(&summary) {
        finding.evidence = evidence(&compiled_activity, &records);
        found.push(finding);
    }
    for check in &runbooks.checks {
        let mut memory = MemorySource::new(records.clone());
        // The records are already the requester's: the checks take only the window.
        let checked =
            run(check, &check_params, &mut memory).map_err(|source| ReviewError::Run {
                runbook: check.id().to_owned(),
                source,
            })?;
        if let Some(mut finding) = finding(&checked) {
            let compiled = check
                .compile(&check_params)
                .map_err(|source| bind(check.id(), source))?;
            finding.evidence = evidence(&compiled, &records);
            found.push(finding);
        }
    }
    found.extend(origins::new_origins(&records, end - RECENT));

    coverage.events_scanned = summary.coverage.events_scanned;
    coverage.truncated = !fetched.complete;
    if coverage.truncated {
        coverage.looked_up_first = fetched.looked_up_first;
        coverage.looked_up_in_part = fetched.looked_up_in_part;
    }
    Ok(AccountRead { found, coverage })
}

fn bind(runbook: &str, source: trailgate_runbooks::ParamError) -> ReviewError {
    ReviewError::Bind {
        runbook: runbook.to_owned(),
        source,
    }
}

/// The newest records in the window that `compiled` matches, as evidence.
fn evidence(
    compiled: &trailgate_runbooks::Compiled<'_>,
    records: &[Value],
) -> Vec<findings::Evidence> {
    let window = compiled.window();
    findings::newest_evidence(records.iter().filter(|record| {
        let at = record
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(timefmt::parse_event_time);
        at.is_some_and(|at| window.contains(at)) && compiled.matches(record)
    }))
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

        fn now(&self) -> std::time::Instant {
            Instant::now().into_std()
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

    fn alice_request(ledger: &MemoryLedger) -> AccessRequest {
        let mut request = pending_request();
        request.requester_identity = "alice".into();
        seed(ledger, request)
    }

    /// The context of alice's request, as the context step gathers it.
    async fn gather_for(
        api: &PacedApi,
        ledger: &MemoryLedger,
        request: &AccessRequest,
        settings: &Settings,
    ) -> ContextSummary {
        let accounts = [AccountHistory {
            account: "123456789012".into(),
            role: "target, hub",
            api: Ok(api),
        }];
        gather_accounts(
            &accounts,
            ledger,
            settings,
            request,
            OffsetDateTime::now_utc(),
        )
        .await
    }

    /// The context of `request` from `accounts`, now.
    async fn gather_now(
        accounts: &[AccountHistory<&PacedApi>],
        ledger: &MemoryLedger,
        request: &AccessRequest,
    ) -> ContextSummary {
        gather_accounts(
            accounts,
            ledger,
            &settings(),
            request,
            OffsetDateTime::now_utc(),
        )
        .await
    }

    /// Alice's request for a role in member account 111111111111.
    fn member_request(ledger: &MemoryLedger) -> AccessRequest {
        let mut request = pending_request();
        request.requester_identity = "alice".into();
        request.role_arn = "arn:aws:iam::111111111111:role/prod-admin".into();
        seed(ledger, request)
    }

    #[test]
    fn the_target_account_is_read_first_and_the_hub_once() {
        let ledger = MemoryLedger::default();
        let member = member_request(&ledger);
        assert_eq!(
            accounts_to_read(&member, "123456789012"),
            vec![
                ("111111111111".to_owned(), "target"),
                ("123456789012".to_owned(), "hub")
            ]
        );
        let hub = alice_request(&ledger);
        let account = trailgate_domain::catalog::role_account(&hub.role_arn).unwrap();
        assert_eq!(
            accounts_to_read(&hub, account),
            vec![(account.to_owned(), "target, hub")]
        );
        // No hub configured (one account): only the target.
        assert_eq!(accounts_to_read(&member, "").len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_target_account_and_the_hub_are_read_at_once_each_at_its_own_pace() {
        // GIVEN alice's StopLogging among 120 reads in the member account, and 120 reads of
        // hers in the hub; each account's LookupEvents allows 2 calls per second
        let mut member_records = week_of_reads(120, |_| Value::Null);
        member_records.push(record(
            "alice",
            "member-stop".into(),
            time::Duration::hours(3),
            "StopLogging",
            Value::Null,
        ));
        let member = PacedApi::new(member_records);
        let hub = PacedApi::new(week_of_reads(120, |_| Value::Null));
        let ledger = MemoryLedger::default();
        let request = member_request(&ledger);
        let accounts: Vec<AccountHistory<&PacedApi>> = accounts_to_read(&request, "123456789012")
            .into_iter()
            .map(|(account, role)| AccountHistory {
                api: Ok(if role == "hub" { &hub } else { &member }),
                account,
                role,
            })
            .collect();

        let started = Instant::now();
        let context = gather_now(&accounts, &ledger, &request).await;

        // THEN both were read whole, concurrently: no throttling, in the time one takes
        assert_eq!(*member.throttled.lock().unwrap(), 0);
        assert_eq!(*hub.throttled.lock().unwrap(), 0);
        assert_eq!(member.answered(LookupAttribute::Username), 3);
        assert_eq!(hub.answered(LookupAttribute::Username), 3);
        assert!(
            started.elapsed() <= Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // AND the summary names each account and what was read there
        let summary = &context.summary;
        assert!(
            summary.contains(
                "; account 111111111111 (target): 121 events, us-east-1; account 123456789012 \
                 (hub): 120 events, us-east-1)."
            ),
            "{summary}"
        );
        assert!(!summary.contains("INCOMPLETE"), "{summary}");
        // AND each finding says which account it is about
        let lines = context.lines.join("\n");
        assert!(
            lines.contains("! HIGH in account 111111111111 (target): "),
            "{lines}"
        );
        assert!(
            lines.contains("- INFO in account 123456789012 (hub): activity"),
            "{lines}"
        );
        assert!(
            evidence_of(&context, "member-stop"),
            "{:?}",
            context.findings
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_account_that_cannot_be_read_is_named_and_the_other_is_still_shown() {
        let hub = PacedApi::new(week_of_reads(30, |_| Value::Null));
        let ledger = MemoryLedger::default();
        let request = member_request(&ledger);
        let refused = "the agent role trailgate-agent in 111111111111 does not let this hub in";
        let accounts = [
            AccountHistory {
                account: "111111111111".into(),
                role: "target",
                api: Err(refused.to_owned()),
            },
            AccountHistory {
                account: "123456789012".into(),
                role: "hub",
                api: Ok(&hub),
            },
        ];
        let context = gather_now(&accounts, &ledger, &request).await;
        assert!(context.available);
        assert!(
            context.summary.contains(&format!(
                "NOT CHECKED in account 111111111111 (target): {refused}."
            )),
            "{}",
            context.summary
        );
        assert!(
            context
                .summary
                .contains("account 123456789012 (hub): 30 events")
        );

        // With no account readable, the whole context is unavailable and says why for each.
        let none = [
            AccountHistory::<&PacedApi> {
                account: "111111111111".into(),
                role: "target",
                api: Err(refused.to_owned()),
            },
            AccountHistory {
                account: "123456789012".into(),
                role: "hub",
                api: Err("AccessDenied".into()),
            },
        ];
        let context = gather_now(&none, &ledger, &request).await;
        assert!(!context.available);
        assert!(
            context.summary.contains(&format!(
                "LookupEvents failed: account 111111111111 (target): {refused}; account \
                 123456789012 (hub): AccessDenied"
            )),
            "{}",
            context.summary
        );
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
        let request = alice_request(&ledger);

        // WHEN the context step runs with the default 10 s budget
        let started = Instant::now();
        let context = gather_for(&api, &ledger, &request, &settings()).await;
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
        let summary = &context.summary;
        assert!(summary.contains("INCOMPLETE"), "{summary}");
        assert!(
            summary.contains("except StopLogging, DeleteTrail"),
            "{summary}"
        );
        // ...and alice's oldest event is still the top finding, with bob's left out.
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
    fn evidence_of(context: &ContextSummary, id: &str) -> bool {
        context
            .findings
            .iter()
            .flat_map(|finding| &finding.evidence)
            .any(|evidence| evidence.event_id == id)
    }

    async fn run_with_budget(api: &PacedApi, budget: u64) -> ContextSummary {
        let ledger = MemoryLedger::default();
        let request = alice_request(&ledger);
        let settings = Settings {
            budget: Duration::from_secs(budget),
            ..settings()
        };
        gather_for(api, &ledger, &request, &settings).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_priority_lookup_pages_past_other_users_events_while_its_slice_lasts() {
        // 120 newer logins of bob fill the first two account-wide ConsoleLogin pages.
        let api = PacedApi::new(busy_console(120));
        let context = run_with_budget(&api, 30).await;
        let summary = &context.summary;
        assert_eq!(*api.throttled.lock().unwrap(), 0);
        let found = evidence_of(&context, "alice-login");
        assert!(found, "{summary} {:?}", context.lines);
        assert!(summary.contains("ConsoleLogin"), "{summary}");
        assert!(!summary.contains("only in part"), "{summary}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_priority_lookup_the_budget_cannot_finish_is_reported_as_partial() {
        // 2,000 logins of bob: 40 pages, far more than the priority slice of 30 s allows.
        let api = PacedApi::new(busy_console(2_000));
        let context = run_with_budget(&api, 30).await;
        let summary = &context.summary;
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
        let request = alice_request(&ledger);
        let started = Instant::now();
        let context = gather_for(&api, &ledger, &request, &settings()).await;
        assert_eq!(api.answered(LookupAttribute::Username), 3);
        assert_eq!(api.answered(LookupAttribute::EventName), 0);
        assert!(started.elapsed() <= Duration::from_secs(2));
        let summary = &context.summary;
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
        let request = alice_request(&ledger);

        let context = gather_for(&api, &ledger, &request, &settings()).await;

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
        let request = alice_request(&ledger);

        let context = gather_for(&api, &ledger, &request, &settings()).await;

        // THEN what the context step returns (`available` and `summary`) is a tiny fraction of
        // Step Functions' 256 KB...
        let out = serde_json::json!({"available": context.available, "summary": context.summary});
        let payload = serde_json::to_vec(&out).unwrap().len();
        assert!(payload < 2_048, "state payload {payload} bytes: {out}");
        assert_eq!(out["available"], true, "{out}");
        // ...and the stored context stays within its cap, with findings and evidence kept.
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
