//! The session audit's second source: the trail bucket, when one is configured. LookupEvents
//! holds management events only; a trail that logs data events (S3 object reads and writes,
//! Lambda invocations, DynamoDB items) delivers them to its bucket and nowhere else, so the
//! audit reads the target account's objects of the session's window there too, with the same
//! bound runbook, and keeps the records it matches.
//!
//! Each Region is read on its own, so each has its own watermark: the newest `eventTime` of any
//! record CloudTrail has delivered to the bucket for that account and Region in the window's
//! delivery days, whether it matched or not. A Region that cannot be read, or that has nothing
//! yet, holds the audit's completeness back like a LookupEvents Region does.
//!
//! The bucket is reached through [`ObjectStore`] (the AWS implementation is trailgate-aws'
//! `S3Store`); an object that cannot be read or inflates past the cap is counted and skipped,
//! and a listing that fails is that Region's watermark error, never the audit's failure.

use serde_json::{Value, json};
use time::OffsetDateTime;
use trailgate_runbooks::Compiled;
use trailgate_runbooks::source::files::Limits;
use trailgate_runbooks::source::s3::{ObjectStore, S3Location, S3Options, S3Source};

use crate::session::Watermark;

/// Where the trail delivers: `s3://bucket/prefix/`, whose `AWSLogs/` holds the accounts (an
/// Organization trail's under `AWSLogs/o-…/`).
#[derive(Debug, Clone)]
pub struct TrailBucket<S> {
    pub store: S,
    pub location: S3Location,
}

/// The session's records a session audit may keep from the bucket: a session that made more
/// is reported as cut short rather than read into a Lambda's memory whole.
pub const MAX_TRAIL_RECORDS: usize = 50_000;

/// Objects fetched at once: a trail object inflates to tens of MB at most, and the audit
/// function has 512 MB.
const PARALLELISM: usize = 4;

/// A trail object that inflates past this is refused (a gzip bomb, or not CloudTrail's).
const MAX_OBJECT_BYTES: u64 = 128 * 1024 * 1024;

/// What the audit read from the bucket.
#[derive(Debug, Clone)]
pub struct TrailRead {
    /// The records the runbook matched in the window, every Region's.
    pub records: Vec<Value>,
    /// One per Region read.
    pub marks: Vec<Watermark>,
    /// Whether a Region's read was cut short (too many records).
    pub truncated: bool,
    /// The report's `coverage.trail` part, without `only_in_trail` (which the caller knows).
    pub summary: Value,
}

/// Reads `account`'s objects in each of `regions` for the compiled session runbook.
pub async fn read<S: ObjectStore + Sync>(
    trail: &TrailBucket<S>,
    compiled: &Compiled<'_>,
    account: &str,
    regions: &[String],
) -> TrailRead {
    let mut read = TrailRead {
        records: Vec::new(),
        marks: Vec::new(),
        truncated: false,
        summary: Value::Null,
    };
    let (mut objects, mut scanned, mut skipped, mut notes) = (0, 0, 0, Vec::new());
    for region in regions {
        let source = S3Source::new(&trail.store, trail.location.clone()).options(S3Options {
            accounts: vec![account.to_owned()],
            regions: vec![region.clone()],
            parallelism: PARALLELISM,
            limits: Limits {
                max_object_bytes: MAX_OBJECT_BYTES,
                ..Limits::default()
            },
            ..S3Options::default()
        });
        let mut scan = compiled.scan().keep_matches(MAX_TRAIL_RECORDS);
        let outcome = source.scan(&mut scan).await;
        let newest = scan
            .newest_event()
            .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok());
        read.records.extend(scan.take_matches());
        let result = scan.finish();
        let coverage = &result.coverage;
        objects += coverage.files_read;
        scanned += coverage.events_scanned;
        skipped += coverage.records_skipped;
        read.truncated |= coverage.truncated;
        notes.extend(
            coverage
                .notes
                .iter()
                .map(|note| format!("{region}: {note}")),
        );
        read.marks.push(Watermark {
            region: region.clone(),
            source: Watermark::TRAIL,
            newest,
            error: outcome.err().map(|error| error.to_string()),
        });
    }
    read.summary = json!({
        "location": format!("s3://{}/{}", trail.location.bucket, trail.location.prefix),
        "account": account,
        "objects_read": objects,
        "events_scanned": scanned,
        "records_skipped": skipped,
        "events_matched": read.records.len(),
        "notes": notes,
    });
    read
}
