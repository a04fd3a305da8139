//! The result of a run and the bounded aggregators that build it.
//!
//! Memory is bounded by the output shape, not by the input: rows keep at most `limit` entries
//! (a heap evicts the rest), and every grouping keeps at most [`MAX_GROUPS`] keys; past that the
//! section says it is truncated instead of growing.

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::filter::FieldPath;
use crate::params::Window;
use crate::spec::{OutputSpec, RowOrder, RunbookSpec, Severity};
use crate::timefmt;

/// Most distinct keys any grouping keeps before it reports truncation.
pub const MAX_GROUPS: usize = 100_000;
/// Most distinct values counted per group (`count_by.distinct`).
pub const MAX_DISTINCT_PER_GROUP: usize = 10_000;

/// Why a record (or a file's remainder) was not evaluated.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Not valid JSON.
    InvalidJson,
    /// Valid JSON but not an object.
    NonObjectRecord,
    /// Larger than the source's record size limit.
    RecordTooLarge,
    /// Cut off by the end of the file (truncated upload or gzip stream).
    TruncatedRecord,
    /// The gzip stream is corrupt or truncated (counted once per file).
    CorruptGzip,
    /// The file could not be read (counted once per file).
    UnreadableFile,
    /// The record has no readable `eventTime`.
    MissingEventTime,
    /// A LookupEvents event without a parsable `CloudTrailEvent`.
    BadLookupEvent,
    /// The JSON document has no records in a known layout.
    UnknownLayout,
    /// The file or object decompresses past the size cap (a gzip bomb); refused whole
    /// (counted once per file).
    ObjectTooLarge,
}

impl SkipReason {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::InvalidJson => "invalid_json",
            SkipReason::NonObjectRecord => "non_object_record",
            SkipReason::RecordTooLarge => "record_too_large",
            SkipReason::TruncatedRecord => "truncated_record",
            SkipReason::CorruptGzip => "corrupt_gzip",
            SkipReason::UnreadableFile => "unreadable_file",
            SkipReason::MissingEventTime => "missing_event_time",
            SkipReason::BadLookupEvent => "bad_lookup_event",
            SkipReason::UnknownLayout => "unknown_layout",
            SkipReason::ObjectTooLarge => "object_too_large",
        }
    }
}

/// How much of the source the result is based on.
#[derive(Debug, Clone, Serialize, PartialEq, serde::Deserialize)]
pub struct Coverage {
    /// Records evaluated (valid objects with a time), inside or outside the window.
    pub events_scanned: u64,
    /// Records inside the window that matched the filter.
    pub events_matched: u64,
    /// Records skipped because their time is outside the window.
    pub events_outside_window: u64,
    /// Files (or LookupEvents pages) read.
    pub files_read: u64,
    /// Records and files skipped, all reasons together.
    pub records_skipped: u64,
    /// Skips counted by reason (`invalid_json`, `truncated_record`, ...).
    pub skip_reasons: BTreeMap<String, u64>,
    /// The searched window.
    pub window: Window,
    /// Whether a budget (pages, deadline, group limit) cut the scan or the output.
    pub truncated: bool,
    /// Why it was truncated, and other facts a reader needs to trust the result.
    pub notes: Vec<String>,
}

impl Coverage {
    /// Why a scan failed outright, when it read no file or page at all: the last note that is
    /// not a per-call LookupEvents detail. A scan that read nothing must not be reported as
    /// "no findings", so callers turn this into an error.
    pub fn nothing_read(&self) -> Option<String> {
        if self.files_read > 0 {
            return None;
        }
        Some(
            self.notes
                .iter()
                .rev()
                .find(|note| !note.starts_with("LookupEvents:"))
                .cloned()
                .unwrap_or_else(|| "no LookupEvents call succeeded".into()),
        )
    }
}

/// A value and how often it was seen.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, serde::Deserialize)]
pub struct ValueCount {
    /// The value (`""` when the field is missing).
    pub value: String,
    /// How many matching records had it.
    pub count: u64,
}

/// The `rows` section.
#[derive(Debug, Clone, Serialize, PartialEq, serde::Deserialize)]
pub struct RowsResult {
    /// Column field paths.
    pub columns: Vec<String>,
    /// The kept rows, in time order (newest first if the runbook asks).
    pub rows: Vec<Vec<String>>,
    /// How many rows matched (more than `rows.len()` when the limit cut them).
    pub matched: u64,
}

