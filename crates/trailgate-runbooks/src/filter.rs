//! The compiled filter: field paths, conditions and the record matcher.
//!
//! A [`FilterSpec`] plus bound parameter values compiles into a [`Matcher`] once per run; the
//! matcher is then evaluated on every record without allocating in the common cases: needles are
//! lower-cased at compile time and compared with ASCII case-insensitive byte comparisons, regexes
//! are compiled once, and field paths are split into segments once.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::error::ParamError;
use crate::spec::{FilterSpec, Scalar};
use crate::template;

/// A dotted field path split into segments. Arrays met on the way are searched element by
/// element, so `resources.ARN` reaches the ARN of every resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: Box<str>,
    segments: Box<[Box<str>]>,
}

impl FieldPath {
    /// Splits `text` at dots; `None` if a segment is empty.
    pub fn parse(text: &str) -> Option<FieldPath> {
        let segments: Vec<Box<str>> = text.split('.').map(Box::from).collect();
        if text.is_empty() || segments.iter().any(|segment| segment.is_empty()) {
            return None;
        }
        Some(FieldPath {
            text: text.into(),
            segments: segments.into_boxed_slice(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Calls `test` on each value the path reaches (array elements at the end are visited one by
    /// one) until it returns `true`; returns whether it did.
    pub fn any_value<'a>(
        &self,
        record: &'a Value,
        test: &mut dyn FnMut(&'a Value) -> bool,
    ) -> bool {
        visit(record, &self.segments, test)
    }

    /// The first non-null value the path reaches.
    pub fn first<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        let mut found = None;
        self.any_value(record, &mut |value| {
            if value.is_null() {
                false
            } else {
                found = Some(value);
                true
            }
        });
        found
    }

    /// The values the path reaches rendered as text and joined with `,` (for output columns).
    pub fn text(&self, record: &Value) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        self.any_value(record, &mut |value| {
            if let Some(text) = display_text(value) {
                parts.push(text.into_owned());
            }
            false
        });
        if parts.is_empty() {
            None
        } else {
            Some(parts.join(","))
        }
    }
}

fn visit<'a>(
    value: &'a Value,
    segments: &[Box<str>],
    test: &mut dyn FnMut(&'a Value) -> bool,
) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| visit(item, segments, test)),
        Value::Object(map) => match segments.split_first() {
            Some((head, rest)) => map
                .get(&**head)
                .is_some_and(|child| visit(child, rest, test)),
            None => test(value),
        },
        _ if segments.is_empty() => test(value),
        _ => false,
    }
}

/// A value as display text: strings as is, numbers and booleans printed, objects as JSON.
pub fn display_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Bool(true) => Some(Cow::Borrowed("true")),
        Value::Bool(false) => Some(Cow::Borrowed("false")),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        Value::Array(_) | Value::Object(_) => Some(Cow::Owned(value.to_string())),
    }
}

/// Text of a scalar leaf for string comparisons; objects and arrays only when `whole` is set
/// (`contains` and `regex` may search a whole JSON sub-document, as Sigma's `requestParameters|contains`).
fn leaf_text(value: &Value, whole: bool) -> Option<Cow<'_, str>> {
    match value {
        Value::Array(_) | Value::Object(_) if !whole => None,
        other => display_text(other),
    }
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Every sub-matcher matches.
    All(Vec<Matcher>),
    /// At least one sub-matcher matches.
    Any(Vec<Matcher>),
    /// The sub-matcher does not match.
    Not(Box<Matcher>),
    /// A condition on one field.
    Condition(Condition),
}

/// A condition on one field.
#[derive(Debug, Clone)]
pub struct Condition {
    path: FieldPath,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Equals(Vec<Needle>),
    Prefix(Vec<Needle>),
    Suffix(Vec<Needle>),
    Contains(Vec<Needle>),
    Regex(Regex),
    Exists(bool),
    Cidr(Vec<Cidr>),
    Compare(Comparison, f64),
    EqualsField(FieldPath, bool),
    SuffixField(FieldPath, bool),
    ContainsField(FieldPath, bool),
}

