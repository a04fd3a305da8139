//! The end-of-session audit: runs the jit-session-audit runbook for one request over
//! LookupEvents, and over the trail bucket when one is configured ([`crate::trail`]: the data
//! events LookupEvents never has), and turns the session's records into the report's
//! `cloudtrail` part (see [`crate::report`]), with the incident runbooks' findings over the same
//! records and a completeness watermark per source and Region.
//!
//! A permission-set grant runs identity-center-session-audit instead: the Identity Center
//! user's sessions of the permission set's role in the account, keyed on the user id.
//!
//! The window runs from the request's creation (no session can be older; for a permission set,
//! from the assignment's creation) to now, which the state machine's Await Trail step has put
//! past the revoke by the CloudTrail delivery delay.
//! Failures do not fail the audit: the report says the calls were not analysed, and why.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use trailgate_domain::identity::{IDENTITY_CENTER_ROLE_PREFIX, Principal};
use trailgate_domain::request::{AccessRequest, Assignment};
use trailgate_domain::service::session_name;
use trailgate_domain::time::{format_utc, parse_utc};
use trailgate_runbooks::source::MemorySource;
use trailgate_runbooks::source::lookup::{
    AccountLookups, LookupBudget, LookupEventsApi, LookupSource, Query, run_lookup,
};
use trailgate_runbooks::source::recording::Recording;
use trailgate_runbooks::source::s3::ObjectStore;
use trailgate_runbooks::spec::LookupAttribute;
use trailgate_runbooks::{Params, Runbook, run, timefmt};

use crate::error::ReviewError;
use crate::gather::accounts_to_read;
use crate::report::session_report;
use crate::trail::{self, TrailBucket};

const RUNBOOK: &str = include_str!("../../../runbooks/jit-session-audit.yaml");
const IDENTITY_CENTER_RUNBOOK: &str =
    include_str!("../../../runbooks/identity-center-session-audit.yaml");

/// The incident runbooks every session's records are checked against: what an approver would
/// want to hear about even if the session was meant to do it.
const INCIDENT_RUNBOOKS: [(&str, &str); 10] = [
    (
        "logging-tampering.yaml",
        include_str!("../../../runbooks/logging-tampering.yaml"),
    ),
    (
        "iam-privilege-escalation.yaml",
        include_str!("../../../runbooks/iam-privilege-escalation.yaml"),
    ),
    (
        "iam-credential-persistence.yaml",
        include_str!("../../../runbooks/iam-credential-persistence.yaml"),
    ),
    (
        "iam-backdoor-other-user.yaml",
        include_str!("../../../runbooks/iam-backdoor-other-user.yaml"),
    ),
    (
        "federation-changes.yaml",
        include_str!("../../../runbooks/federation-changes.yaml"),
    ),
    (
        "sharing-exfiltration.yaml",
        include_str!("../../../runbooks/sharing-exfiltration.yaml"),
    ),
    (
        "network-exposure.yaml",
        include_str!("../../../runbooks/network-exposure.yaml"),
    ),
    (
        "destructive-activity.yaml",
        include_str!("../../../runbooks/destructive-activity.yaml"),
    ),
    (
        "bucket-policy-exposure.yaml",
        include_str!("../../../runbooks/bucket-policy-exposure.yaml"),
    ),
    (
        "account-changes.yaml",
        include_str!("../../../runbooks/account-changes.yaml"),
    ),
];

/// Settings read once at cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Regions to query (us-east-1 is always added).
    pub regions: Vec<String>,
    /// Wall-clock limit for the scan.
    pub budget: Duration,
}

