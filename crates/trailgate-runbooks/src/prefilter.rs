//! The literal prefilter: a byte-level test that proves a raw record cannot match the filter, so
//! the engine skips building its `serde_json::Value`.
//!
//! From the compiled [`Matcher`] it derives a set of literals of which at least one must occur in
//! the raw JSON text of any matching record (an `any_of` on `eventName` gives its names; `all`
//! picks its most selective part; `any` needs every branch to give literals; `not` and non-string
//! operators give nothing, and then there is no prefilter). The test stays exact because:
//! - a literal is used only if it cannot be written differently in JSON: no `"`, `\` or control
//!   character, and for operators that may compare numbers or serialized sub-documents, at least
//!   one character that can only appear inside a JSON string;
//! - a record containing `\u` or `\/` (an escape that could spell a literal character) always
//!   takes the full path;
//! - case-insensitive needles are searched in an ASCII-lower-cased copy of the record, as the
//!   matcher compares; pure literal sets let the regex crate use its SIMD multi-literal search.
//!
//! A record the prefilter rejects is still validated and its time read by [`shape`], without
//! allocating, so coverage counts and skip reasons equal those of the full path. Most records
//! were already checked by the faster `crate::validate` while the file was split.

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::filter::Matcher;
use crate::timefmt;

/// The compiled prefilter of one bound filter.
#[derive(Debug, Clone)]
pub(crate) struct Prefilter {
    /// Case-insensitive literals (lower-cased), searched in the lower-cased record.
    folded: Option<Regex>,
    /// Case-sensitive literals, searched in the record as is.
    exact: Option<Regex>,
}

/// Escapes that could spell a literal's character (`\u0053`, `\/`): a record containing one
/// is always parsed. Lower-casing does not change them, so they go in either set.
const ESCAPES: [&str; 2] = [r"\x5Cu", r"\x5C/"];

struct Literal {
    text: String,
    case_sensitive: bool,
}

/// Characters that can appear outside JSON strings once a value is serialized: structure,
/// numbers, and the letters of `true`, `false` and `null`.
const OUTSIDE_STRINGS: &[u8] = b"{}[],:0123456789.+-eEtrufalsnTRUFALSN";

impl Prefilter {
    /// The prefilter of `matcher`, or `None` when the filter gives no usable literal.
    pub(crate) fn new(matcher: &Matcher) -> Option<Prefilter> {
        let literals = required(matcher)?;
        let mut insensitive = Vec::new();
        let mut sensitive = Vec::new();
        for literal in &literals {
            if literal.case_sensitive {
                sensitive.push(escape_bytes(&literal.text));
            } else {
                // Needles are stored lower-cased already; lower-case again to be independent of it.
                insensitive.push(escape_bytes(&literal.text.to_ascii_lowercase()));
            }
        }
        let escapes = ESCAPES.iter().map(|escape| (*escape).to_owned());
        if insensitive.is_empty() {
            sensitive.extend(escapes);
        } else {
            insensitive.extend(escapes);
        }
        // A pattern that does not build (too large) only costs the optimization.
        let build = |alternatives: Vec<String>| -> Option<Option<Regex>> {
            if alternatives.is_empty() {
                return Some(None);
            }
            RegexBuilder::new(&alternatives.join("|"))
                .unicode(false)
                .size_limit(8 << 20)
                .build()
                .ok()
                .map(Some)
        };
        Some(Prefilter {
            folded: build(insensitive)?,
            exact: build(sensitive)?,
        })
    }

    /// Whether the raw record may match (and must be parsed and evaluated in full). `scratch`
    /// holds the lower-cased copy; reusing it avoids an allocation per record.
    pub(crate) fn may_match(&self, record: &[u8], scratch: &mut Vec<u8>) -> bool {
        if self
            .exact
            .as_ref()
            .is_some_and(|exact| exact.is_match(record))
        {
            return true;
        }
        let Some(folded) = &self.folded else {
            return false;
        };
        scratch.clear();
        scratch.extend_from_slice(record);
        scratch.make_ascii_lowercase();
        folded.is_match(scratch)
    }
}

