//! Loading a runbook: YAML parsing, validation with precise locations, and the [`Runbook`] type.
//!
//! Shape errors come from serde_yaml with line, column and path. Meaning errors (bad regex,
//! unknown parameter, ...) are found after deserializing, with a field path; the path is then
//! located in the text by re-reading the YAML (see [`locate`]), so they get a line and column too.

use std::collections::BTreeMap;

use regex::Regex;

use crate::error::{InvalidRunbook, LoadError, Problem};
use crate::filter::{self, Cidr, FieldPath};
use crate::locate::Step;
use crate::params::{self, type_name};
use crate::sigma;
use crate::spec::{FilterSpec, OneOrMany, ParamType, RunbookSpec, Scalar, Severity};
use crate::template::{self, Piece};
use crate::timefmt;

/// A loaded, validated runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    spec: RunbookSpec,
    file: String,
    /// Regexes without parameter references, compiled once at load; keyed by pattern and case flag.
    regexes: BTreeMap<(String, bool), Regex>,
}

impl Runbook {
    /// Parses and validates a runbook; `file_name` is used in error messages. A Sigma rule
    /// (top-level `detection`, `logsource` or `correlation`) is translated first, see `sigma`.
    pub fn parse(text: &str, file_name: &str) -> Result<Runbook, LoadError> {
        let is_sigma = sigma::is_sigma(text);
        let spec: RunbookSpec = if is_sigma {
            sigma::translate(text, file_name)
                .map_err(|failure| LoadError::Invalid(Box::new((*failure).into())))?
        } else {
            serde_yaml::from_str(text)
                .map_err(|error| LoadError::Invalid(Box::new(from_yaml_error(&error, file_name))))?
        };
        let mut validator = Validator {
            declared: BTreeMap::new(),
            regexes: BTreeMap::new(),
        };
        validator.runbook(&spec).map_err(|(path, problem)| {
            // A translated Sigma rule's paths are in the translation, not in the text.
            let (line, column) = if is_sigma {
                (None, None)
            } else {
                locate(text, &path).unzip()
            };
            LoadError::Invalid(Box::new(InvalidRunbook {
                file: file_name.to_owned(),
                line,
                column,
                path: path_text(&path),
                problem,
            }))
        })?;
        Ok(Runbook {
            spec,
            file: file_name.to_owned(),
            regexes: validator.regexes,
        })
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.spec.title
    }

    /// The severity.
    pub fn severity(&self) -> Severity {
        self.spec.severity
    }

    /// The file it was loaded from, as given to [`Runbook::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The full specification.
    pub fn spec(&self) -> &RunbookSpec {
        &self.spec
    }

    pub(crate) fn regexes(&self) -> &BTreeMap<(String, bool), Regex> {
        &self.regexes
    }
}

fn from_yaml_error(error: &serde_yaml::Error, file: &str) -> InvalidRunbook {
    let mut message = error.to_string();
    let location = error.location();
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    // serde_yaml prefixes the path of the failing node (`filter.all[2]: unknown field ...`).
    let (path, message) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path.to_owned(), rest.to_owned()),
        _ => (String::new(), message),
    };
    InvalidRunbook {
        file: file.to_owned(),
        line: location.as_ref().map(serde_yaml::Location::line),
        column: location.as_ref().map(serde_yaml::Location::column),
        path,
        problem: Problem::Syntax(message),
    }
}

/// A step of a field path inside the YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(&'static str),
    Index(usize),
}

type Path = Vec<Seg>;
type Failure = (Path, Problem);

fn path_text(path: &[Seg]) -> String {
    let mut text = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Seg::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// The filter's one operator: none, or two, is a problem at the filter's path.
fn only_operator(spec: &FilterSpec, path: &[Seg]) -> Result<&'static str, Failure> {
    let present = [
        ("all", spec.all.is_some()),
        ("any", spec.any.is_some()),
        ("not", spec.not.is_some()),
        ("equals", spec.equals.is_some()),
        ("any_of", spec.any_of.is_some()),
        ("prefix", spec.prefix.is_some()),
        ("suffix", spec.suffix.is_some()),
        ("contains", spec.contains.is_some()),
        ("regex", spec.regex.is_some()),
        ("exists", spec.exists.is_some()),
        ("cidr", spec.cidr.is_some()),
        ("gt", spec.gt.is_some()),
        ("gte", spec.gte.is_some()),
        ("lt", spec.lt.is_some()),
        ("lte", spec.lte.is_some()),
        ("equals_field", spec.equals_field.is_some()),
        ("suffix_field", spec.suffix_field.is_some()),
        ("contains_field", spec.contains_field.is_some()),
    ];
    let operators: Vec<&'static str> = present
        .into_iter()
        .filter(|(_, is_present)| *is_present)
        .map(|(name, _)| name)
        .collect();
    let Some(&operator) = operators.first() else {
        return Err((
            path.to_vec(),
            if spec.field.is_some() {
                Problem::MissingOperator
            } else {
                Problem::EmptyFilter
            },
        ));
    };
    if operators.len() > 1 {
        return Err((path.to_vec(), Problem::TwoOperators(operators.join(", "))));
    }
    Ok(operator)
}

