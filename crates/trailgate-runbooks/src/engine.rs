//! The engine: a runbook bound to parameter values ([`Compiled`]), the streaming evaluation of
//! records ([`Scan`]), and [`run`].
//!
//! Sources push records into a [`Scan`] one at a time; the scan keeps only the output shape's
//! state, so memory does not grow with the input. Raw records go through
//! [`Scan::record_bytes`], which uses the literal prefilter (`crate::prefilter`) to avoid
//! building a `Value` for records that cannot match. Scans over disjoint inputs (one per thread)
//! combine with [`Scan::merge`].

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{ParamError, RunError};
use crate::filter::{self, Bound, Matcher};
use crate::output::{Aggregator, AggregatorState, Coverage, RunbookResult, SkipReason};
use crate::params::{self, Params, Window};
use crate::prefilter::{self, Prefilter, Shape};
use crate::runbook::Runbook;
use crate::source::Source;
use crate::spec::LookupAttribute;
use crate::template;
use crate::timefmt;

/// A runbook with its parameters bound: ready to evaluate records.
#[derive(Debug, Clone)]
pub struct Compiled<'r> {
    runbook: &'r Runbook,
    matcher: Matcher,
    bound: Bound,
    window: Window,
    lookup: Option<LookupPlan>,
    prefilter: Option<Prefilter>,
}

/// The server-side part of a LookupEvents scan: one attribute, one or more values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupPlan {
    /// The attribute.
    pub attribute: LookupAttribute,
    /// The values, parameters substituted; each is a separate paged query.
    pub values: Vec<String>,
}

impl Runbook {
    /// Binds parameters and the window, compiling the filter.
    pub fn compile(&self, params: &Params) -> Result<Compiled<'_>, ParamError> {
        let spec = self.spec();
        let bound: Bound = params::bind(spec, params)?;
        let window = params::resolve_window(spec, params, &bound)?;
        let matcher = filter::compile(&spec.filter, &bound, self.regexes())?;
        let lookup = spec.lookup.as_ref().map(|lookup| LookupPlan {
            attribute: lookup.attribute,
            values: lookup
                .values
                .iter()
                .flat_map(|value| {
                    match template::sole_reference(value).and_then(|name| bound.get(name)) {
                        Some(list) => list.clone(),
                        None => vec![template::render(value, &bound, template::no_escape)],
                    }
                })
                .filter(|value| !value.is_empty())
                .collect(),
        });
        let prefilter = Prefilter::new(&matcher);
        Ok(Compiled {
            runbook: self,
            matcher,
            bound,
            window,
            lookup,
            prefilter,
        })
    }
}

impl<'r> Compiled<'r> {
    /// The runbook.
    pub fn runbook(&self) -> &'r Runbook {
        self.runbook
    }

    /// The window searched.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The LookupEvents plan, if the runbook has a `lookup` hint.
    pub fn lookup(&self) -> Option<&LookupPlan> {
        self.lookup.as_ref()
    }

    /// The parameter values bound for this run (lists expanded), for back-ends that compile the
    /// filter themselves, such as [`crate::sql`].
    pub fn bound(&self) -> &Bound {
        &self.bound
    }

    /// Whether one record matches the filter (ignoring the window).
    pub fn matches(&self, record: &Value) -> bool {
        self.matcher.matches(record)
    }

    /// The same runbook without the literal prefilter, to prove the prefilter changes nothing.
    #[cfg(test)]
    pub(crate) fn without_prefilter(mut self) -> Compiled<'r> {
        self.prefilter = None;
        self
    }

    /// Starts a streaming evaluation.
    pub fn scan(&self) -> Scan<'_, 'r> {
        Scan {
            compiled: self,
            aggregator: Aggregator::new(&self.runbook.spec().output),
            counts: Counts::default(),
            scratch: Vec::new(),
            kept: None,
        }
    }
}

/// What a scan counts besides its output sections; summed when scans merge.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Counts {
    events_scanned: u64,
    events_matched: u64,
    events_outside_window: u64,
    files_read: u64,
    skips: BTreeMap<SkipReason, u64>,
    truncated: bool,
    notes: Vec<String>,
    /// The newest `eventTime` of any record scanned, matched or not, in the window or not: how
    /// far the input has been delivered (the session audit's watermark over a trail bucket).
    #[serde(default)]
    newest_event: Option<i64>,
}

impl Counts {
    fn saw(&mut self, time: i64) {
        self.events_scanned += 1;
        self.newest_event = self.newest_event.max(Some(time));
    }

