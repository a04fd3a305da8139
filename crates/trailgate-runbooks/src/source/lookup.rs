//! LookupEvents (CloudTrail Event history) as a source, through a caller-supplied API.
//!
//! LookupEvents takes one lookup attribute per call, returns at most 50 events per page, allows
//! 2 calls per second per account and Region, and throttles with an HTTP 400
//! `ThrottlingException`. So the runbook's `lookup` hint picks one server-side attribute, the
//! rest of the filter runs here, calls are paced and retried with backoff, every Region given plus
//! us-east-1 (where IAM, STS-global and sign-in events land) is queried, and a page and time
//! budget bounds the scan. When a budget cuts the scan the result says so (`truncated: true`).
//!
//! Two modes share one pacer ([`Pacer`]): [`LookupSource::scan`] reads every query of a
//! runbook's hint in order, and the resumable mode ([`LookupSource::resumable`], [`Query`])
//! lets a caller pick which query reads its next page, so it can pause one query for
//! higher-priority ones and resume it later (the reviewer context does this). Time, for both the
//! pacing and the deadline, is the port's ([`LookupEventsApi::now`] and
//! [`LookupEventsApi::sleep`]), so fakes on a virtual clock see the same waits as production.
//!
//! The AWS implementation of [`LookupEventsApi`] lives in another crate; this one has no AWS SDK.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;

use crate::engine::Scan;
use crate::error::{RunError, SourceError};
use crate::output::{RunbookResult, SkipReason};
use crate::params::Params;
use crate::runbook::Runbook;
use crate::spec::LookupAttribute;

/// The Region that holds global-service events; always queried.
pub const GLOBAL_REGION: &str = "us-east-1";

/// One LookupEvents call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRequest {
    /// Region to call.
    pub region: String,
    /// The single lookup attribute.
    pub attribute: LookupAttribute,
    /// Its value.
    pub value: String,
    /// Window start (inclusive).
    pub start: OffsetDateTime,
    /// Window end.
    pub end: OffsetDateTime,
    /// Token of the next page, from the previous response.
    pub next_token: Option<String>,
    /// Page size (the API's maximum is 50).
    pub max_results: u8,
}

/// One page of results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupPage {
    /// The events of the page.
    pub events: Vec<LookupEvent>,
    /// Token for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// One event as LookupEvents returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupEvent {
    /// `EventId`, used to drop duplicates across lookups.
    pub event_id: Option<String>,
    /// `CloudTrailEvent`: the full record as a JSON string.
    pub cloud_trail_event: Option<String>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupCallError {
    /// `ThrottlingException` (HTTP 400): retried with backoff.
    #[error("throttled")]
    Throttled,
    /// Anything else (access denied, Region not enabled ...): the query is abandoned and noted.
    #[error("{0}")]
    Failed(String),
}

/// The LookupEvents API, implemented with the AWS SDK elsewhere and by fakes in tests.
pub trait LookupEventsApi {
    /// Performs one call.
    fn lookup(
        &self,
        request: LookupRequest,
    ) -> impl Future<Output = Result<LookupPage, LookupCallError>> + Send;

    /// Waits (pacing and backoff); `tokio::time::sleep` in production, instant in tests.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;

    /// The clock the pacer measures intervals and deadlines with. It must be the one
    /// [`sleep`](Self::sleep) advances: a fake whose sleep is virtual supplies its virtual time.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A shared reference to an API is the API: the resumable mode borrows the caller's.
impl<T: LookupEventsApi + Sync + ?Sized> LookupEventsApi for &T {
    fn lookup(
        &self,
        request: LookupRequest,
    ) -> impl Future<Output = Result<LookupPage, LookupCallError>> + Send {
        (**self).lookup(request)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        (**self).sleep(duration)
    }

    fn now(&self) -> Instant {
        (**self).now()
    }
}

/// LookupEvents in more than one account. The API only ever answers for the caller's own
/// account, so reading another account's history takes a session there (trailgate's adapters
/// assume the account's agent role); each account has its own rate limit, so each gets its own
/// [`LookupSource`] and pacer.
pub trait AccountLookups {
    type Api: LookupEventsApi + Sync;

    /// The account whose own credentials the caller holds: empty when only one account is in
    /// play.
    fn home_account(&self) -> &str;

    /// LookupEvents acting in `account`, or why that account cannot be read (in words for the
    /// reviewer: the account and the reason).
    fn in_account(&self, account: &str) -> impl Future<Output = Result<Self::Api, String>> + Send;
}

/// The caller's own account only: what a single-account deployment, a local investigation or a
/// test reads.
#[derive(Debug, Clone)]
pub struct OneAccount<A>(pub A);

impl<A: LookupEventsApi + Sync + Send + Clone> AccountLookups for OneAccount<A> {
    type Api = A;