/// Literals of which one occurs in every matching record; `None` if no such set is known.
fn required(matcher: &Matcher) -> Option<Vec<Literal>> {
    match matcher {
        Matcher::Condition(condition) => {
            let (equals, needles) = condition.literal_needles()?;
            needles
                .into_iter()
                .map(|(text, case_sensitive, numeric)| {
                    usable(text, equals, numeric).then(|| Literal {
                        text: text.to_owned(),
                        case_sensitive,
                    })
                })
                .collect()
        }
        // Every part must match: any part's literals are required; keep the most selective
        // (the longest shortest literal).
        Matcher::All(parts) => parts
            .iter()
            .filter_map(required)
            .max_by_key(|literals| literals.iter().map(|literal| literal.text.len()).min()),
        // One branch must match: every branch must give literals, and any of them may occur.
        Matcher::Any(parts) => {
            let mut out = Vec::new();
            for part in parts {
                out.extend(required(part)?);
            }
            Some(out)
        }
        Matcher::Not(_) => None,
    }
}

/// Whether `text` can only appear verbatim in the raw JSON of a record it matches.
fn usable(text: &str, equals: bool, numeric: bool) -> bool {
    if text.is_empty()
        || text
            .bytes()
            .any(|byte| byte == b'"' || byte == b'\\' || byte < 0x20)
    {
        return false;
    }
    if equals {
        // A numeric needle also equals numbers however they are written (`1e3`, `1000.0`).
        return !numeric;
    }
    // Prefix, suffix and contains compare numbers as printed and sub-documents as serialized:
    // require a character that only a string can hold there.
    text.bytes().any(|byte| !OUTSIDE_STRINGS.contains(&byte))
}

/// Escapes a literal for a byte regex without Unicode: ASCII as regex text, other bytes as `\xHH`.
fn escape_bytes(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!(r"\x{byte:02X}"));
        }
    }
    out
}

/// What the full path needs from a record it will not evaluate: whether it is an object, and
/// its `eventTime` (or `@timestamp`) as Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// An object; the time is `None` when missing, not a string, or unparsable.
    Object(Option<i64>),
    /// Valid JSON that is not an object.
    NotObject,
}

/// Validates `bytes` exactly as `serde_json::from_slice::<Value>` would (same parser, same
/// callbacks, so the same errors) without building the value.
pub(crate) fn shape(bytes: &[u8]) -> Result<Shape, serde_json::Error> {
    serde_json::from_slice::<Shape>(bytes)
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Shape::NotObject)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        // `Value::get` sees the last of duplicate keys, and `@timestamp` only when `eventTime`
        // is absent: keep both, last wins.
        let mut event_time: Option<Option<i64>> = None;
        let mut timestamp: Option<Option<i64>> = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::EventTime => event_time = Some(map.next_value::<Time>()?.0),
                Key::Timestamp => timestamp = Some(map.next_value::<Time>()?.0),
                Key::Other => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(Shape::Object(event_time.or(timestamp).flatten()))
    }
}

/// A value read through `deserialize_any`, like `Value`, so validation is identical.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Skip, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
}

enum Key {
    EventTime,
    Timestamp,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "eventTime" => Key::EventTime,
            "@timestamp" => Key::Timestamp,
            _ => Key::Other,
        })
    }
}

/// A time field: `Some(seconds)` for a parsable string, `None` for anything else (as
/// `Value::as_str` then `parse_event_time` would give).
struct Time(Option<i64>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Time, D::Error> {
        deserializer.deserialize_any(TimeVisitor)
    }
}

struct TimeVisitor;