/// One group of the `count_by` section.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, serde::Deserialize)]
pub struct GroupCount {
    /// The values of the key fields.
    pub key: Vec<String>,
    /// Matching records in the group.
    pub count: u64,
    /// Distinct values of the `distinct` field in the group, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u64>,
}

/// The `count_by` section.
#[derive(Debug, Clone, Serialize, PartialEq, serde::Deserialize)]
pub struct CountsResult {
    /// Key fields.
    pub fields: Vec<String>,
    /// The field whose distinct values are counted per group.
    pub distinct_field: Option<String>,
    /// Groups passing the thresholds, largest first, at most `limit`.
    pub groups: Vec<GroupCount>,
    /// Groups passing the thresholds before the limit.
    pub groups_total: usize,
    /// Whether the section has thresholds (then a finding is a group, not a record).
    pub thresholded: bool,
    /// Whether the group cap was reached.
    pub truncated: bool,
}

/// The `top` section.
#[derive(Debug, Clone, Serialize, PartialEq, serde::Deserialize)]
pub struct TopResult {
    /// The ranked field.
    pub field: String,
    /// The most frequent values, most frequent first.
    pub values: Vec<ValueCount>,
}

/// One field of the `distinct` section.
#[derive(Debug, Clone, Serialize, PartialEq, serde::Deserialize)]
pub struct DistinctResult {
    /// The field.
    pub field: String,
    /// Its distinct values with counts, sorted by value.
    pub values: Vec<ValueCount>,
    /// Whether the cap was reached.
    pub truncated: bool,
}

/// One key of the `first_last_seen` section.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, serde::Deserialize)]
pub struct FirstLast {
    /// The key values.
    pub key: Vec<String>,
    /// Earliest `eventTime`.
    pub first: String,
    /// Latest `eventTime`.
    pub last: String,
    /// Matching records.
    pub count: u64,
}

/// The `first_last_seen` section.
#[derive(Debug, Clone, Serialize, PartialEq, serde::Deserialize)]
pub struct FirstLastResult {
    /// Key fields.
    pub fields: Vec<String>,
    /// Keys sorted by first appearance.
    pub entries: Vec<FirstLast>,
    /// Whether the cap was reached.
    pub truncated: bool,
}

/// What a runbook found, with the coverage that qualifies it.
#[derive(Debug, Clone, Serialize, PartialEq, serde::Deserialize)]
pub struct RunbookResult {
    /// Runbook id.
    pub runbook: String,
    /// Runbook title.
    pub title: String,
    /// Runbook severity.
    pub severity: Severity,
    /// ATT&CK references.
    pub attack: Vec<String>,
    /// Rows, if the runbook asks for them.
    pub rows: Option<RowsResult>,
    /// Counts, if asked.
    pub counts: Option<CountsResult>,
    /// Top values, if asked.
    pub top: Option<TopResult>,
    /// Distinct values, one entry per asked field.
    pub distinct: Vec<DistinctResult>,
    /// First/last seen, if asked.
    pub first_last_seen: Option<FirstLastResult>,
    /// What to do next.
    pub next_steps: Vec<String>,
    /// How much was scanned.
    pub coverage: Coverage,
}

/// A result's output sections, however they were computed: by the engine's aggregators or
/// read from SQL rows (`crate::sql_result`).
#[derive(Debug, Default)]
pub(crate) struct Sections {
    pub rows: Option<RowsResult>,
    pub counts: Option<CountsResult>,
    pub top: Option<TopResult>,
    pub distinct: Vec<DistinctResult>,
    pub first_last_seen: Option<FirstLastResult>,
}

impl RunbookResult {
    /// The one constructor of a result, for the engine and the SQL assembly alike: what
    /// identifies the runbook and what to do next come from its spec, so the two cannot report
    /// a run differently.
    pub(crate) fn new(spec: &RunbookSpec, sections: Sections, coverage: Coverage) -> Self {
        let Sections {
            rows,
            counts,
            top,
            distinct,
            first_last_seen,
        } = sections;
        RunbookResult {
            runbook: spec.id.clone(),
            title: spec.title.clone(),
            severity: spec.severity,
            attack: spec.attack.clone(),
            rows,
            counts,
            top,
            distinct,
            first_last_seen,
            next_steps: spec.next_steps.clone(),
            coverage,
        }
    }

