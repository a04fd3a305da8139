//! Errors of the crate: loading runbooks, binding parameters, reading sources, running.
//!
//! Messages are lower-case without a trailing period; values are in backticks.

use std::fmt;
use std::path::PathBuf;

/// A runbook file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid runbook.
    #[error("{0}")]
    Invalid(Box<InvalidRunbook>),
    /// Two runbooks in one library share an id.
    #[error("{second}: duplicate runbook id `{id}` (already defined in {first})")]
    DuplicateId {
        /// The id.
        id: String,
        /// The file that defined it first.
        first: String,
        /// The file that defined it again.
        second: String,
    },
}

/// Where and why a runbook is invalid: `file:line:column: path: problem`.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidRunbook {
    /// File name as given to [`crate::Runbook::parse`].
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted field path, e.g. `filter.all[2].regex` (empty for the document itself).
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for InvalidRunbook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.problem)
        } else {
            write!(f, ": {}: {}", self.path, self.problem)
        }
    }
}

impl std::error::Error for InvalidRunbook {}

/// What is wrong with a runbook.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The YAML does not have the runbook's shape (unknown field, wrong type, bad syntax).
    #[error("{0}")]
    Syntax(String),
    /// A regular expression does not compile.
    #[error("invalid regex: {0}")]
    InvalidRegex(String),
    /// A CIDR block does not parse.
    #[error("invalid CIDR block `{0}`")]
    InvalidCidr(String),
    /// A duration is not ISO-8601 (`P7D`, `PT4H`, `P1DT12H`).
    #[error("invalid duration `{0}` (expected ISO-8601 such as `P7D` or `PT4H`)")]
    InvalidDuration(String),
    /// A numeric comparison value is not a number.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// `{{ name }}` names no declared parameter.
    #[error("unknown parameter `{0}`")]
    UnknownParameter(String),
    /// A `{{` without a matching `}}`, or an empty name.
    #[error("malformed parameter reference in `{0}`")]
    MalformedReference(String),
    /// A filter node has no operator.
    #[error("no condition: expected one of all, any, not, or field with an operator")]
    EmptyFilter,
    /// A filter node has more than one operator.
    #[error("more than one operator ({0}); combine conditions with `all`")]
    TwoOperators(String),
    /// A condition has an operator but no `field`.
    #[error("`{0}` needs a `field`")]
    MissingField(String),
    /// A `field` has no operator.
    #[error(
        "`field` needs an operator (equals, any_of, prefix, suffix, contains, regex, exists, cidr, gt, gte, lt, lte, equals_field, suffix_field, contains_field)"
    )]
    MissingOperator,
    /// `all`, `any`, `any_of`, a list or a column list is empty.
    #[error("must not be empty")]
    Empty,
    /// A field path is malformed (empty segment).
    #[error("invalid field path `{0}`")]
    InvalidPath(String),
    /// An id or parameter name has characters it must not have.
    #[error("invalid name `{0}`: {1}")]
    InvalidName(String, &'static str),
    /// A parameter is declared twice.
    #[error("parameter `{0}` declared twice")]
    DuplicateParameter(String),
    /// A default does not parse as the parameter's type.
    #[error("default `{0}` is not a valid {1}")]
    BadDefault(String, &'static str),
    /// A required parameter has a default.
    #[error("a required parameter cannot have a default")]
    RequiredWithDefault,
    /// An optional parameter has no default.
    #[error("an optional parameter needs a `default` (or set `required: true`)")]
    MissingDefault,
    /// A limit is zero.
    #[error("must be at least 1")]
    Zero,
}

/// A parameter value that is missing or does not fit its declared type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// A required parameter has no value.
    #[error("missing required parameter `{0}`")]
    Missing(String),
    /// A value was given for a parameter the runbook does not declare.
    #[error("unknown parameter `{0}`")]
    Unknown(String),
    /// A value does not parse as the declared type.
    #[error("parameter `{name}`: `{value}` is not a valid {expected}")]
    Invalid {
        /// Parameter name.
        name: String,
        /// The value given.
        value: String,
        /// The declared type.
        expected: &'static str,
    },
    /// After substitution a regex does not compile.
    #[error("regex after substituting parameters: {0}")]
    Regex(String),
    /// After substitution a CIDR block or number does not parse.
    #[error("value after substituting parameters: {0}")]
    Value(String),
    /// The time window is empty or inverted.
    #[error("empty time window: start `{start}` is not before end `{end}`")]
    EmptyWindow {
        /// Window start.
        start: String,
        /// Window end.
        end: String,
    },
}

/// A source failed as a whole (bad records are counted in the coverage, not returned as errors).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path given does not exist or cannot be listed.
    #[error("{path}: {source}")]
    Path {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A LookupEvents call failed for a reason other than throttling.
    #[error("lookup events in `{region}`: {message}")]
    Lookup {
        /// The region.
        region: String,
        /// What the API said.
        message: String,
    },
    /// Listing a trail's objects in S3 failed.
    #[error("{location}: {message}")]
    S3 {
        /// `s3://bucket/prefix`.
        location: String,
        /// What failed.
        message: String,
    },
    /// The runbook has no `lookup` hint, so it cannot run on LookupEvents.
    #[error("runbook `{0}` has no `lookup` hint and cannot run on LookupEvents")]
    NoLookupHint(String),
}

/// Running a runbook failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Parameters did not bind.
    #[error(transparent)]
    Params(#[from] ParamError),
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
}
