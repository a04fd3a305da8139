//! CloudTrail log objects in S3 as a source, through a caller-supplied [`ObjectStore`].
//!
//! Trails deliver to `[prefix/]AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/
//! <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz`. The date folders and the
//! time in the name are the *delivery* time, and a file holds records from any time before it,
//! so the planner lists the day folders from the window start to the window end plus a delivery
//! slack, keeps the objects delivered in `[start, end + slack)`, and the engine filters on
//! `eventTime`. Accounts (including organization trails) and Regions are discovered by listing
//! with a `/` delimiter; digest and Insights objects live under other folder names and are never
//! listed (and are refused by name if a key still names them).
//!
//! Objects are fetched `parallelism` at a time; each object is gunzipped into the record
//! splitter's buffer, at most [`Limits::max_object_bytes`] (an object that inflates past it, a
//! gzip bomb, is refused whole), and a corrupt, oversized or unreadable object is counted and
//! skipped, never fatal.
//!
//! The AWS implementation of [`ObjectStore`] is in trailgate-aws (`s3.rs`); this crate has no
//! AWS SDK.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use time::{Date, OffsetDateTime};

use super::files::{self, Inflated, Limits};
use crate::engine::Scan;
use crate::error::{RunError, SourceError};
use crate::output::{RunbookResult, SkipReason};
use crate::params::{Params, Window};
use crate::runbook::Runbook;

/// `s3://bucket/prefix`: where a trail delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix before `AWSLogs/`, empty or ending with `/`.
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket` or `s3://bucket/prefix[/]`; a trailing `AWSLogs/...` is kept as part
    /// of the prefix only up to `AWSLogs/`.
    pub fn parse(url: &str) -> Option<S3Location> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        let mut prefix = match prefix.find("AWSLogs/") {
            Some(at) => prefix[..at].to_owned(),
            None => prefix.trim_end_matches("AWSLogs").to_owned(),
        };
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Some(S3Location {
            bucket: bucket.to_owned(),
            prefix,
        })
    }
}

/// One `ListObjectsV2` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// Bucket.
    pub bucket: String,
    /// Key prefix.
    pub prefix: String,
    /// `/` to get folders as common prefixes.
    pub delimiter: Option<String>,
    /// Continuation token of the previous page.
    pub continuation: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects (key and size in bytes).
    pub objects: Vec<(String, u64)>,
    /// Folders, when a delimiter was given.
    pub common_prefixes: Vec<String>,
    /// Token for the next page.
    pub continuation: Option<String>,
}

/// A store call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// The two S3 calls the source needs; the AWS SDK implements it in trailgate-aws.
pub trait ObjectStore {
    /// Lists one page.
    fn list(
        &self,
        request: ListRequest,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send;

    /// Reads a whole object (compressed bytes as stored).
    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
}

/// Writes and deletes objects: the distributed scan's manifests and parts
/// ([`super::distributed`]), never a trail's logs.
pub trait ObjectWriter {
    /// Stores `body` at `key`.
    fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes `key` (absent is not an error).
    fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A shared reference to a store is a store (so a test or a caller can keep the original).
impl<S: ObjectStore + Sync + ?Sized> ObjectStore for &S {
    fn list(
        &self,
        request: ListRequest,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send {
        (**self).list(request)
    }

    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send {
        (**self).get(bucket, key)
    }
}

/// A parsed trail object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailKey {
    /// Organization id of an organization trail.
    pub org: Option<String>,
    /// Account id.
    pub account: String,
    /// Region.
    pub region: String,
    /// The delivery day folder.
    pub day: Date,
    /// Delivery time from the file name (Unix seconds, minute resolution), when present.
    pub delivered: Option<i64>,
}

/// Parses a CloudTrail log key; `None` for digest, Insights and anything else.
pub fn parse_key(key: &str) -> Option<TrailKey> {
    let at = key.find("AWSLogs/")?;
    let parts: Vec<&str> = key[at + "AWSLogs/".len()..].split('/').collect();
    let (org, rest) = match parts.first() {
        Some(first) if first.starts_with("o-") => (Some((*first).to_owned()), &parts[1..]),
        _ => (None, &parts[..]),
    };
    let [account, kind, region, year, month, day, file] = rest else {
        return None;
    };
    if *kind != "CloudTrail" || !is_log_name(file) {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    let day = Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    Some(TrailKey {
        org,
        account: (*account).to_owned(),
        region: (*region).to_owned(),
        day,
        delivered: delivery_time(file),
    })
}

fn is_log_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.contains("CloudTrail-Digest")
        && !name.contains("CloudTrail-Insight")
        && (lower.ends_with(".json.gz") || lower.ends_with(".json"))
}

/// `<acct>_CloudTrail_<region>_20230710T1145Z_<unique>.json.gz` -> 2023-07-10T11:45:00Z.
fn delivery_time(name: &str) -> Option<i64> {
    name.split('_').find_map(|part| {
        let bytes = part.as_bytes();
        if bytes.len() != 14 || bytes[8] != b'T' || bytes[13] != b'Z' {
            return None;
        }
        let text = format!(
            "{}-{}-{}T{}:{}:00Z",
            &part[0..4],
            &part[4..6],
            &part[6..8],
            &part[9..11],
            &part[11..13]
        );
        crate::timefmt::parse_event_time(&text)
    })
}

/// Day folders listed at once by [`S3Source::plan`].
const LIST_PARALLELISM: usize = 16;

/// How an S3 scan is planned and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// How long after the window end a file may still be delivered (CloudTrail averages about
    /// 5 minutes and guarantees nothing, so the default is generous).
    pub delivery_slack: Duration,
    /// Objects fetched at once.
    pub parallelism: usize,
    /// Only these accounts (all discovered when empty).
    pub accounts: Vec<String>,
    /// Only these Regions (all discovered when empty).
    pub regions: Vec<String>,
    /// Records larger than this are skipped unparsed; objects that inflate past the object
    /// cap are refused whole.
    pub limits: Limits,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            delivery_slack: Duration::from_secs(3600),
            parallelism: 8,
            accounts: Vec::new(),
            regions: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// A trail's objects in S3.
#[derive(Debug, Clone)]
pub struct S3Source<S> {
    store: S,
    location: S3Location,
    options: S3Options,
}

impl<S: ObjectStore + Sync> S3Source<S> {
    /// A source over the trail at `location`.
    pub fn new(store: S, location: S3Location) -> S3Source<S> {
        S3Source {
            store,
            location,
            options: S3Options::default(),
        }
    }