#[derive(Debug, Clone, Copy)]
enum Comparison {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A string to compare with, lower-cased at compile time unless the comparison is case-sensitive.
#[derive(Debug, Clone)]
struct Needle {
    text: Box<str>,
    number: Option<f64>,
    case_sensitive: bool,
}

impl Needle {
    fn new(text: &str, case_sensitive: bool) -> Needle {
        let stored = if case_sensitive {
            text.to_owned()
        } else {
            text.to_ascii_lowercase()
        };
        Needle {
            text: stored.into(),
            number: text.trim().parse::<f64>().ok(),
            case_sensitive,
        }
    }

    fn equals(&self, value: &Value) -> bool {
        if let (Value::Number(number), Some(needle)) = (value, self.number) {
            return number.as_f64() == Some(needle);
        }
        leaf_text(value, false).is_some_and(|text| self.eq_text(&text))
    }

    fn eq_text(&self, text: &str) -> bool {
        if self.case_sensitive {
            text == &*self.text
        } else {
            text.eq_ignore_ascii_case(&self.text)
        }
    }

    fn prefix_of(&self, text: &str) -> bool {
        let (hay, needle) = (text.as_bytes(), self.text.as_bytes());
        hay.len() >= needle.len() && bytes_eq(&hay[..needle.len()], needle, self.case_sensitive)
    }

    fn suffix_of(&self, text: &str) -> bool {
        let (hay, needle) = (text.as_bytes(), self.text.as_bytes());
        hay.len() >= needle.len()
            && bytes_eq(
                &hay[hay.len() - needle.len()..],
                needle,
                self.case_sensitive,
            )
    }

