//! The paced LookupEvents fetch behind the reviewer context, most relevant first.
//!
//! LookupEvents allows 2 calls per second per Region and 50 events per page, so a requester with
//! 10,000 events in the window needs 200 calls (100 s) to read in full: far over the budget. A
//! plain newest-first `Username` scan would then never reach an old `StopLogging`. So the fetch
//! runs in three phases on one clock:
//! 1. the `Username` scan alone for a first slice of the budget: a small history finishes here
//!    and costs nothing more;
//! 2. if it did not finish, one page per high-risk event name ([`PRIORITY`], in order) over the
//!    part of the window the scan has not reached yet, across the account (LookupEvents takes
//!    one attribute per call, so "this user's StopLogging" cannot be asked), keeping only the
//!    requester's records; then, while this phase's slice lasts, further pages of the names
//!    that had more, in the same order. A name whose account-wide events were not all read
//!    is reported as looked up only in part, so a busy account's `ConsoleLogin` is never
//!    presented as checked;
//! 3. the `Username` scan resumes where it stopped until the deadline.
//!
//! The phases are this module's; pacing, throttle backoff and the deadline are the runbooks'
//! LookupEvents source's, in its resumable mode ([`LookupSource::resumable`]), so every
//! LookupEvents reader in trailgate keeps the quota the same way. Only records are returned; the
//! runbooks run over them afterwards (see [`crate::gather`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;
use trailgate_runbooks::source::lookup::{
    GLOBAL_REGION, LookupBudget, LookupEventsApi, LookupPage, LookupSource, Pacer, PageError, Query,
};
use trailgate_runbooks::spec::LookupAttribute;
use trailgate_runbooks::timefmt;

/// High-risk event names looked up first, most important first, with whether the event is
/// global (recorded in us-east-1 only: IAM and console sign-in) or regional (every Region).
/// Every name here is one an approval-context runbook flags.
pub const PRIORITY: [(&str, Scope); 15] = [
    ("StopLogging", Scope::Regional),
    ("DeleteTrail", Scope::Regional),
    ("AttachRolePolicy", Scope::Global),
    ("AttachUserPolicy", Scope::Global),
    ("PutRolePolicy", Scope::Global),
    ("PutUserPolicy", Scope::Global),
    ("UpdateAssumeRolePolicy", Scope::Global),
    ("ConsoleLogin", Scope::Global),
    ("CreatePolicyVersion", Scope::Global),
    ("UpdateTrail", Scope::Regional),
    ("PutEventSelectors", Scope::Regional),
    ("DeleteDetector", Scope::Regional),
    ("StopConfigurationRecorder", Scope::Regional),
    ("DeleteFlowLogs", Scope::Regional),
    ("AddUserToGroup", Scope::Global),
];

/// Where an event name is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// us-east-1 only.
    Global,
    /// Every Region.
    Regional,
}

/// The pacing the context keeps: the LookupEvents quota (2 calls per second per account and
/// Region), and throttle retries with backoff 0.25, 0.5, 1 s, short enough to stay inside the
/// budget. The page limit and the deadline are the phases' own, so they are not used here.
pub fn pacing() -> LookupBudget {
    LookupBudget {
        max_pages_per_query: u32::MAX,
        deadline: None,
        min_interval: Duration::from_millis(500),
        max_retries: 3,
        backoff: Duration::from_millis(250),
    }
}

/// Share of the scan budget the `Username` scan gets alone before the priority lookups.
const FIRST_SLICE: f64 = 0.25;
/// Share of the scan budget by which the priority lookups stop, to leave the rest to phase 3.
const PRIORITY_UNTIL: f64 = 0.6;

/// What the fetch brought back.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The requester's records, each once (by `eventID`).
    pub records: Vec<Value>,
    /// Whether the `Username` scan read the whole window in every Region.
    pub complete: bool,
    /// The event names looked up in phase 2.
    pub looked_up_first: Vec<String>,
    /// Those of them with account-wide events left unread (more pages, or a failed page).
    pub looked_up_in_part: Vec<String>,
    /// LookupEvents calls that returned a page.
    pub pages: u64,
    /// Why the scan is partial (deadline, failed or throttled queries).
    pub notes: Vec<String>,
}