    /// Replaces the options.
    pub fn options(mut self, options: S3Options) -> S3Source<S> {
        self.options = options;
        self
    }

    fn error(&self, message: impl std::fmt::Display) -> SourceError {
        SourceError::S3 {
            location: format!("s3://{}/{}", self.location.bucket, self.location.prefix),
            message: message.to_string(),
        }
    }

    async fn list_all(&self, prefix: String, delimiter: bool) -> Result<ListPage, SourceError> {
        let mut all = ListPage::default();
        let mut continuation = None;
        loop {
            let page = self
                .store
                .list(ListRequest {
                    bucket: self.location.bucket.clone(),
                    prefix: prefix.clone(),
                    delimiter: delimiter.then(|| "/".to_owned()),
                    continuation,
                })
                .await
                .map_err(|error| self.error(format!("list `{prefix}`: {error}")))?;
            all.objects.extend(page.objects);
            all.common_prefixes.extend(page.common_prefixes);
            match page.continuation {
                Some(token) => continuation = Some(token),
                None => return Ok(all),
            }
        }
    }

    /// The day folders to list: `(account, region)` folders discovered, times the days from the
    /// window start to its end plus the delivery slack.
    pub async fn day_prefixes(&self, window: Window) -> Result<Vec<String>, SourceError> {
        let root = format!("{}AWSLogs/", self.location.prefix);
        let mut accounts = Vec::new();
        for folder in self.list_all(root, true).await?.common_prefixes {
            let name = last_segment(&folder);
            if name.starts_with("o-") {
                accounts.extend(self.list_all(folder, true).await?.common_prefixes);
            } else {
                accounts.push(folder);
            }
        }
        accounts.retain(|folder| {
            let account = last_segment(folder);
            account.chars().all(|c| c.is_ascii_digit())
                && (self.options.accounts.is_empty()
                    || self.options.accounts.iter().any(|wanted| wanted == account))
        });
        let slack = i64::try_from(self.options.delivery_slack.as_secs()).unwrap_or(i64::MAX);
        let (first_day, last_day) =
            delivery_days(window, slack).ok_or_else(|| SourceError::S3 {
                location: String::new(),
                message: "window out of range".to_owned(),
            })?;
        let mut prefixes = Vec::new();
        for account in accounts {
            let regions = self
                .list_all(format!("{account}CloudTrail/"), true)
                .await?
                .common_prefixes;
            for region in regions {
                let name = last_segment(&region);
                if !self.options.regions.is_empty()
                    && !self.options.regions.iter().any(|wanted| wanted == name)
                {
                    continue;
                }
                let mut day = first_day;
                while day <= last_day {
                    prefixes.push(format!("{region}{}/", day_folder(day)));
                    let Some(next) = day.next_day() else { break };
                    day = next;
                }
            }
        }
        Ok(prefixes)
    }

