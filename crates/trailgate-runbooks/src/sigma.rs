//! Sigma rules as runbooks: a rule with `logsource: {product: aws, service: cloudtrail}` is
//! translated into the same [`RunbookSpec`] a YAML runbook deserializes into, so every source,
//! the SQL compiler and every output run it unchanged. [`crate::Runbook::parse`] recognises a
//! Sigma rule by its top-level `detection`, `logsource` or `correlation` key (no runbook has them).
//!
//! Translated: named search identifiers (a map is AND of its fields, a list of maps is OR, a list
//! of values is OR or AND with `|all`), `null` (field absent), Sigma wildcards `*` `?` with `\`
//! escapes, the modifiers `contains`, `startswith`, `endswith`, `all`, `cased`, `re` (with `i`,
//! `m`, `s`), `cidr`, `exists`, `gt`, `gte`, `lt`, `lte`, `fieldref` (alone, or with `contains` /
//! `endswith`), and conditions with `and`, `or`, `not`, parentheses, `1 of x*`, `all of x*`,
//! `1 of them`, `all of them`. String matching is case-insensitive as Sigma specifies; `re` is
//! case-sensitive unless `|re|i` or `(?i)`, and `cased` makes any string match case-sensitive.
//!
//! Refused with a located error (`file:line:column: path: problem`): aggregations (`| count()`),
//! `near`, `timeframe`, correlation rules, rule collections (several YAML documents), placeholders
//! (`|expand`), encoding modifiers (`base64`, `wide`, `windash`, ...), unknown modifiers, keyword
//! (full-text) searches, and log sources other than aws/cloudtrail.
//!
//! A Sigma rule has no output shape: it gets rows with [`DEFAULT_COLUMNS`] (plus the rule's
//! `fields`) and a window of [`DEFAULT_LOOKBACK`], overridable like any runbook's window.
//! Its title ends with `(Sigma rule by <author>)`: the Detection Rule License 1.1 asks that output
//! showing matches with a rule names the rule's author, and every rendering shows the title.
//!
//! Translating instead of embedding a Sigma engine (such as the sigma-rust crate) keeps one
//! matcher: the same filter runs on files, S3 and LookupEvents, compiles to SQL, and renders
//! through the same outputs, and it needs no new dependency.

use std::fmt;
use std::path::Path;

use regex::RegexBuilder;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::error::{InvalidRunbook, Problem};
use crate::filter::{Cidr, FieldPath};
use crate::locate;
use crate::spec::{
    FilterSpec, LookupAttribute, LookupSpec, OneOrMany, OutputSpec, RowOrder, RowsSpec,
    RunbookSpec, Scalar, Severity, WindowSpec,
};

/// The row columns every translated Sigma rule shows, before the rule's own `fields`.
pub const DEFAULT_COLUMNS: [&str; 7] = [
    "eventTime",
    "eventName",
    "eventSource",
    "userIdentity.arn",
    "sourceIPAddress",
    "awsRegion",
    "errorCode",
];

/// The default window of a translated Sigma rule (Sigma rules have none).
pub const DEFAULT_LOOKBACK: &str = "P7D";

/// How many rows a translated rule keeps; the result still says how many matched.
const ROW_LIMIT: usize = 200;

/// Top-level keys that only Sigma documents have.
const SIGMA_KEYS: [&str; 3] = ["detection", "logsource", "correlation"];

/// Why a Sigma rule cannot be translated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SigmaError {
    /// The YAML does not parse or does not have a Sigma rule's shape.
    #[error("{0}")]
    Yaml(String),
    /// Several YAML documents (a Sigma rule collection, `action: global`).
    #[error("Sigma rule collections (several YAML documents in one file) are not supported")]
    Collection,
    /// A Sigma correlation rule (`correlation:`), which relates several rules' matches.
    #[error("Sigma correlation rules are not supported (runbooks match single events)")]
    Correlation,
    /// A required key is missing.
    #[error("missing `{0}`")]
    Missing(&'static str),
    /// The log source is not AWS CloudTrail.
    #[error("log source `{0}` is not supported: only `product: aws, service: cloudtrail`")]
    LogSource(String),
    /// `level` is not a Sigma level.
    #[error("unknown level `{0}` (expected informational, low, medium, high or critical)")]
    Level(String),
    /// An aggregation after `|` in the condition.
    #[error(
        "aggregation `{0}` is not supported (runbooks match single events; use `output.count_by` thresholds in a runbook)"
    )]
    Aggregation(String),
    /// The `near` temporal operator.
    #[error("the `near` operator is not supported (runbooks match single events)")]
    Near,
    /// `timeframe` in `detection` (only meaningful with aggregations).
    #[error("`timeframe` is not supported (runbooks match single events)")]
    Timeframe,
    /// The condition does not parse.
    #[error("condition: {0}")]
    Condition(String),
    /// The condition names a search identifier that `detection` does not define.
    #[error("condition: no search identifier matches `{0}`")]
    UnknownIdentifier(String),
    /// A modifier Sigma defines but this translator does not.
    #[error("Sigma modifier `{0}` is not supported")]
    UnsupportedModifier(String),
    /// A modifier Sigma does not define.
    #[error("unknown Sigma modifier `{0}`")]
    UnknownModifier(String),
    /// Two modifiers that cannot be combined.
    #[error("modifiers `{0}` and `{1}` cannot be combined")]
    ModifierConflict(String, String),
    /// Placeholders (`%name%` with `|expand`) need values from outside the rule.
    #[error("placeholders (`|expand`) are not supported")]
    Placeholder,
    /// A keyword search (values without a field), which Sigma matches anywhere in the event.
    #[error("keyword (full-text) searches are not supported: give a field")]
    Keywords,
    /// A field name that is not a dotted path.
    #[error("invalid field name `{0}`")]
    InvalidField(String),
    /// A value that does not fit its modifier (or any value).
    #[error("{0}")]
    Value(String),
    /// A `re` pattern that does not compile.
    #[error("invalid regex: {0}")]
    InvalidRegex(String),
    /// A `cidr` value that does not parse.
    #[error("invalid CIDR block `{0}`")]
    InvalidCidr(String),
    /// A search identifier, list or map is empty.
    #[error("must not be empty")]
    Empty,
}

/// A Sigma rule that could not be translated, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaFailure {
    /// File name as given to [`translate`].
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted path in the rule, e.g. `detection.selection.eventName|base64`.
    pub path: String,
    /// What is wrong.
    pub error: SigmaError,
}

impl fmt::Display for SigmaFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        InvalidRunbook::from(self.clone()).fmt(f)
    }
}

impl std::error::Error for SigmaFailure {}

impl From<SigmaFailure> for InvalidRunbook {
    fn from(failure: SigmaFailure) -> InvalidRunbook {
        InvalidRunbook {
            file: failure.file,
            line: failure.line,
            column: failure.column,
            path: failure.path,
            problem: Problem::Syntax(failure.error.to_string()),
        }
    }
}

/// Whether `text` is a Sigma rule: its first YAML document is a mapping with a top-level
/// `detection`, `logsource` or `correlation` key. Text that is not YAML is not Sigma (the runbook
/// parser then reports the syntax error).
pub fn is_sigma(text: &str) -> bool {
    let Some(document) = serde_yaml::Deserializer::from_str(text).next() else {
        return false;
    };
    match Value::deserialize(document) {
        Ok(Value::Mapping(map)) => SIGMA_KEYS.iter().any(|key| map.contains_key(*key)),
        _ => false,
    }
}

