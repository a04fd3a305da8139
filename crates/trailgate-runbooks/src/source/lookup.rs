//! LookupEvents (CloudTrail Event history) as a source, through a caller-supplied API.
//!
//! LookupEvents takes one lookup attribute per call, returns at most 50 events per page, allows
//! 2 calls per second per account and Region, and throttles with an HTTP 400
//! `ThrottlingException`. So the runbook's `lookup` hint picks one server-side attribute, the
//! rest of the filter runs here, calls are paced and retried with backoff, every Region given plus
//! us-east-1 (where IAM, STS-global and sign-in events land) is queried, and a page and time
//! budget bounds the scan. When a budget cuts the scan the result says so (`truncated: true`).
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
}

/// Limits on a LookupEvents scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupBudget {
    /// Pages per (Region, value) query; 10 pages = 500 events.
    pub max_pages_per_query: u32,
    /// Wall-clock limit for the whole scan.
    pub deadline: Option<Duration>,
    /// Pause between calls (2 calls per second per Region = 500 ms).
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
        let started = Instant::now();
        let mut seen: HashSet<String> = HashSet::new();
        let mut first_call = true;
        scan.note(format!(
            "LookupEvents: {} = {} in {}",
            plan.attribute.as_str(),
            plan.values.join(" | "),
            self.regions.join(", ")
        ));
        for region in &self.regions {
            for value in &plan.values {
                let mut next_token: Option<String> = None;
                let mut pages: u32 = 0;
                loop {
                    if self
                        .budget
                        .deadline
                        .is_some_and(|deadline| started.elapsed() >= deadline)
                    {
                        scan.truncate(format!(
                            "deadline reached before {region} {}={value} was complete",
                            plan.attribute.as_str()
                        ));
                        return Ok(());
                    }
                    if !first_call && !self.budget.min_interval.is_zero() {
                        self.api.sleep(self.budget.min_interval).await;
                    }
                    first_call = false;
                    let request = LookupRequest {
                        region: region.clone(),
                        attribute: plan.attribute,
                        value: value.clone(),
                        start: window.start_time(),
                        end: window.end_time(),
                        next_token: next_token.clone(),
                        max_results: 50,
                    };
                    let page = match self.call(request).await {
                        Ok(page) => page,
                        Err(LookupCallError::Throttled) => {
                            scan.truncate(format!(
                                "{region} {}={value}: still throttled after {} retries",
                                plan.attribute.as_str(),
                                self.budget.max_retries
                            ));
                            break;
                        }
                        Err(LookupCallError::Failed(message)) => {
                            scan.truncate(format!(
                                "{region} {}={value}: {message}",
                                plan.attribute.as_str()
                            ));
                            break;
                        }
                    };
                    pages += 1;
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
                    match page.next_token {
                        None => break,
                        Some(_) if pages >= self.budget.max_pages_per_query => {
                            scan.truncate(format!(
                                "{region} {}={value}: page budget of {} reached with more pages left",
                                plan.attribute.as_str(),
                                self.budget.max_pages_per_query
                            ));
                            break;
                        }
                        Some(token) => next_token = Some(token),
                    }
                }
            }
        }
        Ok(())
    }

    async fn call(&self, request: LookupRequest) -> Result<LookupPage, LookupCallError> {
        let mut attempt: u32 = 0;
        loop {
            match self.api.lookup(request.clone()).await {
                Err(LookupCallError::Throttled) if attempt < self.budget.max_retries => {
                    let factor = 2u32.saturating_pow(attempt);
                    self.api
                        .sleep(self.budget.backoff.saturating_mul(factor))
                        .await;
                    attempt += 1;
                }
                other => return other,
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