/// What to fetch.
pub struct Plan<'a> {
    pub requester: &'a str,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// Whether a record fetched by event name is the requester's.
    pub is_requester: &'a (dyn Fn(&Value) -> bool + Sync),
}

/// No `Username` page could be read at all; holds the last reason a call gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NothingRead(pub String);

/// Fetches the requester's records from `source`'s Regions until `deadline`, `started` being
/// when the budget began. Errs only when no `Username` page could be read at all: "nothing
/// found" must never stand for "nothing read".
pub async fn fetch<A: LookupEventsApi>(
    source: &LookupSource<A>,
    plan: &Plan<'_>,
    started: Instant,
    deadline: Instant,
) -> Result<Fetched, NothingRead> {
    let mut pacer = source.resumable(deadline);
    let mut out = Fetched::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut scans: Vec<UserScan> = source
        .regions()
        .iter()
        .map(|region| UserScan {
            query: Query::new(
                region,
                LookupAttribute::Username,
                plan.requester,
                plan.start,
                plan.end,
            ),
            given_up: false,
            oldest_read: None,
        })
        .collect();
    let span = deadline.saturating_duration_since(started);
    let first_slice = started + span.mul_f64(FIRST_SLICE);
    let priority_until = started + span.mul_f64(PRIORITY_UNTIL);

    // Phase 1: the requester's own history, newest first.
    user_pages(
        &mut pacer,
        plan,
        &mut scans,
        &mut out,
        &mut seen,
        first_slice,
    )
    .await;
    if scans.iter().all(UserScan::done) {
        return finish(out, &scans);
    }
    // Phase 2: one page per high-risk name over what phase 1 has not reached, then more pages
    // of the names that have more while the slice lasts.
    let mut more: Vec<NameLookup> = Vec::new();
    'priority: for (name, scope) in PRIORITY {
        let regions: Vec<&UserScan> = scans
            .iter()
            .filter(|scan| !scan.done())
            .filter(|scan| scope == Scope::Regional || scan.query.region == GLOBAL_REGION)
            .collect();
        let mut asked = false;
        for scan in regions {
            if pacer.now() >= priority_until {
                // Looked up in some Regions only: say so, rather than drop or overstate it.
                if asked {
                    out.looked_up_first.push(name.to_owned());
                    mark_in_part(&mut out, name);
                }
                break 'priority;
            }
            let lookup = NameLookup {
                name,
                // The lookup's window ends where the `Username` scan had read to when it began.
                query: Query::new(
                    &scan.query.region,
                    LookupAttribute::EventName,
                    name,
                    plan.start,
                    scan.oldest_read.unwrap_or(plan.end),
                ),
            };
            asked |= name_page(&mut pacer, plan, lookup, &mut out, &mut seen, &mut more).await;
        }
        if asked {
            out.looked_up_first.push(name.to_owned());
        }
    }
    while !more.is_empty() && pacer.now() < priority_until {
        for lookup in std::mem::take(&mut more) {
            if pacer.now() >= priority_until {
                more.push(lookup);
                continue;
            }
            name_page(&mut pacer, plan, lookup, &mut out, &mut seen, &mut more).await;
        }
    }
    for lookup in more {
        out.notes.push(format!(
            "{} EventName={}: more events across the account than the budget read",
            lookup.query.region, lookup.name
        ));
        mark_in_part(&mut out, lookup.name);
    }
    // Phase 3: the rest of the requester's history until the deadline.
    user_pages(&mut pacer, plan, &mut scans, &mut out, &mut seen, deadline).await;
    finish(out, &scans)
}

/// One Region's account-wide lookup of a high-risk event name, resumable.
#[derive(Debug)]
struct NameLookup {
    name: &'static str,
    query: Query,
}