/// Translates a Sigma rule into a runbook specification; `file_name` is used in errors and gives
/// the runbook id (the file stem, lower-case, `_` → `-`).
pub fn translate(text: &str, file_name: &str) -> Result<RunbookSpec, Box<SigmaFailure>> {
    let fail = |path: Vec<Step>, error: SigmaError| {
        let (line, column) = locate(text, &path).unzip();
        Box::new(SigmaFailure {
            file: file_name.to_owned(),
            line,
            column,
            path: path_text(&path),
            error,
        })
    };
    let mut documents = serde_yaml::Deserializer::from_str(text);
    let first = documents.next().map(Value::deserialize);
    if documents.next().is_some() {
        return Err(fail(Vec::new(), SigmaError::Collection));
    }
    if let Some(Ok(Value::Mapping(map))) = &first
        && map.contains_key("correlation")
    {
        return Err(fail(key_path(&["correlation"]), SigmaError::Correlation));
    }
    let rule: SigmaRule = serde_yaml::from_str(text).map_err(|error| {
        let mut message = error.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        let location = error.location();
        Box::new(SigmaFailure {
            file: file_name.to_owned(),
            line: location.as_ref().map(serde_yaml::Location::line),
            column: location.as_ref().map(serde_yaml::Location::column),
            path: String::new(),
            error: SigmaError::Yaml(message),
        })
    })?;
    rule.translate(file_name)
        .map_err(|(path, error)| fail(path, error))
}

/// The Sigma rule keys the translation reads; other keys (custom attributes, `related`,
/// `license`, ...) are allowed, as the Sigma specification says.
#[derive(Debug, Deserialize)]
struct SigmaRule {
    title: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    modified: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    logsource: Option<LogSource>,
    #[serde(default)]
    detection: Option<Mapping>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    falsepositives: Option<TextOrList>,
    #[serde(default)]
    level: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LogSource {
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TextOrList {
    Text(String),
    List(Vec<String>),
}

/// A step of a path inside the Sigma document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

type Fail = (Vec<Step>, SigmaError);

fn key_path(keys: &[&str]) -> Vec<Step> {
    keys.iter()
        .map(|key| Step::Key((*key).to_owned()))
        .collect()
}

fn with(path: &[Step], step: Step) -> Vec<Step> {
    let mut next = path.to_vec();
    next.push(step);
    next
}

fn path_text(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

impl SigmaRule {
    fn translate(self, file_name: &str) -> Result<RunbookSpec, Fail> {
        self.check_logsource()?;
        let severity = self.severity()?;
        let detection = self
            .detection
            .as_ref()
            .ok_or((Vec::new(), SigmaError::Missing("detection")))?;
        let filter = translate_detection(detection)?;
        let mut columns: Vec<String> = DEFAULT_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        for (index, field) in self.fields.iter().enumerate() {
            if FieldPath::parse(field).is_none() {
                return Err((
                    vec![Step::Key("fields".to_owned()), Step::Index(index)],
                    SigmaError::InvalidField(field.clone()),
                ));
            }
            if !columns.contains(field) {
                columns.push(field.clone());
            }
        }
        let lookup = lookup_hint(&filter);
        Ok(RunbookSpec {
            id: runbook_id(file_name, &self.title),
            title: self.title_with_author(),
            description: self.description_text(),
            parameters: Vec::new(),
            window: WindowSpec {
                lookback: DEFAULT_LOOKBACK.to_owned(),
            },
            filter,
            output: OutputSpec {
                rows: Some(RowsSpec {
                    columns,
                    limit: ROW_LIMIT,
                    order: RowOrder::OldestFirst,
                }),
                ..OutputSpec::default()
            },
            severity,
            attack: self.techniques(),
            next_steps: self.next_steps(),
            lookup,
            references: self.reference_list(file_name),
        })
    }

    /// The Detection Rule License asks that output showing matches name the rule's author; every
    /// rendering of a result shows the title.
    fn title_with_author(&self) -> String {
        let title = self.title.trim();
        match self.author.as_deref().map(str::trim) {
            Some(author) if !author.is_empty() => format!("{title} (Sigma rule by {author})"),
            _ => format!("{title} (Sigma rule)"),
        }
    }

    fn check_logsource(&self) -> Result<(), Fail> {
        let path = key_path(&["logsource"]);
        let Some(source) = &self.logsource else {
            return Err((Vec::new(), SigmaError::Missing("logsource")));
        };
        let is = |value: &Option<String>, expected: &str| {
            value
                .as_deref()
                .is_some_and(|value| value.eq_ignore_ascii_case(expected))
        };
        if is(&source.product, "aws") && is(&source.service, "cloudtrail") {
            return Ok(());
        }
        let shown: Vec<String> = [
            ("product", &source.product),
            ("service", &source.service),
            ("category", &source.category),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|value| format!("{key}: {value}")))
        .collect();
        Err((path, SigmaError::LogSource(shown.join(", "))))
    }

    fn severity(&self) -> Result<Severity, Fail> {
        // Sigma makes `level` optional; a rule without one is treated as worth review.
        let Some(level) = &self.level else {
            return Ok(Severity::Medium);
        };
        match level.trim().to_ascii_lowercase().as_str() {
            "informational" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err((key_path(&["level"]), SigmaError::Level(level.clone()))),
        }
    }

    /// `attack.t1562.001` → `T1562.001`; tactic and other tags stay in the description.
    fn techniques(&self) -> Vec<String> {
        self.tags
            .iter()
            .filter_map(|tag| {
                let id = tag.strip_prefix("attack.")?;
                let digits = id.strip_prefix('t').or_else(|| id.strip_prefix('T'))?;
                let valid = digits
                    .split('.')
                    .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
                valid.then(|| format!("T{digits}"))
            })
            .collect()
    }

    fn description_text(&self) -> String {
        let mut text = self
            .description
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let mut about = format!("Sigma rule `{}`", self.id.as_deref().unwrap_or("(no id)"));
        if let Some(status) = &self.status {
            about.push_str(&format!(" ({status})"));
        }
        if let Some(author) = &self.author {
            about.push_str(&format!(" by {author}"));
        }
        if let Some(date) = &self.date {
            about.push_str(&format!(", {date}"));
        }
        if let Some(modified) = &self.modified {
            about.push_str(&format!(", modified {modified}"));
        }
        about.push_str(", from SigmaHQ under the Detection Rule License 1.1.");
        if !self.tags.is_empty() {
            about.push_str(&format!(" Tags: {}.", self.tags.join(", ")));
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&about);
        text
    }

    fn next_steps(&self) -> Vec<String> {
        let positives = match &self.falsepositives {
            None => Vec::new(),
            Some(TextOrList::Text(text)) => vec![text.clone()],
            Some(TextOrList::List(list)) => list.clone(),
        };
        positives
            .iter()
            .map(|text| text.trim())
            .filter(|text| !text.is_empty())
            .map(|text| format!("Rule out a known false positive: {text}"))
            .collect()
    }

    fn reference_list(&self, file_name: &str) -> Vec<String> {
        let mut references = self.references.clone();
        let file = Path::new(file_name)
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or(file_name);
        references.push(format!(
            "SigmaHQ rule {} ({file}), Detection Rule License 1.1",
            self.id.as_deref().unwrap_or("(no id)")
        ));
        references
    }
}

/// The runbook id: the file stem (or else the title) as lower-case words joined by `-`.
fn runbook_id(file_name: &str, title: &str) -> String {
    let slug = |text: &str| {
        let mut out = String::new();
        for c in text.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_end_matches('-').to_owned()
    };
    let stem = Path::new(file_name)
        .file_stem()
        .and_then(|stem| stem.to_str())
        .map(slug)
        .unwrap_or_default();
    if !stem.is_empty() {
        return stem;
    }
    let title = slug(title);
    if title.is_empty() {
        "sigma-rule".to_owned()
    } else {
        title
    }
}

fn translate_detection(detection: &Mapping) -> Result<FilterSpec, Fail> {
    let base = key_path(&["detection"]);
    let mut searches: Vec<(String, FilterSpec)> = Vec::new();
    let mut condition = None;
    for (key, value) in detection {
        let Some(name) = key.as_str() else {
            return Err((
                base.clone(),
                SigmaError::Value(format!("search identifier `{key:?}` is not text")),
            ));
        };
        let path = with(&base, Step::Key(name.to_owned()));
        match name {
            "condition" => condition = Some(value),
            "timeframe" => return Err((path, SigmaError::Timeframe)),
            _ => searches.push((name.to_owned(), search(value, &path)?)),
        }
    }
    let condition_path = with(&base, Step::Key("condition".to_owned()));
    let Some(condition) = condition else {
        return Err((base, SigmaError::Missing("detection.condition")));
    };
    match condition {
        Value::String(text) => parse_condition(text, &searches, &condition_path),
        // The Sigma 1.0 list form: several conditions, any of which may match.
        Value::Sequence(items) if !items.is_empty() => {
            let mut parts = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let path = with(&condition_path, Step::Index(index));
                let Some(text) = item.as_str() else {
                    return Err((path, SigmaError::Condition("expected text".to_owned())));
                };
                parts.push(parse_condition(text, &searches, &path)?);
            }
            Ok(any(parts))
        }
        _ => Err((
            condition_path,
            SigmaError::Condition("expected text".to_owned()),
        )),
    }
}

/// One search identifier: a map (AND of its fields) or a list of maps (OR).
fn search(value: &Value, path: &[Step]) -> Result<FilterSpec, Fail> {
    match value {
        Value::Mapping(map) => fields(map, path),
        Value::Sequence(items) if items.is_empty() => Err((path.to_vec(), SigmaError::Empty)),
        Value::Sequence(items) => {
            let mut parts = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let item_path = with(path, Step::Index(index));
                match item {
                    Value::Mapping(map) => parts.push(fields(map, &item_path)?),
                    _ => return Err((item_path, SigmaError::Keywords)),
                }
            }
            Ok(any(parts))
        }
        _ => Err((path.to_vec(), SigmaError::Keywords)),
    }
}