    fn inside(&self, text: &str) -> bool {
        if self.case_sensitive {
            return text.contains(&*self.text);
        }
        contains_ignore_ascii_case(text.as_bytes(), self.text.as_bytes())
    }
}

fn bytes_eq(left: &[u8], right: &[u8], case_sensitive: bool) -> bool {
    if case_sensitive {
        left == right
    } else {
        left.eq_ignore_ascii_case(right)
    }
}

/// Substring search with ASCII case folding; `needle` is already lower-case.
fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    if hay.len() < needle.len() {
        return false;
    }
    (0..=hay.len() - needle.len()).any(|start| {
        hay[start].to_ascii_lowercase() == first
            && hay[start..start + needle.len()].eq_ignore_ascii_case(needle)
    })
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::/0`, or a bare address (a /32 or /128).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(Cidr { network, prefix })
    }

    /// The network address as written (host bits are ignored when matching).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `address` is inside the network.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl Matcher {
    /// Whether the record matches.
    pub fn matches(&self, record: &Value) -> bool {
        match self {
            Matcher::All(parts) => parts.iter().all(|part| part.matches(record)),
            Matcher::Any(parts) => parts.iter().any(|part| part.matches(record)),
            Matcher::Not(part) => !part.matches(record),
            Matcher::Condition(condition) => condition.matches(record),
        }
    }
}

impl Condition {
    /// For the literal prefilter (`crate::prefilter`): the needles of a string operator as
    /// `(text, case_sensitive, numeric)`, with whether the operator is `equals`/`any_of`;
    /// `None` for every other operator.
    pub(crate) fn literal_needles(&self) -> Option<(bool, Vec<(&str, bool, bool)>)> {
        let (equals, needles) = match &self.op {
            Op::Equals(needles) => (true, needles),
            Op::Prefix(needles) | Op::Suffix(needles) | Op::Contains(needles) => (false, needles),
            _ => return None,
        };
        let needles = needles
            .iter()
            .map(|needle| {
                (
                    &*needle.text,
                    needle.case_sensitive,
                    needle.number.is_some(),
                )
            })
            .collect();
        Some((equals, needles))
    }

    fn matches(&self, record: &Value) -> bool {
        match &self.op {
            Op::Exists(expected) => self.path.first(record).is_some() == *expected,
            Op::Equals(needles) => self.path.any_value(record, &mut |value| {
                needles.iter().any(|needle| needle.equals(value))
            }),
            Op::Prefix(needles) => self.any_text(record, false, &mut |text| {
                needles.iter().any(|needle| needle.prefix_of(text))
            }),
            Op::Suffix(needles) => self.any_text(record, false, &mut |text| {
                needles.iter().any(|needle| needle.suffix_of(text))
            }),
            Op::Contains(needles) => self.any_text(record, true, &mut |text| {
                needles.iter().any(|needle| needle.inside(text))
            }),
            Op::Regex(regex) => self.any_text(record, true, &mut |text| regex.is_match(text)),
            Op::Cidr(blocks) => self.any_text(record, false, &mut |text| {
                text.parse::<IpAddr>()
                    .is_ok_and(|address| blocks.iter().any(|block| block.contains(address)))
            }),
            Op::Compare(comparison, bound) => self.path.any_value(record, &mut |value| {
                let number = match value {
                    Value::Number(number) => number.as_f64(),
                    Value::String(text) => text.trim().parse::<f64>().ok(),
                    _ => None,
                };
                number.is_some_and(|number| match comparison {
                    Comparison::Gt => number > *bound,
                    Comparison::Gte => number >= *bound,
                    Comparison::Lt => number < *bound,
                    Comparison::Lte => number <= *bound,
                })
            }),
            Op::EqualsField(other, case_sensitive) => {
                self.compare_field(record, other, *case_sensitive, |text, other| {
                    other.len() == text.len()
                        && bytes_eq(text.as_bytes(), other.as_bytes(), *case_sensitive)
                })
            }
            Op::ContainsField(other, case_sensitive) => {
                self.compare_field(record, other, *case_sensitive, |text, other| {
                    Condition::contains_other(text, other, *case_sensitive)
                })
            }
            Op::SuffixField(other, case_sensitive) => {
                self.compare_field(record, other, *case_sensitive, |text, other| {
                    text.len() >= other.len()
                        && bytes_eq(
                            &text.as_bytes()[text.len() - other.len()..],
                            other.as_bytes(),
                            *case_sensitive,
                        )
                })
            }
        }
    }

    fn contains_other(text: &str, other: &str, case_sensitive: bool) -> bool {
        if case_sensitive {
            text.contains(other)
        } else {
            contains_ignore_ascii_case(text.as_bytes(), other.to_ascii_lowercase().as_bytes())
        }
    }

    fn any_text(&self, record: &Value, whole: bool, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.path.any_value(record, &mut |value| {
            leaf_text(value, whole).is_some_and(|text| test(&text))
        })
    }

    fn compare_field(
        &self,
        record: &Value,
        other: &FieldPath,
        _case_sensitive: bool,
        test: impl Fn(&str, &str) -> bool,
    ) -> bool {
        let Some(other_value) = other.first(record) else {
            return false;
        };
        let Some(other_text) = leaf_text(other_value, false) else {
            return false;
        };
        if other_text.is_empty() {
            return false;
        }
        self.any_text(record, false, &mut |text| test(text, &other_text))
    }
}

/// Parameter values bound for a run, as text lists (scalars are one-element lists).
pub type Bound = BTreeMap<String, Vec<String>>;

/// Compiles a validated filter with bound parameters. `regexes` holds the regexes compiled at
/// load time (keyed by pattern and case flag); templated regexes are compiled here.
pub fn compile(
    spec: &FilterSpec,
    bound: &Bound,
    regexes: &BTreeMap<(String, bool), Regex>,
) -> Result<Matcher, ParamError> {
    if let Some(parts) = &spec.all {
        return Ok(Matcher::All(
            parts
                .iter()
                .map(|part| compile(part, bound, regexes))
                .collect::<Result<_, _>>()?,
        ));
    }
    if let Some(parts) = &spec.any {
        return Ok(Matcher::Any(
            parts
                .iter()
                .map(|part| compile(part, bound, regexes))
                .collect::<Result<_, _>>()?,
        ));
    }
    if let Some(part) = &spec.not {
        return Ok(Matcher::Not(Box::new(compile(part, bound, regexes)?)));
    }
    let field = spec.field.as_deref().unwrap_or_default();
    // Validation guarantees a well-formed path; an empty one would simply never match.
    let path = FieldPath::parse(field).unwrap_or(FieldPath {
        text: field.into(),
        segments: Box::new([]),
    });
    let case_sensitive = spec.case_sensitive.unwrap_or(false);
    let needles = |values: &[Scalar]| -> Vec<Needle> {
        expand(values, bound)
            .iter()
            .map(|text| Needle::new(text, case_sensitive))
            .collect()
    };
    let op = if let Some(value) = &spec.equals {
        Op::Equals(needles(std::slice::from_ref(value)))
    } else if let Some(values) = &spec.any_of {
        Op::Equals(needles(values))
    } else if let Some(values) = &spec.prefix {
        Op::Prefix(needles(values.as_slice()))
    } else if let Some(values) = &spec.suffix {
        Op::Suffix(needles(values.as_slice()))
    } else if let Some(values) = &spec.contains {
        Op::Contains(needles(values.as_slice()))
    } else if let Some(pattern) = &spec.regex {
        match regexes.get(&(pattern.clone(), case_sensitive)) {
            Some(regex) => Op::Regex(regex.clone()),
            None => {
                let rendered = template::render(pattern, bound, regex::escape);
                Op::Regex(build_regex(&rendered, case_sensitive).map_err(ParamError::Regex)?)
            }
        }
    } else if let Some(expected) = spec.exists {
        Op::Exists(expected)
    } else if let Some(values) = &spec.cidr {
        let blocks = expand(values.as_slice(), bound)
            .iter()
            .map(|text| {
                Cidr::parse(text)
                    .ok_or_else(|| ParamError::Value(format!("invalid CIDR block `{text}`")))
            })
            .collect::<Result<_, _>>()?;
        Op::Cidr(blocks)
    } else if let Some((comparison, value)) = comparison(spec) {
        let text = expand(std::slice::from_ref(value), bound)
            .into_iter()
            .next()
            .unwrap_or_default();
        let bound_value = text
            .trim()
            .parse::<f64>()
            .map_err(|_| ParamError::Value(format!("`{text}` is not a number")))?;
        Op::Compare(comparison, bound_value)
    } else if let Some(other) = &spec.equals_field {
        Op::EqualsField(
            FieldPath::parse(other).unwrap_or(FieldPath {
                text: other.as_str().into(),
                segments: Box::new([]),
            }),
            case_sensitive,
        )
    } else if let Some(other) = &spec.contains_field {
        Op::ContainsField(
            FieldPath::parse(other).unwrap_or(FieldPath {
                text: other.as_str().into(),
                segments: Box::new([]),
            }),
            case_sensitive,
        )
    } else if let Some(other) = &spec.suffix_field {
        Op::SuffixField(
            FieldPath::parse(other).unwrap_or(FieldPath {
                text: other.as_str().into(),
                segments: Box::new([]),
            }),
            case_sensitive,
        )
    } else {
        // Validation rejects operator-less conditions; treat one as "field exists" defensively.
        Op::Exists(true)
    };
    Ok(Matcher::Condition(Condition { path, op }))
}

fn comparison(spec: &FilterSpec) -> Option<(Comparison, &Scalar)> {
    spec.gt
        .as_ref()
        .map(|value| (Comparison::Gt, value))
        .or_else(|| spec.gte.as_ref().map(|value| (Comparison::Gte, value)))
        .or_else(|| spec.lt.as_ref().map(|value| (Comparison::Lt, value)))
        .or_else(|| spec.lte.as_ref().map(|value| (Comparison::Lte, value)))
}

/// Renders templated values; a value that is exactly one reference to a list expands to the list.
pub(crate) fn expand(values: &[Scalar], bound: &Bound) -> Vec<String> {
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        match value {
            Scalar::Text(text) => {
                match template::sole_reference(text).and_then(|name| bound.get(name)) {
                    Some(list) => out.extend(list.iter().cloned()),
                    None => out.push(template::render(text, bound, template::no_escape)),
                }
            }
            other => out.push(other.to_text()),
        }
    }
    out
}

/// A filter as indented text, one condition per line, for `explain` (values as written, with
/// `{{ param }}` references unresolved).
pub fn describe(spec: &FilterSpec) -> String {
    let mut out = String::new();
    describe_into(spec, 0, &mut out);
    out
}

fn describe_into(spec: &FilterSpec, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    let list = |values: &[Scalar]| {
        let shown: Vec<String> = values
            .iter()
            .map(|value| format!("{:?}", value.to_text()))
            .collect();
        if shown.len() == 1 {
            shown[0].clone()
        } else {
            format!("[{}]", shown.join(", "))
        }
    };
    let nested = [("all", &spec.all), ("any", &spec.any)];
    for (name, parts) in nested {
        if let Some(parts) = parts {
            out.push_str(&format!("{indent}{name}:\n"));
            for part in parts {
                describe_into(part, depth + 1, out);
            }
            return;
        }
    }
    if let Some(part) = &spec.not {
        out.push_str(&format!("{indent}not:\n"));
        describe_into(part, depth + 1, out);
        return;
    }
    let field = spec.field.as_deref().unwrap_or_default();
    let condition = if let Some(value) = &spec.equals {
        format!("= {}", list(std::slice::from_ref(value)))
    } else if let Some(values) = &spec.any_of {
        format!("in {}", list(values))
    } else if let Some(values) = &spec.prefix {
        format!("starts with {}", list(values.as_slice()))
    } else if let Some(values) = &spec.suffix {
        format!("ends with {}", list(values.as_slice()))
    } else if let Some(values) = &spec.contains {
        format!("contains {}", list(values.as_slice()))
    } else if let Some(pattern) = &spec.regex {
        format!("matches /{pattern}/")
    } else if let Some(expected) = spec.exists {
        if expected {
            "exists".to_owned()
        } else {
            "is missing".to_owned()
        }
    } else if let Some(values) = &spec.cidr {
        format!("in CIDR {}", list(values.as_slice()))
    } else if let Some((comparison, value)) = comparison(spec) {
        let symbol = match comparison {
            Comparison::Gt => ">",
            Comparison::Gte => ">=",
            Comparison::Lt => "<",
            Comparison::Lte => "<=",
        };
        format!("{symbol} {}", value.to_text())
    } else if let Some(other) = &spec.equals_field {
        format!("= field {other}")
    } else if let Some(other) = &spec.suffix_field {
        format!("ends with field {other}")
    } else if let Some(other) = &spec.contains_field {
        format!("contains field {other}")
    } else {
        "?".to_owned()
    };
    let case = if spec.case_sensitive == Some(true) {
        " (case-sensitive)"
    } else {
        ""
    };
    out.push_str(&format!("{indent}{field} {condition}{case}\n"));
}

/// Compiles a regex with the runbook's case rule.
pub fn build_regex(pattern: &str, case_sensitive: bool) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(!case_sensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matcher(yaml: &str) -> Matcher {
        let spec: FilterSpec = serde_yaml::from_str(yaml).expect("test filter parses");
        compile(&spec, &Bound::new(), &BTreeMap::new()).expect("test filter compiles")
    }

    fn record() -> Value {
        json!({
            "eventName": "ConsoleLogin",
            "sourceIPAddress": "192.168.10.20",
            "requestParameters": null,
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123:user/alice", "userName": "alice"},
            "additionalEventData": {"MFAUsed": "No"},
            "resources": [{"ARN": "arn:aws:s3:::a"}, {"ARN": "arn:aws:s3:::b"}],
            "durationSeconds": 3600,
            "names": ["/prod/db", "/prod/api"],
        })
    }

    #[test]
    fn equals_is_case_insensitive_unless_asked() {
        assert!(matcher("{field: additionalEventData.MFAUsed, equals: 'NO'}").matches(&record()));
        assert!(
            !matcher("{field: additionalEventData.MFAUsed, equals: 'NO', case_sensitive: true}")
                .matches(&record())
        );
        assert!(
            matcher("{field: additionalEventData.MFAUsed, equals: 'No', case_sensitive: true}")
                .matches(&record())
        );
    }

    #[test]
    fn missing_and_null_fields_never_match_but_not_inverts() {
        assert!(!matcher("{field: requestParameters.roleArn, equals: x}").matches(&record()));
        assert!(
            !matcher("{field: userIdentity.sessionContext.sourceIdentity, exists: true}")
                .matches(&record())
        );
        assert!(matcher("{field: requestParameters, exists: false}").matches(&record()));
        assert!(matcher("{not: {field: errorCode, exists: true}}").matches(&record()));
    }

    #[test]
    fn arrays_are_searched_element_by_element() {
        assert!(matcher("{field: resources.ARN, equals: 'arn:aws:s3:::b'}").matches(&record()));
        assert!(matcher("{field: names, prefix: /PROD/}").matches(&record()));
        assert!(!matcher("{field: resources.ARN, equals: 'arn:aws:s3:::c'}").matches(&record()));
    }

    #[test]
    fn string_operators() {
        let record = record();
        assert!(matcher("{field: userIdentity.arn, suffix: ':USER/alice'}").matches(&record));
        assert!(
            matcher("{field: userIdentity.arn, prefix: [nope, 'ARN:aws:iam']}").matches(&record)
        );
        assert!(matcher("{field: userIdentity.arn, contains: 'IAM::123'}").matches(&record));
        assert!(!matcher("{field: userIdentity.arn, contains: 'iam::1234'}").matches(&record));
        assert!(matcher("{field: eventName, regex: '^console'}").matches(&record));
        assert!(
            !matcher("{field: eventName, regex: '^console', case_sensitive: true}")
                .matches(&record)
        );
        assert!(
            matcher("{field: eventName, any_of: [StopLogging, consolelogin]}").matches(&record)
        );
    }

    #[test]
    fn cidr_and_numbers() {
        let record = record();
        assert!(matcher("{field: sourceIPAddress, cidr: 192.168.0.0/16}").matches(&record));
        assert!(!matcher("{field: sourceIPAddress, cidr: [10.0.0.0/8, '::/0']}").matches(&record));
        assert!(matcher("{field: sourceIPAddress, cidr: 0.0.0.0/0}").matches(&record));
        assert!(!matcher("{field: eventName, cidr: 0.0.0.0/0}").matches(&record));
        assert!(matcher("{field: durationSeconds, gte: 3600}").matches(&record));
        assert!(!matcher("{field: durationSeconds, gt: 3600}").matches(&record));
        assert!(matcher("{field: durationSeconds, equals: 3600}").matches(&record));
        assert!(matcher("{field: durationSeconds, lt: '4000'}").matches(&record));
    }

    #[test]
    fn field_references_compare_two_fields() {
        let record = record();
        assert!(
            matcher("{field: userIdentity.arn, suffix_field: userIdentity.userName}")
                .matches(&record)
        );
        assert!(
            !matcher("{field: userIdentity.arn, equals_field: userIdentity.userName}")
                .matches(&record)
        );
        assert!(
            !matcher("{field: userIdentity.arn, suffix_field: missing.field}").matches(&record)
        );
        assert!(
            matcher("{field: userIdentity.arn, contains_field: userIdentity.userName}")
                .matches(&record)
        );
        assert!(
            !matcher("{field: userIdentity.userName, contains_field: userIdentity.arn}")
                .matches(&record)
        );
    }

    #[test]
    fn combinators() {
        let record = record();
        assert!(matcher("{all: [{field: eventName, equals: ConsoleLogin}, {any: [{field: a, exists: true}, {field: userIdentity.type, equals: iamuser}]}]}").matches(&record));
        assert!(!matcher("{all: [{field: eventName, equals: ConsoleLogin}, {not: {field: userIdentity.type, equals: IAMUser}}]}").matches(&record));
    }

    #[test]
    fn list_parameters_expand_and_regex_parameters_are_escaped() {
        let bound = Bound::from([
            (
                "names".to_owned(),
                vec!["StopLogging".to_owned(), "ConsoleLogin".to_owned()],
            ),
            ("who".to_owned(), vec!["a.ice".to_owned()]),
        ]);
        let spec: FilterSpec =
            serde_yaml::from_str("{field: eventName, any_of: ['{{ names }}']}").expect("parses");
        assert!(
            compile(&spec, &bound, &BTreeMap::new())
                .expect("compiles")
                .matches(&record())
        );
        let spec: FilterSpec =
            serde_yaml::from_str("{field: userIdentity.userName, regex: '^{{ who }}$'}")
                .expect("parses");
        // `a.ice` must not match `alice`: the dot is escaped.
        assert!(
            !compile(&spec, &bound, &BTreeMap::new())
                .expect("compiles")
                .matches(&record())
        );
    }

    #[test]
    fn cidr_parsing() {
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nope/8").is_none());
        assert!(
            Cidr::parse("2001:db8::/32")
                .is_some_and(|block| block.contains("2001:db8::1".parse().expect("ip")))
        );
        assert!(
            Cidr::parse("1.2.3.4")
                .is_some_and(|block| block.contains("1.2.3.4".parse().expect("ip")))
        );
    }
}
