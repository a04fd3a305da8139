//! A [`RunbookResult`] assembled from the rows of a [`crate::sql::SqlPlan`]'s queries, so a run in
//! Athena (or DuckDB) is reported exactly like a run of the in-process engine.
//!
//! Each query computes one section (see [`Section`] for its columns); SQL engines hand values
//! back as text (Athena's `VarCharValue`) with `None` for NULL, which is what [`assemble`] takes.
//! The sections keep the engine's meaning: rows in the query's order, groups largest first,
//! `groups_total` before the limit, distinct values sorted. What SQL cannot report is said in the
//! coverage: no files are counted (the table is read by the SQL engine), and the caller's notes
//! (query ids, bytes scanned) are added.

use crate::engine::Compiled;
use crate::filter::FieldPath;
use crate::output::{
    CountsResult, Coverage, DistinctResult, FirstLast, FirstLastResult, GroupCount, RowsResult,
    RunbookResult, Sections, TopResult, ValueCount,
};
use crate::spec::{CountBySpec, OutputSpec, RowsSpec};
use crate::sql::Section;

/// One section's result set: every cell as text, `None` for SQL NULL.
pub type SectionRows = Vec<Vec<Option<String>>>;

/// Why section rows cannot be turned into a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlResultError {
    /// The summary query's rows are missing or not one row of three counts.
    #[error("the summary query returned {0} rows; expected exactly one")]
    Summary(usize),
    /// A row has a different number of columns than the section's query selects.
    #[error("section `{section}`: a row has {found} columns; expected {expected}")]
    Columns {
        /// The section name.
        section: String,
        /// Columns the query selects.
        expected: usize,
        /// Columns in the row.
        found: usize,
    },
    /// A count column holds something that is not a non-negative integer.
    #[error("section `{section}`: `{value}` is not a count")]
    Count {
        /// The section name.
        section: String,
        /// The cell.
        value: String,
    },
    /// A section the runbook does not have (the rows do not belong to this plan).
    #[error("section `{0}` is not an output of this runbook")]
    Unexpected(String),
}

/// Builds the result of `compiled` from its SQL sections' rows (in any order; the summary is
/// required, absent output sections are reported empty). `notes` go to the coverage as they are.
pub fn assemble(
    compiled: &Compiled<'_>,
    sections: &[(Section, SectionRows)],
    notes: Vec<String>,
) -> Result<RunbookResult, SqlResultError> {
    let spec = compiled.runbook().spec();
    let output = &spec.output;
    check_known(output, sections)?;
    let [events_scanned, events_matched, events_outside_window] =
        summary(rows_of(sections, &Section::Summary))?;
    let assembled = Sections {
        rows: output
            .rows
            .as_ref()
            .map(|rows| rows_section(rows, rows_of(sections, &Section::Rows), events_matched))
            .transpose()?,
        counts: output
            .count_by
            .as_ref()
            .map(|count_by| counts_section(count_by, rows_of(sections, &Section::CountBy)))
            .transpose()?,
        top: output
            .top
            .as_ref()
            .map(|top| {
                Ok::<_, SqlResultError>(TopResult {
                    field: field_name(&top.field),
                    values: value_counts(&Section::Top, rows_of(sections, &Section::Top))?,
                })
            })
            .transpose()?,
        distinct: output
            .distinct
            .iter()
            .map(|field| {
                let section = Section::Distinct(field.clone());
                Ok(DistinctResult {
                    field: field_name(field),
                    values: value_counts(&section, rows_of(sections, &section))?,
                    truncated: false,
                })
            })
            .collect::<Result<_, SqlResultError>>()?,
        first_last_seen: output
            .first_last_seen
            .as_ref()
            .map(|fields| first_last_section(fields, rows_of(sections, &Section::FirstLastSeen)))
            .transpose()?,
    };
    let coverage = Coverage {
        events_scanned,
        events_matched,
        events_outside_window,
        // The SQL engine reads the table; no file or page is read here.
        files_read: 0,
        records_skipped: 0,
        skip_reasons: Default::default(),
        window: compiled.window(),
        truncated: false,
        notes,
    };
    Ok(RunbookResult::new(spec, assembled, coverage))
}