fn fields(map: &Mapping, path: &[Step]) -> Result<FilterSpec, Fail> {
    if map.is_empty() {
        return Err((path.to_vec(), SigmaError::Empty));
    }
    let mut parts = Vec::new();
    for (key, value) in map {
        let Some(key) = key.as_str() else {
            return Err((path.to_vec(), SigmaError::InvalidField(format!("{key:?}"))));
        };
        parts.push(field_item(
            key,
            value,
            &with(path, Step::Key(key.to_owned())),
        )?);
    }
    Ok(all(parts))
}

/// What a field item compares, from its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Equals,
    Contains,
    StartsWith,
    EndsWith,
    Regex,
    Cidr,
    Exists,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Equals => "",
            Kind::Contains => "contains",
            Kind::StartsWith => "startswith",
            Kind::EndsWith => "endswith",
            Kind::Regex => "re",
            Kind::Cidr => "cidr",
            Kind::Exists => "exists",
            Kind::Gt => "gt",
            Kind::Gte => "gte",
            Kind::Lt => "lt",
            Kind::Lte => "lte",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Modifiers {
    kind: Kind,
    all: bool,
    cased: bool,
    fieldref: bool,
    regex_insensitive: bool,
    regex_multiline: bool,
    regex_dotall: bool,
}

impl Modifiers {
    fn parse(names: &[&str]) -> Result<Modifiers, SigmaError> {
        let mut modifiers = Modifiers {
            kind: Kind::Equals,
            all: false,
            cased: false,
            fieldref: false,
            regex_insensitive: false,
            regex_multiline: false,
            regex_dotall: false,
        };
        for name in names {
            let kind = match *name {
                "contains" => Kind::Contains,
                "startswith" => Kind::StartsWith,
                "endswith" => Kind::EndsWith,
                "re" => Kind::Regex,
                "cidr" => Kind::Cidr,
                "exists" => Kind::Exists,
                "gt" => Kind::Gt,
                "gte" => Kind::Gte,
                "lt" => Kind::Lt,
                "lte" => Kind::Lte,
                "all" => {
                    modifiers.all = true;
                    continue;
                }
                "cased" => {
                    modifiers.cased = true;
                    continue;
                }
                "fieldref" => {
                    modifiers.fieldref = true;
                    continue;
                }
                "i" | "m" | "s" if modifiers.kind == Kind::Regex => {
                    match *name {
                        "i" => modifiers.regex_insensitive = true,
                        "m" => modifiers.regex_multiline = true,
                        _ => modifiers.regex_dotall = true,
                    }
                    continue;
                }
                "expand" => return Err(SigmaError::Placeholder),
                "base64" | "base64offset" | "utf16" | "utf16le" | "utf16be" | "wide"
                | "windash" => return Err(SigmaError::UnsupportedModifier((*name).to_owned())),
                other => return Err(SigmaError::UnknownModifier(other.to_owned())),
            };
            if modifiers.kind != Kind::Equals {
                return Err(SigmaError::ModifierConflict(
                    modifiers.kind.name().to_owned(),
                    (*name).to_owned(),
                ));
            }
            modifiers.kind = kind;
        }
        if modifiers.fieldref
            && !matches!(
                modifiers.kind,
                Kind::Equals | Kind::Contains | Kind::EndsWith
            )
        {
            return Err(SigmaError::UnsupportedModifier(format!(
                "fieldref|{}",
                modifiers.kind.name()
            )));
        }
        if modifiers.cased
            && matches!(
                modifiers.kind,
                Kind::Cidr | Kind::Exists | Kind::Gt | Kind::Gte | Kind::Lt | Kind::Lte
            )
        {
            return Err(SigmaError::ModifierConflict(
                "cased".to_owned(),
                modifiers.kind.name().to_owned(),
            ));
        }
        Ok(modifiers)
    }

    fn case_flag(&self) -> Option<bool> {
        self.cased.then_some(true)
    }
}

/// `field|mod|mod: value-or-list`.
fn field_item(key: &str, value: &Value, path: &[Step]) -> Result<FilterSpec, Fail> {
    let fail = |error: SigmaError| (path.to_vec(), error);
    let mut parts = key.split('|');
    let field = parts.next().unwrap_or_default();
    if field.is_empty() {
        return Err(fail(SigmaError::Keywords));
    }
    if FieldPath::parse(field).is_none() {
        return Err(fail(SigmaError::InvalidField(field.to_owned())));
    }
    let names: Vec<&str> = parts.collect();
    let modifiers = Modifiers::parse(&names).map_err(fail)?;
    let values: Vec<(Vec<Step>, &Value)> = match value {
        Value::Sequence(items) if items.is_empty() => return Err(fail(SigmaError::Empty)),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| (with(path, Step::Index(index)), item))
            .collect(),
        other => vec![(path.to_vec(), other)],
    };
    if modifiers.kind == Kind::Exists && values.len() > 1 {
        return Err(fail(SigmaError::Value(
            "`exists` takes one value, `true` or `false`".to_owned(),
        )));
    }
    let mut leaves = Vec::new();
    for (value_path, value) in values {
        leaves.push(leaf(field, &modifiers, value).map_err(|error| (value_path, error))?);
    }
    if modifiers.all {
        Ok(all(leaves))
    } else {
        Ok(any_of_values(leaves))
    }
}

/// One value of a field item as a runbook condition.
fn leaf(field: &str, modifiers: &Modifiers, value: &Value) -> Result<FilterSpec, SigmaError> {
    let spec = match value_text(value)? {
        None => null_value(modifiers)?,
        Some(text) => {
            if text.contains("{{") {
                // Runbook values treat `{{ name }}` as a parameter reference.
                return Err(SigmaError::Value(format!(
                    "value `{text}` contains `{{{{`, which runbooks read as a parameter reference"
                )));
            }
            if modifiers.fieldref {
                field_reference(text, modifiers)?
            } else {
                match modifiers.kind {
                    Kind::Exists => exists_value(value, &text)?,
                    Kind::Gt | Kind::Gte | Kind::Lt | Kind::Lte => {
                        comparison(value, &text, modifiers.kind)?
                    }
                    Kind::Cidr => cidr(text)?,
                    Kind::Regex => regex_match(text, modifiers)?,
                    Kind::Equals | Kind::Contains | Kind::StartsWith | Kind::EndsWith => {
                        equality(value, text, modifiers)
                    }
                }
            }
        }
    };
    Ok(FilterSpec {
        field: Some(field.to_owned()),
        ..spec
    })
}