    fn merge(&mut self, other: Counts) {
        self.newest_event = self.newest_event.max(other.newest_event);
        self.events_scanned += other.events_scanned;
        self.events_matched += other.events_matched;
        self.events_outside_window += other.events_outside_window;
        self.files_read += other.files_read;
        for (reason, count) in other.skips {
            *self.skips.entry(reason).or_insert(0) += count;
        }
        self.truncated |= other.truncated;
        self.notes.extend(other.notes);
    }
}

/// The counts and output state of one part of a scan, as data (JSON through serde): a scan
/// split over processes (the Distributed Map scanner's batches) merges its parts with
/// [`Scan::absorb`], the engine's own merge.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScanState {
    runbook: String,
    /// The window `[start, end)` and the bound parameters: a part of another binding of the
    /// same runbook is refused too.
    window: (i64, i64),
    bound: Bound,
    counts: Counts,
    aggregator: AggregatorState,
}

/// Why a part's state cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The state is another runbook's.
    #[error("the partial result is runbook `{0}`'s")]
    OtherRunbook(String),
    /// The state is of this runbook with another window or other parameters.
    #[error("the partial result has another window or other parameter values")]
    OtherBinding,
    /// The state's sections or sizes are not this runbook's.
    #[error("the partial result does not have this runbook's output sections")]
    Shape,
}

/// A streaming evaluation: feed records, then [`Scan::finish`].
#[derive(Debug)]
pub struct Scan<'c, 'r> {
    compiled: &'c Compiled<'r>,
    aggregator: Aggregator,
    counts: Counts,
    /// The prefilter's working copy of a record, reused.
    scratch: Vec<u8>,
    /// The matching records themselves, when the caller needs them ([`Scan::keep_matches`]).
    kept: Option<Kept>,
}

/// Matching records kept by a scan, up to a limit.
#[derive(Debug)]
struct Kept {
    limit: usize,
    records: Vec<Value>,
}

impl<'c, 'r> Scan<'c, 'r> {
    /// Also keeps the matching records themselves (in the window), at most `limit`: past it the
    /// result is marked truncated and the rest are counted but not kept. For a caller that
    /// analyses the records further (the session audit over a trail bucket); nothing is kept
    /// otherwise.
    pub fn keep_matches(mut self, limit: usize) -> Scan<'c, 'r> {
        self.kept = Some(Kept {
            limit,
            records: Vec::new(),
        });
        self
    }

    /// The matching records kept so far ([`Scan::keep_matches`]), taken out of the scan.
    pub fn take_matches(&mut self) -> Vec<Value> {
        self.kept
            .as_mut()
            .map(|kept| std::mem::take(&mut kept.records))
            .unwrap_or_default()
    }

    /// The newest `eventTime` among the records scanned so far (Unix seconds), whether they
    /// matched or not.
    pub fn newest_event(&self) -> Option<i64> {
        self.counts.newest_event
    }

    /// The window, so a source can avoid reading what cannot match.
    pub fn window(&self) -> Window {
        self.compiled.window
    }

    /// The LookupEvents plan of the runbook.
    pub fn lookup(&self) -> Option<&LookupPlan> {
        self.compiled.lookup.as_ref()
    }

    /// Records evaluated so far (for progress reporting).
    pub fn events_scanned(&self) -> u64 {
        self.counts.events_scanned
    }

    /// Records matched so far.
    pub fn events_matched(&self) -> u64 {
        self.counts.events_matched
    }

    /// Files (or pages) read so far.
    pub fn files_read(&self) -> u64 {
        self.counts.files_read
    }

    /// The bound runbook this scan evaluates (so a source can start sibling scans).
    pub fn compiled(&self) -> &'c Compiled<'r> {
        self.compiled
    }

    /// Marks the start of file `index` (in the source's reading order). Scans that read files
    /// in parallel call it so kept rows with equal times keep file order after [`Scan::merge`].
    pub fn begin_file(&mut self, index: usize) {
        self.aggregator.begin_file(index);
    }

    /// Parses and evaluates one raw record (the bytes of one JSON object), counting it as
    /// skipped when it is not valid JSON or not an object.
    ///
    /// Records that cannot match the filter, by the prefilter's proof, are only validated and
    /// their time read: the coverage counts equal those of parsing everything.
    pub fn record_bytes(&mut self, bytes: &[u8]) {
        if self.ruled_out(bytes) {
            match prefilter::shape(bytes) {
                Ok(Shape::Object(time)) => self.unmatchable(time),
                Ok(Shape::NotObject) => self.skip(SkipReason::NonObjectRecord),
                Err(error) => self.skip(parse_error(&error)),
            }
            return;
        }
        self.parse_and_record(bytes);
    }

