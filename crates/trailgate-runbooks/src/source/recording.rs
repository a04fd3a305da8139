//! A [`LookupEventsApi`] wrapper that keeps every record it passes through, so one paced
//! LookupEvents scan can feed several runbooks (run again over a `MemorySource`) or a report
//! that needs the records themselves. Duplicates (by `EventId`) are kept once.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::lookup::{LookupCallError, LookupEventsApi, LookupPage, LookupRequest};

/// Passes calls to `inner` and records the events returned.
#[derive(Debug)]
pub struct Recording<'a, A> {
    inner: &'a A,
    records: Mutex<(HashSet<String>, Vec<Value>)>,
}

impl<'a, A> Recording<'a, A> {
    /// Wraps `inner`.
    pub fn new(inner: &'a A) -> Recording<'a, A> {
        Recording {
            inner,
            records: Mutex::new((HashSet::new(), Vec::new())),
        }
    }

    /// The records seen so far, in the order returned.
    pub fn records(&self) -> Vec<Value> {
        self.records
            .lock()
            .map(|guard| guard.1.clone())
            .unwrap_or_default()
    }
}

impl<A: LookupEventsApi + Sync> LookupEventsApi for Recording<'_, A> {
    async fn lookup(&self, request: LookupRequest) -> Result<LookupPage, LookupCallError> {
        let page = self.inner.lookup(request).await?;
        if let Ok(mut guard) = self.records.lock() {
            let (seen, records) = &mut *guard;
            for event in &page.events {
                if let Some(id) = &event.event_id
                    && !seen.insert(id.clone())
                {
                    continue;
                }
                if let Some(Ok(record)) = event
                    .cloud_trail_event
                    .as_deref()
                    .map(serde_json::from_str::<Value>)
                    && record.is_object()
                {
                    records.push(record);
                }
            }
        }
        Ok(page)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        self.inner.sleep(duration)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }
}