    fn home_account(&self) -> &str {
        ""
    }

    fn in_account(&self, _account: &str) -> impl Future<Output = Result<A, String>> + Send {
        std::future::ready(Ok(self.0.clone()))
    }
}

/// Limits on a LookupEvents scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupBudget {
    /// Pages per (Region, value) query; 10 pages = 500 events.
    pub max_pages_per_query: u32,
    /// Wall-clock limit for the whole scan.
    pub deadline: Option<Duration>,
    /// Least time from one call's start to the next (2 calls per second per Region = 500 ms).
    pub min_interval: Duration,
    /// Retries of a throttled call before the query is abandoned.
    pub max_retries: u32,
    /// First backoff after a throttle; doubled on each retry.
    pub backoff: Duration,
}

impl Default for LookupBudget {
    fn default() -> Self {
        LookupBudget {
            max_pages_per_query: 10,
            deadline: Some(Duration::from_secs(60)),
            min_interval: Duration::from_millis(500),
            max_retries: 5,
            backoff: Duration::from_secs(1),
        }
    }
}

/// LookupEvents over a set of Regions.
#[derive(Debug, Clone)]
pub struct LookupSource<A> {
    api: A,
    regions: Vec<String>,
    budget: LookupBudget,
}

impl<A: LookupEventsApi> LookupSource<A> {
    /// A source over `regions`; us-east-1 is added if missing (global-service events live there).
    pub fn new(api: A, regions: &[&str]) -> LookupSource<A> {
        let mut list: Vec<String> = Vec::new();
        for region in regions.iter().copied().chain([GLOBAL_REGION]) {
            if !list.iter().any(|known| known == region) {
                list.push(region.to_owned());
            }
        }
        LookupSource {
            api,
            regions: list,
            budget: LookupBudget::default(),
        }
    }

    /// Replaces the budget.
    pub fn budget(mut self, budget: LookupBudget) -> LookupSource<A> {
        self.budget = budget;
        self
    }

    /// The Regions queried, in order.
    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    /// The API.
    pub fn api(&self) -> &A {
        &self.api
    }