fn with(path: &[Seg], seg: Seg) -> Path {
    let mut next = path.to_vec();
    next.push(seg);
    next
}

struct Validator {
    declared: BTreeMap<String, ParamType>,
    regexes: BTreeMap<(String, bool), Regex>,
}

impl Validator {
    fn runbook(&mut self, spec: &RunbookSpec) -> Result<(), Failure> {
        check_id(&spec.id).map_err(|problem| (vec![Seg::Key("id")], problem))?;
        for (index, param) in spec.parameters.iter().enumerate() {
            let path = vec![Seg::Key("parameters"), Seg::Index(index)];
            if !template::is_name(&param.name) {
                return Err((
                    with(&path, Seg::Key("name")),
                    Problem::InvalidName(param.name.clone(), "use letters, digits and `_`"),
                ));
            }
            if self
                .declared
                .insert(param.name.clone(), param.kind)
                .is_some()
            {
                return Err((
                    with(&path, Seg::Key("name")),
                    Problem::DuplicateParameter(param.name.clone()),
                ));
            }
            match (param.required, &param.default) {
                (true, Some(_)) => {
                    return Err((
                        with(&path, Seg::Key("default")),
                        Problem::RequiredWithDefault,
                    ));
                }
                (false, None) => return Err((path, Problem::MissingDefault)),
                _ => {}
            }
            if params::default_values(param).is_none() {
                let shown = serde_json::to_string(&param.default).unwrap_or_default();
                return Err((
                    with(&path, Seg::Key("default")),
                    Problem::BadDefault(shown, type_name(param.kind)),
                ));
            }
        }
        let lookback_path = vec![Seg::Key("window"), Seg::Key("lookback")];
        let lookback = &spec.window.lookback;
        if template::has_reference(lookback) {
            self.references(lookback, &lookback_path)?;
            let is_duration_param = template::sole_reference(lookback)
                .is_some_and(|name| self.declared.get(name) == Some(&ParamType::Duration));
            if !is_duration_param {
                return Err((lookback_path, Problem::InvalidDuration(lookback.clone())));
            }
        } else if timefmt::parse_duration(lookback).is_none() {
            return Err((lookback_path, Problem::InvalidDuration(lookback.clone())));
        }
        self.filter(&spec.filter, &[Seg::Key("filter")])?;
        self.output(spec)?;
        if let Some(lookup) = &spec.lookup {
            let path = vec![Seg::Key("lookup"), Seg::Key("values")];
            if lookup.values.is_empty() {
                return Err((path, Problem::Empty));
            }
            for (index, value) in lookup.values.iter().enumerate() {
                self.references(value, &with(&path, Seg::Index(index)))?;
            }
        }
        Ok(())
    }

    fn references(&self, text: &str, path: &[Seg]) -> Result<(), Failure> {
        let pieces = template::pieces(text)
            .ok_or_else(|| (path.to_vec(), Problem::MalformedReference(text.to_owned())))?;
        for piece in pieces {
            if let Piece::Param(name) = piece
                && !self.declared.contains_key(name)
            {
                return Err((path.to_vec(), Problem::UnknownParameter(name.to_owned())));
            }
        }
        Ok(())
    }

    fn filter(&mut self, spec: &FilterSpec, path: &[Seg]) -> Result<(), Failure> {
        let operator = only_operator(spec, path)?;
        if matches!(operator, "all" | "any" | "not") {
            self.combinator(spec, operator, path)
        } else {
            self.condition(spec, operator, path)
        }
    }

