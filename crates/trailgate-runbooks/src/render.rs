//! Rendering a [`RunbookResult`] as a text table, markdown, JSON or a self-contained HTML page.
//!
//! Every value in a result can come from a CloudTrail record, which an attacker may write (user
//! agents, resource names, request parameters), so HTML output escapes every piece of text.

use std::fmt::Write;

use trailgate_domain::html::escape;

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
    /// One self-contained HTML page (inline style, no script, every value escaped).
    Html,
}

/// The page's only styling, inline so the file stands alone.
const HTML_STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin-bottom:1.5em}th,td{border:1px solid #ccc;padding:.25em .5em;\
text-align:left;vertical-align:top;font-family:ui-monospace,monospace;font-size:90%;\
white-space:pre-wrap;word-break:break-all}th{background:#f3f3f3}dl{display:grid;\
grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}dd{margin:0}\
.truncated{color:#a00}";

/// A titled table: (title, header, rows).
type Table = (String, Vec<String>, Vec<Vec<String>>);

/// Cells longer than this are cut in text tables (markdown and JSON keep them whole).
const TEXT_CELL_MAX: usize = 80;

impl RunbookResult {
    /// Renders in the given format.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_text(),
            Format::Markdown => self.to_markdown(),
            Format::Json => self.to_json(),
            Format::Html => self.to_html(),
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
        for (title, header, body) in self.tables() {
            heading(&mut out, 2, &title);
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

    /// One self-contained HTML page: inline CSS, no script, no external resource, and every
    /// piece of text escaped (values come from CloudTrail records, which attackers can write).
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let title = format!("{} ({})", self.title, self.runbook);
        let _ = writeln!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
             <title>{}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>",
            escape(&title)
        );
        let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
        let coverage = &self.coverage;
        let facts = [
            ("severity", self.severity.to_string()),
            ("window", coverage.window.to_string()),
            ("events scanned", coverage.events_scanned.to_string()),
            ("events matched", coverage.events_matched.to_string()),
            ("files read", coverage.files_read.to_string()),
            ("records skipped", coverage.records_skipped.to_string()),
        ];
        out.push_str("<dl>\n");
        for (name, value) in facts {
            let _ = writeln!(out, "<dt>{name}</dt><dd>{}</dd>", escape(&value));
        }
        if !self.attack.is_empty() {
            let _ = writeln!(
                out,
                "<dt>ATT&amp;CK</dt><dd>{}</dd>",
                escape(&self.attack.join(", "))
            );
        }
        out.push_str("</dl>\n");
        if coverage.truncated {
            out.push_str("<p class=\"truncated\"><strong>Truncated:</strong> a budget or a cap cut the scan or the output; see the notes.</p>\n");
        }
        if !coverage.skip_reasons.is_empty() {
            let reasons: Vec<String> = coverage
                .skip_reasons
                .iter()
                .map(|(reason, count)| format!("{reason}: {count}"))
                .collect();
            let _ = writeln!(
                out,
                "<p>Skipped records: {}</p>",
                escape(&reasons.join(", "))
            );
        }
        if !coverage.notes.is_empty() {
            out.push_str("<ul class=\"notes\">\n");
            for note in &coverage.notes {
                let _ = writeln!(out, "<li>{}</li>", escape(note));
            }
            out.push_str("</ul>\n");
        }
        if !self.has_findings() {
            out.push_str("<p>No findings.</p>\n");
        }
        for (title, header, body) in self.tables() {
            let _ = writeln!(out, "<h2>{}</h2>\n<table>\n<thead><tr>", escape(&title));
            for name in &header {
                let _ = write!(out, "<th>{}</th>", escape(name));
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            for row in &body {
                out.push_str("<tr>");
                for value in row {
                    let _ = write!(out, "<td>{}</td>", escape(value));
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</tbody>\n</table>\n");
        }
        if !self.next_steps.is_empty() && self.has_findings() {
            out.push_str("<h2>Next steps</h2>\n<ol>\n");
            for step in &self.next_steps {
                let _ = writeln!(out, "<li>{}</li>", escape(step));
            }
            out.push_str("</ol>\n");
        }
        out.push_str("</body>\n</html>\n");
        out
    }

    /// The result's tables in display order: (title, header, rows).
    fn tables(&self) -> Vec<Table> {
        let mut tables: Vec<Table> = Vec::new();
        if let Some(rows) = &self.rows
            && !rows.rows.is_empty()
        {
            tables.push((
                format!("Events ({} of {})", rows.rows.len(), rows.matched),
                rows.columns.clone(),
                rows.rows.clone(),
            ));
        }
        if let Some(counts) = &self.counts
            && !counts.groups.is_empty()
        {
            let title = format!(
                "Counts by {} ({} of {} groups)",
                counts.fields.join(", "),
                counts.groups.len(),
                counts.groups_total
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
            tables.push((title, header, body));
        }
        if let Some(top) = &self.top
            && !top.values.is_empty()
        {
            let body: Vec<Vec<String>> = top
                .values
                .iter()
                .map(|value| vec![value.value.clone(), value.count.to_string()])
                .collect();
            tables.push((
                format!("Top {}", top.field),
                vec![top.field.clone(), "count".to_owned()],
                body,
            ));
        }
        for distinct in &self.distinct {
            if distinct.values.is_empty() {
                continue;
            }
            let body: Vec<Vec<String>> = distinct
                .values
                .iter()
                .map(|value| vec![value.value.clone(), value.count.to_string()])
                .collect();
            tables.push((
                format!("Distinct {} ({})", distinct.field, distinct.values.len()),
                vec![distinct.field.clone(), "count".to_owned()],
                body,
            ));
        }
        if let Some(first_last) = &self.first_last_seen
            && !first_last.entries.is_empty()
        {
            let title = format!("First and last seen by {}", first_last.fields.join(", "));
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
            tables.push((title, header, body));
        }
        tables
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySource;
    use crate::{Params, Runbook, run};
    use serde_json::json;

    #[test]
    fn html_escapes_every_hostile_value() {
        let runbook = Runbook::parse(
            r#"
id: html-test
title: "Title <b>bold</b>"
severity: high
filter: {field: eventName, exists: true}
output:
  rows: {columns: [eventName, userAgent, requestParameters.bucketName]}
  top: {field: userAgent, n: 3}
  distinct: [requestParameters.bucketName]
next_steps: ["Check <script>alert('step')</script>"]
"#,
            "html-test.yaml",
        )
        .expect("runbook parses");
        let hostile = "<script>alert(\"x\")</script>";
        let record = json!({
            "eventTime": "2026-01-01T10:00:00Z",
            "eventName": "<img src=x onerror=alert(1)>",
            "userAgent": hostile,
            "requestParameters": {"bucketName": "a&b'\"</td></tr></table><iframe>"},
        });
        let params = Params::new().window(
            time::macros::datetime!(2026-01-01 00:00 UTC),
            time::macros::datetime!(2026-01-02 00:00 UTC),
        );
        let mut result =
            run(&runbook, &params, &mut MemorySource::new(vec![record])).expect("runs");
        result.coverage.notes.push("<note onclick=x>".to_owned());
        let html = result.to_html();
        // No tag from a value survives; only the page's own markup is there.
        for raw in [
            "<script",
            "<img",
            "<iframe",
            "<b>",
            "<note",
            "</td></tr></table><",
        ] {
            assert!(!html.contains(raw), "{raw} is not escaped in:\n{html}");
        }
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(
            html.contains("a&amp;b&#39;&quot;&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;iframe&gt;")
        );
        assert!(html.contains("Title &lt;b&gt;bold&lt;/b&gt;"));
        assert!(html.contains("Check &lt;script&gt;alert(&#39;step&#39;)&lt;/script&gt;"));
        assert!(html.contains("&lt;note onclick=x&gt;"));
        // Self-contained: a full document with no external resource or script.
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        assert!(!html.contains("src=\"") && !html.contains("href="));
        assert_eq!(html.matches("<table>").count(), 3);
        assert_eq!(result.render(Format::Html), html);
    }
}
