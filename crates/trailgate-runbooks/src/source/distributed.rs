//! A runbook scan of a trail bucket split over processes, as the runbook-scan state machine
//! (`statemachine/runbook-scan.asl.json`) runs it on a Distributed Map: [`plan`] lists the
//! window's objects once and cuts them into [`Batch`]es, [`scan_batch`] scans one batch into a
//! [`ScanState`], and [`merge`] absorbs every batch's state with the engine's own merge
//! ([`crate::Scan::absorb`]) into the result one scan of the whole window would give.
//!
//! What is scanned is a [`ScanRequest`]: the runbook, its parameters as text and an explicit
//! window, so every process binds exactly the same runbook (a lookback would move with each
//! process's clock, and [`crate::Scan::absorb`] refuses a part of another binding). Objects are
//! numbered in the plan's key order and each batch marks its objects with those numbers, so
//! kept rows with equal times come out in the order of one sequential read.
//!
//! No AWS here: objects come through [`ObjectStore`]; the Lambda that runs these steps is
//! `crates/trailgate-scan`.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::files::Limits;
use super::s3::{ObjectStore, S3Source, fetch_and_feed, parse_key};
use crate::engine::{Compiled, ScanState, StateError};
use crate::error::{ParamError, SourceError};
use crate::output::RunbookResult;
use crate::params::Params;
use crate::timefmt;

/// What to scan: the runbook, its parameters and the window, fixed before the scan is split.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// The runbook id.
    pub runbook: String,
    /// Parameter values as text (lists comma-separated), as `--param` takes them.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Window start, RFC 3339.
    pub start: String,
    /// Window end, exclusive, RFC 3339.
    pub end: String,
    /// Only these accounts' folders (all when empty).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Only these Regions' folders (all when empty).
    #[serde(default)]
    pub regions: Vec<String>,
}

/// Why a request cannot be scanned or its parts merged; the `errorType` names the state
/// machine and `jitctl` show.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// No runbook with that id in the library.
    #[error("no runbook `{0}` in the library")]
    UnknownRunbook(String),
    /// A window bound is not an RFC 3339 time, or the window is empty.
    #[error("the window {0}")]
    Window(String),
    /// An account or Region filter is not one.
    #[error("`{0}` is not an account id (12 digits) or a Region name")]
    Filter(String),
    /// The parameters do not bind the runbook.
    #[error(transparent)]
    Params(#[from] ParamError),
    /// Listing the trail failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A batch names an object that is not a trail log object.
    #[error("`{0}` is not a CloudTrail log object of the trail")]
    NotTrailObject(String),
    /// Parts are missing or repeated.
    #[error("the scan has {found} of its {expected} parts (missing {missing:?})")]
    Parts {
        expected: usize,
        found: usize,
        missing: Vec<usize>,
    },
    /// A part is not this scan's.
    #[error("part {index}: {source}")]
    Part {
        index: usize,
        #[source]
        source: StateError,
    },
}

impl DistributedError {
    /// The stable name of the error, for the Lambda's `errorType` and the state machine.
    pub fn error_type(&self) -> &'static str {
        match self {
            DistributedError::UnknownRunbook(_)
            | DistributedError::Window(_)
            | DistributedError::Filter(_)
            | DistributedError::Params(_)
            | DistributedError::NotTrailObject(_) => "InvalidScan",
            DistributedError::Source(_) => "TrailUnreadable",
            DistributedError::Parts { .. } | DistributedError::Part { .. } => "PartsInvalid",
        }
    }
}

impl ScanRequest {
    /// The engine's parameters: the values and the explicit window.
    pub fn params(&self) -> Result<Params, DistributedError> {
        let time = |text: &str| {
            timefmt::parse_event_time(text)
                .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
                .ok_or_else(|| {
                    DistributedError::Window(format!(
                        "bound `{text}` is not an RFC 3339 time such as 2026-12-07T10:00:00Z"
                    ))
                })
        };
        let (start, end) = (time(&self.start)?, time(&self.end)?);
        if start >= end {
            return Err(DistributedError::Window(format!(
                "{} to {} is empty",
                self.start, self.end
            )));
        }
        // The Athena table's own shape checks: one notion of an account id and a Region.
        if let Some(bad) = self
            .accounts
            .iter()
            .find(|a| !crate::athena::valid_account(a))
            .or_else(|| {
                self.regions
                    .iter()
                    .find(|r| !crate::athena::valid_region(r))
            })
        {
            return Err(DistributedError::Filter(bad.clone()));
        }
        Ok(self
            .params
            .iter()
            .fold(Params::new(), |params, (name, value)| {
                params.set(name, value)
            })
            .window(start, end))
    }
}