    /// [`Scan::record_bytes`] for a record the fast validator (`crate::validate`) found to be
    /// a valid object with this time.
    pub(crate) fn checked_record(&mut self, bytes: &[u8], time: Option<i64>) {
        if self.ruled_out(bytes) {
            self.unmatchable(time);
        } else {
            self.parse_and_record(bytes);
        }
    }

    /// Whether the prefilter proves the record cannot match.
    fn ruled_out(&mut self, bytes: &[u8]) -> bool {
        self.compiled
            .prefilter
            .as_ref()
            .is_some_and(|prefilter| !prefilter.may_match(bytes, &mut self.scratch))
    }

    fn parse_and_record(&mut self, bytes: &[u8]) {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(record) if record.is_object() => self.record(&record),
            Ok(_) => self.skip(SkipReason::NonObjectRecord),
            Err(error) => self.skip(parse_error(&error)),
        }
    }

    /// Counts a record the filter cannot match, as [`Scan::record`] would.
    fn unmatchable(&mut self, time: Option<i64>) {
        let Some(time) = time else {
            self.skip(SkipReason::MissingEventTime);
            return;
        };
        self.counts.saw(time);
        if !self.compiled.window.contains(time) {
            self.counts.events_outside_window += 1;
        }
    }

    /// Adds the counts and output state of `other`, a scan of the same compiled runbook over
    /// other input. Sums, groups and kept rows equal those of one scan over both inputs, except
    /// past a grouping cap, where which keys are kept depends on arrival order.
    pub fn merge(&mut self, mut other: Scan<'_, '_>) {
        let theirs = other.take_matches();
        self.counts.merge(other.counts);
        self.aggregator.merge(other.aggregator);
        let Some(kept) = &mut self.kept else { return };
        kept.records.extend(theirs);
        if kept.records.len() > kept.limit {
            kept.records.truncate(kept.limit);
            let note = format!("more than {} matching records", kept.limit);
            self.truncate(note);
        }
    }

    /// Ends this part of a split scan: its counts and output state as data, to be sent to
    /// where the parts are merged ([`Scan::absorb`]). Parts that read files should mark each
    /// with its index in the whole listing ([`Scan::begin_file`]), so rows with equal times
    /// keep the order of one sequential read.
    pub fn into_state(self) -> ScanState {
        ScanState {
            runbook: self.compiled.runbook.id().to_owned(),
            window: (self.compiled.window.start, self.compiled.window.end),
            bound: self.compiled.bound.clone(),
            counts: self.counts,
            aggregator: self.aggregator.state(),
        }
    }

    /// Merges a part's [`ScanState`] into this scan, as [`Scan::merge`] merges a scan: the
    /// result is the one of a single scan over both inputs. A state of another runbook, or
    /// whose sections are not this runbook's, is refused and changes nothing.
    pub fn absorb(&mut self, state: ScanState) -> Result<(), StateError> {
        let runbook = self.compiled.runbook;
        if state.runbook != runbook.id() {
            return Err(StateError::OtherRunbook(state.runbook));
        }
        let window = self.compiled.window;
        if state.window != (window.start, window.end) || state.bound != self.compiled.bound {
            return Err(StateError::OtherBinding);
        }
        let aggregator = Aggregator::from_state(&runbook.spec().output, state.aggregator)
            .ok_or(StateError::Shape)?;
        let part = Scan {
            compiled: self.compiled,
            aggregator,
            counts: state.counts,
            scratch: Vec::new(),
            kept: None,
        };
        self.merge(part);
        Ok(())
    }

    /// Evaluates one record.
    pub fn record(&mut self, record: &Value) {
        if !record.is_object() {
            self.skip(SkipReason::NonObjectRecord);
            return;
        }
        // Logstash exports rename `eventTime` to `@timestamp`; accept both.
        let time = record
            .get("eventTime")
            .or_else(|| record.get("@timestamp"))
            .and_then(Value::as_str)
            .and_then(timefmt::parse_event_time);
        let Some(time) = time else {
            self.skip(SkipReason::MissingEventTime);
            return;
        };
        self.counts.saw(time);
        if !self.compiled.window.contains(time) {
            self.counts.events_outside_window += 1;
            return;
        }
        if self.compiled.matcher.matches(record) {
            self.counts.events_matched += 1;
            self.aggregator.add(record, time);
            if let Some(kept) = &mut self.kept {
                if kept.records.len() < kept.limit {
                    kept.records.push(record.clone());
                } else if !self.counts.truncated {
                    self.counts.truncated = true;
                    self.counts
                        .notes
                        .push(format!("more than {} matching records", kept.limit));
                }
            }
        }
    }

    /// Counts a skipped record (or file) with its reason.
    pub fn skip(&mut self, reason: SkipReason) {
        *self.counts.skips.entry(reason).or_insert(0) += 1;
    }

    /// Counts a file (or page) read.
    pub fn file_read(&mut self) {
        self.counts.files_read += 1;
    }

    /// Marks the result as partial, with the reason.
    pub fn truncate(&mut self, note: impl Into<String>) {
        self.counts.truncated = true;
        self.counts.notes.push(note.into());
    }

    /// Adds a note for the reader.
    pub fn note(&mut self, note: impl Into<String>) {
        self.counts.notes.push(note.into());
    }

    /// Ends the scan.
    pub fn finish(self) -> RunbookResult {
        let Counts {
            events_scanned,
            events_matched,
            events_outside_window,
            files_read,
            skips,
            mut truncated,
            mut notes,
            newest_event: _,
        } = self.counts;
        if self.aggregator.truncated() {
            truncated = true;
            notes.push(format!(
                "a grouping reached its cap of {} keys",
                crate::output::MAX_GROUPS
            ));
        }
        let coverage = Coverage {
            events_scanned,
            events_matched,
            events_outside_window,
            files_read,
            records_skipped: skips.values().sum(),
            skip_reasons: skips
                .into_iter()
                .map(|(reason, count)| (reason.as_str().to_owned(), count))
                .collect(),
            window: self.compiled.window,
            truncated,
            notes,
        };
        RunbookResult::new(
            self.compiled.runbook.spec(),
            self.aggregator.finish(),
            coverage,
        )
    }
}