/// Rows handed in for a section this runbook does not have belong to another plan.
fn check_known(
    output: &OutputSpec,
    sections: &[(Section, SectionRows)],
) -> Result<(), SqlResultError> {
    for (section, _) in sections {
        let known = match section {
            Section::Summary => true,
            Section::Rows => output.rows.is_some(),
            Section::CountBy => output.count_by.is_some(),
            Section::Top => output.top.is_some(),
            Section::Distinct(field) => output.distinct.contains(field),
            Section::FirstLastSeen => output.first_last_seen.is_some(),
        };
        if !known {
            return Err(SqlResultError::Unexpected(section.name()));
        }
    }
    Ok(())
}

/// A section's rows; a section that was not handed in has none.
fn rows_of<'a>(
    sections: &'a [(Section, SectionRows)],
    wanted: &Section,
) -> &'a [Vec<Option<String>>] {
    sections
        .iter()
        .find(|(section, _)| section == wanted)
        .map(|(_, rows)| rows.as_slice())
        .unwrap_or_default()
}

/// The summary's one row: events scanned, matched and outside the window.
fn summary(rows: &[Vec<Option<String>>]) -> Result<[u64; 3], SqlResultError> {
    let [counts_row] = rows else {
        return Err(SqlResultError::Summary(rows.len()));
    };
    let name = Section::Summary.name();
    check_width(&name, counts_row, 3)?;
    Ok([
        count(&name, &counts_row[0])?,
        count(&name, &counts_row[1])?,
        count(&name, &counts_row[2])?,
    ])
}

fn rows_section(
    spec: &RowsSpec,
    rows: &[Vec<Option<String>>],
    matched: u64,
) -> Result<RowsResult, SqlResultError> {
    let name = Section::Rows.name();
    let mut kept = Vec::new();
    for row in rows {
        check_width(&name, row, spec.columns.len())?;
        kept.push(row.iter().map(text).collect());
    }
    Ok(RowsResult {
        columns: field_names(&spec.columns),
        rows: kept,
        matched,
    })
}

/// Each row is the key fields, the count, the distinct count when asked, and the number of
/// groups before the limit (the same in every row).
fn counts_section(
    count_by: &CountBySpec,
    rows: &[Vec<Option<String>>],
) -> Result<CountsResult, SqlResultError> {
    let name = Section::CountBy.name();
    let keys = count_by.fields.len();
    let width = keys + 2 + usize::from(count_by.distinct.is_some());
    let mut groups = Vec::new();
    let mut groups_total = 0;
    for row in rows {
        check_width(&name, row, width)?;
        let distinct = match &count_by.distinct {
            Some(_) => Some(count(&name, &row[keys + 1])?),
            None => None,
        };
        groups_total = usize::try_from(count(&name, &row[width - 1])?).unwrap_or(usize::MAX);
        groups.push(GroupCount {
            key: row[..keys].iter().map(text).collect(),
            count: count(&name, &row[keys])?,
            distinct,
        });
    }
    Ok(CountsResult {
        fields: field_names(&count_by.fields),
        distinct_field: count_by.distinct.as_deref().map(field_name),
        groups,
        groups_total,
        thresholded: count_by.min_count.is_some() || count_by.min_distinct.is_some(),
        truncated: false,
    })
}

fn first_last_section(
    fields: &[String],
    rows: &[Vec<Option<String>>],
) -> Result<FirstLastResult, SqlResultError> {
    let name = Section::FirstLastSeen.name();
    let keys = fields.len();
    let mut entries = Vec::new();
    for row in rows {
        check_width(&name, row, keys + 3)?;
        entries.push(FirstLast {
            key: row[..keys].iter().map(text).collect(),
            first: text(&row[keys]),
            last: text(&row[keys + 1]),
            count: count(&name, &row[keys + 2])?,
        });
    }
    Ok(FirstLastResult {
        fields: field_names(fields),
        entries,
        truncated: false,
    })
}