    /// Whether the runbook found something: a group over the threshold for thresholded
    /// runbooks, otherwise any matching record.
    pub fn has_findings(&self) -> bool {
        match &self.counts {
            Some(counts) if counts.thresholded => !counts.groups.is_empty(),
            _ => self.coverage.events_matched > 0,
        }
    }
}

/// Builds the output sections from matching records.
#[derive(Debug)]
pub(crate) struct Aggregator {
    rows: Option<RowsAgg>,
    counts: Option<CountsAgg>,
    top: Option<(FieldPath, usize, Tally)>,
    distinct: Vec<(FieldPath, Tally)>,
    first_last: Option<FirstLastAgg>,
    seq: u64,
}

/// [`Aggregator`]'s state as data: what one part of a split scan hands to the merge.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub(crate) struct AggregatorState {
    rows: Option<RowsState>,
    counts: Option<CountsState>,
    top: Option<TallyState>,
    distinct: Vec<TallyState>,
    first_last: Option<FirstLastState>,
}

/// Kept rows as (sort time, arrival order, values), and the rows matched.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct RowsState {
    kept: Vec<(i64, u64, Vec<String>)>,
    matched: u64,
}

/// Groups as (key, count, distinct values seen).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct CountsState {
    groups: Vec<(Vec<String>, u64, Vec<String>)>,
    truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct TallyState {
    counts: Vec<(String, u64)>,
    truncated: bool,
}

/// Keys as (key, first, last, count).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct FirstLastState {
    keys: Vec<(Vec<String>, i64, i64, u64)>,
    truncated: bool,
}

/// Key fields, key -> (first, last, count), and whether the cap was hit.
type FirstLastAgg = (Vec<FieldPath>, HashMap<Vec<String>, (i64, i64, u64)>, bool);

#[derive(Debug)]
struct RowsAgg {
    columns: Vec<FieldPath>,
    limit: usize,
    order: RowOrder,
    // Max-heap on the sort key: the top is the row to evict first.
    heap: BinaryHeap<(i64, u64, Vec<String>)>,
    matched: u64,
}

#[derive(Debug)]
struct CountsAgg {
    fields: Vec<FieldPath>,
    distinct: Option<FieldPath>,
    min_count: Option<u64>,
    min_distinct: Option<u64>,
    limit: usize,
    groups: HashMap<Vec<String>, (u64, HashSet<String>)>,
    truncated: bool,
}

#[derive(Debug, Default)]
struct Tally {
    counts: HashMap<String, u64>,
    truncated: bool,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.truncated |= other.truncated;
        for (value, count) in other.counts {
            if let Some(existing) = self.counts.get_mut(&value) {
                *existing += count;
            } else if self.counts.len() < MAX_GROUPS {
                self.counts.insert(value, count);
            } else {
                self.truncated = true;
            }
        }
    }

    fn add(&mut self, value: String) {
        if let Some(count) = self.counts.get_mut(&value) {
            *count += 1;
        } else if self.counts.len() < MAX_GROUPS {
            self.counts.insert(value, 1);
        } else {
            self.truncated = true;
        }
    }
}

fn paths(fields: &[String]) -> Vec<FieldPath> {
    // Load-time validation guarantees each path parses; a bad one is dropped rather than panicking.
    fields
        .iter()
        .filter_map(|field| FieldPath::parse(field))
        .collect()
}

fn key(fields: &[FieldPath], record: &Value) -> Vec<String> {
    fields
        .iter()
        .map(|field| field.text(record).unwrap_or_default())
        .collect()
}