    /// The objects that may hold records of the window, in key order.
    pub async fn plan(&self, window: Window) -> Result<Vec<(String, u64)>, SourceError> {
        let last = window.end + self.options.delivery_slack.as_secs() as i64;
        let mut objects = Vec::new();
        let prefixes = self.day_prefixes(window).await?;
        // An Organization's window is accounts x Regions x days folders, each a LIST: listed
        // LIST_PARALLELISM at a time, as one after another they would take minutes.
        let mut listed = Vec::with_capacity(prefixes.len());
        for chunk in prefixes.chunks(LIST_PARALLELISM) {
            let lists = chunk
                .iter()
                .map(|prefix| Box::pin(self.list_all(prefix.clone(), false)))
                .collect();
            listed.extend(JoinAll::new(lists).await);
        }
        for page in listed {
            for (key, size) in page?.objects {
                let Some(parsed) = parse_key(&key) else {
                    continue;
                };
                // A file delivered before the window starts holds only older records; one
                // delivered after the slack holds only later ones (a minute of rounding kept).
                let keep = parsed
                    .delivered
                    .is_none_or(|delivered| delivered + 60 > window.start && delivered < last);
                if keep {
                    objects.push((key, size));
                }
            }
        }
        objects.sort();
        Ok(objects)
    }

