//! The runbook file format: the serde types a YAML runbook deserializes into.
//!
//! These types are the *text* of a runbook, checked only for shape (unknown fields are rejected).
//! Meaning is checked in `runbook.rs` (regexes, CIDRs, durations, parameter references), and
//! `filter.rs` turns a [`FilterSpec`] into a matcher once parameter values are known.

use serde::{Deserialize, Serialize};

/// A runbook as written in YAML.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookSpec {
    /// Stable identifier, lower-case words joined by `-`; unique in a library.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// What the runbook looks for and why it matters.
    #[serde(default)]
    pub description: String,
    /// Declared parameters; `{{ name }}` in values must name one of them.
    #[serde(default)]
    pub parameters: Vec<ParamSpec>,
    /// The time window searched.
    #[serde(default)]
    pub window: WindowSpec,
    /// Which records match.
    pub filter: FilterSpec,
    /// What the result shows.
    #[serde(default)]
    pub output: OutputSpec,
    /// How bad a match is.
    pub severity: Severity,
    /// MITRE ATT&CK technique ids, e.g. `T1562.008`.
    #[serde(default)]
    pub attack: Vec<String>,
    /// What an investigator should do next.
    #[serde(default)]
    pub next_steps: Vec<String>,
    /// How to narrow a LookupEvents scan server-side.
    #[serde(default)]
    pub lookup: Option<LookupSpec>,
    /// Where the runbook's logic comes from (Sigma rule, playbook), for attribution.
    #[serde(default)]
    pub references: Vec<String>,
}

/// A declared parameter.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Name used in `{{ name }}` references: letters, digits and `_`.
    pub name: String,
    /// Value type; values are given as text and parsed by this type.
    #[serde(rename = "type", default)]
    pub kind: ParamType,
    /// Value used when none is given.
    #[serde(default)]
    pub default: Option<DefaultValue>,
    /// Whether a value must be given (a required parameter has no default).
    #[serde(default)]
    pub required: bool,
    /// What the parameter means.
    #[serde(default)]
    pub description: String,
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Any text.
    #[default]
    String,
    /// A signed integer.
    Int,
    /// `true` or `false`.
    Bool,
    /// An ISO-8601 duration such as `P7D` or `PT4H`.
    Duration,
    /// Several strings; given as text they are comma-separated.
    List,
}

/// A parameter default as written in YAML.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum DefaultValue {
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Int(i64),
    /// Text (also durations).
    Text(String),
    /// A list of strings.
    List(Vec<String>),
}

/// The time window of a runbook.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// How far back from now the window starts: an ISO-8601 duration or a `{{ duration param }}`.
    #[serde(default = "default_lookback")]
    pub lookback: String,
}

fn default_lookback() -> String {
    "P7D".to_owned()
}

impl Default for WindowSpec {
    fn default() -> Self {
        WindowSpec {
            lookback: default_lookback(),
        }
    }
}

/// A scalar value in a condition: text, number or boolean, kept as written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text, possibly with `{{ param }}` references.
    Text(String),
}

impl Scalar {
    /// The value as text, the way it is compared against string fields.
    pub fn to_text(&self) -> String {
        match self {
            Scalar::Bool(value) => value.to_string(),
            Scalar::Int(value) => value.to_string(),
            Scalar::Float(value) => value.to_string(),
            Scalar::Text(value) => value.clone(),
        }
    }
}

/// One value or a list of values (`prefix: a` or `prefix: [a, b]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(Scalar),
    /// Several values; the condition holds if any of them does.
    Many(Vec<Scalar>),
}

impl OneOrMany {
    /// The values as a slice.
    pub fn as_slice(&self) -> &[Scalar] {
        match self {
            OneOrMany::One(value) => std::slice::from_ref(value),
            OneOrMany::Many(values) => values,
        }
    }
}