/// Runs a runbook over a synchronous source (files, folders, in-memory records).
pub fn run(
    runbook: &Runbook,
    params: &Params,
    source: &mut dyn Source,
) -> Result<RunbookResult, RunError> {
    let compiled = runbook.compile(params)?;
    let mut scan = compiled.scan();
    source.scan(&mut scan)?;
    Ok(scan.finish())
}

/// The skip reason of a record that does not parse: cut off, or not JSON.
fn parse_error(error: &serde_json::Error) -> SkipReason {
    if error.is_eof() {
        SkipReason::TruncatedRecord
    } else {
        SkipReason::InvalidJson
    }
}

#[cfg(test)]
mod keep_tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const ROOT: &str = include_str!("../../../runbooks/root-usage.yaml");

    fn record(at: &str, kind: &str) -> Vec<u8> {
        json!({"eventTime": at, "eventName": "ListBuckets", "userIdentity": {"type": kind}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_scan_keeps_its_matches_up_to_the_limit_and_knows_the_newest_event_it_read() {
        let runbook = Runbook::parse(ROOT, "root-usage.yaml").expect("runbook");
        let params = Params::new().window(
            datetime!(2026-12-07 10:00 UTC),
            datetime!(2026-12-07 11:00 UTC),
        );
        let compiled = runbook.compile(&params).expect("compiles");
        let mut scan = compiled.scan().keep_matches(2);
        for bytes in [
            record("2026-12-07T10:01:00Z", "Root"),
            // Ruled out by the prefilter, yet the newest record read.
            record("2026-12-07T12:30:00Z", "IAMUser"),
            record("2026-12-07T10:02:00Z", "Root"),
            // Outside the window: counted, never kept.
            record("2026-12-07T09:00:00Z", "Root"),
            record("2026-12-07T10:03:00Z", "Root"),
        ] {
            scan.record_bytes(&bytes);
        }
        assert_eq!(
            scan.newest_event(),
            timefmt::parse_event_time("2026-12-07T12:30:00Z")
        );
        let kept = scan.take_matches();
        assert_eq!(
            kept.iter()
                .map(|r| r["eventTime"].clone())
                .collect::<Vec<_>>(),
            [json!("2026-12-07T10:01:00Z"), json!("2026-12-07T10:02:00Z")]
        );
        let result = scan.finish();
        assert_eq!(result.coverage.events_matched, 3);
        assert!(result.coverage.truncated, "a third match past the limit");
        assert!(
            result
                .coverage
                .notes
                .iter()
                .any(|note| note == "more than 2 matching records")
        );

        // Without keep_matches nothing is kept and nothing is truncated.
        let mut plain = compiled.scan();
        plain.record_bytes(&record("2026-12-07T10:01:00Z", "Root"));
        assert!(plain.take_matches().is_empty());
        assert!(!plain.finish().coverage.truncated);
    }
}