/// The `cloudtrail` part of the audit report, read where the session acted: the target role's
/// account (through its agent role when that is a member account), which the report names.
/// Never an error.
pub async fn audit_session<P: AccountLookups + Sync, S: ObjectStore + Sync>(
    lookups: &P,
    trail: Option<&TrailBucket<S>>,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Value {
    let target = accounts_to_read(request, lookups.home_account())
        .into_iter()
        .next()
        .map(|(account, _)| account)
        .unwrap_or_default();
    let mut report = match lookups.in_account(&target).await {
        Ok(api) => analyse(&api, trail, settings, request, now).await,
        Err(why) => json!({
            "analysed": false,
            "reason": format!(
                "the session's API calls were not analysed: account {target} could not be read: {why}"
            ),
        }),
    };
    if let Some(object) = report.as_object_mut() {
        object.insert("account".into(), Value::String(target));
    }
    report
}

/// The `cloudtrail` part of the audit report from one account's LookupEvents; never an error.
pub async fn analyse<A: LookupEventsApi + Sync, S: ObjectStore + Sync>(
    api: &A,
    trail: Option<&TrailBucket<S>>,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Value {
    match try_analyse(api, trail, settings, request, now).await {
        Ok(report) => report,
        Err(reason) => json!({
            "analysed": false,
            "reason": format!("the session's API calls were not analysed: {reason}"),
        }),
    }
}

/// Which CloudTrail records are the grant's, and from when: the audit runbook bound to the
/// request, and how the report tells the session's own calls from the records that created it.
struct SessionKey {
    runbook: &'static str,
    file: &'static str,
    params: Params,
    start: OffsetDateTime,
    /// The report's `identity_center` part (permission-set grants).
    identity_center: Option<Value>,
    in_session: Box<dyn Fn(&Value) -> bool + Send + Sync>,
}

/// A role grant's sessions carry the requester's principal id as SourceIdentity and the
/// request id in their name, from the request's creation (no session can be older).
fn role_key(request: &AccessRequest, now: OffsetDateTime) -> Result<SessionKey, ReviewError> {
    let created = parse_utc(&request.created_at).map_err(ReviewError::CreatedAt)?;
    // A clock ahead of ours must not leave an empty window.
    let start = created.min(now - time::Duration::hours(1));
    let source_identity = request.source_identity();
    Ok(SessionKey {
        runbook: RUNBOOK,
        file: "jit-session-audit.yaml",
        params: Params::new()
            .set("requester", &source_identity)
            .set("request_id", &request.id)
            .set("session_name", &session_name(request))
            .window(start, now),
        start,
        identity_center: None,
        in_session: Box::new(move |record| {
            record
                .pointer("/userIdentity/sessionContext/sourceIdentity")
                .and_then(Value::as_str)
                == Some(source_identity.as_str())
        }),
    })
}

/// A permission-set grant's sessions are the Identity Center user's sessions of the role
/// Identity Center provisioned for the permission set (`AWSReservedSSO_<name>_*`) in the
/// account, keyed on the user name Identity Center gives the session and the user id, from
/// the moment the assignment was made: the user's other permission sets and other users'
/// sessions of this one are not the grant's.
fn identity_center_key(
    request: &AccessRequest,
    assignment: &Assignment,
    now: OffsetDateTime,
) -> Result<SessionKey, ReviewError> {
    let user_name = Principal::parse(&request.requester)
        .ok()
        .and_then(|principal| principal.identity_center_user_name().map(str::to_owned))
        .ok_or_else(|| {
            ReviewError::NoSession(format!(
                "the requester `{}` is not an Identity Center session, so its sessions cannot be \
                 found",
                request.requester
            ))
        })?;
    let (Some(name), Some(expires_at)) = (&request.permission_set_name, &request.expires_at) else {
        return Err(ReviewError::NoSession(
            "the grant never became active, so no session of it can exist".into(),
        ));
    };
    let expires_at = parse_utc(expires_at).map_err(ReviewError::CreatedAt)?;
    let activated = expires_at - request.duration();
    // A minute before the activation committed covers the assignment's creation; never a
    // window that ends before it starts.
    let start = (activated - time::Duration::minutes(1)).min(now - time::Duration::minutes(1));
    let role_prefix = format!("{IDENTITY_CENTER_ROLE_PREFIX}{name}_");
    Ok(SessionKey {
        runbook: IDENTITY_CENTER_RUNBOOK,
        file: "identity-center-session-audit.yaml",
        params: Params::new()
            .set("user_name", &user_name)
            .set("user_id", &assignment.user_id)
            .set("permission_set", name)
            .set("account", &assignment.account)
            .window(start, now),
        start,
        identity_center: Some(json!({
            "user_id": assignment.user_id,
            "user_name": user_name,
            "permission_set": name,
            "permission_set_arn": assignment.permission_set_arn,
            "account": assignment.account,
            "role": format!("{role_prefix}*"),
        })),
        in_session: Box::new(move |record| {
            record
                .pointer("/userIdentity/sessionContext/sessionIssuer/userName")
                .and_then(Value::as_str)
                .is_some_and(|role| role.starts_with(&role_prefix))
        }),
    })
}

async fn try_analyse<A: LookupEventsApi + Sync, S: ObjectStore + Sync>(
    api: &A,
    trail: Option<&TrailBucket<S>>,
    settings: &Settings,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Result<Value, ReviewError> {
    let key = match &request.assignment {
        Some(assignment) => identity_center_key(request, assignment, now)?,
        None => role_key(request, now)?,
    };
    let runbook = Runbook::parse(key.runbook, key.file).map_err(|source| ReviewError::Load {
        runbook: key.file.trim_end_matches(".yaml").into(),
        source,
    })?;
    let (params, start) = (&key.params, key.start);
    let compiled = runbook.compile(params).map_err(ReviewError::Window)?;
    let budget = LookupBudget {
        max_pages_per_query: u32::MAX,
        deadline: Some(settings.budget),
        ..LookupBudget::default()
    };
    let regions: Vec<&str> = settings.regions.iter().map(String::as_str).collect();
    let source = LookupSource::new(Recording::new(api), &regions).budget(budget);
    let result = run_lookup(&runbook, params, &source)
        .await
        .map_err(ReviewError::LookupRun)?;
    let coverage = &result.coverage;
    // LookupEvents unreadable (an account that denies it, a throttled API): the trail bucket,
    // when there is one, can still tell what the session did; without it nothing is analysed.
    let lookup_failed = coverage.nothing_read();
    if let (Some(why), None) = (&lookup_failed, trail) {
        return Err(ReviewError::NothingRead(why.clone()));
    }
    let mut notes = coverage.notes.clone();
    // In the window as well as matching: LookupEvents' own time filter is not relied on, so a
    // permission set's earlier sessions (before the assignment was made) are never the grant's.
    let window = compiled.window();
    let in_window = |record: &Value| {
        record
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(timefmt::parse_event_time)
            .is_some_and(|at| window.contains(at))
    };
    let mut session: Vec<Value> = source
        .api()
        .records()
        .into_iter()
        .filter(|record| in_window(record) && compiled.matches(record))
        .collect();
    let mut marks = watermarks(&source, start, now).await;
    let mut truncated = coverage.truncated;
    let trail_part = match trail {
        Some(trail) => {
            let read =
                trail::read(trail, &compiled, request.target_account(), source.regions()).await;
            if let Some(why) = &lookup_failed {
                if read.summary["objects_read"].as_u64().unwrap_or(0) == 0 {
                    return Err(ReviewError::NothingRead(format!(
                        "{why}; and the trail bucket had no object of the window"
                    )));
                }
                notes.push(format!(
                    "LookupEvents could not be read ({why}): the calls are the trail bucket's alone"
                ));
            }
            let only_in_trail = add_new_records(&mut session, read.records);
            marks.extend(read.marks);
            truncated |= read.truncated;
            let mut part = read.summary;
            part["only_in_trail"] = json!(only_in_trail);
            part
        }
        None => Value::Null,
    };
    let mut report = session_report(&session, key.in_session.as_ref());
    let incidents = incident_findings(&session, start, now)?;
    let through = session_end(request, now);
    let completeness = completeness(through, &marks, truncated);
    if let Some(object) = report.as_object_mut() {
        object.insert("analysed".into(), Value::Bool(true));
        if let Some(identity_center) = key.identity_center {
            object.insert("identity_center".into(), identity_center);
        }
        object.insert("incident_findings".into(), json!(incidents));
        object.insert(
            "coverage".into(),
            json!({
                "window_start": format_utc(coverage.window.start_time()),
                "window_end": format_utc(coverage.window.end_time()),
                "regions": source.regions(),
                "events_scanned": coverage.events_scanned,
                "truncated": truncated,
                "notes": notes,
                // The trail bucket's part, or null when no trail bucket is configured (the
                // audit then sees management events only).
                "trail": trail_part,
                "watermarks": marks.iter().map(Watermark::to_json).collect::<Vec<_>>(),
                "complete_through": format_utc(through),
                "complete": completeness.is_ok(),
                "completeness": match &completeness {
                    Ok(()) => format!(
                        "complete: CloudTrail has delivered events after the session's end ({}) in every Region read",
                        format_utc(through)
                    ),
                    Err(why) => format!("incomplete: {why}"),
                },
            }),
        );
    }
    Ok(report)
}

/// Adds the trail's records that LookupEvents did not already return (CloudTrail gives each
/// event one `eventID`, the same in both); how many were new. Data events are only ever here.
fn add_new_records(session: &mut Vec<Value>, from_trail: Vec<Value>) -> usize {
    let id = |record: &Value| {
        record
            .get("eventID")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut seen: HashSet<String> = session.iter().filter_map(id).collect();
    let before = session.len();
    for record in from_trail {
        // A record without an id cannot be matched, so it is kept.
        if id(&record).is_none_or(|event| seen.insert(event)) {
            session.push(record);
        }
    }
    session.len() - before
}

/// How far CloudTrail's delivery has come in one Region of the account: the newest event
/// LookupEvents returns there, whoever made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    pub region: String,
    /// Which source: [`Watermark::LOOKUP`] or [`Watermark::TRAIL`].
    pub source: &'static str,
    pub newest: Option<OffsetDateTime>,
    /// Why it could not be read.
    pub error: Option<String>,
}

impl Watermark {
    /// CloudTrail's LookupEvents in the account.
    pub const LOOKUP: &'static str = "LookupEvents";
    /// The trail bucket ([`crate::trail`]).
    pub const TRAIL: &'static str = "trail bucket";

    fn to_json(&self) -> Value {
        json!({
            "region": self.region,
            "source": self.source,
            "newest_event": self.newest.map(format_utc),
            "error": self.error,
        })
    }
}

/// The watermark of each Region the audit read: LookupEvents returns an account's events newest
/// first, so the first page of the read events and of the writes (`ReadOnly` is the one lookup
/// attribute every event has) gives the newest event delivered. Through the source's pacer,
/// like every LookupEvents call.
async fn watermarks<A: LookupEventsApi + Sync>(
    source: &LookupSource<A>,
    start: OffsetDateTime,
    now: OffsetDateTime,
) -> Vec<Watermark> {
    let mut pacer = source.resumable(source.api().now() + WATERMARK_BUDGET);
    let mut out = Vec::new();
    for region in source.regions() {
        let mut mark = Watermark {
            region: region.clone(),
            source: Watermark::LOOKUP,
            newest: None,
            error: None,
        };
        for read_only in ["true", "false"] {
            let mut query = Query::new(region, LookupAttribute::ReadOnly, read_only, start, now);
            match pacer.next_page(&mut query).await {
                Ok(page) => {
                    let newest = page
                        .events
                        .iter()
                        .filter_map(|event| event.cloud_trail_event.as_deref())
                        .filter_map(|text| serde_json::from_str::<Value>(text).ok())
                        .filter_map(|record| {
                            record
                                .get("eventTime")
                                .and_then(Value::as_str)
                                .and_then(timefmt::parse_event_time)
                        })
                        .max()
                        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok());
                    mark.newest = mark.newest.max(newest);
                }
                Err(err) => mark.error = Some(err.to_string()),
            }
        }
        out.push(mark);
    }
    out
}

/// How long the watermark reads may take, after the session's own.
const WATERMARK_BUDGET: Duration = Duration::from_secs(5);

/// When the grant's sessions stopped being able to act: the revoke, or the grant's end if
/// that came first; the audit time for a grant still running.
fn session_end(request: &AccessRequest, now: OffsetDateTime) -> OffsetDateTime {
    let at = |text: &Option<String>| text.as_deref().and_then(|t| parse_utc(t).ok());
    match (at(&request.revoked_at), at(&request.expires_at)) {
        (Some(revoked), Some(expires)) => revoked.min(expires),
        (Some(one), None) | (None, Some(one)) => one.min(now),
        (None, None) => now,
    }
}

/// Whether the records of the session up to `through` can all have been read: every Region's
/// watermark is past it (CloudTrail has delivered later events there) and the scan was not
/// cut short. CloudTrail promises no delivery order or delay, so this is evidence, not proof:
/// the report says which Region is behind, and the audit runs again later.
pub fn completeness(
    through: OffsetDateTime,
    marks: &[Watermark],
    truncated: bool,
) -> Result<(), String> {
    if truncated {
        return Err("the scan was cut short (time budget or page limit)".to_owned());
    }
    let behind: Vec<String> = marks
        .iter()
        .filter(|mark| mark.newest.is_none_or(|newest| newest < through))
        .map(|mark| {
            // LookupEvents' Regions keep their plain names; the bucket's are named as such.
            let region = if mark.source == Watermark::TRAIL {
                format!("the trail bucket's {}", mark.region)
            } else {
                mark.region.clone()
            };
            match (&mark.error, mark.newest) {
                (Some(error), _) => format!("{region} could not be read ({error})"),
                (None, Some(newest)) => {
                    format!("{region} has delivered up to {}", format_utc(newest))
                }
                (None, None) => format!("{region} has delivered nothing in the window"),
            }
        })
        .collect();
    if marks.is_empty() {
        return Err("no Region was read".to_owned());
    }
    if behind.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "CloudTrail has not yet delivered events after the session's end ({}) in every Region: {}",
            format_utc(through),
            behind.join("; ")
        ))
    }
}