    /// Feeds every planned object into the scan.
    pub async fn scan(&self, scan: &mut Scan<'_, '_>) -> Result<(), SourceError> {
        let objects = self.plan(scan.window()).await?;
        let total_bytes: u64 = objects.iter().map(|(_, size)| size).sum();
        scan.note(format!(
            "s3://{}/{}: {} objects ({total_bytes} bytes) delivered from the window start to {} s after its end",
            self.location.bucket,
            self.location.prefix,
            objects.len(),
            self.options.delivery_slack.as_secs()
        ));
        let keys: Vec<&str> = objects.iter().map(|(key, _)| key.as_str()).collect();
        fetch_and_feed(
            &self.store,
            &self.location.bucket,
            &keys,
            0,
            self.options.parallelism,
            self.options.limits,
            scan,
        )
        .await;
        Ok(())
    }
}

/// Fetches `keys` from `bucket`, `parallelism` at a time, and feeds each object into the scan
/// in key order, marking object `i` as file `first_file + i` of the whole listing (so a scan
/// split over processes merges into the order of one read). An object that cannot be fetched
/// is counted as unreadable and the scan goes on.
pub async fn fetch_and_feed<S: ObjectStore + Sync>(
    store: &S,
    bucket: &str,
    keys: &[&str],
    first_file: usize,
    parallelism: usize,
    limits: Limits,
    scan: &mut Scan<'_, '_>,
) {
    let width = parallelism.max(1);
    for (n, chunk) in keys.chunks(width).enumerate() {
        let fetches = chunk
            .iter()
            .map(|key| Box::pin(store.get(bucket, key)))
            .collect();
        let bodies = JoinAll::new(fetches).await;
        for (i, (key, body)) in chunk.iter().zip(bodies).enumerate() {
            scan.begin_file(first_file + n * width + i);
            match body {
                Ok(bytes) => feed_object(key, &bytes, limits, scan),
                Err(_) => scan.skip(SkipReason::UnreadableFile),
            }
        }
    }
}

/// Gunzips (when the key says so) and feeds one object's records; an object that inflates past
/// `limits.max_object_bytes` is refused whole and counted, and the scan goes on.
pub fn feed_object(key: &str, bytes: &[u8], limits: Limits, scan: &mut Scan<'_, '_>) {
    scan.file_read();
    if !key.to_ascii_lowercase().ends_with(".gz") {
        // Already in memory: nothing to inflate, only the cap to apply.
        if bytes.len() as u64 > limits.max_object_bytes {
            scan.skip(SkipReason::ObjectTooLarge);
        } else {
            files::feed_bytes(bytes, limits.max_record_bytes, scan);
        }
        return;
    }
    let mut plain = Vec::new();
    match files::inflate(bytes, true, limits.max_object_bytes, &mut plain) {
        Inflated::Whole => {}
        // Records decompressed before the error are kept, as for local files.
        Inflated::Broken => scan.skip(SkipReason::CorruptGzip),
        Inflated::TooLarge => {
            scan.skip(SkipReason::ObjectTooLarge);
            return;
        }
    }
    files::feed_bytes(&plain, limits.max_record_bytes, scan);
}

fn last_segment(folder: &str) -> &str {
    folder
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// A day as its delivery folder names it: `YYYY/MM/DD` (also the Athena table's `day`).
pub fn day_folder(day: Date) -> String {
    format!(
        "{:04}/{:02}/{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// The delivery day folders that can hold records of `window`: from the day of its start (a
/// record is delivered after it happens) to the day of its end plus `slack_seconds`. The S3
/// source lists these folders, and an Athena query over a projected table names the same days
/// (`athena::Partitions`). `None` if the window is outside the calendar.
pub fn delivery_days(window: Window, slack_seconds: i64) -> Option<(Date, Date)> {
    let day = |seconds: i64| {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(OffsetDateTime::date)
    };
    Some((
        day(window.start)?,
        day(window.end.saturating_add(slack_seconds.max(0)))?,
    ))
}

/// Polls a batch of futures together (this crate has no async runtime dependency).
struct JoinAll<F: Future> {
    pending: Vec<Option<Pin<Box<F>>>>,
    done: Vec<Option<F::Output>>,
}

impl<F: Future> JoinAll<F> {
    fn new(futures: Vec<Pin<Box<F>>>) -> JoinAll<F> {
        let done = futures.iter().map(|_| None).collect();
        JoinAll {
            pending: futures.into_iter().map(Some).collect(),
            done,
        }
    }
}

// The futures are boxed and outputs are only moved out, never pinned: the struct is Unpin
// whatever `F::Output` is.
impl<F: Future> Unpin for JoinAll<F> {}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut all_done = true;
        for (slot, out) in this.pending.iter_mut().zip(this.done.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(context) {
                    Poll::Ready(value) => {
                        *out = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            Poll::Ready(this.done.iter_mut().filter_map(Option::take).collect())
        } else {
            Poll::Pending
        }
    }
}

/// Runs a runbook over a trail in S3.
pub async fn run_s3<S: ObjectStore + Sync>(
    runbook: &Runbook,
    params: &Params,
    source: &S3Source<S>,
) -> Result<RunbookResult, RunError> {
    let compiled = runbook.compile(params)?;
    let mut scan = compiled.scan();
    source.scan(&mut scan).await?;
    Ok(scan.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            S3Location::parse("s3://trail-bucket"),
            Some(S3Location {
                bucket: "trail-bucket".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            S3Location::parse("s3://b/org/logs").map(|location| location.prefix),
            Some("org/logs/".into())
        );
        assert_eq!(
            S3Location::parse("s3://b/p/AWSLogs/123/CloudTrail/").map(|location| location.prefix),
            Some("p/".into())
        );
        assert_eq!(S3Location::parse("https://b/p"), None);
        assert_eq!(S3Location::parse("s3:///p"), None);
    }

    #[test]
    fn keys_parse_for_standard_and_organization_trails() {
        let key = parse_key(
            "p/AWSLogs/333333333333/CloudTrail/us-east-1/2025/03/06/333333333333_CloudTrail_us-east-1_20250306T0320Z_ZgdYr0lP8M9fWEH8.json.gz",
        )
        .expect("standard key");
        assert_eq!(
            (key.org, key.account.as_str(), key.region.as_str()),
            (None, "333333333333", "us-east-1")
        );
        assert_eq!(
            key.delivered,
            crate::timefmt::parse_event_time("2025-03-06T03:20:00Z")
        );
        let key = parse_key(
            "AWSLogs/o-1234abcde/222222222222/CloudTrail/eu-west-1/2025/03/06/222222222222_CloudTrail_eu-west-1_20250306T0230Z_QF6qcgyiaVnSueXa.json.gz",
        )
        .expect("org key");
        assert_eq!(key.org.as_deref(), Some("o-1234abcde"));
        assert_eq!(key.account, "222222222222");
        for skipped in [
            "AWSLogs/1/CloudTrail-Digest/us-east-1/2025/03/06/1_CloudTrail-Digest_us-east-1_t_us-east-1_20250306T0230Z.json.gz",
            "AWSLogs/1/CloudTrail-Insight/us-east-1/2025/03/06/x.json.gz",
            "AWSLogs/1/CloudTrail/us-east-1/2025/03/06/readme.txt",
            "AWSLogs/1/CloudTrail/us-east-1/2025/13/06/x.json.gz",
        ] {
            assert_eq!(parse_key(skipped), None, "{skipped}");
        }
    }
}