impl Aggregator {
    pub(crate) fn new(spec: &OutputSpec) -> Aggregator {
        Aggregator {
            rows: spec.rows.as_ref().map(|rows| RowsAgg {
                columns: paths(&rows.columns),
                limit: rows.limit,
                order: rows.order,
                heap: BinaryHeap::new(),
                matched: 0,
            }),
            counts: spec.count_by.as_ref().map(|count_by| CountsAgg {
                fields: paths(&count_by.fields),
                distinct: count_by.distinct.as_deref().and_then(FieldPath::parse),
                min_count: count_by.min_count,
                min_distinct: count_by.min_distinct,
                limit: count_by.limit,
                groups: HashMap::new(),
                truncated: false,
            }),
            top: spec.top.as_ref().and_then(|top| {
                FieldPath::parse(&top.field).map(|field| (field, top.n, Tally::default()))
            }),
            distinct: paths(&spec.distinct)
                .into_iter()
                .map(|field| (field, Tally::default()))
                .collect(),
            first_last: spec
                .first_last_seen
                .as_ref()
                .map(|fields| (paths(fields), HashMap::new(), false)),
            seq: 0,
        }
    }

    /// Adds a matching record whose `eventTime` is `time` (Unix seconds).
    pub(crate) fn add(&mut self, record: &Value, time: i64) {
        self.seq += 1;
        if let Some(rows) = &mut self.rows {
            rows.matched += 1;
            let sort_time = match rows.order {
                RowOrder::OldestFirst => time,
                RowOrder::NewestFirst => -time,
            };
            let entry_key = (sort_time, self.seq);
            // Only build the row (allocations) if it would be kept.
            let keep = rows.heap.len() < rows.limit
                || rows
                    .heap
                    .peek()
                    .is_some_and(|top| (top.0, top.1) > entry_key);
            if keep {
                let mut values = Vec::with_capacity(rows.columns.len());
                for column in &rows.columns {
                    values.push(column.text(record).unwrap_or_default());
                }
                rows.heap.push((entry_key.0, entry_key.1, values));
                if rows.heap.len() > rows.limit {
                    rows.heap.pop();
                }
            }
        }
        if let Some(counts) = &mut self.counts {
            let group_key = key(&counts.fields, record);
            let distinct_value = counts
                .distinct
                .as_ref()
                .map(|field| field.text(record).unwrap_or_default());
            let len = counts.groups.len();
            let entry = match counts.groups.get_mut(&group_key) {
                Some(entry) => Some(entry),
                None if len < MAX_GROUPS => Some(counts.groups.entry(group_key).or_default()),
                None => {
                    counts.truncated = true;
                    None
                }
            };
            if let Some((count, seen)) = entry {
                *count += 1;
                if let Some(value) = distinct_value
                    && seen.len() < MAX_DISTINCT_PER_GROUP
                {
                    seen.insert(value);
                }
            }
        }
        if let Some((field, _, tally)) = &mut self.top {
            tally.add(field.text(record).unwrap_or_default());
        }
        for (field, tally) in &mut self.distinct {
            if let Some(value) = field.text(record) {
                tally.add(value);
            }
        }
        if let Some((fields, seen, truncated)) = &mut self.first_last {
            let entry_key = key(fields, record);
            let len = seen.len();
            match seen.get_mut(&entry_key) {
                Some((first, last, count)) => {
                    *first = (*first).min(time);
                    *last = (*last).max(time);
                    *count += 1;
                }
                None if len < MAX_GROUPS => {
                    seen.insert(entry_key, (time, time, 1));
                }
                None => *truncated = true,
            }
        }
    }

    /// Orders rows of file `index` after those of earlier files (ties on time are broken by
    /// arrival order, which parallel scans must reproduce across threads).
    pub(crate) fn begin_file(&mut self, index: usize) {
        self.seq = (index as u64) << 32;
    }