fn value_counts(
    section: &Section,
    rows: &[Vec<Option<String>>],
) -> Result<Vec<ValueCount>, SqlResultError> {
    let name = section.name();
    rows.iter()
        .map(|row| {
            check_width(&name, row, 2)?;
            Ok(ValueCount {
                value: text(&row[0]),
                count: count(&name, &row[1])?,
            })
        })
        .collect()
}

/// The engine names fields by their parsed path; load-time validation guarantees they parse.
fn field_name(field: &str) -> String {
    FieldPath::parse(field).map_or_else(|| field.to_owned(), |path| path.as_str().to_owned())
}

fn field_names(fields: &[String]) -> Vec<String> {
    fields.iter().map(|field| field_name(field)).collect()
}

/// A missing value is `""`, as in the engine's sections.
fn text(cell: &Option<String>) -> String {
    cell.clone().unwrap_or_default()
}

fn count(section: &str, cell: &Option<String>) -> Result<u64, SqlResultError> {
    let value = cell.as_deref().unwrap_or("");
    value.trim().parse().map_err(|_| SqlResultError::Count {
        section: section.to_owned(),
        value: value.to_owned(),
    })
}

fn check_width(
    section: &str,
    row: &[Option<String>],
    expected: usize,
) -> Result<(), SqlResultError> {
    if row.len() == expected {
        Ok(())
    } else {
        Err(SqlResultError::Columns {
            section: section.to_owned(),
            expected,
            found: row.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySource;
    use crate::{Params, Runbook, run};
    use serde_json::json;

    const RUNBOOK: &str = r#"
id: sql-result-test
title: SQL result test
severity: medium
attack: [T1078]
filter: {field: eventSource, equals: iam.amazonaws.com}
output:
  rows: {columns: [eventTime, eventName, userIdentity.arn], limit: 2}
  count_by: {fields: [eventName], distinct: sourceIPAddress, min_count: 1}
  top: {field: userIdentity.arn, n: 2}
  distinct: [sourceIPAddress]
  first_last_seen: [eventName]
next_steps: [Look closer.]
"#;

    fn records() -> Vec<serde_json::Value> {
        let record = |time: &str, name: &str, arn: Option<&str>, ip: &str| {
            let mut record = json!({
                "eventTime": time,
                "eventSource": "iam.amazonaws.com",
                "eventName": name,
                "sourceIPAddress": ip,
                "userIdentity": {},
            });
            if let Some(arn) = arn {
                record["userIdentity"]["arn"] = json!(arn);
            }
            record
        };
        vec![
            record(
                "2026-01-01T10:00:00Z",
                "CreateUser",
                Some("arn:aws:iam::1:user/a"),
                "10.0.0.1",
            ),
            record(
                "2026-01-01T10:05:00Z",
                "CreateUser",
                Some("arn:aws:iam::1:user/a"),
                "10.0.0.2",
            ),
            record("2026-01-01T10:10:00Z", "AttachUserPolicy", None, "10.0.0.1"),
            json!({"eventTime": "2026-01-01T10:20:00Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject"}),
            record(
                "2025-12-01T00:00:00Z",
                "CreateUser",
                Some("arn:aws:iam::1:user/z"),
                "10.9.9.9",
            ),
        ]
    }

    fn params() -> Params {
        Params::new().window(
            time::macros::datetime!(2026-01-01 00:00 UTC),
            time::macros::datetime!(2026-01-02 00:00 UTC),
        )
    }

    fn cells(values: &[&str]) -> Vec<Option<String>> {
        values
            .iter()
            .map(|value| Some((*value).to_owned()))
            .collect()
    }

    /// The rows the SQL queries give for `records()`, written out by hand from their
    /// definitions in sql.rs (the DuckDB proof in tests/sql_duckdb.rs checks SQL against the
    /// engine; this checks the assembly).
    fn sections() -> Vec<(Section, SectionRows)> {
        vec![
            (Section::Summary, vec![cells(&["5", "3", "1"])]),
            (
                Section::Rows,
                vec![
                    cells(&[
                        "2026-01-01T10:00:00Z",
                        "CreateUser",
                        "arn:aws:iam::1:user/a",
                    ]),
                    cells(&[
                        "2026-01-01T10:05:00Z",
                        "CreateUser",
                        "arn:aws:iam::1:user/a",
                    ]),
                ],
            ),
            (
                Section::CountBy,
                vec![
                    cells(&["CreateUser", "2", "2", "2"]),
                    cells(&["AttachUserPolicy", "1", "1", "2"]),
                ],
            ),
            (
                Section::Top,
                vec![cells(&["arn:aws:iam::1:user/a", "2"]), cells(&["", "1"])],
            ),
            (
                Section::Distinct("sourceIPAddress".into()),
                vec![cells(&["10.0.0.1", "2"]), cells(&["10.0.0.2", "1"])],
            ),
            (
                Section::FirstLastSeen,
                vec![
                    cells(&[
                        "CreateUser",
                        "2026-01-01T10:00:00Z",
                        "2026-01-01T10:05:00Z",
                        "2",
                    ]),
                    cells(&[
                        "AttachUserPolicy",
                        "2026-01-01T10:10:00Z",
                        "2026-01-01T10:10:00Z",
                        "1",
                    ]),
                ],
            ),
        ]
    }

    #[test]
    fn sections_assemble_into_the_engines_result() {
        let runbook = Runbook::parse(RUNBOOK, "test.yaml").expect("runbook parses");
        let mut source = MemorySource::new(records());
        let engine = run(&runbook, &params(), &mut source).expect("engine runs");
        let compiled = runbook.compile(&params()).expect("binds");
        let notes = vec!["Athena query q-1: 0 bytes scanned".to_owned()];
        let assembled = assemble(&compiled, &sections(), notes.clone()).expect("assembles");
        // Everything the engine reports is the same, except what only a file scan can know.
        let mut expected = engine;
        expected.coverage.files_read = 0;
        expected.coverage.notes = notes;
        assert_eq!(assembled, expected);
        assert!(assembled.has_findings());
    }

    #[test]
    fn empty_sections_are_no_findings_and_bad_rows_are_errors() {
        let runbook = Runbook::parse(RUNBOOK, "test.yaml").expect("runbook parses");
        let compiled = runbook.compile(&params()).expect("binds");
        let empty = vec![(Section::Summary, vec![cells(&["7", "0", "0"])])];
        let result = assemble(&compiled, &empty, Vec::new()).expect("assembles");
        assert!(!result.has_findings());
        assert_eq!(result.coverage.events_scanned, 7);
        assert_eq!(result.rows.as_ref().map(|rows| rows.rows.len()), Some(0));
        assert_eq!(result.distinct.len(), 1);

        assert_eq!(
            assemble(&compiled, &[], Vec::new()),
            Err(SqlResultError::Summary(0))
        );
        let not_a_count = vec![(Section::Summary, vec![cells(&["7", "x", "0"])])];
        assert!(matches!(
            assemble(&compiled, &not_a_count, Vec::new()),
            Err(SqlResultError::Count { .. })
        ));
        let mut narrow = empty.clone();
        narrow.push((Section::Top, vec![cells(&["only-one-column"])]));
        assert!(matches!(
            assemble(&compiled, &narrow, Vec::new()),
            Err(SqlResultError::Columns {
                expected: 2,
                found: 1,
                ..
            })
        ));
        let mut foreign = empty;
        foreign.push((Section::Distinct("eventName".into()), Vec::new()));
        assert_eq!(
            assemble(&compiled, &foreign, Vec::new()),
            Err(SqlResultError::Unexpected("distinct:eventName".into()))
        );
    }
}
