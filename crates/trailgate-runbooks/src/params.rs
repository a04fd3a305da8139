//! Parameter values and the time window given to a run, and their binding to a runbook.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

use crate::error::ParamError;
use crate::filter::Bound;
use crate::spec::{DefaultValue, ParamSpec, ParamType, RunbookSpec};
use crate::template;
use crate::timefmt;

/// Values for a run: parameters as text (as a CLI receives them) and an optional window override.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    lookback: Option<Duration>,
    now: Option<OffsetDateTime>,
}

impl Params {
    /// No values: defaults apply, the window ends now.
    pub fn new() -> Params {
        Params::default()
    }

    /// Sets a parameter from text; lists are comma-separated.
    pub fn set(mut self, name: &str, value: &str) -> Params {
        self.values.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Searches exactly `[start, end)`, overriding the runbook's lookback.
    pub fn window(mut self, start: OffsetDateTime, end: OffsetDateTime) -> Params {
        self.start = Some(start);
        self.end = Some(end);
        self
    }

    /// Searches the `lookback` before the end (now unless a window is set).
    pub fn lookback(mut self, lookback: Duration) -> Params {
        self.lookback = Some(lookback);
        self
    }

    /// The moment the default window ends (defaults to the clock; set it for reproducible runs).
    pub fn now(mut self, now: OffsetDateTime) -> Params {
        self.now = Some(now);
        self
    }
}

/// The searched time range, `[start, end)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Inclusive start.
    #[serde(
        serialize_with = "serialize_unix",
        deserialize_with = "deserialize_unix"
    )]
    pub start: i64,
    /// Exclusive end.
    #[serde(
        serialize_with = "serialize_unix",
        deserialize_with = "deserialize_unix"
    )]
    pub end: i64,
}

fn serialize_unix<S: serde::Serializer>(seconds: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&timefmt::format_unix(*seconds))
}

/// The RFC 3339 text [`serialize_unix`] writes, read back (a result that went through JSON:
/// the runbook-scan state machine's output).
fn deserialize_unix<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    timefmt::parse_event_time(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
}

impl Window {
    /// Whether `seconds` is inside the window.
    pub fn contains(&self, seconds: i64) -> bool {
        self.start <= seconds && seconds < self.end
    }

    /// The start as a time.
    pub fn start_time(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.start).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The end as a time.
    pub fn end_time(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.end).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} .. {}",
            timefmt::format_unix(self.start),
            timefmt::format_unix(self.end)
        )
    }
}

/// The type name used in messages.
pub fn type_name(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "string",
        ParamType::Int => "int",
        ParamType::Bool => "bool",
        ParamType::Duration => "duration",
        ParamType::List => "list",
    }
}

/// Parses a text value as `kind`, normalised to text values (a list has several).
pub fn parse_value(kind: ParamType, text: &str) -> Option<Vec<String>> {
    match kind {
        ParamType::String => Some(vec![text.to_owned()]),
        ParamType::Int => text
            .trim()
            .parse::<i64>()
            .ok()
            .map(|value| vec![value.to_string()]),
        ParamType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(vec!["true".to_owned()]),
            "false" => Some(vec!["false".to_owned()]),
            _ => None,
        },
        ParamType::Duration => {
            timefmt::parse_duration(text).map(|value| vec![timefmt::format_duration(value)])
        }
        ParamType::List => Some(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
    }
}

/// The default of a declared parameter as text values; `None` if it does not fit the type.
pub fn default_values(spec: &ParamSpec) -> Option<Option<Vec<String>>> {
    let Some(default) = &spec.default else {
        return Some(None);
    };
    let values = match (default, spec.kind) {
        (DefaultValue::List(items), ParamType::List) => Some(items.clone()),
        (DefaultValue::List(_), _) => None,
        (DefaultValue::Text(text), kind) => parse_value(kind, text),
        (DefaultValue::Int(value), ParamType::Int | ParamType::String | ParamType::List) => {
            Some(vec![value.to_string()])
        }
        (DefaultValue::Bool(value), ParamType::Bool | ParamType::String) => {
            Some(vec![value.to_string()])
        }
        _ => None,
    };
    values.map(Some)
}

/// Binds given values and defaults to the declared parameters.
pub fn bind(spec: &RunbookSpec, params: &Params) -> Result<Bound, ParamError> {
    if let Some(name) = params.values.keys().find(|name| {
        !spec
            .parameters
            .iter()
            .any(|declared| &declared.name == *name)
    }) {
        return Err(ParamError::Unknown(name.clone()));
    }
    let mut bound = Bound::new();
    for declared in &spec.parameters {
        let values = match params.values.get(&declared.name) {
            Some(text) => parse_value(declared.kind, text).ok_or_else(|| ParamError::Invalid {
                name: declared.name.clone(),
                value: text.clone(),
                expected: type_name(declared.kind),
            })?,
            None => match default_values(declared).flatten() {
                Some(values) => values,
                None => return Err(ParamError::Missing(declared.name.clone())),
            },
        };
        bound.insert(declared.name.clone(), values);
    }
    Ok(bound)
}

/// Resolves the window: an explicit window wins, then a given lookback, then the runbook's.
pub fn resolve_window(
    spec: &RunbookSpec,
    params: &Params,
    bound: &Bound,
) -> Result<Window, ParamError> {
    let end = params
        .end
        .or(params.now)
        .unwrap_or_else(OffsetDateTime::now_utc);
    let start = match (params.start, params.lookback) {
        (Some(start), _) => start,
        (None, Some(lookback)) => end - lookback,
        (None, None) => {
            let text = template::render(&spec.window.lookback, bound, template::no_escape);
            let lookback = timefmt::parse_duration(&text).ok_or_else(|| ParamError::Invalid {
                name: "window.lookback".to_owned(),
                value: text.clone(),
                expected: "duration",
            })?;
            end - lookback
        }
    };
    let window = Window {
        start: start.unix_timestamp(),
        end: end.unix_timestamp(),
    };
    if window.start >= window.end {
        return Err(ParamError::EmptyWindow {
            start: timefmt::format_time(start),
            end: timefmt::format_time(end),
        });
    }
    Ok(window)
}