    /// `all`, `any` or `not`: no field of its own, and every part checked.
    fn combinator(
        &mut self,
        spec: &FilterSpec,
        operator: &'static str,
        path: &[Seg],
    ) -> Result<(), Failure> {
        if let Some(field) = &spec.field {
            return Err((
                with(path, Seg::Key("field")),
                Problem::TwoOperators(format!("field `{field}`, {operator}")),
            ));
        }
        if spec.case_sensitive.is_some() {
            return Err((
                with(path, Seg::Key("case_sensitive")),
                Problem::Syntax("`case_sensitive` belongs on a condition".to_owned()),
            ));
        }
        let (parts, key) = match (&spec.all, &spec.any) {
            (Some(parts), _) => (parts, "all"),
            (_, Some(parts)) => (parts, "any"),
            _ => {
                let inner = spec
                    .not
                    .as_deref()
                    .map(|inner| self.filter(inner, &with(path, Seg::Key("not"))));
                return inner.unwrap_or(Ok(()));
            }
        };
        let list_path = with(path, Seg::Key(key));
        if parts.is_empty() {
            return Err((list_path, Problem::Empty));
        }
        for (index, part) in parts.iter().enumerate() {
            self.filter(part, &with(&list_path, Seg::Index(index)))?;
        }
        Ok(())
    }

    /// A condition on a field: the field's path and the operator's values.
    fn condition(
        &mut self,
        spec: &FilterSpec,
        operator: &'static str,
        path: &[Seg],
    ) -> Result<(), Failure> {
        let Some(field) = &spec.field else {
            return Err((path.to_vec(), Problem::MissingField(operator.to_owned())));
        };
        check_path(field).map_err(|problem| (with(path, Seg::Key("field")), problem))?;
        let op_path = with(path, Seg::Key(operator));
        match operator {
            "equals" | "gt" | "gte" | "lt" | "lte" => self.single_value(spec, operator, &op_path),
            "any_of" => {
                let values = spec.any_of.as_deref().unwrap_or_default();
                if values.is_empty() {
                    return Err((op_path, Problem::Empty));
                }
                self.scalars(values, &op_path)
            }
            "prefix" | "suffix" | "contains" | "cidr" => self.value_list(spec, operator, &op_path),
            "regex" => self.regex(
                spec.regex.as_deref().unwrap_or_default(),
                spec.case_sensitive.unwrap_or(false),
                &op_path,
            ),
            "equals_field" | "suffix_field" | "contains_field" => {
                let other = [&spec.equals_field, &spec.suffix_field, &spec.contains_field]
                    .into_iter()
                    .flatten()
                    .next()
                    .map(String::as_str)
                    .unwrap_or_default();
                check_path(other).map_err(|problem| (op_path, problem))
            }
            _ => Ok(()),
        }
    }

    /// `equals` and the comparisons: one value, a number for the comparisons.
    fn single_value(
        &self,
        spec: &FilterSpec,
        operator: &str,
        op_path: &[Seg],
    ) -> Result<(), Failure> {
        let value = [&spec.equals, &spec.gt, &spec.gte, &spec.lt, &spec.lte]
            .into_iter()
            .flatten()
            .next();
        if let Some(value) = value {
            self.scalars(std::slice::from_ref(value), op_path)?;
            if operator != "equals"
                && let Scalar::Text(text) = value
                && !template::has_reference(text)
                && text.trim().parse::<f64>().is_err()
            {
                return Err((op_path.to_vec(), Problem::NotANumber(text.clone())));
            }
        }
        Ok(())
    }

    /// `prefix`, `suffix`, `contains` and `cidr`: one value or a list, CIDR blocks valid.
    fn value_list(
        &self,
        spec: &FilterSpec,
        operator: &str,
        op_path: &[Seg],
    ) -> Result<(), Failure> {
        let values = [&spec.prefix, &spec.suffix, &spec.contains, &spec.cidr]
            .into_iter()
            .flatten()
            .next()
            .map(OneOrMany::as_slice)
            .unwrap_or_default();
        if values.is_empty() {
            return Err((op_path.to_vec(), Problem::Empty));
        }
        self.scalars(values, op_path)?;
        if operator == "cidr" {
            for (index, value) in values.iter().enumerate() {
                let text = value.to_text();
                if !template::has_reference(&text) && Cidr::parse(&text).is_none() {
                    let at = if matches!(spec.cidr, Some(OneOrMany::Many(_))) {
                        with(op_path, Seg::Index(index))
                    } else {
                        op_path.to_vec()
                    };
                    return Err((at, Problem::InvalidCidr(text)));
                }
            }
        }
        Ok(())
    }