impl<'de> Visitor<'de> for TimeVisitor {
    type Value = Time;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_str<E>(self, text: &str) -> Result<Time, E> {
        Ok(Time(timefmt::parse_event_time(text)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Time, E> {
        Ok(Time(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Time, E> {
        Ok(Time(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Time, E> {
        Ok(Time(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Time, E> {
        Ok(Time(None))
    }
    fn visit_unit<E>(self) -> Result<Time, E> {
        Ok(Time(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Time, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Time(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Time, A::Error> {
        SkipVisitor.visit_map(map).map(|_| Time(None))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;
    use crate::filter::{Bound, compile};
    use crate::spec::FilterSpec;

    fn prefilter(yaml: &str) -> Option<Prefilter> {
        let spec: FilterSpec = serde_yaml::from_str(yaml).expect("test filter parses");
        let matcher = compile(&spec, &Bound::new(), &BTreeMap::new()).expect("compiles");
        Prefilter::new(&matcher)
    }

    #[test]
    fn literals_come_from_string_operators_only() {
        let names = prefilter("{field: eventName, any_of: [StopLogging, DeleteTrail]}")
            .expect("an any_of gives literals");
        assert!(names.may_match(br#"{"eventName":"stoplogging"}"#, &mut Vec::new()));
        assert!(!names.may_match(br#"{"eventName":"StartLogging"}"#, &mut Vec::new()));
        // Escapes that could spell a literal force the full path.
        assert!(names.may_match(br#"{"eventName":"\u0053topLogging"}"#, &mut Vec::new()));
        assert!(names.may_match(br#"{"x":"a\/b"}"#, &mut Vec::new()));
        assert!(prefilter("{not: {field: eventName, equals: x}}").is_none());
        assert!(prefilter("{field: durationSeconds, gte: 3600}").is_none());
        // Numeric equals and number-like contains cannot be tested on the raw text.
        assert!(prefilter("{field: durationSeconds, equals: 3600}").is_none());
        assert!(prefilter("{field: requestParameters, contains: '1,2'}").is_none());
        assert!(
            prefilter("{any: [{field: eventName, equals: A1}, {field: x, exists: true}]}")
                .is_none()
        );
        let all = prefilter(
            "{all: [{field: x, exists: true}, {field: eventName, equals: ConsoleLogin}]}",
        )
        .expect("all takes a part with literals");
        assert!(!all.may_match(br#"{"x":1}"#, &mut Vec::new()));
        let sensitive = prefilter("{field: a, equals: AKIAX, case_sensitive: true}")
            .expect("case-sensitive literal");
        assert!(!sensitive.may_match(br#"{"a":"akiax"}"#, &mut Vec::new()));
        assert!(sensitive.may_match(br#"{"a":"AKIAX"}"#, &mut Vec::new()));
    }

    #[test]
    fn shape_reads_time_and_errors_like_value() {
        let cases: &[&[u8]] = &[
            br#"{"eventTime":"2023-07-10T12:00:00Z","a":[1,{"b":null}]}"#,
            br#"{"@timestamp":"2023-07-10T12:00:00Z"}"#,
            br#"{"eventTime":null,"@timestamp":"2023-07-10T12:00:00Z"}"#,
            br#"{"eventTime":"x","eventTime":"2023-07-10T12:00:00Z"}"#,
            br#"{"event\u0054ime":"2023-07-10T12:00:00Z"}"#,
            br#"[1,2]"#,
            br#""text""#,
            br#"{"a":1e400}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"a":1} x"#,
            br#"{"a":"#,
            b"{\"a\":\"\xff\"}",
            br#"{"a":[1,2,{"b":[true,false,null]}],"eventTime":"2023-07-10T12:00:00Z"}"#,
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":-}"#,
            br#"{"a":"x\qy"}"#,
            br#"{"a":tru}"#,
            br#"{"a" 1}"#,
            br#"{"a":1,}"#,
            b"{\"a\":\"\x01\"}",
        ];
        for bytes in cases {
            let expected = serde_json::from_slice::<Value>(bytes);
            let got = shape(bytes);
            match (expected, got) {
                (Ok(value), Ok(shape)) => {
                    let time = value
                        .get("eventTime")
                        .or_else(|| value.get("@timestamp"))
                        .and_then(Value::as_str)
                        .and_then(timefmt::parse_event_time);
                    let want = if value.is_object() {
                        Shape::Object(time)
                    } else {
                        Shape::NotObject
                    };
                    assert_eq!(shape, want, "{}", String::from_utf8_lossy(bytes));
                }
                (Err(expected), Err(got)) => {
                    assert_eq!(expected.is_eof(), got.is_eof());
                }
                (expected, got) => panic!(
                    "{}: Value {:?} but shape {:?}",
                    String::from_utf8_lossy(bytes),
                    expected.map(|_| ()),
                    got
                ),
            }
        }
    }
}