    /// Feeds the events of every (Region, lookup value) query into `scan`.
    pub async fn scan(&self, scan: &mut Scan<'_, '_>) -> Result<(), SourceError> {
        let plan = scan
            .lookup()
            .cloned()
            .ok_or_else(|| SourceError::NoLookupHint(String::new()))?;
        let window = scan.window();
        let deadline = self
            .budget
            .deadline
            .and_then(|deadline| self.api.now().checked_add(deadline));
        let mut pacer = Pacer::new(&self.api, &self.budget, deadline);
        let mut seen: HashSet<String> = HashSet::new();
        scan.note(format!(
            "LookupEvents: {} = {} in {}",
            plan.attribute.as_str(),
            plan.values.join(" | "),
            self.regions.join(", ")
        ));
        for region in &self.regions {
            for value in &plan.values {
                let mut query = Query::new(
                    region,
                    plan.attribute,
                    value,
                    window.start_time(),
                    window.end_time(),
                );
                loop {
                    let page = match pacer.next_page(&mut query).await {
                        Ok(page) => page,
                        Err(PageError::Deadline) => {
                            scan.truncate(format!(
                                "deadline reached before {region} {}={value} was complete",
                                plan.attribute.as_str()
                            ));
                            return Ok(());
                        }
                        Err(error) => {
                            scan.truncate(format!(
                                "{region} {}={value}: {error}",
                                plan.attribute.as_str()
                            ));
                            break;
                        }
                    };
                    scan.file_read();
                    for event in &page.events {
                        if let Some(id) = &event.event_id
                            && !seen.insert(id.clone())
                        {
                            continue;
                        }
                        match event
                            .cloud_trail_event
                            .as_deref()
                            .map(serde_json::from_str::<Value>)
                        {
                            Some(Ok(record)) if record.is_object() => scan.record(&record),
                            _ => scan.skip(SkipReason::BadLookupEvent),
                        }
                    }
                    if query.is_complete() {
                        break;
                    }
                    if query.pages() >= self.budget.max_pages_per_query {
                        scan.truncate(format!(
                            "{region} {}={value}: page budget of {} reached with more pages left",
                            plan.attribute.as_str(),
                            self.budget.max_pages_per_query
                        ));
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The resumable mode: the caller drives [`Query`]s page by page through the source's pacer
    /// (its budget's interval, retries and backoff), and no call starts at or after `deadline`.
    /// The budget's page limit and deadline do not apply: the caller decides what to read next.
    pub fn resumable(&self, deadline: Instant) -> Pacer<'_, A> {
        Pacer::new(&self.api, &self.budget, Some(deadline))
    }
}

/// One LookupEvents query (Region, attribute, value, window) read a page at a time, so it can be
/// paused and resumed where it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Region to call.
    pub region: String,
    /// The single lookup attribute.
    pub attribute: LookupAttribute,
    /// Its value.
    pub value: String,
    /// Window start (inclusive).
    pub start: OffsetDateTime,
    /// Window end.
    pub end: OffsetDateTime,
    next_token: Option<String>,
    pages: u32,
    complete: bool,
}

impl Query {
    /// A query not read yet.
    pub fn new(
        region: &str,
        attribute: LookupAttribute,
        value: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Query {
        Query {
            region: region.to_owned(),
            attribute,
            value: value.to_owned(),
            start,
            end,
            next_token: None,
            pages: 0,
            complete: false,
        }
    }

    /// Pages read so far.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Whether its last page has been read.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The call that reads its next page.
    fn request(&self) -> LookupRequest {
        LookupRequest {
            region: self.region.clone(),
            attribute: self.attribute,
            value: self.value.clone(),
            start: self.start,
            end: self.end,
            next_token: self.next_token.clone(),
            max_results: 50,
        }
    }
}

/// Why a page was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The deadline came before the call could start; the query can be resumed.
    #[error("deadline reached")]
    Deadline,
    /// Throttled on every retry.
    #[error("still throttled after {0} retries")]
    Throttled(u32),
    /// Anything else (access denied, Region not enabled ...).
    #[error("{0}")]
    Failed(String),
}

/// The one LookupEvents pacer: keeps calls `min_interval` apart from start to start, retries
/// throttles with exponential backoff, and starts no call at or after the deadline.
#[derive(Debug)]
pub struct Pacer<'a, A> {
    api: &'a A,
    budget: &'a LookupBudget,
    deadline: Option<Instant>,
    last_call: Option<Instant>,
}

impl<'a, A: LookupEventsApi> Pacer<'a, A> {
    fn new(api: &'a A, budget: &'a LookupBudget, deadline: Option<Instant>) -> Pacer<'a, A> {
        Pacer {
            api,
            budget,
            deadline,
            last_call: None,
        }
    }

    /// The deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The time on the API's clock, the one the pacing and the deadline are measured with.
    pub fn now(&self) -> Instant {
        self.api.now()
    }

    /// Reads the next page of `query` and moves it on (its token, page count, completeness).
    /// A failed page leaves the query where it was.
    pub async fn next_page(&mut self, query: &mut Query) -> Result<LookupPage, PageError> {
        let page = self.call(query.request()).await?;
        query.pages += 1;
        query.next_token.clone_from(&page.next_token);
        query.complete = page.next_token.is_none();
        Ok(page)
    }

    async fn call(&mut self, request: LookupRequest) -> Result<LookupPage, PageError> {
        let mut attempt: u32 = 0;
        loop {
            if let Some(last) = self.last_call {
                let ready = last + self.budget.min_interval;
                let now = self.api.now();
                if ready > now {
                    self.api.sleep(ready - now).await;
                }
            }
            if self
                .deadline
                .is_some_and(|deadline| self.api.now() >= deadline)
            {
                return Err(PageError::Deadline);
            }
            self.last_call = Some(self.api.now());
            match self.api.lookup(request.clone()).await {
                Ok(page) => return Ok(page),
                Err(LookupCallError::Throttled) if attempt < self.budget.max_retries => {
                    let factor = 2u32.saturating_pow(attempt);
                    self.api
                        .sleep(self.budget.backoff.saturating_mul(factor))
                        .await;
                    attempt += 1;
                }
                Err(LookupCallError::Throttled) => {
                    return Err(PageError::Throttled(self.budget.max_retries));
                }
                Err(LookupCallError::Failed(message)) => return Err(PageError::Failed(message)),
            }
        }
    }
}

/// Runs a runbook on LookupEvents using its `lookup` hint.
pub async fn run_lookup<A: LookupEventsApi>(
    runbook: &Runbook,
    params: &Params,
    source: &LookupSource<A>,
) -> Result<RunbookResult, RunError> {
    let compiled = runbook.compile(params)?;
    if compiled.lookup().is_none_or(|plan| plan.values.is_empty()) {
        return Err(SourceError::NoLookupHint(runbook.id().to_owned()).into());
    }
    let mut scan = compiled.scan();
    source.scan(&mut scan).await.map_err(|error| match error {
        SourceError::NoLookupHint(_) => SourceError::NoLookupHint(runbook.id().to_owned()),
        other => other,
    })?;
    Ok(scan.finish())
}
