//! The SQL back-end: a bound runbook ([`Compiled`]) compiled into SQL over the standard Athena
//! CloudTrail table, one query per output section.
//!
//! The table is the one the Athena documentation creates for CloudTrail logs (and that
//! [`duckdb_view`] recreates over local files): top-level string columns (`eventtime`,
//! `eventname`, `readonly`, ...), the `useridentity` struct, `resources` as an array of
//! `(arn, accountid, type)` structs, and `requestparameters`, `responseelements`,
//! `additionaleventdata`, `serviceeventdetails` as raw JSON **strings**.
//!
//! Semantics follow the in-process engine (`filter.rs`), which is the reference:
//! - comparisons are case-insensitive (`lower()` on both sides) unless a condition says
//!   `case_sensitive: true`; SQL folds Unicode where the engine folds ASCII only, so the two can
//!   differ on non-ASCII letters;
//! - a JSON path walks into arrays element by element (`resources.ARN`,
//!   `requestParameters.ipPermissions.items.ipRanges.items.cidrIp`), so every field is a *list*
//!   of values and a condition holds if one value satisfies it;
//! - missing and null values never satisfy a condition, and every condition is wrapped in
//!   `coalesce(.., false)` so `not` can never meet SQL's three-valued NULL.
//!
//! **Parameters are never interpolated.** Every value that reaches the SQL (parameter values,
//! runbook constants, regexes after parameter substitution, JSON paths, the window) goes through
//! [`quote`], the one function that writes a string literal; identifiers come only from the
//! fixed schema below or from [`table_name`], which accepts plain identifiers only.
//!
//! Both dialects are proven against the engine on the real logs and the fixtures for every
//! runbook (`tests/sql_duckdb.rs`): the DuckDB text directly, and the Athena text (Trino
//! functions: `any_match`, `json_query` in lax mode, `regexp_like`) parsed as Trino and
//! transpiled to DuckDB by sqlglot, with the three Trino functions sqlglot leaves untranslated
//! written from Trino's documentation in `tests/support/trino_on_duckdb.py`. Over a table made
//! by `athena::TrailTable`, [`Compiled::to_sql_over`] adds the partition predicate of the window.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use crate::athena::{PARTITION_COLUMNS, Partitions};
use crate::engine::Compiled;
use crate::filter::{self, Bound, Cidr, FieldPath};
use crate::spec::{FilterSpec, RowOrder, Scalar};
use crate::template;
use crate::timefmt;

/// Which SQL engine the text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Amazon Athena (engine version 3, Trino functions).
    Athena,
    /// DuckDB over [`duckdb_view`]: the same columns, DuckDB's JSON and list functions.
    DuckDb,
}

impl Dialect {
    /// Parses `athena` or `duckdb`.
    pub fn parse(text: &str) -> Option<Dialect> {
        match text.to_ascii_lowercase().as_str() {
            "athena" | "trino" => Some(Dialect::Athena),
            "duckdb" => Some(Dialect::DuckDb),
            _ => None,
        }
    }

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Athena => "athena",
            Dialect::DuckDb => "duckdb",
        }
    }
}

/// Why a runbook cannot be compiled to SQL.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SqlError {
    /// The field is not a column of the Athena CloudTrail table (nor inside one).
    #[error("field `{0}` is not in the Athena CloudTrail table")]
    UnsupportedField(String),
    /// The condition has no SQL translation.
    #[error("field `{field}`: {reason}")]
    UnsupportedCondition {
        /// The field of the condition.
        field: String,
        /// What cannot be translated.
        reason: String,
    },
    /// A value contains a NUL character, which no SQL string literal can carry safely.
    #[error("value `{0}` contains a NUL character")]
    NulInValue(String),
    /// A table name that is not `name` or `database.name` with plain identifiers.
    #[error("invalid table name `{0}`: use letters, digits and `_`, optionally `database.table`")]
    InvalidTable(String),
    /// A partition value (account, Region) or window the partitioned table cannot be asked for.
    #[error("partitions: {0}")]
    InvalidPartition(String),
}

/// One output section's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    /// `events_scanned`, `events_matched`, `events_outside_window`.
    Summary,
    /// The runbook's row columns, in order (missing values are `''`).
    Rows,
    /// `key_0..key_n`, `event_count`, `distinct_count` (when asked), `groups_total`.
    CountBy,
    /// `value`, `event_count`.
    Top,
    /// `value`, `event_count` for one field.
    Distinct(String),
    /// `key_0..key_n`, `first_seen`, `last_seen`, `event_count`.
    FirstLastSeen,
}

impl Section {
    /// A short name: `summary`, `rows`, `count_by`, `top`, `distinct:<field>`, `first_last_seen`.
    pub fn name(&self) -> String {
        match self {
            Section::Summary => "summary".to_owned(),
            Section::Rows => "rows".to_owned(),
            Section::CountBy => "count_by".to_owned(),
            Section::Top => "top".to_owned(),
            Section::Distinct(field) => format!("distinct:{field}"),
            Section::FirstLastSeen => "first_last_seen".to_owned(),
        }
    }
}

/// One SQL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlQuery {
    /// The output section it computes.
    pub section: Section,
    /// The statement (no trailing semicolon).
    pub sql: String,
}

/// The SQL of a bound runbook: the filter and one query per output section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlPlan {
    /// The dialect.
    pub dialect: Dialect,
    /// The `WHERE` condition on its own (window excluded), for display.
    pub filter: String,
    /// The queries, summary first, then the runbook's sections in result order.
    pub queries: Vec<SqlQuery>,
}

