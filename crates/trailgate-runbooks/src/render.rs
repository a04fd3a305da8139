//! Rendering a [`RunbookResult`] as a text table, markdown or JSON.

use std::fmt::Write;

use crate::output::RunbookResult;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned plain-text tables for a terminal.
    Text,
    /// GitHub-flavoured markdown.
    Markdown,
    /// Pretty-printed JSON of the whole result.
    Json,
}

/// Cells longer than this are cut in text tables (markdown and JSON keep them whole).
const TEXT_CELL_MAX: usize = 80;

impl RunbookResult {
    /// Renders in the given format.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_text(),
            Format::Markdown => self.to_markdown(),
            Format::Json => self.to_json(),
        }
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data (strings, numbers, maps with string keys) cannot fail.
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    }

    /// Plain-text tables.
    pub fn to_text(&self) -> String {
        self.sections(false)
    }

    /// Markdown.
    pub fn to_markdown(&self) -> String {
        self.sections(true)
    }

    fn sections(&self, markdown: bool) -> String {
        let mut out = String::new();
        let heading = |out: &mut String, level: usize, text: &str| {
            if markdown {
                let _ = writeln!(out, "{} {text}\n", "#".repeat(level));
            } else {
                let _ = writeln!(
                    out,
                    "{text}\n{}",
                    if level == 1 { "=" } else { "-" }.repeat(text.chars().count())
                );
            }
        };
        heading(&mut out, 1, &format!("{} ({})", self.title, self.runbook));
        let coverage = &self.coverage;
        let _ = writeln!(
            out,
            "severity: {} | window: {} | scanned: {} | matched: {} | files: {} | skipped: {}{}",
            self.severity,
            coverage.window,
            coverage.events_scanned,
            coverage.events_matched,
            coverage.files_read,
            coverage.records_skipped,
            if coverage.truncated {
                " | TRUNCATED"
            } else {
                ""
            }
        );
        if !coverage.skip_reasons.is_empty() {
            let reasons: Vec<String> = coverage
                .skip_reasons
                .iter()
                .map(|(reason, count)| format!("{reason}: {count}"))
                .collect();
            let _ = writeln!(out, "skipped records: {}", reasons.join(", "));
        }
        for note in &coverage.notes {
            let _ = writeln!(out, "note: {note}");
        }
        if !self.attack.is_empty() {
            let _ = writeln!(out, "ATT&CK: {}", self.attack.join(", "));
        }
        out.push('\n');
        if !self.has_findings() {
            let _ = writeln!(out, "No findings.\n");
        }
        if let Some(rows) = &self.rows
            && !rows.rows.is_empty()
        {
            heading(
                &mut out,
                2,
                &format!("Events ({} of {})", rows.rows.len(), rows.matched),
            );
            table(&mut out, markdown, &rows.columns, &rows.rows);
        }
        if let Some(counts) = &self.counts
            && !counts.groups.is_empty()
        {
            heading(
                &mut out,
                2,
                &format!(
                    "Counts by {} ({} of {} groups)",
                    counts.fields.join(", "),
                    counts.groups.len(),
                    counts.groups_total
                ),
            );
            let mut header = counts.fields.clone();
            header.push("count".to_owned());
            if let Some(field) = &counts.distinct_field {
                header.push(format!("distinct {field}"));
            }
            let body: Vec<Vec<String>> = counts
                .groups
                .iter()
                .map(|group| {
                    let mut row = group.key.clone();
                    row.push(group.count.to_string());
                    if let Some(distinct) = group.distinct {
                        row.push(distinct.to_string());
                    }
                    row
                })
                .collect();
            table(&mut out, markdown, &header, &body);
        }
        if let Some(top) = &self.top
            && !top.values.is_empty()
        {
            heading(&mut out, 2, &format!("Top {}", top.field));
            let body: Vec<Vec<String>> = top
                .values
                .iter()
                .map(|value| vec![value.value.clone(), value.count.to_string()])
                .collect();
            table(
                &mut out,
                markdown,
                &[top.field.clone(), "count".to_owned()],
                &body,
            );
        }
        for distinct in &self.distinct {
            if distinct.values.is_empty() {
                continue;
            }
            heading(
                &mut out,
                2,
                &format!("Distinct {} ({})", distinct.field, distinct.values.len()),
            );
            let body: Vec<Vec<String>> = distinct
                .values
                .iter()
                .map(|value| vec![value.value.clone(), value.count.to_string()])
                .collect();
            table(
                &mut out,
                markdown,
                &[distinct.field.clone(), "count".to_owned()],
                &body,
            );
        }
        if let Some(first_last) = &self.first_last_seen
            && !first_last.entries.is_empty()
        {
            heading(
                &mut out,
                2,
                &format!("First and last seen by {}", first_last.fields.join(", ")),
            );
            let mut header = first_last.fields.clone();
            header.extend(["first".to_owned(), "last".to_owned(), "count".to_owned()]);
            let body: Vec<Vec<String>> = first_last
                .entries
                .iter()
                .map(|entry| {
                    let mut row = entry.key.clone();
                    row.extend([
                        entry.first.clone(),
                        entry.last.clone(),
                        entry.count.to_string(),
                    ]);
                    row
                })
                .collect();
            table(&mut out, markdown, &header, &body);
        }
        if !self.next_steps.is_empty() && self.has_findings() {
            heading(&mut out, 2, "Next steps");
            for (index, step) in self.next_steps.iter().enumerate() {
                let _ = writeln!(out, "{}. {step}", index + 1);
            }
            out.push('\n');
        }
        out
    }
}

fn table(out: &mut String, markdown: bool, header: &[String], body: &[Vec<String>]) {
    let cell = |text: &str| -> String {
        let text = if text.is_empty() { "-" } else { text };
        if markdown {
            text.replace('|', "\\|").replace('\n', " ")
        } else if text.chars().count() > TEXT_CELL_MAX {
            let cut: String = text.chars().take(TEXT_CELL_MAX - 1).collect();
            format!("{cut}…")
        } else {
            text.replace('\n', " ")
        }
    };
    let header: Vec<String> = header.iter().map(|text| cell(text)).collect();
    let body: Vec<Vec<String>> = body
        .iter()
        .map(|row| row.iter().map(|text| cell(text)).collect())
        .collect();
    if markdown {
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(
            out,
            "|{}|",
            header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
        );
        for row in &body {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out.push('\n');
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|text| text.chars().count()).collect();
    for row in &body {
        for (index, text) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(index) {
                *width = (*width).max(text.chars().count());
            }
        }
    }
    let line = |out: &mut String, row: &[String]| {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(index, text)| {
                format!(
                    "{text:<width$}",
                    width = widths.get(index).copied().unwrap_or(0)
                )
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    };
    line(out, &header);
    let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
    line(out, &rule);
    for row in &body {
        line(out, row);
    }
    out.push('\n');
}