/// A scalar value's text; `None` for `null`.
fn value_text(value: &Value) -> Result<Option<String>, SigmaError> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
            return Err(SigmaError::Value(
                "a value must be text, a number, a boolean or null".to_owned(),
            ));
        }
    }))
}

/// Sigma's `null`: the field is absent (or null); only a plain equality can ask for it.
fn null_value(modifiers: &Modifiers) -> Result<FilterSpec, SigmaError> {
    if modifiers.kind == Kind::Equals && !modifiers.fieldref {
        Ok(FilterSpec {
            exists: Some(false),
            ..FilterSpec::default()
        })
    } else {
        Err(SigmaError::Value(format!(
            "`null` cannot be used with `{}`",
            modifiers.kind.name()
        )))
    }
}

/// `|fieldref`: the value names another field.
fn field_reference(text: String, modifiers: &Modifiers) -> Result<FilterSpec, SigmaError> {
    if FieldPath::parse(&text).is_none() {
        return Err(SigmaError::InvalidField(text));
    }
    let mut spec = FilterSpec {
        case_sensitive: modifiers.case_flag(),
        ..FilterSpec::default()
    };
    match modifiers.kind {
        Kind::Contains => spec.contains_field = Some(text),
        Kind::EndsWith => spec.suffix_field = Some(text),
        _ => spec.equals_field = Some(text),
    }
    Ok(spec)
}

fn exists_value(value: &Value, text: &str) -> Result<FilterSpec, SigmaError> {
    let expected = match value {
        Value::Bool(flag) => *flag,
        Value::String(text) if text.eq_ignore_ascii_case("true") => true,
        Value::String(text) if text.eq_ignore_ascii_case("false") => false,
        _ => {
            return Err(SigmaError::Value(format!(
                "`exists` takes `true` or `false`, not `{text}`"
            )));
        }
    };
    Ok(FilterSpec {
        exists: Some(expected),
        ..FilterSpec::default()
    })
}

/// `|gt`, `|gte`, `|lt`, `|lte`: the value must be a number.
fn comparison(value: &Value, text: &str, kind: Kind) -> Result<FilterSpec, SigmaError> {
    let bound = match value {
        Value::Number(number) => number_scalar(number),
        _ if text.trim().parse::<f64>().is_ok() => Scalar::Text(text.trim().to_owned()),
        _ => return Err(SigmaError::Value(format!("`{text}` is not a number"))),
    };
    let mut spec = FilterSpec::default();
    match kind {
        Kind::Gt => spec.gt = Some(bound),
        Kind::Gte => spec.gte = Some(bound),
        Kind::Lt => spec.lt = Some(bound),
        _ => spec.lte = Some(bound),
    }
    Ok(spec)
}

fn cidr(text: String) -> Result<FilterSpec, SigmaError> {
    if Cidr::parse(&text).is_none() {
        return Err(SigmaError::InvalidCidr(text));
    }
    Ok(FilterSpec {
        cidr: Some(OneOrMany::One(Scalar::Text(text))),
        ..FilterSpec::default()
    })
}

/// `|re` with its `m`, `s` and `i` sub-modifiers, checked to compile.
fn regex_match(text: String, modifiers: &Modifiers) -> Result<FilterSpec, SigmaError> {
    let mut flags = String::new();
    if modifiers.regex_multiline {
        flags.push('m');
    }
    if modifiers.regex_dotall {
        flags.push('s');
    }
    let pattern = if flags.is_empty() {
        text
    } else {
        format!("(?{flags}){text}")
    };
    // Sigma's `re` is case-sensitive unless `|re|i` (or `(?i)` in the pattern).
    let case_sensitive = !modifiers.regex_insensitive;
    RegexBuilder::new(&pattern)
        .case_insensitive(!case_sensitive)
        .build()
        .map_err(|error| SigmaError::InvalidRegex(error.to_string()))?;
    Ok(FilterSpec {
        regex: Some(pattern),
        case_sensitive: case_sensitive.then_some(true),
        ..FilterSpec::default()
    })
}

/// Plain values, `|contains`, `|startswith` and `|endswith`.
fn equality(value: &Value, text: String, modifiers: &Modifiers) -> FilterSpec {
    if modifiers.kind == Kind::Equals {
        // Numbers compare as numbers and booleans as `true`/`false`, as the engine does.
        let scalar = match value {
            Value::Bool(flag) => Some(Scalar::Bool(*flag)),
            Value::Number(number) => Some(number_scalar(number)),
            _ => None,
        };
        if let Some(scalar) = scalar {
            return FilterSpec {
                equals: Some(scalar),
                case_sensitive: modifiers.case_flag(),
                ..FilterSpec::default()
            };
        }
    }
    string_match(&text, modifiers)
}

fn number_scalar(number: &serde_yaml::Number) -> Scalar {
    match number.as_i64() {
        Some(int) => Scalar::Int(int),
        None => Scalar::Float(number.as_f64().unwrap_or(f64::NAN)),
    }
}

/// A piece of a Sigma string value after wildcard parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    One,
}

/// Splits a Sigma value into text and wildcards: `*` and `?` are wildcards, `\*`, `\?` and `\\`
/// are the literal characters, and any other backslash is itself.
fn wildcard_pieces(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    let flush = |literal: &mut String, pieces: &mut Vec<Piece>| {
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(literal)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '?' | '\\')) => {
                    literal.push(next);
                    chars.next();
                }
                _ => literal.push('\\'),
            },
            '*' => {
                flush(&mut literal, &mut pieces);
                pieces.push(Piece::Star);
            }
            '?' => {
                flush(&mut literal, &mut pieces);
                pieces.push(Piece::One);
            }
            other => literal.push(other),
        }
    }
    flush(&mut literal, &mut pieces);
    pieces
}

/// A string value with its match modifier: equals, prefix, suffix or contains when the wildcards
/// allow it, `exists` for a value that is only `*`, and an anchored regex otherwise.
fn string_match(text: &str, modifiers: &Modifiers) -> FilterSpec {
    let mut pieces = Vec::new();
    if matches!(modifiers.kind, Kind::Contains | Kind::EndsWith) {
        pieces.push(Piece::Star);
    }
    pieces.extend(wildcard_pieces(text));
    if matches!(modifiers.kind, Kind::Contains | Kind::StartsWith) {
        pieces.push(Piece::Star);
    }
    let lead = pieces
        .iter()
        .take_while(|piece| **piece == Piece::Star)
        .count();
    let trail = pieces[lead..]
        .iter()
        .rev()
        .take_while(|piece| **piece == Piece::Star)
        .count();
    let middle = &pieces[lead..pieces.len() - trail];
    let case_sensitive = modifiers.case_flag();
    let value = |text: &str| Scalar::Text(text.to_owned());
    match middle {
        // `*` matches any value; a missing field has none.
        [] if lead + trail > 0 => FilterSpec {
            exists: Some(true),
            ..FilterSpec::default()
        },
        [] => FilterSpec {
            equals: Some(value("")),
            case_sensitive,
            ..FilterSpec::default()
        },
        [Piece::Text(text)] => {
            let mut spec = FilterSpec {
                case_sensitive,
                ..FilterSpec::default()
            };
            match (lead > 0, trail > 0) {
                (false, false) => spec.equals = Some(value(text)),
                (false, true) => spec.prefix = Some(OneOrMany::One(value(text))),
                (true, false) => spec.suffix = Some(OneOrMany::One(value(text))),
                (true, true) => spec.contains = Some(OneOrMany::One(value(text))),
            }
            spec
        }
        _ => {
            let mut pattern = String::from("(?s)^");
            for piece in &pieces {
                match piece {
                    Piece::Text(text) => pattern.push_str(&escape_regex(text)),
                    Piece::Star => pattern.push_str(".*"),
                    Piece::One => pattern.push('.'),
                }
            }
            pattern.push('$');
            FilterSpec {
                regex: Some(pattern),
                case_sensitive,
                ..FilterSpec::default()
            }
        }
    }
}