/// Reads one page of `lookup`, keeping the requester's records; queues it on `more` when the
/// page says there is more. Returns whether a page was read.
async fn name_page<A: LookupEventsApi>(
    pacer: &mut Pacer<'_, A>,
    plan: &Plan<'_>,
    mut lookup: NameLookup,
    out: &mut Fetched,
    seen: &mut HashSet<String>,
    more: &mut Vec<NameLookup>,
) -> bool {
    let first = lookup.query.pages() == 0;
    match pacer.next_page(&mut lookup.query).await {
        Ok(page) => {
            out.pages += 1;
            keep(&page, &mut out.records, seen, Some(plan.is_requester));
            if !lookup.query.is_complete() {
                more.push(lookup);
            }
            true
        }
        Err(why) => {
            out.notes.push(format!(
                "{} EventName={}: {why}",
                lookup.query.region, lookup.name
            ));
            // A first page that failed is simply not "looked up first"; a later one leaves a
            // name that was, read only in part.
            if !first {
                mark_in_part(out, lookup.name);
            }
            false
        }
    }
}

fn mark_in_part(out: &mut Fetched, name: &str) {
    if !out.looked_up_in_part.iter().any(|known| known == name) {
        out.looked_up_in_part.push(name.to_owned());
    }
}

/// The `Username` query of one Region, resumable.
#[derive(Debug)]
struct UserScan {
    query: Query,
    /// The query failed outright and is not retried.
    given_up: bool,
    /// Time of the oldest record read so far: everything newer has been read.
    oldest_read: Option<OffsetDateTime>,
}

impl UserScan {
    fn done(&self) -> bool {
        self.given_up || self.query.is_complete()
    }
}

fn finish(mut out: Fetched, scans: &[UserScan]) -> Result<Fetched, NothingRead> {
    if scans.iter().all(|scan| scan.query.pages() == 0) {
        let why = out
            .notes
            .iter()
            .rev()
            .find(|note| note.contains("Username="))
            .cloned()
            .unwrap_or_else(|| "no LookupEvents call succeeded".into());
        return Err(NothingRead(why));
    }
    out.complete = scans.iter().all(UserScan::done);
    Ok(out)
}

/// Reads `Username` pages, Region after Region, until every scan is done or `until`.
async fn user_pages<A: LookupEventsApi>(
    pacer: &mut Pacer<'_, A>,
    plan: &Plan<'_>,
    scans: &mut [UserScan],
    out: &mut Fetched,
    seen: &mut HashSet<String>,
    until: Instant,
) {
    for scan in scans.iter_mut().filter(|scan| !scan.done()) {
        while !scan.done() {
            if pacer.now() >= until {
                if pacer.deadline().is_some_and(|deadline| until >= deadline) {
                    out.notes.push(format!(
                        "deadline reached before {} Username={} was complete",
                        scan.query.region, plan.requester
                    ));
                }
                return;
            }
            match pacer.next_page(&mut scan.query).await {
                Ok(page) => {
                    out.pages += 1;
                    if let Some(oldest) = keep(&page, &mut out.records, seen, None) {
                        scan.oldest_read = Some(scan.oldest_read.map_or(oldest, |o| o.min(oldest)));
                    }
                }
                Err(why) => {
                    out.notes.push(format!(
                        "{} Username={}: {why}",
                        scan.query.region, plan.requester
                    ));
                    // A query that failed outright is not retried: the rest of the budget goes
                    // to the other queries. A deadline leaves the scan resumable.
                    if why != PageError::Deadline {
                        scan.given_up = true;
                    }
                    return;
                }
            }
        }
    }
}

/// Adds the page's records (those `filter` accepts) not seen before; returns the oldest
/// `eventTime` on the page.
fn keep(
    page: &LookupPage,
    records: &mut Vec<Value>,
    seen: &mut HashSet<String>,
    filter: Option<&(dyn Fn(&Value) -> bool + Sync)>,
) -> Option<OffsetDateTime> {
    let mut oldest: Option<i64> = None;
    for event in &page.events {
        let Some(Ok(record)) = event
            .cloud_trail_event
            .as_deref()
            .map(serde_json::from_str::<Value>)
        else {
            continue;
        };
        if !record.is_object() {
            continue;
        }
        if let Some(at) = record
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(timefmt::parse_event_time)
        {
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
        if filter.is_some_and(|accepts| !accepts(&record)) {
            continue;
        }
        let id = event.event_id.clone().or_else(|| {
            record
                .get("eventID")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        if let Some(id) = id
            && !seen.insert(id)
        {
            continue;
        }
        records.push(record);
    }
    oldest.and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok())
}