/// Writes `text` as a SQL string literal: single quotes doubled, nothing else interpreted
/// (standard SQL, which both Athena and DuckDB follow: backslash is not an escape).
pub fn quote(text: &str) -> Result<String, SqlError> {
    if text.contains('\0') {
        return Err(SqlError::NulInValue(text.escape_debug().to_string()));
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    Ok(out)
}

/// Checks and quotes a table name (`cloudtrail_logs` or `database.table`).
pub fn table_name(name: &str) -> Result<String, SqlError> {
    let parts: Vec<&str> = name.split('.').collect();
    let plain = |part: &&str| {
        let mut chars = part.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if parts.len() > 2 || !parts.iter().all(plain) {
        return Err(SqlError::InvalidTable(name.to_owned()));
    }
    Ok(parts
        .iter()
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join("."))
}

/// Every column and struct member of the Athena table the compiler can read, as dotted paths
/// (`eventname`, `useridentity.sessioncontext.sessionissuer.arn`, `resources.arn`): the
/// generated DDL (`athena.rs`) must declare each.
pub fn athena_columns() -> Vec<String> {
    let mut columns: Vec<String> = TOP_LEVEL
        .iter()
        .chain(JSON_COLUMNS)
        .map(|(_, column)| (*column).to_owned())
        .collect();
    columns.extend(STRUCT_MEMBERS.iter().map(|(_, path)| (*path).to_owned()));
    columns.extend(
        RESOURCE_MEMBERS
            .iter()
            .map(|(_, member)| format!("resources.{member}")),
    );
    columns
}

impl Compiled<'_> {
    /// Compiles the runbook with its bound parameters and window into SQL over `table`.
    pub fn to_sql(&self, dialect: Dialect, table: &str) -> Result<SqlPlan, SqlError> {
        self.to_sql_over(dialect, table, None)
    }

    /// As [`Compiled::to_sql`], over a table made by `athena::TrailTable::ddl` when
    /// `partitions` is given: its condition on the partition columns (the window's delivery
    /// days, and the accounts and Regions asked for) is applied before anything else, so the
    /// queries read, and count as scanned, only those partitions.
    pub fn to_sql_over(
        &self,
        dialect: Dialect,
        table: &str,
        partitions: Option<&Partitions>,
    ) -> Result<SqlPlan, SqlError> {
        let table = table_name(table)?;
        let spec = self.runbook().spec();
        let mut generator = Generator { dialect, depth: 0 };
        let filter = generator.filter(&spec.filter, self.bound())?;
        let window = self.window();
        let time = dialect.event_time("eventtime");
        let start = dialect.timestamp(window.start)?;
        let end = dialect.timestamp(window.end)?;
        let pruned = match partitions {
            Some(partitions) => format!(" WHERE {}", partitions.predicate(window)?),
            None => String::new(),
        };
        let timed = format!("SELECT *, {time} AS tg_time FROM {table}{pruned}");
        let in_window = format!("tg_time >= {start} AND tg_time < {end}");
        let matched = format!(
            "WITH tg_matched AS (SELECT *, date_trunc('second', tg_time) AS tg_second \
             FROM ({timed}) AS tg_timed WHERE {in_window} AND ({filter}))"
        );
        let mut queries = vec![SqlQuery {
            section: Section::Summary,
            sql: format!(
                "SELECT count(*) AS events_scanned, \
                 count_if({in_window} AND ({filter})) AS events_matched, \
                 count_if(NOT ({in_window})) AS events_outside_window \
                 FROM ({timed}) AS tg_timed WHERE tg_time IS NOT NULL"
            ),
        }];
        let output = &spec.output;
        if let Some(rows) = &output.rows {
            let columns = generator.texts(&rows.columns, true)?;
            let order = match rows.order {
                RowOrder::OldestFirst => "ASC",
                RowOrder::NewestFirst => "DESC",
            };
            queries.push(SqlQuery {
                section: Section::Rows,
                sql: format!(
                    "{matched} SELECT {} FROM tg_matched ORDER BY tg_second {order} LIMIT {}",
                    aliased(&columns, "c"),
                    rows.limit
                ),
            });
        }
        if let Some(count_by) = &output.count_by {
            let keys = generator.texts(&count_by.fields, true)?;
            let key_names = names("key", keys.len());
            let mut inner = aliased(&keys, "key");
            let mut select = key_names.join(", ");
            select.push_str(", count(*) AS event_count");
            let mut having = Vec::new();
            if let Some(field) = &count_by.distinct {
                let value = generator.text(field, true)?;
                let _ = write!(inner, ", {value} AS tg_distinct");
                select.push_str(", count(DISTINCT tg_distinct) AS distinct_count");
                if let Some(min) = count_by.min_distinct {
                    having.push(format!("count(DISTINCT tg_distinct) >= {min}"));
                }
            }
            if let Some(min) = count_by.min_count {
                having.push(format!("count(*) >= {min}"));
            }
            let having = if having.is_empty() {
                String::new()
            } else {
                format!(" HAVING {}", having.join(" AND "))
            };
            queries.push(SqlQuery {
                section: Section::CountBy,
                sql: format!(
                    "{matched} SELECT *, count(*) OVER () AS groups_total FROM \
                     (SELECT {select} FROM (SELECT {inner} FROM tg_matched) AS tg_keys \
                     GROUP BY {}{having}) AS tg_groups ORDER BY event_count DESC, {} LIMIT {}",
                    key_names.join(", "),
                    key_names.join(", "),
                    count_by.limit
                ),
            });
        }
        if let Some(top) = &output.top {
            let value = generator.text(&top.field, true)?;
            queries.push(SqlQuery {
                section: Section::Top,
                sql: format!(
                    "{matched} SELECT value, count(*) AS event_count FROM \
                     (SELECT {value} AS value FROM tg_matched) AS tg_values \
                     GROUP BY value ORDER BY event_count DESC, value LIMIT {}",
                    top.n
                ),
            });
        }
        for field in &output.distinct {
            let value = generator.text(field, false)?;
            queries.push(SqlQuery {
                section: Section::Distinct(field.clone()),
                sql: format!(
                    "{matched} SELECT value, count(*) AS event_count FROM \
                     (SELECT {value} AS value FROM tg_matched) AS tg_values \
                     WHERE value IS NOT NULL GROUP BY value ORDER BY value"
                ),
            });
        }
        if let Some(fields) = &output.first_last_seen {
            let keys = generator.texts(fields, true)?;
            let key_names = names("key", keys.len());
            let first = dialect.format_time("min(tg_second)");
            let last = dialect.format_time("max(tg_second)");
            queries.push(SqlQuery {
                section: Section::FirstLastSeen,
                sql: format!(
                    "{matched} SELECT {keys}, {first} AS first_seen, {last} AS last_seen, count(*) AS event_count \
                     FROM (SELECT {inner}, tg_second FROM tg_matched) AS tg_keys \
                     GROUP BY {keys} ORDER BY min(tg_second), {keys}",
                    keys = key_names.join(", "),
                    inner = aliased(&keys, "key"),
                ),
            });
        }
        Ok(SqlPlan {
            dialect,
            filter,
            queries,
        })
    }
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("{prefix}_{index}"))
        .collect()
}