/// A filter node: a combinator (`all`, `any`, `not`) or a condition on one `field`.
///
/// One struct with optional keys, rather than an untagged enum, so that a mistake gets a precise
/// error ("unknown field `prefx`", "two operators") instead of "did not match any variant".
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Every sub-filter must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<FilterSpec>>,
    /// At least one sub-filter must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<FilterSpec>>,
    /// The sub-filter must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<FilterSpec>>,
    /// Dotted path of the record field, e.g. `userIdentity.sessionContext.sourceIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Field equals the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Scalar>,
    /// Field equals one of the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_of: Option<Vec<Scalar>>,
    /// Field starts with (one of) the value(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<OneOrMany>,
    /// Field ends with (one of) the value(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<OneOrMany>,
    /// Field contains (one of) the value(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<OneOrMany>,
    /// Field matches the regular expression (unanchored, Rust `regex` syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Field is present and not null (`true`) or absent or null (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// Field is an IP address inside (one of) the CIDR block(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<OneOrMany>,
    /// Field, read as a number, is greater than the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<Scalar>,
    /// Field, read as a number, is greater than or equal to the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<Scalar>,
    /// Field, read as a number, is less than the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<Scalar>,
    /// Field, read as a number, is less than or equal to the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<Scalar>,
    /// Field equals the value of another field of the same record (Sigma's `fieldref`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals_field: Option<String>,
    /// Field ends with the value of another field of the same record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix_field: Option<String>,
    /// Field contains the value of another field of the same record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains_field: Option<String>,
    /// Compare case-sensitively (default: ASCII case-insensitive, as Sigma does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,
}

/// What the result of a runbook shows; every section is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Matching records, one row each, with chosen columns.
    #[serde(default)]
    pub rows: Option<RowsSpec>,
    /// Counts of matching records grouped by fields.
    #[serde(default)]
    pub count_by: Option<CountBySpec>,
    /// The most frequent values of one field.
    #[serde(default)]
    pub top: Option<TopSpec>,
    /// Distinct values of each listed field.
    #[serde(default)]
    pub distinct: Vec<String>,
    /// First and last `eventTime` per combination of these fields.
    #[serde(default)]
    pub first_last_seen: Option<Vec<String>>,
}

/// The `rows` output section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RowsSpec {
    /// Field paths shown as columns.
    pub columns: Vec<String>,
    /// At most this many rows are kept (memory bound); the result says how many matched.
    #[serde(default = "default_row_limit")]
    pub limit: usize,
    /// Which rows are kept when more match than `limit`.
    #[serde(default)]
    pub order: RowOrder,
}

fn default_row_limit() -> usize {
    200
}

/// Which end of the time line `rows` keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOrder {
    /// Earliest `eventTime` first.
    #[default]
    OldestFirst,
    /// Latest `eventTime` first.
    NewestFirst,
}

/// The `count_by` output section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CountBySpec {
    /// Group key fields.
    pub fields: Vec<String>,
    /// Also count distinct values of this field per group (e.g. user names per source IP).
    #[serde(default)]
    pub distinct: Option<String>,
    /// Only show groups with at least this many records (a threshold, as in spraying rules).
    #[serde(default)]
    pub min_count: Option<u64>,
    /// Only show groups with at least this many distinct values of `distinct`.
    #[serde(default)]
    pub min_distinct: Option<u64>,
    /// Show at most this many groups, largest first.
    #[serde(default = "default_group_limit")]
    pub limit: usize,
}

fn default_group_limit() -> usize {
    50
}

/// The `top` output section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopSpec {
    /// Field whose values are ranked.
    pub field: String,
    /// How many values are shown.
    #[serde(default = "default_top_n")]
    pub n: usize,
}

fn default_top_n() -> usize {
    10
}

/// Severity of what a runbook finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Context, not a finding.
    Info,
    /// Worth a look.
    Low,
    /// Needs review.
    Medium,
    /// Likely malicious or dangerous.
    High,
    /// Act now.
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        };
        f.write_str(name)
    }
}

/// The LookupEvents hint: one server-side attribute and the value(s) to look up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    /// The LookupEvents attribute key.
    pub attribute: LookupAttribute,
    /// Values looked up one after the other (each is a separate paged query); templates allowed.
    pub values: Vec<String>,
}

/// LookupEvents attribute keys (case-sensitive in the API, as here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum LookupAttribute {
    /// Access key id.
    AccessKeyId,
    /// Event id.
    EventId,
    /// Event name, e.g. `ConsoleLogin`.
    EventName,
    /// Event source, e.g. `iam.amazonaws.com`.
    EventSource,
    /// `true` or `false`.
    ReadOnly,
    /// Resource name (ARN, instance id, bucket ...).
    ResourceName,
    /// Resource type, e.g. `AWS::EC2::Instance`.
    ResourceType,
    /// IAM user name, `root`, or the role session name.
    Username,
}

impl LookupAttribute {
    /// The API name of the attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            LookupAttribute::AccessKeyId => "AccessKeyId",
            LookupAttribute::EventId => "EventId",
            LookupAttribute::EventName => "EventName",
            LookupAttribute::EventSource => "EventSource",
            LookupAttribute::ReadOnly => "ReadOnly",
            LookupAttribute::ResourceName => "ResourceName",
            LookupAttribute::ResourceType => "ResourceType",
            LookupAttribute::Username => "Username",
        }
    }
}