    /// A pattern without references is compiled once here and kept for the matcher.
    fn regex(
        &mut self,
        pattern: &str,
        case_sensitive: bool,
        op_path: &[Seg],
    ) -> Result<(), Failure> {
        self.references(pattern, op_path)?;
        if template::has_reference(pattern) {
            // Check the syntax around the references with a harmless stand-in value.
            let stand_in: filter::Bound = self
                .declared
                .keys()
                .map(|name| (name.clone(), vec!["x".to_owned()]))
                .collect();
            let rendered = template::render(pattern, &stand_in, regex::escape);
            filter::build_regex(&rendered, case_sensitive)
                .map_err(|error| (op_path.to_vec(), Problem::InvalidRegex(error)))?;
        } else {
            let regex = filter::build_regex(pattern, case_sensitive)
                .map_err(|error| (op_path.to_vec(), Problem::InvalidRegex(error)))?;
            self.regexes
                .insert((pattern.to_owned(), case_sensitive), regex);
        }
        Ok(())
    }

    fn scalars(&self, values: &[Scalar], path: &[Seg]) -> Result<(), Failure> {
        for (index, value) in values.iter().enumerate() {
            if let Scalar::Text(text) = value {
                let at = if values.len() > 1 {
                    with(path, Seg::Index(index))
                } else {
                    path.to_vec()
                };
                self.references(text, &at)?;
            }
        }
        Ok(())
    }

    fn output(&self, spec: &RunbookSpec) -> Result<(), Failure> {
        let output = &spec.output;
        let base = vec![Seg::Key("output")];
        if let Some(rows) = &output.rows {
            let path = with(&base, Seg::Key("rows"));
            paths(&rows.columns, &with(&path, Seg::Key("columns")))?;
            if rows.limit == 0 {
                return Err((with(&path, Seg::Key("limit")), Problem::Zero));
            }
        }
        if let Some(count_by) = &output.count_by {
            let path = with(&base, Seg::Key("count_by"));
            paths(&count_by.fields, &with(&path, Seg::Key("fields")))?;
            if let Some(distinct) = &count_by.distinct {
                check_path(distinct)
                    .map_err(|problem| (with(&path, Seg::Key("distinct")), problem))?;
            }
            if count_by.min_distinct.is_some() && count_by.distinct.is_none() {
                return Err((
                    with(&path, Seg::Key("min_distinct")),
                    Problem::Syntax("`min_distinct` needs `distinct`".to_owned()),
                ));
            }
            if count_by.limit == 0 {
                return Err((with(&path, Seg::Key("limit")), Problem::Zero));
            }
        }
        if let Some(top) = &output.top {
            let path = with(&base, Seg::Key("top"));
            check_path(&top.field).map_err(|problem| (with(&path, Seg::Key("field")), problem))?;
            if top.n == 0 {
                return Err((with(&path, Seg::Key("n")), Problem::Zero));
            }
        }
        for (index, field) in output.distinct.iter().enumerate() {
            check_path(field).map_err(|problem| {
                (
                    vec![Seg::Key("output"), Seg::Key("distinct"), Seg::Index(index)],
                    problem,
                )
            })?;
        }
        if let Some(fields) = &output.first_last_seen {
            paths(fields, &with(&base, Seg::Key("first_last_seen")))?;
        }
        Ok(())
    }
}

fn paths(fields: &[String], path: &[Seg]) -> Result<(), Failure> {
    if fields.is_empty() {
        return Err((path.to_vec(), Problem::Empty));
    }
    for (index, field) in fields.iter().enumerate() {
        check_path(field).map_err(|problem| (with(path, Seg::Index(index)), problem))?;
    }
    Ok(())
}

fn check_path(field: &str) -> Result<(), Problem> {
    FieldPath::parse(field)
        .map(|_| ())
        .ok_or_else(|| Problem::InvalidPath(field.to_owned()))
}

fn check_id(id: &str) -> Result<(), Problem> {
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(Problem::InvalidName(
            id.to_owned(),
            "use lower-case letters, digits and `-`",
        ))
    }
}

fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let steps: Vec<Step<'_>> = path
        .iter()
        .map(|seg| match seg {
            Seg::Key(key) => Step::Key(key),
            Seg::Index(index) => Step::Index(*index),
        })
        .collect();
    crate::locate::locate(text, &steps)
}