/// Escapes regex metacharacters only: the pattern must mean the same to Rust's `regex`, RE2
/// (DuckDB) and Java/Presto (Athena), and not every dialect accepts escaped punctuation.
fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every part must match; a single part is returned as is.
fn all(mut parts: Vec<FilterSpec>) -> FilterSpec {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    FilterSpec {
        all: Some(parts),
        ..FilterSpec::default()
    }
}

/// At least one part must match; a single part is returned as is.
fn any(mut parts: Vec<FilterSpec>) -> FilterSpec {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    FilterSpec {
        any: Some(parts),
        ..FilterSpec::default()
    }
}

/// The OR of a value list; plain equalities on one field become one `any_of`.
fn any_of_values(parts: Vec<FilterSpec>) -> FilterSpec {
    let same_case = parts
        .windows(2)
        .all(|pair| pair[0].case_sensitive == pair[1].case_sensitive);
    if parts.len() > 1 && same_case && parts.iter().all(is_plain_equals) {
        let field = parts[0].field.clone();
        let case_sensitive = parts[0].case_sensitive;
        return FilterSpec {
            field,
            any_of: Some(parts.into_iter().filter_map(|part| part.equals).collect()),
            case_sensitive,
            ..FilterSpec::default()
        };
    }
    any(parts)
}