fn aliased(expressions: &[String], prefix: &str) -> String {
    expressions
        .iter()
        .enumerate()
        .map(|(index, expression)| format!("{expression} AS {prefix}_{index}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a runbook field lives in the Athena table.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    /// A string column or struct member: one value or NULL.
    Text(String),
    /// A member of each element of the `resources` array.
    Resources(&'static str),
    /// A path inside a JSON string column; arrays on the way are walked.
    Json {
        column: &'static str,
        segments: Vec<String>,
    },
}

/// Top-level string columns: record key and Athena column.
const TOP_LEVEL: &[(&str, &str)] = &[
    ("eventVersion", "eventversion"),
    ("eventTime", "eventtime"),
    ("eventSource", "eventsource"),
    ("eventName", "eventname"),
    ("awsRegion", "awsregion"),
    ("sourceIPAddress", "sourceipaddress"),
    ("userAgent", "useragent"),
    ("errorCode", "errorcode"),
    ("errorMessage", "errormessage"),
    ("requestID", "requestid"),
    ("eventID", "eventid"),
    ("readOnly", "readonly"),
    ("eventType", "eventtype"),
    ("apiVersion", "apiversion"),
    ("recipientAccountId", "recipientaccountid"),
    ("sharedEventID", "sharedeventid"),
    ("vpcEndpointId", "vpcendpointid"),
    ("eventCategory", "eventcategory"),
];

/// JSON string columns.
const JSON_COLUMNS: &[(&str, &str)] = &[
    ("requestParameters", "requestparameters"),
    ("responseElements", "responseelements"),
    ("additionalEventData", "additionaleventdata"),
    ("serviceEventDetails", "serviceeventdetails"),
];

/// String members of the `useridentity` and `tlsdetails` structs: record path and Athena path.
const STRUCT_MEMBERS: &[(&str, &str)] = &[
    ("userIdentity.type", "useridentity.type"),
    ("userIdentity.principalId", "useridentity.principalid"),
    ("userIdentity.arn", "useridentity.arn"),
    ("userIdentity.accountId", "useridentity.accountid"),
    ("userIdentity.invokedBy", "useridentity.invokedby"),
    ("userIdentity.accessKeyId", "useridentity.accesskeyid"),
    ("userIdentity.userName", "useridentity.username"),
    (
        "userIdentity.onBehalfOf.userId",
        "useridentity.onbehalfof.userid",
    ),
    (
        "userIdentity.onBehalfOf.identityStoreArn",
        "useridentity.onbehalfof.identitystorearn",
    ),
    (
        "userIdentity.sessionContext.attributes.mfaAuthenticated",
        "useridentity.sessioncontext.attributes.mfaauthenticated",
    ),
    (
        "userIdentity.sessionContext.attributes.creationDate",
        "useridentity.sessioncontext.attributes.creationdate",
    ),
    (
        "userIdentity.sessionContext.sessionIssuer.type",
        "useridentity.sessioncontext.sessionissuer.type",
    ),
    (
        "userIdentity.sessionContext.sessionIssuer.principalId",
        "useridentity.sessioncontext.sessionissuer.principalid",
    ),
    (
        "userIdentity.sessionContext.sessionIssuer.arn",
        "useridentity.sessioncontext.sessionissuer.arn",
    ),
    (
        "userIdentity.sessionContext.sessionIssuer.accountId",
        "useridentity.sessioncontext.sessionissuer.accountid",
    ),
    (
        "userIdentity.sessionContext.sessionIssuer.userName",
        "useridentity.sessioncontext.sessionissuer.username",
    ),
    (
        "userIdentity.sessionContext.ec2RoleDelivery",
        "useridentity.sessioncontext.ec2roledelivery",
    ),
    (
        "userIdentity.sessionContext.sourceIdentity",
        "useridentity.sessioncontext.sourceidentity",
    ),
    ("tlsDetails.tlsVersion", "tlsdetails.tlsversion"),
    ("tlsDetails.cipherSuite", "tlsdetails.ciphersuite"),
    (
        "tlsDetails.clientProvidedHostHeader",
        "tlsdetails.clientprovidedhostheader",
    ),
];

/// Members of each `resources` element.
const RESOURCE_MEMBERS: &[(&str, &str)] =
    &[("ARN", "arn"), ("accountId", "accountid"), ("type", "type")];

fn resolve(path: &str) -> Result<Field, SqlError> {
    let unsupported = || SqlError::UnsupportedField(path.to_owned());
    // The engine's path syntax: validation guarantees it parses.
    FieldPath::parse(path).ok_or_else(unsupported)?;
    if let Some((_, column)) = TOP_LEVEL.iter().find(|(key, _)| *key == path) {
        return Ok(Field::Text((*column).to_owned()));
    }
    if let Some((_, member)) = STRUCT_MEMBERS.iter().find(|(key, _)| *key == path) {
        return Ok(Field::Text((*member).to_owned()));
    }
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    if head == "resources" {
        return RESOURCE_MEMBERS
            .iter()
            .find(|(key, _)| *key == rest)
            .map(|(_, member)| Field::Resources(member))
            .ok_or_else(unsupported);
    }
    if let Some((_, column)) = JSON_COLUMNS.iter().find(|(key, _)| *key == head) {
        let segments: Vec<String> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('.').map(str::to_owned).collect()
        };
        // JSON path members are written quoted; keep them to characters that need no escaping
        // in any JSONPath dialect, so a field name can never change the path's structure.
        let plain = |segment: &String| {
            segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@' | ':' | '$'))
        };
        if !segments.iter().all(plain) {
            return Err(unsupported());
        }
        return Ok(Field::Json { column, segments });
    }
    Err(unsupported())
}

/// One value of a field, inside a predicate: a SQL string, or a JSON value.
#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Json(String),
}

/// One field condition of a filter, as its operators need it.
struct Condition<'a> {
    spec: &'a FilterSpec,
    bound: &'a Bound,
    field: Field,
    field_text: &'a str,
    case_sensitive: bool,
}

impl Condition<'_> {
    /// Lower-cases an expression unless the condition is case-sensitive.
    fn fold(&self, expression: &str) -> String {
        if self.case_sensitive {
            expression.to_owned()
        } else {
            format!("lower({expression})")
        }
    }

    /// The values with parameters expanded, quoted, each with its value as a finite number if
    /// it is one.
    fn literals(&self, values: &[Scalar]) -> Result<Vec<(String, Option<f64>)>, SqlError> {
        filter::expand(values, self.bound)
            .into_iter()
            .map(|text| {
                let number = text.trim().parse::<f64>().ok().filter(|n| n.is_finite());
                Ok((quote(&text)?, number))
            })
            .collect()
    }
}