    /// Adds the state of `other`, built from the same spec over other records.
    pub(crate) fn merge(&mut self, other: Aggregator) {
        if let (Some(rows), Some(other)) = (&mut self.rows, other.rows) {
            rows.matched += other.matched;
            for entry in other.heap {
                rows.heap.push(entry);
                if rows.heap.len() > rows.limit {
                    rows.heap.pop();
                }
            }
        }
        if let (Some(counts), Some(other)) = (&mut self.counts, other.counts) {
            counts.truncated |= other.truncated;
            for (group_key, (count, seen)) in other.groups {
                let len = counts.groups.len();
                let entry = match counts.groups.get_mut(&group_key) {
                    Some(entry) => entry,
                    None if len < MAX_GROUPS => counts.groups.entry(group_key).or_default(),
                    None => {
                        counts.truncated = true;
                        continue;
                    }
                };
                entry.0 += count;
                for value in seen {
                    if entry.1.len() >= MAX_DISTINCT_PER_GROUP {
                        break;
                    }
                    entry.1.insert(value);
                }
            }
        }
        if let (Some((_, _, tally)), Some((_, _, other))) = (&mut self.top, other.top) {
            tally.merge(other);
        }
        for ((_, tally), (_, other)) in self.distinct.iter_mut().zip(other.distinct) {
            tally.merge(other);
        }
        if let (Some((_, seen, truncated)), Some((_, other, other_truncated))) =
            (&mut self.first_last, other.first_last)
        {
            *truncated |= other_truncated;
            for (entry_key, (first, last, count)) in other {
                let len = seen.len();
                match seen.get_mut(&entry_key) {
                    Some(entry) => {
                        entry.0 = entry.0.min(first);
                        entry.1 = entry.1.max(last);
                        entry.2 += count;
                    }
                    None if len < MAX_GROUPS => {
                        seen.insert(entry_key, (first, last, count));
                    }
                    None => *truncated = true,
                }
            }
        }
    }

    /// The aggregation so far as data (for a scan split across processes; see
    /// `engine::ScanState`).
    pub(crate) fn state(self) -> AggregatorState {
        let tally = |tally: Tally| TallyState {
            counts: tally.counts.into_iter().collect(),
            truncated: tally.truncated,
        };
        AggregatorState {
            rows: self.rows.map(|rows| RowsState {
                kept: rows.heap.into_vec(),
                matched: rows.matched,
            }),
            counts: self.counts.map(|counts| CountsState {
                groups: counts
                    .groups
                    .into_iter()
                    .map(|(key, (count, seen))| (key, count, seen.into_iter().collect()))
                    .collect(),
                truncated: counts.truncated,
            }),
            top: self.top.map(|(_, _, top)| tally(top)),
            distinct: self.distinct.into_iter().map(|(_, t)| tally(t)).collect(),
            first_last: self.first_last.map(|(_, seen, truncated)| FirstLastState {
                keys: seen
                    .into_iter()
                    .map(|(key, (first, last, count))| (key, first, last, count))
                    .collect(),
                truncated,
            }),
        }
    }

    /// An aggregator of `spec` holding `state`, to be merged into another of the same spec.
    /// `None` if the state's sections are not the spec's (a state from another runbook).
    pub(crate) fn from_state(spec: &OutputSpec, state: AggregatorState) -> Option<Aggregator> {
        let mut aggregator = Aggregator::new(spec);
        let tally = |state: TallyState| {
            (state.counts.len() <= MAX_GROUPS).then(|| Tally {
                counts: state.counts.into_iter().collect(),
                truncated: state.truncated,
            })
        };
        match (&mut aggregator.rows, state.rows) {
            (Some(rows), Some(state)) if state.kept.len() <= rows.limit => {
                rows.heap = state.kept.into();
                rows.matched = state.matched;
            }
            (None, None) => {}
            _ => return None,
        }
        match (&mut aggregator.counts, state.counts) {
            (Some(counts), Some(state))
                if state.groups.len() <= MAX_GROUPS
                    && state.groups.iter().all(|(key, _, seen)| {
                        key.len() == counts.fields.len() && seen.len() <= MAX_DISTINCT_PER_GROUP
                    }) =>
            {
                counts.groups = state
                    .groups
                    .into_iter()
                    .map(|(key, count, seen)| (key, (count, seen.into_iter().collect())))
                    .collect();
                counts.truncated = state.truncated;
            }
            (None, None) => {}
            _ => return None,
        }
        match (&mut aggregator.top, state.top) {
            (Some((_, _, top)), Some(state)) => *top = tally(state)?,
            (None, None) => {}
            _ => return None,
        }
        if aggregator.distinct.len() != state.distinct.len() {
            return None;
        }
        for ((_, distinct), state) in aggregator.distinct.iter_mut().zip(state.distinct) {
            *distinct = tally(state)?;
        }
        match (&mut aggregator.first_last, state.first_last) {
            (Some((fields, seen, truncated)), Some(state))
                if state.keys.len() <= MAX_GROUPS
                    && state.keys.iter().all(|(key, ..)| key.len() == fields.len()) =>
            {
                *seen = state
                    .keys
                    .into_iter()
                    .map(|(key, first, last, count)| (key, (first, last, count)))
                    .collect();
                *truncated = state.truncated;
            }
            (None, None) => {}
            _ => return None,
        }
        Some(aggregator)
    }