/// Whether a node is `field` + `equals` (+ `case_sensitive`) and nothing else.
fn is_plain_equals(part: &FilterSpec) -> bool {
    part.equals.is_some()
        && serde_json::to_value(part).is_ok_and(|value| {
            value.as_object().is_some_and(|map| {
                map.keys()
                    .all(|key| matches!(key.as_str(), "field" | "equals" | "case_sensitive"))
            })
        })
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Ident(String),
    /// `1 of x` (`all` false) or `all of x`; `None` is `them`.
    Of {
        all: bool,
        pattern: Option<String>,
    },
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, SigmaError> {
    if let Some((_, aggregation)) = text.split_once('|') {
        return Err(SigmaError::Aggregation(format!("| {}", aggregation.trim())));
    }
    let mut tokens = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, tokens: &mut Vec<Token>| {
        if !word.is_empty() {
            tokens.push(Token::Word(std::mem::take(word)));
        }
    };
    for c in text.chars() {
        match c {
            '(' | ')' => {
                flush(&mut word, &mut tokens);
                tokens.push(if c == '(' { Token::Open } else { Token::Close });
            }
            c if c.is_whitespace() => flush(&mut word, &mut tokens),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut tokens);
    if tokens
        .iter()
        .any(|token| matches!(token, Token::Word(word) if word.eq_ignore_ascii_case("near")))
    {
        return Err(SigmaError::Near);
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.position) {
            Some(Token::Word(word)) => Some(word.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Expr, SigmaError> {
        let mut parts = vec![self.and()?];
        while self.peek_word().as_deref() == Some("or") {
            self.position += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, SigmaError> {
        let mut parts = vec![self.not()?];
        while self.peek_word().as_deref() == Some("and") {
            self.position += 1;
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn not(&mut self) -> Result<Expr, SigmaError> {
        if self.peek_word().as_deref() == Some("not") {
            self.position += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SigmaError> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        match token {
            None => Err(SigmaError::Condition("unexpected end".to_owned())),
            Some(Token::Close) => Err(SigmaError::Condition("unexpected `)`".to_owned())),
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.tokens.get(self.position) {
                    Some(Token::Close) => {
                        self.position += 1;
                        Ok(inner)
                    }
                    _ => Err(SigmaError::Condition("missing `)`".to_owned())),
                }
            }
            Some(Token::Word(word)) => {
                let lower = word.to_ascii_lowercase();
                if matches!(lower.as_str(), "and" | "or" | "of" | "them") {
                    return Err(SigmaError::Condition(format!("unexpected `{word}`")));
                }
                if self.peek_word().as_deref() != Some("of") {
                    return Ok(Expr::Ident(word));
                }
                let all = match lower.as_str() {
                    "1" | "any" => false,
                    "all" => true,
                    other => {
                        return Err(SigmaError::Condition(format!(
                            "`{other} of` is not supported (use `1 of` or `all of`)"
                        )));
                    }
                };
                self.position += 1;
                match self.tokens.get(self.position).cloned() {
                    Some(Token::Word(target)) => {
                        self.position += 1;
                        let pattern = (!target.eq_ignore_ascii_case("them")).then_some(target);
                        Ok(Expr::Of { all, pattern })
                    }
                    _ => Err(SigmaError::Condition(format!(
                        "`{word} of` needs a name pattern or `them`"
                    ))),
                }
            }
        }
    }
}

fn parse_condition(
    text: &str,
    searches: &[(String, FilterSpec)],
    path: &[Step],
) -> Result<FilterSpec, Fail> {
    let fail = |error: SigmaError| (path.to_vec(), error);
    let mut parser = Parser {
        tokens: tokenize(text).map_err(fail)?,
        position: 0,
    };
    let expr = parser.or().map_err(fail)?;
    if let Some(token) = parser.tokens.get(parser.position) {
        let shown = match token {
            Token::Open => "(".to_owned(),
            Token::Close => ")".to_owned(),
            Token::Word(word) => word.clone(),
        };
        return Err(fail(SigmaError::Condition(format!("unexpected `{shown}`"))));
    }
    build(&expr, searches).map_err(fail)
}

fn build(expr: &Expr, searches: &[(String, FilterSpec)]) -> Result<FilterSpec, SigmaError> {
    match expr {
        Expr::Ident(name) => searches
            .iter()
            .find(|(search, _)| search == name)
            .map(|(_, spec)| spec.clone())
            .ok_or_else(|| SigmaError::UnknownIdentifier(name.clone())),
        Expr::Of {
            all: every,
            pattern,
        } => {
            let matched: Vec<FilterSpec> = searches
                .iter()
                .filter(|(name, _)| match pattern {
                    // `them` leaves out identifiers starting with `_`, as the specification says.
                    None => !name.starts_with('_'),
                    Some(pattern) => glob(pattern, name),
                })
                .map(|(_, spec)| spec.clone())
                .collect();
            if matched.is_empty() {
                return Err(SigmaError::UnknownIdentifier(
                    pattern.clone().unwrap_or_else(|| "them".to_owned()),
                ));
            }
            Ok(if *every { all(matched) } else { any(matched) })
        }
        Expr::Not(inner) => Ok(FilterSpec {
            not: Some(Box::new(build(inner, searches)?)),
            ..FilterSpec::default()
        }),
        Expr::And(parts) => Ok(all(parts
            .iter()
            .map(|part| build(part, searches))
            .collect::<Result<_, _>>()?)),
        Expr::Or(parts) => Ok(any(parts
            .iter()
            .map(|part| build(part, searches))
            .collect::<Result<_, _>>()?)),
    }
}

/// Matches a search identifier against a pattern where `*` is any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == name;
    };
    let Some(mut remaining) = name.strip_prefix(head) else {
        return false;
    };
    let mut parts: Vec<&str> = rest.split('*').collect();
    let last = parts.pop().unwrap_or_default();
    for part in parts {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// The LookupEvents hint: the event names every match must have (else the event sources), when
/// the filter pins them with exact values. Sigma compares case-insensitively and LookupEvents
/// exactly; SigmaHQ rules write names in CloudTrail's own spelling.
fn lookup_hint(filter: &FilterSpec) -> Option<LookupSpec> {
    [
        ("eventName", LookupAttribute::EventName),
        ("eventSource", LookupAttribute::EventSource),
    ]
    .into_iter()
    .find_map(|(field, attribute)| {
        let values = required_values(filter, field)?;
        Some(LookupSpec { attribute, values })
    })
}

/// Values one of which `field` must equal for `filter` to match, if the filter says so.
fn required_values(filter: &FilterSpec, field: &str) -> Option<Vec<String>> {
    if let Some(parts) = &filter.all {
        return parts.iter().find_map(|part| required_values(part, field));
    }
    if let Some(parts) = &filter.any {
        let mut values = Vec::new();
        for part in parts {
            for value in required_values(part, field)? {
                if !values.contains(&value) {
                    values.push(value);
                }
            }
        }
        return Some(values);
    }
    if filter.field.as_deref() != Some(field) || filter.case_sensitive == Some(true) {
        return None;
    }
    let texts = |values: &[Scalar]| values.iter().map(Scalar::to_text).collect();
    if let Some(value) = &filter.equals {
        return Some(texts(std::slice::from_ref(value)));
    }
    filter.any_of.as_deref().map(texts)
}

fn locate(text: &str, path: &[Step]) -> Option<(usize, usize)> {
    let steps: Vec<locate::Step<'_>> = path
        .iter()
        .map(|step| match step {
            Step::Key(key) => locate::Step::Key(key),
            Step::Index(index) => locate::Step::Index(*index),
        })
        .collect();
    locate::locate(text, &steps)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::filter::{self, Bound, Matcher};

    /// A rule around a `detection` block (indented by the caller as it would be in the file).
    fn rule(detection: &str) -> String {
        format!(
            "title: Test rule\nid: 11111111-2222-3333-4444-555555555555\nstatus: test\n\
             logsource:\n    product: aws\n    service: cloudtrail\n\
             detection:\n{detection}\nlevel: high\n"
        )
    }

    fn translated(detection: &str) -> RunbookSpec {
        match translate(&rule(detection), "rules/test_rule.yml") {
            Ok(spec) => spec,
            Err(failure) => panic!("does not translate: {failure}"),
        }
    }

    fn matcher(detection: &str) -> Matcher {
        let spec = translated(detection);
        filter::compile(&spec.filter, &Bound::new(), &BTreeMap::new()).expect("compiles")
    }

    fn failure(text: &str) -> SigmaFailure {
        match translate(text, "rules/test_rule.yml") {
            Ok(spec) => panic!("translated: {:?}", spec.filter),
            Err(failure) => *failure,
        }
    }

    fn detection_failure(detection: &str) -> SigmaFailure {
        failure(&rule(detection))
    }

    fn login() -> serde_json::Value {
        json!({
            "eventTime": "2023-07-10T12:23:15Z",
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "Mozilla/5.0 (S3 Browser 11.4)",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/alice", "userName": "alice"},
            "additionalEventData": {"MFAUsed": "No"},
            "responseElements": {"ConsoleLogin": "Success"},
            "requestParameters": {"userName": "alice", "durationSeconds": 3600},
            "errorCode": null
        })
    }

    #[test]
    fn is_sigma_recognises_sigma_keys_only() {
        assert!(is_sigma(&rule(
            "    selection:\n        eventName: X\n    condition: selection"
        )));
        assert!(is_sigma("title: x\ncorrelation:\n    type: event_count\n"));
        assert!(!is_sigma(
            "id: x\ntitle: y\nfilter: {field: a, equals: b}\n"
        ));
        assert!(!is_sigma("not: [valid"));
    }

    #[test]
    fn a_map_is_and_and_case_is_ignored() {
        let matcher = matcher(
            "    selection:\n        eventName: 'consolelogin'\n        additionalEventData.MFAUsed: 'NO'\n    condition: selection",
        );
        assert!(matcher.matches(&login()));
        let mut other = login();
        other["additionalEventData"]["MFAUsed"] = json!("Yes");
        assert!(!matcher.matches(&other));
    }

    #[test]
    fn a_list_of_values_is_or_and_becomes_any_of() {
        let spec = translated(
            "    selection:\n        eventName:\n            - StopLogging\n            - ConsoleLogin\n    condition: selection",
        );
        assert_eq!(
            spec.filter.any_of,
            Some(vec![
                Scalar::Text("StopLogging".to_owned()),
                Scalar::Text("ConsoleLogin".to_owned())
            ])
        );
        let lookup = spec.lookup.expect("lookup hint");
        assert_eq!(lookup.attribute, LookupAttribute::EventName);
        assert_eq!(lookup.values, ["StopLogging", "ConsoleLogin"]);
    }

    #[test]
    fn a_list_of_maps_is_or() {
        let matcher = matcher(
            "    selection:\n        - eventName: StopLogging\n        - sourceIPAddress: 203.0.113.7\n    condition: selection",
        );
        assert!(matcher.matches(&login()));
    }

    #[test]
    fn string_modifiers_and_all() {
        let record = login();
        let check = |item: &str| {
            matcher(&format!(
                "    selection:\n        {item}\n    condition: selection"
            ))
            .matches(&record)
        };
        assert!(check("userAgent|contains: 's3 browser'"));
        assert!(check("userIdentity.arn|startswith: 'ARN:AWS:IAM'"));
        assert!(check("userIdentity.arn|endswith: '/Alice'"));
        assert!(!check("userIdentity.arn|endswith: '/bob'"));
        assert!(check("userAgent|contains|all: ['mozilla', 's3 browser']"));
        assert!(!check("userAgent|contains|all: ['mozilla', 'curl']"));
        assert!(check("userAgent|contains: ['curl', 's3 browser']"));
        // `contains` on an object searches its JSON text, as Sigma's `requestParameters|contains`.
        assert!(check(
            "requestParameters|contains: '\"userName\":\"alice\"'"
        ));
        // `cased` opts out of case folding.
        assert!(!check("userAgent|contains|cased: 's3 browser'"));
        assert!(check("userAgent|contains|cased: 'S3 Browser'"));
    }

    #[test]
    fn wildcards_translate_to_the_narrowest_operator() {
        let spec = |item: &str| {
            translated(&format!(
                "    selection:\n        {item}\n    condition: selection"
            ))
            .filter
        };
        assert_eq!(
            spec("userAgent: 'aws-cli*'").prefix,
            Some(OneOrMany::One(Scalar::Text("aws-cli".to_owned())))
        );
        assert_eq!(
            spec("userAgent: '*boto3'").suffix,
            Some(OneOrMany::One(Scalar::Text("boto3".to_owned())))
        );
        assert_eq!(
            spec("userAgent: '*boto3*'").contains,
            Some(OneOrMany::One(Scalar::Text("boto3".to_owned())))
        );
        assert_eq!(spec("errorMessage|contains: '*'").exists, Some(true));
        assert_eq!(
            spec("userAgent: 'a\\*b'").equals,
            Some(Scalar::Text("a*b".to_owned()))
        );
        assert_eq!(
            spec("userAgent: 'C:\\Windows'").equals,
            Some(Scalar::Text("C:\\Windows".to_owned()))
        );
        assert_eq!(
            spec("userAgent: 'Moz*S3?Browser*'").regex.as_deref(),
            Some("(?s)^Moz.*S3.Browser.*$")
        );
        assert_eq!(
            spec("userAgent|contains: 'a.b*c'").regex.as_deref(),
            Some("(?s)^.*a\\.b.*c.*$")
        );
        let record = login();
        let check = |item: &str| {
            matcher(&format!(
                "    selection:\n        {item}\n    condition: selection"
            ))
            .matches(&record)
        };
        assert!(check("userAgent: 'mozilla*s3?browser*'"));
        assert!(!check("userAgent: 'mozilla*s3?browser'"));
        assert!(check("requestParameters.userName: 'al?ce'"));
    }

    #[test]
    fn null_means_absent_and_numbers_and_booleans_compare_as_values() {
        let record = login();
        let check = |item: &str| {
            matcher(&format!(
                "    selection:\n        {item}\n    condition: selection"
            ))
            .matches(&record)
        };
        assert!(check("errorCode: null"));
        assert!(check("missing.field: null"));
        assert!(!check("eventName: null"));
        assert!(check("requestParameters.durationSeconds: 3600"));
        assert!(check("requestParameters.durationSeconds: '3600'"));
        assert!(check("errorCode: [null, 'Success']"));
    }

    #[test]
    fn regex_is_case_sensitive_unless_i() {
        let record = login();
        let check = |item: &str| {
            matcher(&format!(
                "    selection:\n        {item}\n    condition: selection"
            ))
            .matches(&record)
        };
        assert!(check("userIdentity.arn|re: ':user/al.ce$'"));
        assert!(!check("userIdentity.arn|re: ':USER/alice$'"));
        assert!(check("userIdentity.arn|re|i: ':USER/alice$'"));
        assert!(check("userIdentity.arn|re: '(?i):USER/alice$'"));
        let spec = translated(
            "    selection:\n        userAgent|re|m|s: '^a.b'\n    condition: selection",
        );
        assert_eq!(spec.filter.regex.as_deref(), Some("(?ms)^a.b"));
        assert_eq!(spec.filter.case_sensitive, Some(true));
    }

    #[test]
    fn cidr_exists_and_numeric_comparisons() {
        let record = login();
        let check = |item: &str| {
            matcher(&format!(
                "    selection:\n        {item}\n    condition: selection"
            ))
            .matches(&record)
        };
        assert!(check("sourceIPAddress|cidr: '203.0.113.0/24'"));
        assert!(check(
            "sourceIPAddress|cidr: ['10.0.0.0/8', '203.0.113.0/24']"
        ));
        assert!(!check("sourceIPAddress|cidr: '10.0.0.0/8'"));
        assert!(check("userAgent|exists: true"));
        assert!(check("missing|exists: false"));
        assert!(check("requestParameters.durationSeconds|gt: 3599"));
        assert!(check("requestParameters.durationSeconds|gte: 3600"));
        assert!(check("requestParameters.durationSeconds|lt: '3601'"));
        assert!(!check("requestParameters.durationSeconds|lte: 3599.5"));
    }

    #[test]
    fn fieldref_compares_two_fields() {
        let record = login();
        let check = |item: &str| {
            matcher(&format!(
                "    selection:\n        {item}\n    condition: selection"
            ))
            .matches(&record)
        };
        assert!(check(
            "userIdentity.userName|fieldref: requestParameters.userName"
        ));
        assert!(!check(
            "userIdentity.arn|fieldref: requestParameters.userName"
        ));
        assert!(check(
            "userIdentity.arn|fieldref|endswith: requestParameters.userName"
        ));
        assert!(check(
            "userIdentity.arn|fieldref|contains: requestParameters.userName"
        ));
        let spec = translated(
            "    selection:\n        userIdentity.arn|fieldref|cased: requestParameters.userName\n    condition: selection",
        );
        assert_eq!(
            spec.filter.equals_field.as_deref(),
            Some("requestParameters.userName")
        );
        assert_eq!(spec.filter.case_sensitive, Some(true));
    }

    #[test]
    fn conditions_and_or_not_parentheses_and_quantifiers() {
        let detection = |condition: &str| {
            format!(
                "    selection_login:\n        eventName: ConsoleLogin\n    selection_trail:\n        eventName: StopLogging\n    filter_alice:\n        userIdentity.userName: alice\n    _helper:\n        eventName: Nothing\n    condition: {condition}"
            )
        };
        let record = login();
        let check = |condition: &str| matcher(&detection(condition)).matches(&record);
        assert!(check("selection_login and filter_alice"));
        assert!(!check("selection_login and not filter_alice"));
        assert!(check("selection_trail or selection_login"));
        assert!(!check(
            "selection_trail or (selection_login and not filter_alice)"
        ));
        assert!(check("not selection_trail and selection_login"));
        assert!(check("1 of selection_*"));
        assert!(!check("all of selection_*"));
        assert!(check("any of selection_*"));
        assert!(check("1 of them"));
        // `them` leaves out `_helper`, which would fail `all of`.
        assert!(!check("all of them"));
        assert!(check("all of filter* and 1 of selection_*"));
        assert!(check("selection_login AND NOT selection_trail"));
        // Precedence: `not` binds tighter than `and`, `and` than `or`.
        assert!(check("selection_trail and selection_login or filter_alice"));
    }

    #[test]
    fn the_sigma_1_list_form_of_condition_is_or() {
        let matcher = matcher(
            "    a:\n        eventName: StopLogging\n    b:\n        eventName: ConsoleLogin\n    condition:\n        - a\n        - b",
        );
        assert!(matcher.matches(&login()));
    }

    #[test]
    fn metadata_maps_to_runbook_fields() {
        let text = "title: Backdoor\nid: abc\nstatus: test\ndescription: Finds things.\nauthor: someone\ndate: 2020-01-21\nmodified: 2022-10-09\nreferences:\n    - https://example.com\ntags:\n    - attack.persistence\n    - attack.t1098\n    - attack.T1562.001\n    - cve.2021-1234\nlogsource:\n    product: AWS\n    service: CloudTrail\ndetection:\n    selection:\n        eventSource: iam.amazonaws.com\n        eventName|startswith: Create\n    condition: selection\nfields:\n    - requestParameters.userName\nfalsepositives:\n    - Admins\n    - ''\nlevel: informational\n";
        let spec = translate(text, "x/aws_iam_backdoor.yml").expect("translates");
        assert_eq!(spec.id, "aws-iam-backdoor");
        assert_eq!(spec.title, "Backdoor (Sigma rule by someone)");
        assert_eq!(spec.severity, Severity::Info);
        assert_eq!(spec.attack, ["T1098", "T1562.001"]);
        assert_eq!(spec.next_steps, ["Rule out a known false positive: Admins"]);
        assert!(spec.description.starts_with(
            "Finds things.\n\nSigma rule `abc` (test) by someone, 2020-01-21, modified 2022-10-09"
        ));
        assert!(spec.description.contains("cve.2021-1234"));
        assert_eq!(spec.references[0], "https://example.com");
        assert!(
            spec.references[1].contains("abc (aws_iam_backdoor.yml), Detection Rule License 1.1")
        );
        assert_eq!(spec.window.lookback, DEFAULT_LOOKBACK);
        let rows = spec.output.rows.expect("rows");
        assert_eq!(rows.columns.len(), DEFAULT_COLUMNS.len() + 1);
        assert_eq!(
            rows.columns.last().map(String::as_str),
            Some("requestParameters.userName")
        );
        // The event name is a prefix, so the hint falls back to the event source.
        let lookup = spec.lookup.expect("hint");
        assert_eq!(lookup.attribute, LookupAttribute::EventSource);
        assert_eq!(lookup.values, ["iam.amazonaws.com"]);
        let levels = [
            ("low", Severity::Low),
            ("medium", Severity::Medium),
            ("critical", Severity::Critical),
        ];
        for (level, severity) in levels {
            let spec =
                translate(&text.replace("informational", level), "a.yml").expect("translates");
            assert_eq!(spec.severity, severity);
        }
        let no_level = text.replace("level: informational\n", "");
        assert_eq!(
            translate(&no_level, "a.yml").expect("translates").severity,
            Severity::Medium
        );
        // Without a usable file stem the title names the runbook.
        assert_eq!(translate(text, "").expect("translates").id, "backdoor");
    }

    #[test]
    fn lookup_hint_needs_every_branch_to_pin_the_event_name() {
        let spec = translated(
            "    a:\n        eventName: AssumeRoleWithSAML\n    b:\n        eventName: UpdateSAMLProvider\n    condition: 1 of them",
        );
        assert_eq!(
            spec.lookup.expect("hint").values,
            ["AssumeRoleWithSAML", "UpdateSAMLProvider"]
        );
        let spec = translated(
            "    a:\n        eventName: AssumeRoleWithSAML\n    b:\n        userAgent: x\n    condition: 1 of them",
        );
        assert!(spec.lookup.is_none());
    }

    /// The error, its location and its path for a detection snippet.
    #[track_caller]
    fn check_error(detection: &str, error: SigmaError, line: usize, path: &str) {
        let failure = detection_failure(detection);
        assert_eq!(failure.error, error, "{failure}");
        assert_eq!(failure.line, Some(line), "{failure}");
        assert_eq!(failure.path, path, "{failure}");
        assert_eq!(failure.file, "rules/test_rule.yml");
        assert!(
            failure
                .to_string()
                .starts_with(&format!("rules/test_rule.yml:{line}:"))
        );
    }

    #[test]
    fn unsupported_features_are_located_errors() {
        // The detection block starts on line 8 of `rule()`.
        check_error(
            "    selection:\n        eventName: X\n    condition: selection | count(userIdentity.arn) > 5",
            SigmaError::Aggregation("| count(userIdentity.arn) > 5".to_owned()),
            10,
            "detection.condition",
        );
        check_error(
            "    a:\n        eventName: X\n    b:\n        eventName: Y\n    condition: a near b",
            SigmaError::Near,
            12,
            "detection.condition",
        );
        check_error(
            "    selection:\n        eventName: X\n    timeframe: 5m\n    condition: selection",
            SigmaError::Timeframe,
            10,
            "detection.timeframe",
        );
        check_error(
            "    selection:\n        sourceIPAddress|expand: '%admin_ips%'\n    condition: selection",
            SigmaError::Placeholder,
            9,
            "detection.selection.sourceIPAddress|expand",
        );
        check_error(
            "    selection:\n        userAgent|base64: x\n    condition: selection",
            SigmaError::UnsupportedModifier("base64".to_owned()),
            9,
            "detection.selection.userAgent|base64",
        );
        check_error(
            "    selection:\n        userAgent|windash: x\n    condition: selection",
            SigmaError::UnsupportedModifier("windash".to_owned()),
            9,
            "detection.selection.userAgent|windash",
        );
        check_error(
            "    selection:\n        userAgent|sounds_like: x\n    condition: selection",
            SigmaError::UnknownModifier("sounds_like".to_owned()),
            9,
            "detection.selection.userAgent|sounds_like",
        );
        check_error(
            "    selection:\n        userAgent|contains|startswith: x\n    condition: selection",
            SigmaError::ModifierConflict("contains".to_owned(), "startswith".to_owned()),
            9,
            "detection.selection.userAgent|contains|startswith",
        );
        check_error(
            "    selection:\n        userAgent|fieldref|startswith: eventName\n    condition: selection",
            SigmaError::UnsupportedModifier("fieldref|startswith".to_owned()),
            9,
            "detection.selection.userAgent|fieldref|startswith",
        );
        check_error(
            "    keywords:\n        - 'evil'\n    condition: keywords",
            SigmaError::Keywords,
            9,
            "detection.keywords[0]",
        );
        check_error(
            "    selection:\n        '|contains': evil\n    condition: selection",
            SigmaError::Keywords,
            9,
            "detection.selection.|contains",
        );
        check_error(
            "    selection:\n        eventName: X\n    condition: selection and filter",
            SigmaError::UnknownIdentifier("filter".to_owned()),
            10,
            "detection.condition",
        );
        check_error(
            "    selection:\n        eventName: X\n    condition: 1 of filter_*",
            SigmaError::UnknownIdentifier("filter_*".to_owned()),
            10,
            "detection.condition",
        );
        check_error(
            "    selection:\n        eventName: X\n    condition: 2 of selection*",
            SigmaError::Condition("`2 of` is not supported (use `1 of` or `all of`)".to_owned()),
            10,
            "detection.condition",
        );
        check_error(
            "    selection:\n        eventName: X\n    condition: (selection",
            SigmaError::Condition("missing `)`".to_owned()),
            10,
            "detection.condition",
        );
        check_error(
            "    selection:\n        eventName: X\n    condition: selection selection",
            SigmaError::Condition("unexpected `selection`".to_owned()),
            10,
            "detection.condition",
        );
        check_error(
            "    selection:\n        userAgent|re: '(unclosed'\n    condition: selection",
            SigmaError::InvalidRegex(
                regex::Regex::new(&String::from("(unclosed"))
                    .expect_err("invalid")
                    .to_string(),
            ),
            9,
            "detection.selection.userAgent|re",
        );
        check_error(
            "    selection:\n        sourceIPAddress|cidr:\n            - 10.0.0.0/8\n            - 10.0.0.0/33\n    condition: selection",
            SigmaError::InvalidCidr("10.0.0.0/33".to_owned()),
            11,
            "detection.selection.sourceIPAddress|cidr[1]",
        );
        check_error(
            "    selection:\n        requestParameters.durationSeconds|gt: lots\n    condition: selection",
            SigmaError::Value("`lots` is not a number".to_owned()),
            9,
            "detection.selection.requestParameters.durationSeconds|gt",
        );
        check_error(
            "    selection:\n        userAgent|exists: maybe\n    condition: selection",
            SigmaError::Value("`exists` takes `true` or `false`, not `maybe`".to_owned()),
            9,
            "detection.selection.userAgent|exists",
        );
        check_error(
            "    selection:\n        userAgent: '{{ x }}'\n    condition: selection",
            SigmaError::Value(
                "value `{{ x }}` contains `{{`, which runbooks read as a parameter reference"
                    .to_owned(),
            ),
            9,
            "detection.selection.userAgent",
        );
        check_error(
            "    selection:\n        userAgent: []\n    condition: selection",
            SigmaError::Empty,
            9,
            "detection.selection.userAgent",
        );
        check_error(
            "    selection:\n        userAgent:\n            nested: map\n    condition: selection",
            SigmaError::Value("a value must be text, a number, a boolean or null".to_owned()),
            10,
            "detection.selection.userAgent",
        );
        check_error(
            "    selection:\n        user..agent: x\n    condition: selection",
            SigmaError::InvalidField("user..agent".to_owned()),
            9,
            "detection.selection.user..agent",
        );
        check_error(
            "    selection:\n        eventName: X",
            SigmaError::Missing("detection.condition"),
            8,
            "detection",
        );
    }

    #[test]
    fn whole_rule_errors() {
        let windows = rule("    selection:\n        EventID: 4624\n    condition: selection")
            .replace("product: aws", "product: windows")
            .replace("service: cloudtrail", "service: security");
        let failure = failure(&windows);
        assert_eq!(
            failure.error,
            SigmaError::LogSource("product: windows, service: security".to_owned())
        );
        assert_eq!(
            (failure.line, failure.path.as_str()),
            (Some(5), "logsource")
        );
        let correlation = "title: Many logins\ncorrelation:\n    type: event_count\n    rules: [a]\n    group-by: [userIdentity.arn]\n    timespan: 1h\n    condition:\n        gte: 10\n";
        let failure = self::failure(correlation);
        assert_eq!(failure.error, SigmaError::Correlation);
        assert_eq!(failure.line, Some(3));
        let collection = format!(
            "{}---\ntitle: second\n",
            rule("    s:\n        a: b\n    condition: s")
        );
        assert_eq!(self::failure(&collection).error, SigmaError::Collection);
        let no_title =
            rule("    s:\n        a: b\n    condition: s").replace("title: Test rule\n", "");
        let failure = self::failure(&no_title);
        assert!(
            matches!(&failure.error, SigmaError::Yaml(message) if message.contains("missing field `title`")),
            "{failure}"
        );
        assert_eq!(failure.line, Some(1));
        let level =
            rule("    s:\n        a: b\n    condition: s").replace("level: high", "level: severe");
        let failure = self::failure(&level);
        assert_eq!(failure.error, SigmaError::Level("severe".to_owned()));
        assert_eq!(failure.line, Some(11));
        let no_detection = "title: x\nlogsource:\n    product: aws\n    service: cloudtrail\n";
        assert_eq!(
            self::failure(no_detection).error,
            SigmaError::Missing("detection")
        );
    }

    #[test]
    fn glob_patterns() {
        assert!(glob("selection*", "selection"));
        assert!(glob("selection_*", "selection_a"));
        assert!(!glob("selection_*", "selection"));
        assert!(glob("*_main_*", "filter_main_x"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert!(glob("exact", "exact"));
    }
}