/// An operator of a field condition: the SQL if the condition has it, `None` if not.
type Operator = fn(&mut Generator, &Condition<'_>) -> Result<Option<String>, SqlError>;

struct Generator {
    dialect: Dialect,
    /// Nesting depth of list lambdas, so inner lambda variables never shadow outer ones.
    depth: usize,
}

impl Generator {
    fn filter(&mut self, spec: &FilterSpec, bound: &Bound) -> Result<String, SqlError> {
        if let Some(parts) = &spec.all {
            return self.combine(parts, bound, "AND", "TRUE");
        }
        if let Some(parts) = &spec.any {
            return self.combine(parts, bound, "OR", "FALSE");
        }
        if let Some(part) = &spec.not {
            return Ok(format!("NOT ({})", self.filter(part, bound)?));
        }
        let field_text = spec.field.as_deref().unwrap_or_default();
        let condition = Condition {
            spec,
            bound,
            field: resolve(field_text)?,
            field_text,
            case_sensitive: spec.case_sensitive.unwrap_or(false),
        };
        // The first operator the condition has decides, in the engine's order.
        let operators: [Operator; 7] = [
            Self::exists,
            Self::equality,
            Self::string_match,
            Self::regex_match,
            Self::cidr_match,
            Self::comparison,
            Self::field_reference,
        ];
        for operator in operators {
            if let Some(sql) = operator(self, &condition)? {
                return Ok(sql);
            }
        }
        Err(SqlError::UnsupportedCondition {
            field: field_text.to_owned(),
            reason: "no operator".to_owned(),
        })
    }

    fn exists(&mut self, condition: &Condition<'_>) -> Result<Option<String>, SqlError> {
        let Some(expected) = condition.spec.exists else {
            return Ok(None);
        };
        let dialect = self.dialect;
        let present = self.any(&condition.field, |_, value| {
            Ok(match value {
                Value::Text(text) => format!("{text} IS NOT NULL"),
                Value::Json(json) => dialect.json_not_null(&json),
            })
        })?;
        Ok(Some(if expected {
            present
        } else {
            format!("NOT ({present})")
        }))
    }

    /// `equals` and `any_of`.
    fn equality(&mut self, condition: &Condition<'_>) -> Result<Option<String>, SqlError> {
        let spec = condition.spec;
        let values = match (&spec.equals, &spec.any_of) {
            (Some(value), _) => std::slice::from_ref(value),
            (_, Some(values)) => values.as_slice(),
            _ => return Ok(None),
        };
        let dialect = self.dialect;
        let needles = condition.literals(values)?;
        // An empty list (an allow-list parameter left at its empty default) matches nothing, as
        // in the engine; an empty `OR` would not be SQL.
        if needles.is_empty() {
            return Ok(Some("false".to_owned()));
        }
        self.any(&condition.field, |_, value| {
            let text = condition.fold(&value.text(dialect));
            let mut alternatives = Vec::new();
            for (literal, number) in &needles {
                let by_text = format!("{text} = {}", condition.fold(literal));
                // As in the engine, a JSON number equals a numeric needle by value.
                match (&value, number) {
                    (Value::Json(json), Some(number)) => alternatives.push(format!(
                        "(CASE WHEN {} THEN {} = {} ELSE {by_text} END)",
                        dialect.json_is_number(json),
                        dialect.to_double(&value.text(dialect)),
                        double(*number)
                    )),
                    _ => alternatives.push(by_text),
                }
            }
            Ok(alternatives.join(" OR "))
        })
        .map(Some)
    }

    /// `prefix`, `suffix` and `contains`.
    fn string_match(&mut self, condition: &Condition<'_>) -> Result<Option<String>, SqlError> {
        let spec = condition.spec;
        let strings = [
            (&spec.prefix, "prefix"),
            (&spec.suffix, "suffix"),
            (&spec.contains, "contains"),
        ];
        let Some((values, operator)) = strings
            .into_iter()
            .find_map(|(values, operator)| values.as_ref().map(|values| (values, operator)))
        else {
            return Ok(None);
        };
        let dialect = self.dialect;
        let needles = condition.literals(values.as_slice())?;
        if needles.is_empty() {
            return Ok(Some("false".to_owned()));
        }
        self.any(&condition.field, |_, value| {
            // `contains` searches objects as JSON text too, like the engine.
            let text = if operator == "contains" {
                value.whole_text(dialect)
            } else {
                value.text(dialect)
            };
            let text = condition.fold(&text);
            Ok(needles
                .iter()
                .map(|(literal, _)| {
                    let needle = condition.fold(literal);
                    match operator {
                        "prefix" => format!("starts_with({text}, {needle})"),
                        "suffix" => dialect.ends_with(&text, &needle),
                        _ => format!("strpos({text}, {needle}) > 0"),
                    }
                })
                .collect::<Vec<_>>()
                .join(" OR "))
        })
        .map(Some)
    }

    fn regex_match(&mut self, condition: &Condition<'_>) -> Result<Option<String>, SqlError> {
        let Some(pattern) = &condition.spec.regex else {
            return Ok(None);
        };
        let dialect = self.dialect;
        // Parameter values are regex-escaped before they reach the pattern, as in the engine.
        let rendered = template::render(pattern, condition.bound, regex::escape);
        self.any(&condition.field, |_, value| {
            dialect.regex(
                &value.whole_text(dialect),
                &rendered,
                condition.case_sensitive,
            )
        })
        .map(Some)
    }

    fn cidr_match(&mut self, condition: &Condition<'_>) -> Result<Option<String>, SqlError> {
        let Some(blocks) = &condition.spec.cidr else {
            return Ok(None);
        };
        let field_text = condition.field_text;
        let blocks = filter::expand(blocks.as_slice(), condition.bound)
            .iter()
            .map(|text| {
                Cidr::parse(text).ok_or_else(|| SqlError::UnsupportedCondition {
                    field: field_text.to_owned(),
                    reason: format!("invalid CIDR block `{text}`"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dialect = self.dialect;
        self.any(&condition.field, |_, value| {
            let text = value.text(dialect);
            blocks
                .iter()
                .map(|block| dialect.in_ipv4_block(&text, *block, field_text))
                .collect::<Result<Vec<_>, _>>()
                .map(|parts| parts.join(" OR "))
        })
        .map(Some)
    }

    /// `gt`, `gte`, `lt` and `lte`: numeric comparisons.
    fn comparison(&mut self, condition: &Condition<'_>) -> Result<Option<String>, SqlError> {
        let spec = condition.spec;
        let comparisons = [
            (&spec.gt, ">"),
            (&spec.gte, ">="),
            (&spec.lt, "<"),
            (&spec.lte, "<="),
        ];
        let Some((bound_value, operator)) = comparisons
            .into_iter()
            .find_map(|(value, operator)| value.as_ref().map(|value| (value, operator)))
        else {
            return Ok(None);
        };
        let text = filter::expand(std::slice::from_ref(bound_value), condition.bound)
            .into_iter()
            .next()
            .unwrap_or_default();
        let number = text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| SqlError::UnsupportedCondition {
                field: condition.field_text.to_owned(),
                reason: format!("`{text}` is not a finite number"),
            })?;
        let dialect = self.dialect;
        self.any(&condition.field, |_, value| {
            Ok(format!(
                "{} {operator} {}",
                dialect.to_double(&format!("trim({})", value.text(dialect))),
                double(number)
            ))
        })
        .map(Some)
    }

    /// `equals_field`, `suffix_field` and `contains_field`: the field against another field.
    fn field_reference(&mut self, condition: &Condition<'_>) -> Result<Option<String>, SqlError> {
        let spec = condition.spec;
        let references = [
            (&spec.equals_field, "equals"),
            (&spec.suffix_field, "suffix"),
            (&spec.contains_field, "contains"),
        ];
        let Some((other, operator)) = references
            .into_iter()
            .find_map(|(other, operator)| other.as_ref().map(|other| (other, operator)))
        else {
            return Ok(None);
        };
        let other_field = resolve(other)?;
        // One level deeper, so the other field's lambda never reuses the outer variable.
        self.depth += 1;
        let other = self.first_text(&other_field);
        self.depth -= 1;
        let other = format!("({})", condition.fold(&other?));
        let dialect = self.dialect;
        let comparison = self.any(&condition.field, |_, value| {
            let text = condition.fold(&value.text(dialect));
            Ok(match operator {
                "equals" => format!("{text} = {other}"),
                "suffix" => dialect.ends_with(&text, &other),
                _ => format!("strpos({text}, {other}) > 0"),
            })
        })?;
        // An empty or missing other value never matches, as in the engine.
        Ok(Some(format!(
            "coalesce({other} <> '' AND ({comparison}), false)"
        )))
    }

    fn combine(
        &mut self,
        parts: &[FilterSpec],
        bound: &Bound,
        joiner: &str,
        empty: &str,
    ) -> Result<String, SqlError> {
        if parts.is_empty() {
            return Ok(empty.to_owned());
        }
        let parts = parts
            .iter()
            .map(|part| self.filter(part, bound).map(|sql| format!("({sql})")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(parts.join(&format!(" {joiner} ")))
    }

    /// A boolean that is true if one value of `field` satisfies `predicate`, never NULL.
    fn any(
        &mut self,
        field: &Field,
        predicate: impl Fn(&mut Generator, Value) -> Result<String, SqlError>,
    ) -> Result<String, SqlError> {
        let dialect = self.dialect;
        match field {
            Field::Text(column) => {
                let inner = predicate(self, Value::Text(column.clone()))?;
                Ok(format!("coalesce({inner}, false)"))
            }
            Field::Resources(member) => {
                let variable = self.variable();
                self.depth += 1;
                let inner = predicate(self, Value::Text(format!("{variable}.{member}")));
                self.depth -= 1;
                let inner = format!("coalesce({}, false)", inner?);
                Ok(format!(
                    "coalesce({}, false)",
                    dialect.list_any("resources", &variable, &inner)
                ))
            }
            Field::Json { column, segments } => {
                let list = dialect.json_values(column, segments)?;
                let variable = self.variable();
                self.depth += 1;
                let inner = predicate(self, Value::Json(variable.clone()));
                self.depth -= 1;
                let inner = format!("coalesce({}, false)", inner?);
                Ok(format!(
                    "coalesce({}, false)",
                    dialect.list_any(&list, &variable, &inner)
                ))
            }
        }
    }

    fn variable(&self) -> String {
        format!("tg_v{}", self.depth)
    }

    /// The first non-null value of a field as scalar text (NULL for objects), as the engine's
    /// field references read the other field.
    fn first_text(&mut self, field: &Field) -> Result<String, SqlError> {
        let dialect = self.dialect;
        let variable = self.variable();
        Ok(match field {
            Field::Text(column) => column.clone(),
            Field::Resources(member) => dialect.list_first(&dialect.list_filter(
                &dialect.list_transform("resources", &variable, &format!("{variable}.{member}")),
                &variable,
                &format!("{variable} IS NOT NULL"),
            )),
            Field::Json { column, segments } => {
                let list = dialect.json_values(column, segments)?;
                let first = dialect.list_first(&dialect.list_filter(
                    &list,
                    &variable,
                    &dialect.json_not_null(&variable),
                ));
                dialect.json_text(&first)
            }
        })
    }

    /// The engine's output text of a field: every non-null value reached, objects as JSON,
    /// joined with `,`; NULL when there is none, or `''` when `default_empty`.
    fn text(&mut self, path: &str, default_empty: bool) -> Result<String, SqlError> {
        let dialect = self.dialect;
        let variable = self.variable();
        let text = match resolve(path)? {
            Field::Text(column) => column,
            Field::Resources(member) => {
                let values = dialect.list_filter(
                    &dialect.list_transform(
                        "resources",
                        &variable,
                        &format!("{variable}.{member}"),
                    ),
                    &variable,
                    &format!("{variable} IS NOT NULL"),
                );
                dialect.join_or_null(&values)
            }
            Field::Json { column, segments } => {
                let list = dialect.json_values(column, &segments)?;
                let values = dialect.list_transform(
                    &dialect.list_filter(&list, &variable, &dialect.json_not_null(&variable)),
                    &variable,
                    &dialect.json_whole_text(&variable),
                );
                dialect.join_or_null(&values)
            }
        };
        Ok(if default_empty {
            format!("coalesce({text}, '')")
        } else {
            text
        })
    }

    fn texts(&mut self, paths: &[String], default_empty: bool) -> Result<Vec<String>, SqlError> {
        paths
            .iter()
            .map(|path| self.text(path, default_empty))
            .collect()
    }
}

impl Value {
    /// Scalar text: objects, arrays and nulls are NULL (the engine's non-whole leaf text).
    fn text(&self, dialect: Dialect) -> String {
        match self {
            Value::Text(text) => text.clone(),
            Value::Json(json) => dialect.json_text(json),
        }
    }

    /// Text with objects and arrays as JSON (for `contains` and `regex`).
    fn whole_text(&self, dialect: Dialect) -> String {
        match self {
            Value::Text(text) => text.clone(),
            Value::Json(json) => dialect.json_whole_text(json),
        }
    }
}

fn double(number: f64) -> String {
    format!("CAST('{number:e}' AS DOUBLE)")
}

impl Dialect {
    fn event_time(self, column: &str) -> String {
        match self {
            Dialect::Athena => format!("try(from_iso8601_timestamp({column}))"),
            Dialect::DuckDb => format!("TRY_CAST({column} AS TIMESTAMP)"),
        }
    }

    fn timestamp(self, seconds: i64) -> Result<String, SqlError> {
        let text = timefmt::format_unix(seconds);
        Ok(match self {
            Dialect::Athena => format!("from_iso8601_timestamp({})", quote(&text)?),
            Dialect::DuckDb => format!("CAST({} AS TIMESTAMP)", quote(&text)?),
        })
    }

    fn format_time(self, expression: &str) -> String {
        match self {
            Dialect::Athena => format!(
                "format_datetime({expression} AT TIME ZONE 'UTC', 'yyyy-MM-dd''T''HH:mm:ss''Z''')"
            ),
            Dialect::DuckDb => format!("strftime({expression}, '%Y-%m-%dT%H:%M:%SZ')"),
        }
    }

    /// Every value a path reaches inside a JSON string column, as a list of JSON values
    /// (arrays on the way and at the end walked element by element, SQL NULLs dropped).
    fn json_values(self, column: &str, segments: &[String]) -> Result<String, SqlError> {
        match self {
            Dialect::Athena => {
                // Lax mode unwraps arrays at member steps and wraps scalars at `[*]`, which is
                // exactly the engine's walk.
                let mut path = String::from("lax $");
                for segment in segments {
                    let _ = write!(path, ".\"{segment}\"[*]");
                }
                if segments.is_empty() {
                    path.push_str("[*]");
                }
                Ok(format!(
                    "CAST(json_parse(json_query({column}, {} WITH ARRAY WRAPPER)) AS array(json))",
                    quote(&path)?
                ))
            }
            Dialect::DuckDb => {
                // DuckDB has no lax mode: enumerate every placement of `[*]` (an array or not at
                // each step). For any document exactly one placement reaches each leaf; the
                // others yield nothing, and an array left at the end is dropped because its
                // elements come from the placement with a final `[*]`.
                let mut singles = Vec::new();
                let mut lists = Vec::new();
                let variants = 1usize << segments.len();
                for mask in 0..variants {
                    let mut path = String::from("$");
                    for (index, segment) in segments.iter().enumerate() {
                        let _ = write!(path, ".\"{segment}\"");
                        if mask & (1 << index) != 0 {
                            path.push_str("[*]");
                        }
                    }
                    let extract = format!("json_extract({column}, {})", quote(&path)?);
                    if mask != 0 {
                        lists.push(extract);
                    } else {
                        singles.push(extract);
                    }
                }
                if segments.is_empty() {
                    lists.push(format!("json_extract({column}, '$[*]')"));
                }
                let mut parts = vec![format!("[{}]", singles.join(", "))];
                parts.extend(lists);
                Ok(format!(
                    "list_filter(flatten([{}]), lambda tg_j: tg_j IS NOT NULL AND json_type(tg_j) <> 'ARRAY')",
                    parts.join(", ")
                ))
            }
        }
    }

    fn json_text(self, json: &str) -> String {
        match self {
            Dialect::Athena => format!("json_extract_scalar({json}, '$')"),
            Dialect::DuckDb => format!(
                "(CASE WHEN json_type({json}) IN ('OBJECT', 'ARRAY', 'NULL') THEN NULL \
                 ELSE json_extract_string({json}, '$') END)"
            ),
        }
    }

    fn json_whole_text(self, json: &str) -> String {
        match self {
            Dialect::Athena => format!(
                "(CASE WHEN json_format({json}) = 'null' THEN NULL \
                 ELSE coalesce(json_extract_scalar({json}, '$'), json_format({json})) END)"
            ),
            Dialect::DuckDb => format!(
                "(CASE WHEN json_type({json}) = 'NULL' THEN NULL \
                 ELSE json_extract_string({json}, '$') END)"
            ),
        }
    }

    fn json_not_null(self, json: &str) -> String {
        match self {
            Dialect::Athena => format!("json_format({json}) <> 'null'"),
            Dialect::DuckDb => format!("json_type({json}) <> 'NULL'"),
        }
    }

    fn json_is_number(self, json: &str) -> String {
        match self {
            Dialect::Athena => format!("regexp_like(json_format({json}), '^-?[0-9]')"),
            Dialect::DuckDb => {
                format!("json_type({json}) IN ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE')")
            }
        }
    }

    fn to_double(self, text: &str) -> String {
        match self {
            Dialect::Athena => format!("try_cast({text} AS double)"),
            Dialect::DuckDb => format!("TRY_CAST({text} AS DOUBLE)"),
        }
    }

    fn to_bigint(self, text: &str) -> String {
        match self {
            Dialect::Athena => format!("try_cast({text} AS bigint)"),
            Dialect::DuckDb => format!("TRY_CAST({text} AS BIGINT)"),
        }
    }

    fn ends_with(self, text: &str, suffix: &str) -> String {
        match self {
            // Trino has no ends_with: compare reversed prefixes.
            Dialect::Athena => format!("starts_with(reverse({text}), reverse({suffix}))"),
            Dialect::DuckDb => format!("ends_with({text}, {suffix})"),
        }
    }

    fn regex(self, text: &str, pattern: &str, case_sensitive: bool) -> Result<String, SqlError> {
        Ok(match self {
            Dialect::Athena => {
                let pattern = if case_sensitive {
                    pattern.to_owned()
                } else {
                    format!("(?i){pattern}")
                };
                format!("regexp_like({text}, {})", quote(&pattern)?)
            }
            Dialect::DuckDb => {
                let options = if case_sensitive { "" } else { ", 'i'" };
                format!("regexp_matches({text}, {}{options})", quote(pattern)?)
            }
        })
    }

    /// IPv4 membership by arithmetic (no inet extension needed); IPv6 blocks are refused.
    fn in_ipv4_block(self, text: &str, block: Cidr, field: &str) -> Result<String, SqlError> {
        let IpAddr::V4(network) = block.network() else {
            return Err(SqlError::UnsupportedCondition {
                field: field.to_owned(),
                reason: "IPv6 CIDR blocks have no SQL translation".to_owned(),
            });
        };
        let divisor = 1u64 << (32 - u32::from(block.prefix()));
        let network = u64::from(u32::from(network)) / divisor;
        let octet = |index: usize| self.to_bigint(&format!("split_part({text}, '.', {index})"));
        let shape = self.regex(
            text,
            r"^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$",
            true,
        )?;
        let (a, b, c, d) = (octet(1), octet(2), octet(3), octet(4));
        Ok(format!(
            "({shape} AND {a} <= 255 AND {b} <= 255 AND {c} <= 255 AND {d} <= 255 \
             AND floor(({a} * 16777216 + {b} * 65536 + {c} * 256 + {d}) / {divisor}) = {network})"
        ))
    }

    fn list_any(self, list: &str, variable: &str, predicate: &str) -> String {
        match self {
            Dialect::Athena => format!("any_match({list}, {variable} -> {predicate})"),
            Dialect::DuckDb => {
                format!("len(list_filter({list}, lambda {variable}: {predicate})) > 0")
            }
        }
    }

    fn list_filter(self, list: &str, variable: &str, predicate: &str) -> String {
        match self {
            Dialect::Athena => format!("filter({list}, {variable} -> {predicate})"),
            Dialect::DuckDb => format!("list_filter({list}, lambda {variable}: {predicate})"),
        }
    }

    fn list_transform(self, list: &str, variable: &str, expression: &str) -> String {
        match self {
            Dialect::Athena => format!("transform({list}, {variable} -> {expression})"),
            Dialect::DuckDb => {
                format!("list_transform({list}, lambda {variable}: {expression})")
            }
        }
    }

    fn list_first(self, list: &str) -> String {
        match self {
            Dialect::Athena => format!("element_at({list}, 1)"),
            Dialect::DuckDb => format!("({list})[1]"),
        }
    }

    fn join_or_null(self, list: &str) -> String {
        match self {
            Dialect::Athena => format!(
                "(CASE WHEN cardinality({list}) = 0 THEN NULL ELSE array_join({list}, ',') END)"
            ),
            Dialect::DuckDb => format!(
                "(CASE WHEN len({list}) = 0 THEN NULL ELSE array_to_string({list}, ',') END)"
            ),
        }
    }
}

/// The layout of the local files a DuckDB view reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileLayout {
    /// S3 delivery files: `{"Records": [...]}`, plain or gzipped.
    Records,
    /// One record per line.
    Lines,
}

/// `CREATE VIEW <view>` over local CloudTrail files with the Athena table's columns, so the
/// queries of [`Compiled::to_sql`] with [`Dialect::DuckDb`] run unchanged.
pub fn duckdb_view(view: &str, files: &[&Path], layout: FileLayout) -> Result<String, SqlError> {
    view_sql(view, files, layout, false)
}

/// As [`duckdb_view`] over delivery files kept in a trail bucket's layout
/// (`.../AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>`), with the partition
/// columns of `athena::TrailTable::ddl` (`account`, `region`, `day`) taken from each file's
/// path, so the queries of [`Compiled::to_sql_over`] with partitions run unchanged.
pub fn duckdb_trail_view(view: &str, files: &[&Path]) -> Result<String, SqlError> {
    view_sql(view, files, FileLayout::Records, true)
}

fn view_sql(
    view: &str,
    files: &[&Path],
    layout: FileLayout,
    partitioned: bool,
) -> Result<String, SqlError> {
    let view = table_name(view)?;
    let list = files
        .iter()
        .map(|file| quote(&file.to_string_lossy()))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    // Records are read as raw JSON and every column is extracted explicitly: schema inference
    // over heterogeneous requestParameters would build huge, file-dependent structs.
    let raw = match layout {
        FileLayout::Records if partitioned => {
            let mut parts = Vec::with_capacity(files.len());
            for file in files {
                let path = file.to_string_lossy();
                let key = crate::source::s3::parse_key(&path).ok_or_else(|| {
                    SqlError::InvalidPartition(format!("{path} is not in a trail bucket's layout"))
                })?;
                let day = crate::source::s3::day_folder(key.day);
                parts.push(format!(
                    "({}, {}, {}, {})",
                    quote(&path)?,
                    quote(&key.account)?,
                    quote(&key.region)?,
                    quote(&day)?
                ));
            }
            format!(
                "SELECT tg_files.r, tg_parts.account, tg_parts.region, tg_parts.day FROM \
                 (SELECT unnest(Records) AS r, filename FROM read_json([{list}], \
                 columns = {{'Records': 'JSON[]'}}, format = 'unstructured', \
                 maximum_object_size = 1073741824, filename = true)) AS tg_files \
                 JOIN (VALUES {}) AS tg_parts(filename, account, region, day) \
                 ON tg_files.filename = tg_parts.filename",
                parts.join(", ")
            )
        }
        FileLayout::Records => format!(
            "SELECT unnest(Records) AS r FROM read_json([{list}], \
             columns = {{'Records': 'JSON[]'}}, format = 'unstructured', \
             maximum_object_size = 1073741824)"
        ),
        FileLayout::Lines => format!(
            "SELECT json AS r FROM read_json_objects([{list}], format = 'newline_delimited', \
             maximum_object_size = 16777216)"
        ),
    };
    let text = |path: &str| {
        format!(
            "json_extract_string(r, {})",
            quote(path).unwrap_or_default()
        )
    };
    let mut columns = Vec::new();
    for (key, column) in TOP_LEVEL {
        columns.push(format!("{} AS {column}", text(&format!("$.\"{key}\""))));
    }
    let members = |prefix: &str, names: &[(&str, &str)]| {
        names
            .iter()
            .map(|(key, name)| format!("{name} := {}", text(&format!("{prefix}.\"{key}\""))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let issuer = members(
        "$.userIdentity.sessionContext.sessionIssuer",
        &[
            ("type", "type"),
            ("principalId", "principalid"),
            ("arn", "arn"),
            ("accountId", "accountid"),
            ("userName", "username"),
        ],
    );
    let attributes = members(
        "$.userIdentity.sessionContext.attributes",
        &[
            ("mfaAuthenticated", "mfaauthenticated"),
            ("creationDate", "creationdate"),
        ],
    );
    let context = format!(
        "struct_pack(attributes := struct_pack({attributes}), \
         sessionissuer := struct_pack({issuer}), {})",
        members(
            "$.userIdentity.sessionContext",
            &[
                ("ec2RoleDelivery", "ec2roledelivery"),
                ("sourceIdentity", "sourceidentity"),
            ],
        )
    );
    let on_behalf_of = members(
        "$.userIdentity.onBehalfOf",
        &[
            ("userId", "userid"),
            ("identityStoreArn", "identitystorearn"),
        ],
    );
    columns.push(format!(
        "struct_pack({}, onbehalfof := struct_pack({on_behalf_of}), sessioncontext := {context}) \
         AS useridentity",
        members(
            "$.userIdentity",
            &[
                ("type", "type"),
                ("principalId", "principalid"),
                ("arn", "arn"),
                ("accountId", "accountid"),
                ("invokedBy", "invokedby"),
                ("accessKeyId", "accesskeyid"),
                ("userName", "username"),
            ],
        )
    ));
    columns.push(format!(
        "struct_pack({}) AS tlsdetails",
        members(
            "$.tlsDetails",
            &[
                ("tlsVersion", "tlsversion"),
                ("cipherSuite", "ciphersuite"),
                ("clientProvidedHostHeader", "clientprovidedhostheader"),
            ],
        )
    ));
    columns.push(
        "list_transform(json_extract(r, '$.resources[*]'), lambda tg_r: struct_pack(\
         arn := json_extract_string(tg_r, '$.ARN'), \
         accountid := json_extract_string(tg_r, '$.accountId'), \
         type := json_extract_string(tg_r, '$.type'))) AS resources"
            .to_owned(),
    );
    for (key, column) in JSON_COLUMNS {
        // JSON null becomes SQL NULL, as in Athena's string columns.
        columns.push(format!(
            "(CASE WHEN json_type(r, '$.\"{key}\"') = 'NULL' THEN NULL \
             ELSE json_extract_string(r, '$.\"{key}\"') END) AS {column}"
        ));
    }
    if partitioned {
        columns.extend(PARTITION_COLUMNS.iter().map(|column| (*column).to_owned()));
    }
    Ok(format!(
        "CREATE OR REPLACE VIEW {view} AS SELECT {} FROM ({raw}) AS tg_raw \
         WHERE json_type(r) = 'OBJECT'",
        columns.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Params, Runbook};
    use time::macros::datetime;

    fn plan(yaml_filter: &str, params: &[(&str, &str)]) -> Result<SqlPlan, SqlError> {
        let text = format!(
            "id: t\ntitle: t\nseverity: low\nparameters:\n  - {{name: who, type: string, default: x}}\n  - {{name: names, type: list, default: [a]}}\nfilter: {yaml_filter}\noutput:\n  rows:\n    columns: [eventTime, requestParameters.roleArn]\n"
        );
        let runbook = Runbook::parse(&text, "t.yaml").expect("test runbook parses");
        let mut values = Params::new().window(
            datetime!(2023-07-10 0:00 UTC),
            datetime!(2023-07-11 0:00 UTC),
        );
        for (name, value) in params {
            values = values.set(name, value);
        }
        let compiled = runbook.compile(&values).expect("test runbook binds");
        compiled.to_sql(Dialect::DuckDb, "cloudtrail")
    }

    #[test]
    fn quote_doubles_single_quotes_and_nothing_else() {
        assert_eq!(quote("abc").as_deref(), Ok("'abc'"));
        assert_eq!(quote("it's").as_deref(), Ok("'it''s'"));
        assert_eq!(quote("' OR 1=1 --").as_deref(), Ok("''' OR 1=1 --'"));
        assert_eq!(quote(r"a\'b").as_deref(), Ok(r"'a\''b'"));
        assert!(matches!(quote("a\0b"), Err(SqlError::NulInValue(_))));
    }

    #[test]
    fn table_names_are_plain_identifiers() {
        assert_eq!(
            table_name("cloudtrail_logs").as_deref(),
            Ok("\"cloudtrail_logs\"")
        );
        assert_eq!(table_name("db.ct").as_deref(), Ok("\"db\".\"ct\""));
        for bad in ["", "a;b", "a.b.c", "x\" OR 1=1", "1abc", "a b"] {
            assert!(table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn injected_parameters_stay_inside_one_literal() {
        for attack in [
            "' OR 1=1 --",
            "x'); DROP TABLE cloudtrail; --",
            "'' OR ''='",
            "\\' OR 1=1 --",
        ] {
            let sql = plan(
                "{field: userIdentity.userName, equals: '{{ who }}'}",
                &[("who", attack)],
            )
            .expect("compiles");
            let expected = quote(attack).expect("quotable");
            for query in &sql.queries {
                assert!(query.sql.contains(&expected), "{}", query.sql);
            }
            // Removing every literal leaves no trace of the attack text.
            assert!(!strip_literals(&sql.filter).contains("OR 1=1"));
            assert!(!strip_literals(&sql.filter).contains("DROP"));
        }
    }

    /// The SQL with every string literal removed (quotes doubled inside literals stay inside).
    fn strip_literals(sql: &str) -> String {
        let mut out = String::new();
        let mut inside = false;
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if inside && chars.peek() == Some(&'\'') {
                    chars.next();
                    continue;
                }
                inside = !inside;
                continue;
            }
            if !inside {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn regex_parameters_are_escaped_before_quoting() {
        let sql = plan(
            "{field: eventName, regex: '^{{ who }}$'}",
            &[("who", "a.b'c")],
        )
        .expect("compiles");
        assert!(sql.filter.contains(r"'^a\.b''c$'"), "{}", sql.filter);
    }

    #[test]
    fn list_parameters_expand_to_one_literal_each() {
        let sql = plan(
            "{field: eventName, any_of: ['{{ names }}']}",
            &[("names", "StopLogging,it's")],
        )
        .expect("compiles");
        assert!(sql.filter.contains("lower('StopLogging')"));
        assert!(sql.filter.contains("lower('it''s')"));
    }

    #[test]
    fn an_empty_list_parameter_matches_nothing() {
        for condition in [
            "{field: userIdentity.arn, any_of: ['{{ names }}']}",
            "{field: userIdentity.arn, prefix: ['{{ names }}']}",
        ] {
            let sql = plan(&format!("{{not: {condition}}}"), &[("names", "")]).expect("compiles");
            assert!(sql.filter.contains("NOT (false)"), "{}", sql.filter);
        }
    }

    #[test]
    fn unknown_fields_and_ipv6_blocks_are_refused() {
        assert!(matches!(
            plan("{field: '@timestamp', exists: true}", &[]),
            Err(SqlError::UnsupportedField(_))
        ));
        assert!(matches!(
            plan("{field: userIdentity.nickname, exists: true}", &[]),
            Err(SqlError::UnsupportedField(_))
        ));
        assert!(matches!(
            plan("{field: sourceIPAddress, cidr: '::/0'}", &[]),
            Err(SqlError::UnsupportedCondition { .. })
        ));
        assert!(plan("{field: sourceIPAddress, cidr: 10.0.0.0/8}", &[]).is_ok());
    }

    #[test]
    fn case_sensitive_conditions_do_not_fold() {
        let folded = plan("{field: eventName, equals: X}", &[]).expect("compiles");
        assert!(folded.filter.contains("lower(eventname) = lower('X')"));
        let exact =
            plan("{field: eventName, equals: X, case_sensitive: true}", &[]).expect("compiles");
        assert!(exact.filter.contains("eventname = 'X'"));
    }

    #[test]
    fn json_paths_enumerate_array_placements() {
        let sql = plan("{field: requestParameters.tags.key, equals: k}", &[]).expect("compiles");
        for path in [
            "'$.\"tags\".\"key\"'",
            "'$.\"tags\"[*].\"key\"'",
            "'$.\"tags\".\"key\"[*]'",
            "'$.\"tags\"[*].\"key\"[*]'",
        ] {
            assert!(sql.filter.contains(path), "{path} in {}", sql.filter);
        }
    }
}