/// One Map item: objects `first_file..first_file + keys.len()` of the plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Batch {
    pub index: usize,
    pub first_file: usize,
    pub keys: Vec<String>,
    /// The objects' stored (compressed) size.
    pub bytes: u64,
}

/// How the plan cuts batches: by stored bytes (what a batch's Lambda decompresses and scans)
/// and by count (a Map item's input must stay under Step Functions' 256 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_bytes: u64,
    pub max_keys: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        // 1 GiB of gzipped logs is about 15 s of one vCPU at the engine's measured 65–79 MB/s
        // (BENCHMARKS.md), far inside a Lambda's 15 minutes; 500 keys of ~150 bytes are ~75 KB
        // of item input.
        BatchLimits {
            max_bytes: 1024 * 1024 * 1024,
            max_keys: 500,
        }
    }
}

/// The objects of the plan, cut into batches in key order.
pub fn batches(objects: &[(String, u64)], limits: BatchLimits) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    for (n, (key, size)) in objects.iter().enumerate() {
        let start_new = out.last().is_none_or(|batch| {
            batch.keys.len() >= limits.max_keys.max(1)
                || (batch.bytes + size > limits.max_bytes && !batch.keys.is_empty())
        });
        if start_new {
            out.push(Batch {
                index: out.len(),
                first_file: n,
                keys: Vec::new(),
                bytes: 0,
            });
        }
        if let Some(batch) = out.last_mut() {
            batch.keys.push(key.clone());
            batch.bytes += size;
        }
    }
    out
}

/// What [`plan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub batches: Vec<Batch>,
    pub objects: usize,
    pub bytes: u64,
}

/// Lists the window's objects through the S3 source's own planner (the same day folders and
/// delivery slack as a single scan) and cuts them into batches.
pub async fn plan<S: ObjectStore + Sync>(
    source: &S3Source<S>,
    compiled: &Compiled<'_>,
    limits: BatchLimits,
) -> Result<Plan, DistributedError> {
    let objects = source.plan(compiled.window()).await?;
    Ok(Plan {
        batches: batches(&objects, limits),
        objects: objects.len(),
        bytes: objects.iter().map(|(_, size)| size).sum(),
    })
}

/// Scans one batch's objects of `bucket` into its part's state. Every key must be a trail log
/// object under `prefix` (the plan only lists those; a hand-made batch is refused whole).
pub async fn scan_batch<S: ObjectStore + Sync>(
    compiled: &Compiled<'_>,
    store: &S,
    bucket: &str,
    prefix: &str,
    batch: &Batch,
    parallelism: usize,
    limits: Limits,
) -> Result<ScanState, DistributedError> {
    if let Some(bad) = batch
        .keys
        .iter()
        .find(|key| !key.starts_with(&format!("{prefix}AWSLogs/")) || parse_key(key).is_none())
    {
        return Err(DistributedError::NotTrailObject(bad.clone()));
    }
    let keys: Vec<&str> = batch.keys.iter().map(String::as_str).collect();
    let mut scan = compiled.scan();
    fetch_and_feed(
        store,
        bucket,
        &keys,
        batch.first_file,
        parallelism,
        limits,
        &mut scan,
    )
    .await;
    Ok(scan.into_state())
}

/// Merges the parts `(batch index, state)` of a scan planned into `expected` batches into its
/// result: every index exactly once, each state of this binding, or nothing is merged.
pub fn merge(
    compiled: &Compiled<'_>,
    mut parts: Vec<(usize, ScanState)>,
    expected: usize,
    note: Option<String>,
) -> Result<RunbookResult, DistributedError> {
    parts.sort_by_key(|(index, _)| *index);
    let indices: Vec<usize> = parts.iter().map(|(index, _)| *index).collect();
    if indices != (0..expected).collect::<Vec<_>>() {
        return Err(DistributedError::Parts {
            expected,
            found: parts.len(),
            missing: (0..expected).filter(|i| !indices.contains(i)).collect(),
        });
    }
    let mut scan = compiled.scan();
    if let Some(note) = note {
        scan.note(note);
    }
    for (index, state) in parts {
        scan.absorb(state)
            .map_err(|source| DistributedError::Part { index, source })?;
    }
    Ok(scan.finish())
}