    /// Whether any grouping hit its cap.
    pub(crate) fn truncated(&self) -> bool {
        self.counts.as_ref().is_some_and(|counts| counts.truncated)
            || self
                .top
                .as_ref()
                .is_some_and(|(_, _, tally)| tally.truncated)
            || self.distinct.iter().any(|(_, tally)| tally.truncated)
            || self
                .first_last
                .as_ref()
                .is_some_and(|(_, _, truncated)| *truncated)
    }

    /// Produces the sections.
    pub(crate) fn finish(self) -> Sections {
        let rows = self.rows.map(|rows| {
            let mut kept = rows.heap.into_vec();
            kept.sort_by_key(|entry| (entry.0, entry.1));
            RowsResult {
                columns: rows
                    .columns
                    .iter()
                    .map(|column| column.as_str().to_owned())
                    .collect(),
                rows: kept.into_iter().map(|(_, _, values)| values).collect(),
                matched: rows.matched,
            }
        });
        let counts = self.counts.map(|counts| {
            let mut groups: Vec<GroupCount> = counts
                .groups
                .into_iter()
                .map(|(key, (count, seen))| GroupCount {
                    key,
                    count,
                    distinct: counts.distinct.as_ref().map(|_| seen.len() as u64),
                })
                .filter(|group| counts.min_count.is_none_or(|min| group.count >= min))
                .filter(|group| {
                    counts
                        .min_distinct
                        .is_none_or(|min| group.distinct.unwrap_or(0) >= min)
                })
                .collect();
            groups.sort_by(|left, right| {
                right
                    .count
                    .cmp(&left.count)
                    .then_with(|| left.key.cmp(&right.key))
            });
            let groups_total = groups.len();
            groups.truncate(counts.limit);
            CountsResult {
                fields: counts
                    .fields
                    .iter()
                    .map(|field| field.as_str().to_owned())
                    .collect(),
                distinct_field: counts.distinct.map(|field| field.as_str().to_owned()),
                groups,
                groups_total,
                thresholded: counts.min_count.is_some() || counts.min_distinct.is_some(),
                truncated: counts.truncated,
            }
        });
        let top = self.top.map(|(field, n, tally)| {
            let mut values = ranked(tally);
            values.truncate(n);
            TopResult {
                field: field.as_str().to_owned(),
                values,
            }
        });
        let distinct = self
            .distinct
            .into_iter()
            .map(|(field, tally)| {
                let truncated = tally.truncated;
                let mut values: Vec<ValueCount> = tally
                    .counts
                    .into_iter()
                    .map(|(value, count)| ValueCount { value, count })
                    .collect();
                values.sort_by(|left, right| left.value.cmp(&right.value));
                DistinctResult {
                    field: field.as_str().to_owned(),
                    values,
                    truncated,
                }
            })
            .collect();
        let first_last_seen = self.first_last.map(|(fields, seen, truncated)| {
            let mut entries: Vec<(i64, FirstLast)> = seen
                .into_iter()
                .map(|(key, (first, last, count))| {
                    (
                        first,
                        FirstLast {
                            key,
                            first: timefmt::format_unix(first),
                            last: timefmt::format_unix(last),
                            count,
                        },
                    )
                })
                .collect();
            entries.sort_by(|left, right| {
                left.0
                    .cmp(&right.0)
                    .then_with(|| left.1.key.cmp(&right.1.key))
            });
            FirstLastResult {
                fields: fields
                    .iter()
                    .map(|field| field.as_str().to_owned())
                    .collect(),
                entries: entries.into_iter().map(|(_, entry)| entry).collect(),
                truncated,
            }
        });
        Sections {
            rows,
            counts,
            top,
            distinct,
            first_last_seen,
        }
    }
}

fn ranked(tally: Tally) -> Vec<ValueCount> {
    let mut values: Vec<ValueCount> = tally
        .counts
        .into_iter()
        .map(|(value, count)| ValueCount { value, count })
        .collect();
    values.sort_by(|left, right| {
        right
            .count
            .cmp(&left.count)
            .then_with(|| left.value.cmp(&right.value))
    });
    values
}