/// Runs the incident runbooks over the session's records (already in memory): one line per
/// runbook that matched, e.g. `high: Logging and monitoring tampering (2 events)`, most severe
/// first.
fn incident_findings(
    session: &[Value],
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> Result<Vec<String>, ReviewError> {
    let params = Params::new().window(start, end);
    let mut found = Vec::new();
    for (name, text) in INCIDENT_RUNBOOKS {
        let runbook = Runbook::parse(text, name).map_err(|source| ReviewError::Load {
            runbook: name.to_owned(),
            source,
        })?;
        let result =
            run(&runbook, &params, &mut MemorySource::new(session.to_vec())).map_err(|source| {
                ReviewError::Run {
                    runbook: name.to_owned(),
                    source,
                }
            })?;
        let matched = result.coverage.events_matched;
        if matched > 0 {
            found.push((result.severity, result.title, matched));
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(b.2.cmp(&a.2)));
    Ok(found
        .into_iter()
        .map(|(severity, title, count)| format!("{severity}: {title} ({count} events)"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_incident_runbook_runs_without_parameters_and_finds_its_events() {
        let now = time::OffsetDateTime::now_utc();
        let at = format_utc(now - time::Duration::minutes(5));
        let record = |name: &str, source: &str| json!({"eventTime": at, "eventName": name, "eventSource": source, "userIdentity": {"type": "AssumedRole"}});
        let session = vec![
            record("StopLogging", "cloudtrail.amazonaws.com"),
            record("DeleteTrail", "cloudtrail.amazonaws.com"),
            record("AttachRolePolicy", "iam.amazonaws.com"),
            record("GetObject", "s3.amazonaws.com"),
        ];
        let found = incident_findings(&session, now - time::Duration::hours(1), now).unwrap();
        assert!(
            found
                .iter()
                .any(|line| line.contains("Logging and monitoring tampering (2 events)")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|line| line.contains("(1 events)")),
            "{found:?}"
        );
        // Reads only: nothing to report.
        let quiet = incident_findings(&session[3..], now - time::Duration::hours(1), now).unwrap();
        assert!(quiet.is_empty(), "{quiet:?}");
    }
}

#[cfg(test)]
mod completeness_tests {
    use super::*;
    use time::macros::datetime;

    fn mark(region: &str, newest: Option<OffsetDateTime>) -> Watermark {
        Watermark {
            region: region.into(),
            source: Watermark::LOOKUP,
            newest,
            error: None,
        }
    }

    #[test]
    fn complete_only_when_every_region_has_delivered_past_the_sessions_end() {
        let end = datetime!(2026-12-07 10:00:00 UTC);
        let after = Some(end + time::Duration::seconds(1));
        let before = Some(end - time::Duration::minutes(3));
        assert_eq!(
            completeness(
                end,
                &[mark("us-east-1", after), mark("eu-west-1", after)],
                false
            ),
            Ok(())
        );
        let behind = completeness(
            end,
            &[mark("us-east-1", after), mark("eu-west-1", before)],
            false,
        )
        .unwrap_err();
        assert!(
            behind.contains("eu-west-1 has delivered up to 2026-12-07T09:57:00Z"),
            "{behind}"
        );
        assert!(!behind.contains("us-east-1"), "{behind}");
        let quiet = completeness(end, &[mark("us-east-1", None)], false).unwrap_err();
        assert!(quiet.contains("delivered nothing"), "{quiet}");
        let mut failed = mark("us-east-1", None);
        failed.error = Some("AccessDenied".into());
        assert!(
            completeness(end, &[failed], false)
                .unwrap_err()
                .contains("could not be read (AccessDenied)")
        );
        assert!(
            completeness(end, &[mark("us-east-1", after)], true)
                .unwrap_err()
                .contains("cut short")
        );
        assert!(completeness(end, &[], false).is_err());
    }

    #[test]
    fn the_session_ends_at_the_revoke_or_the_grants_end_whichever_is_first() {
        let now = datetime!(2026-12-07 12:00:00 UTC);
        let mut request = trailgate_domain::testing::pending_request();
        assert_eq!(session_end(&request, now), now);
        request.expires_at = Some("2026-12-07T11:00:00Z".into());
        assert_eq!(
            session_end(&request, now),
            datetime!(2026-12-07 11:00:00 UTC)
        );
        request.revoked_at = Some("2026-12-07T10:30:00Z".into());
        assert_eq!(
            session_end(&request, now),
            datetime!(2026-12-07 10:30:00 UTC)
        );
    }
}

#[cfg(test)]
mod identity_center_tests {
    use super::*;
    use trailgate_domain::request::Status;
    use trailgate_domain::testing::{
        ALICE_USER_ID, INSTANCE_ARN, PERMISSION_SET_ARN, PS_ACCOUNT, alice_sso, pending_request,
    };
    use trailgate_runbooks::source::lookup::{
        LookupCallError, LookupEvent, LookupPage, LookupRequest,
    };
    use trailgate_runbooks::source::memory_bucket::MemoryBucket;

    const ROLE: &str = "AWSReservedSSO_ProdAdmin_0a1b2c3d4e5f6a7b";

    /// No trail bucket configured.
    pub(super) const NO_TRAIL: Option<&TrailBucket<MemoryBucket>> = None;

    /// LookupEvents of one account answering `Username` as CloudTrail does: the IAM user name,
    /// the session name of an assumed role, or a SAML user's name; and `ReadOnly` (the
    /// watermark's query) by the record's `readOnly`.
    pub(super) struct Trail(pub(super) Vec<Value>);

    impl LookupEventsApi for Trail {
        async fn lookup(&self, request: LookupRequest) -> Result<LookupPage, LookupCallError> {
            if request.attribute == LookupAttribute::ReadOnly {
                let events = self
                    .0
                    .iter()
                    .filter(|record| {
                        record["readOnly"]
                            .as_bool()
                            .map(|b| b.to_string())
                            .as_deref()
                            == Some(request.value.as_str())
                    })
                    .map(|record| LookupEvent {
                        event_id: record["eventID"].as_str().map(str::to_owned),
                        cloud_trail_event: Some(record.to_string()),
                    })
                    .collect();
                return Ok(LookupPage {
                    events,
                    next_token: None,
                });
            }
            let username = |record: &Value| {
                let identity = &record["userIdentity"];
                match identity["type"].as_str() {
                    Some("AssumedRole") => identity["arn"]
                        .as_str()
                        .and_then(|arn| arn.rsplit('/').next())
                        .map(str::to_owned),
                    _ => identity["userName"].as_str().map(str::to_owned),
                }
            };
            let events = self
                .0
                .iter()
                .filter(|record| username(record).as_deref() == Some(request.value.as_str()))
                .map(|record| LookupEvent {
                    event_id: record["eventID"].as_str().map(str::to_owned),
                    cloud_trail_event: Some(record.to_string()),
                })
                .collect();
            Ok(LookupPage {
                events,
                next_token: None,
            })
        }

        async fn sleep(&self, _duration: Duration) {}
    }

    /// A call of a permission-set session: `role` in `account`, session `user`.
    fn call(
        n: u32,
        at: OffsetDateTime,
        role: &str,
        user: &str,
        account: &str,
        name: &str,
    ) -> Value {
        json!({
            "eventID": format!("e-{n}"),
            "eventTime": format_utc(at),
            "eventSource": "s3.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "readOnly": name.starts_with("List") || name.starts_with("Get"),
            "recipientAccountId": account,
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": format!("AROAEXAMPLEPS0000001:{user}"),
                "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{user}"),
                "accountId": account,
                "sessionContext": {"sessionIssuer": {
                    "type": "Role",
                    "arn": format!("arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/{role}"),
                    "accountId": account,
                    "userName": role,
                }},
            },
        })
    }

    /// alice's permission-set grant, active from `activated` for an hour and revoked.
    fn revoked_grant(activated: OffsetDateTime) -> AccessRequest {
        let mut request = pending_request();
        request.requester = alice_sso().arn;
        request.requester_identity = "alice@example.com".into();
        request.role_arn = String::new();
        request.assignment = Some(Assignment {
            instance_arn: INSTANCE_ARN.into(),
            permission_set_arn: PERMISSION_SET_ARN.into(),
            account: PS_ACCOUNT.into(),
            user_id: ALICE_USER_ID.into(),
        });
        request.duration_seconds = 3600;
        request.created_at = format_utc(activated - time::Duration::minutes(10));
        request.expires_at = Some(format_utc(activated + time::Duration::hours(1)));
        request.permission_set_name = Some("ProdAdmin".into());
        request.status = Status::Revoked;
        request
    }

    pub(super) fn settings() -> Settings {
        Settings {
            regions: vec!["us-east-1".into()],
            budget: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn a_permission_set_audit_reports_the_users_sessions_of_that_set_in_that_account() {
        let now = OffsetDateTime::now_utc();
        let activated = now - time::Duration::minutes(30);
        let alice = "alice@example.com";
        let mut saml = call(
            6,
            activated + time::Duration::minutes(1),
            ROLE,
            alice,
            PS_ACCOUNT,
            "AssumeRoleWithSAML",
        );
        saml["eventSource"] = json!("sts.amazonaws.com");
        saml["userIdentity"] =
            json!({"type": "SAMLUser", "userName": alice, "principalId": "idp:alice@example.com"});
        saml["requestParameters"] = json!({"roleArn": format!("arn:aws:iam::{PS_ACCOUNT}:role/aws-reserved/sso.amazonaws.com/{ROLE}")});
        saml["responseElements"] = json!({"assumedRoleUser": {"arn": format!("arn:aws:sts::{PS_ACCOUNT}:assumed-role/{ROLE}/{alice}")}});
        let mut denied = call(
            3,
            now - time::Duration::minutes(2),
            ROLE,
            alice,
            PS_ACCOUNT,
            "DeleteBucket",
        );
        denied["errorCode"] = json!("AccessDenied");
        let trail = Trail(vec![
            saml,
            call(
                1,
                activated + time::Duration::minutes(2),
                ROLE,
                alice,
                PS_ACCOUNT,
                "ListBuckets",
            ),
            call(
                2,
                activated + time::Duration::minutes(3),
                ROLE,
                alice,
                PS_ACCOUNT,
                "PutObject",
            ),
            // After the revoke: the deny refused it, and the audit shows the attempt.
            denied,
            // Not the grant's: alice's standing permission set, her earlier session of this
            // one before the assignment was made, and the same set in another account.
            call(
                4,
                activated + time::Duration::minutes(4),
                "AWSReservedSSO_ReadOnly_99aa88bb77cc66dd",
                alice,
                PS_ACCOUNT,
                "GetObject",
            ),
            call(
                5,
                activated - time::Duration::hours(3),
                ROLE,
                alice,
                PS_ACCOUNT,
                "DeleteObject",
            ),
            call(
                7,
                activated + time::Duration::minutes(5),
                ROLE,
                alice,
                "222222222222",
                "DeleteBucket",
            ),
            // bob's session of the same permission set is his own.
            call(
                8,
                activated + time::Duration::minutes(6),
                ROLE,
                "bob@example.com",
                PS_ACCOUNT,
                "DeleteBucket",
            ),
        ]);
        let report = analyse(
            &trail,
            NO_TRAIL,
            &settings(),
            &revoked_grant(activated),
            now,
        )
        .await;
        assert_eq!(report["analysed"], true, "{report}");
        assert_eq!(report["events"], 4, "{report}");
        assert_eq!(
            report["actions_by_service"]["s3"]["PutObject"], 1,
            "{report}"
        );
        assert!(
            report["actions_by_service"]["s3"]["GetObject"].is_null(),
            "{report}"
        );
        assert!(
            report["actions_by_service"]["s3"]["DeleteObject"].is_null(),
            "{report}"
        );
        assert_eq!(
            report["errors"],
            json!([{"code": "AccessDenied", "action": "DeleteBucket", "count": 1}])
        );
        // The policy is built from the session's own successful calls, not its creation.
        assert_eq!(
            report["suggested_policy"]["Statement"],
            json!([{"Sid": "Useds3", "Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "s3:PutObject"], "Resource": "*"}])
        );
        assert_eq!(report["identity_center"]["user_id"], ALICE_USER_ID);
        assert_eq!(
            report["identity_center"]["role"],
            "AWSReservedSSO_ProdAdmin_*"
        );
        assert_eq!(
            report["coverage"]["window_start"],
            format_utc(activated - time::Duration::minutes(1)).as_str()
        );
    }

    #[tokio::test]
    async fn a_permission_set_grant_that_never_became_active_or_a_non_sso_requester_is_not_analysed()
     {
        let now = OffsetDateTime::now_utc();
        let mut never = revoked_grant(now - time::Duration::minutes(5));
        never.expires_at = None;
        never.permission_set_name = None;
        let report = analyse(&Trail(Vec::new()), NO_TRAIL, &settings(), &never, now).await;
        assert_eq!(report["analysed"], false);
        assert!(
            report["reason"]
                .as_str()
                .unwrap()
                .contains("never became active"),
            "{report}"
        );
        let mut iam_user = revoked_grant(now - time::Duration::minutes(5));
        iam_user.requester = "arn:aws:iam::123456789012:user/alice".into();
        let report = analyse(&Trail(Vec::new()), NO_TRAIL, &settings(), &iam_user, now).await;
        assert!(
            report["reason"]
                .as_str()
                .unwrap()
                .contains("not an Identity Center session"),
            "{report}"
        );
    }
}

#[cfg(test)]
mod trail_tests {
    //! The trail bucket beside LookupEvents: data events only the bucket has, one count per
    //! event id, only the target account's objects of the Regions read, and a watermark per
    //! Region that holds completeness back until the bucket has caught up.

    use std::io::Write as _;

    use super::identity_center_tests::{NO_TRAIL, Trail, settings};
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use trailgate_domain::request::Status;
    use trailgate_domain::testing::pending_request;
    use trailgate_runbooks::source::memory_bucket::MemoryBucket;
    use trailgate_runbooks::source::s3::S3Location;

    /// alice's role grant, made 40 minutes ago and revoked 10 minutes ago.
    fn revoked_grant(now: OffsetDateTime) -> AccessRequest {
        let mut request = pending_request();
        request.created_at = format_utc(now - time::Duration::minutes(40));
        request.expires_at = Some(format_utc(now + time::Duration::minutes(80)));
        request.revoked_at = Some(format_utc(now - time::Duration::minutes(10)));
        request.status = Status::Revoked;
        request
    }

    /// A call of the grant's session (or, with `who`, of someone else's).
    fn call(
        request: &AccessRequest,
        id: &str,
        at: OffsetDateTime,
        name: &str,
        who: Option<&str>,
    ) -> Value {
        let account = request.target_account();
        let session = who.map_or_else(|| session_name(request), str::to_owned);
        json!({
            "eventID": id,
            "eventTime": format_utc(at),
            "eventSource": if name.ends_with("Object") { "s3.amazonaws.com" } else { "iam.amazonaws.com" },
            "eventName": name,
            "awsRegion": "us-east-1",
            "readOnly": name.starts_with("Get"),
            "recipientAccountId": account,
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": format!("AROAEXAMPLE000000001:{session}"),
                "arn": format!("arn:aws:sts::{account}:assumed-role/sandbox-admin/{session}"),
                "accountId": account,
                "sessionContext": {
                    "sourceIdentity": who.map_or_else(|| request.source_identity(), str::to_owned),
                    "sessionIssuer": {"type": "Role", "userName": "sandbox-admin"},
                },
            },
        })
    }

    /// A trail object of `account` in `region`, delivered at `at`, holding `records`.
    fn object(
        bucket: &MemoryBucket,
        account: &str,
        region: &str,
        at: OffsetDateTime,
        records: &[Value],
    ) {
        let day = trailgate_runbooks::source::s3::day_folder(at.date());
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute()
        );
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(json!({"Records": records}).to_string().as_bytes())
            .expect("gzip in memory");
        bucket.put(
            format!("logs/AWSLogs/o-exampleorg1/{account}/CloudTrail/{region}/{day}/{account}_CloudTrail_{region}_{stamp}_x{}.json.gz", records.len()),
            gz.finish().expect("gzip in memory"),
        );
    }

    #[tokio::test]
    async fn the_trail_bucket_adds_the_data_events_and_its_own_watermark() {
        let now = OffsetDateTime::now_utc();
        let request = revoked_grant(now);
        let account = request.target_account().to_owned();
        let minutes = |m: i64| now - time::Duration::minutes(m);
        // LookupEvents: a management call of the session, and a later event of the account
        // (its watermark is past the revoke).
        let attach = call(&request, "e-attach", minutes(30), "AttachRolePolicy", None);
        let mut later = call(
            &request,
            "e-later",
            minutes(2),
            "ListRoles",
            Some("tg-bob-r-other"),
        );
        later["readOnly"] = json!(true);
        let lookup = Trail(vec![attach.clone(), later]);

        let bucket = MemoryBucket::default();
        let read = call(&request, "e-read", minutes(20), "GetObject", None);
        // The same management event is in the bucket too; a data event only there; someone
        // else's read; and an unrelated event newer than the revoke, the bucket's watermark.
        let newest = call(
            &request,
            "e-newest",
            minutes(1),
            "GetObject",
            Some("tg-carol-r-c"),
        );
        object(
            &bucket,
            &account,
            "us-east-1",
            minutes(1),
            &[
                attach,
                read.clone(),
                call(
                    &request,
                    "e-bob",
                    minutes(20),
                    "GetObject",
                    Some("tg-bob-r-b"),
                ),
                newest,
            ],
        );
        // Never read: the session's account in a Region not read, and another account.
        object(
            &bucket,
            &account,
            "eu-west-1",
            minutes(5),
            &[call(&request, "e-eu", minutes(15), "PutObject", None)],
        );
        object(
            &bucket,
            "999999999999",
            "us-east-1",
            minutes(5),
            &[call(&request, "e-other", minutes(15), "PutObject", None)],
        );
        let trail = TrailBucket {
            store: bucket,
            location: S3Location::parse("s3://org-trail/logs/").expect("location"),
        };

        let report = analyse(&lookup, Some(&trail), &settings(), &request, now).await;
        assert_eq!(report["analysed"], true, "{report}");
        assert_eq!(report["events"], 2, "{report}");
        assert_eq!(
            report["actions_by_service"]["s3"]["GetObject"], 1,
            "{report}"
        );
        assert_eq!(
            report["actions_by_service"]["iam"]["AttachRolePolicy"], 1,
            "{report}"
        );
        assert!(
            report["actions_by_service"]["s3"]["PutObject"].is_null(),
            "{report}"
        );
        let coverage = &report["coverage"];
        let part = &coverage["trail"];
        assert_eq!(part["location"], "s3://org-trail/logs/", "{part}");
        assert_eq!(part["objects_read"], 1, "{part}");
        assert_eq!(part["events_scanned"], 4, "{part}");
        assert_eq!(part["events_matched"], 2, "{part}");
        assert_eq!(part["only_in_trail"], 1, "{part}");
        let marks = coverage["watermarks"].as_array().expect("watermarks");
        assert!(
            marks.iter().any(|mark| mark["source"] == "trail bucket"
                && mark["region"] == "us-east-1"
                && mark["newest_event"] == format_utc(minutes(1)).as_str()),
            "{coverage}"
        );
        assert_eq!(coverage["complete"], true, "{coverage}");

        // Without the bucket: the data event is missing, and nothing says the bucket was read.
        let without = analyse(&lookup, NO_TRAIL, &settings(), &request, now).await;
        assert_eq!(without["events"], 1, "{without}");
        assert!(without["coverage"]["trail"].is_null(), "{without}");
    }

    /// LookupEvents refusing every call.
    struct Refusing;

    impl LookupEventsApi for Refusing {
        async fn lookup(
            &self,
            _request: trailgate_runbooks::source::lookup::LookupRequest,
        ) -> Result<
            trailgate_runbooks::source::lookup::LookupPage,
            trailgate_runbooks::source::lookup::LookupCallError,
        > {
            Err(trailgate_runbooks::source::lookup::LookupCallError::Failed(
                "AccessDeniedException: not authorized to perform cloudtrail:LookupEvents".into(),
            ))
        }

        async fn sleep(&self, _duration: Duration) {}
    }

    #[tokio::test]
    async fn without_lookup_events_the_trail_bucket_alone_is_the_report_and_says_so() {
        let now = OffsetDateTime::now_utc();
        let request = revoked_grant(now);
        let account = request.target_account().to_owned();
        let minutes = |m: i64| now - time::Duration::minutes(m);
        let bucket = MemoryBucket::default();
        object(
            &bucket,
            &account,
            "us-east-1",
            minutes(1),
            &[
                call(&request, "e-read", minutes(20), "GetObject", None),
                call(
                    &request,
                    "e-newest",
                    minutes(1),
                    "GetObject",
                    Some("tg-carol-r-c"),
                ),
            ],
        );
        let trail = TrailBucket {
            store: bucket,
            location: S3Location::parse("s3://org-trail/logs/").expect("location"),
        };
        let report = analyse(&Refusing, Some(&trail), &settings(), &request, now).await;
        assert_eq!(report["analysed"], true, "{report}");
        assert_eq!(report["events"], 1, "{report}");
        let coverage = &report["coverage"];
        assert!(
            coverage["notes"]
                .as_array()
                .expect("notes")
                .iter()
                .any(|note| note
                    .as_str()
                    .is_some_and(|n| n.starts_with("LookupEvents could not be read")
                        && n.contains("the trail bucket's alone"))),
            "{coverage}"
        );
        // LookupEvents' Regions could not be read: never complete.
        assert_eq!(coverage["complete"], false, "{coverage}");
        assert!(
            coverage["watermarks"]
                .as_array()
                .expect("watermarks")
                .iter()
                .any(|mark| mark["source"] == "LookupEvents" && mark["error"].is_string()),
            "{coverage}"
        );

        // Neither source: not analysed, with both reasons.
        let empty = TrailBucket {
            store: MemoryBucket::default(),
            location: S3Location::parse("s3://org-trail/logs/").expect("location"),
        };
        let report = analyse(&Refusing, Some(&empty), &settings(), &request, now).await;
        assert_eq!(report["analysed"], false, "{report}");
        let why = report["reason"].as_str().expect("reason");
        assert!(
            why.contains("AccessDenied") && why.contains("no object of the window"),
            "{why}"
        );
        let report = analyse(&Refusing, NO_TRAIL, &settings(), &request, now).await;
        assert_eq!(report["analysed"], false, "{report}");
    }

    #[tokio::test]
    async fn a_trail_bucket_that_is_behind_or_empty_leaves_the_audit_incomplete() {
        let now = OffsetDateTime::now_utc();
        let request = revoked_grant(now);
        let account = request.target_account().to_owned();
        let minutes = |m: i64| now - time::Duration::minutes(m);
        let mut later = call(
            &request,
            "e-later",
            minutes(2),
            "ListRoles",
            Some("tg-bob-r-other"),
        );
        later["readOnly"] = json!(true);
        let lookup = Trail(vec![later]);
        // The bucket's newest event is from before the revoke.
        let bucket = MemoryBucket::default();
        object(
            &bucket,
            &account,
            "us-east-1",
            minutes(12),
            &[call(&request, "e-read", minutes(20), "GetObject", None)],
        );
        let behind = TrailBucket {
            store: bucket,
            location: S3Location::parse("s3://org-trail/logs/").expect("location"),
        };
        let report = analyse(&lookup, Some(&behind), &settings(), &request, now).await;
        assert_eq!(report["events"], 1, "{report}");
        let coverage = &report["coverage"];
        assert_eq!(coverage["complete"], false, "{coverage}");
        let why = coverage["completeness"].as_str().expect("completeness");
        assert!(
            why.contains(&format!(
                "the trail bucket's us-east-1 has delivered up to {}",
                format_utc(minutes(20))
            )),
            "{why}"
        );
        // A prefix with no trail under it: nothing delivered, so not complete either.
        let empty = TrailBucket {
            store: MemoryBucket::default(),
            location: S3Location::parse("s3://org-trail/wrong-prefix/").expect("location"),
        };
        let report = analyse(&lookup, Some(&empty), &settings(), &request, now).await;
        let why = report["coverage"]["completeness"]
            .as_str()
            .expect("completeness");
        assert!(
            why.contains("the trail bucket's us-east-1 has delivered nothing"),
            "{why}"
        );
    }
}
