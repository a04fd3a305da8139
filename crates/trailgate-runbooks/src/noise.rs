//! Noise: how often each runbook matches a body of logs, as the markdown table runbooks/README.md
//! records for the real logs in ../shared/data/cloudtrail (`jitctl runbook noise`).
//!
//! Every runbook runs with its default parameters over a window covering every record (2000 to
//! 2030), so the numbers are what an analyst would see on first run, before any allow-list is
//! filled in. Runbooks with required parameters (a requester, an access key) are not noise
//! sources and are listed as such.

use std::path::Path;

use time::macros::datetime;

use crate::engine::run;
use crate::error::RunError;
use crate::library::Library;
use crate::params::Params;
use crate::source::files::FileSource;

/// One runbook's noise on a body of logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noise {
    /// Runbook id.
    pub id: String,
    /// Its severity.
    pub severity: String,
    /// Matching records, or `None` when the runbook needs parameter values.
    pub matches: Option<u64>,
    /// Findings: groups over the threshold for thresholded runbooks, otherwise matches.
    pub findings: Option<u64>,
}

/// Runs every runbook of `library` over the files under `path`.
pub fn measure(library: &Library, path: &Path) -> Result<Vec<Noise>, RunError> {
    let params = Params::new().window(
        datetime!(2000-01-01 0:00 UTC),
        datetime!(2030-01-01 0:00 UTC),
    );
    let mut out = Vec::new();
    for runbook in library.iter() {
        let spec = runbook.spec();
        let mut noise = Noise {
            id: runbook.id().to_owned(),
            severity: spec.severity.to_string(),
            matches: None,
            findings: None,
        };
        if spec.parameters.iter().all(|param| !param.required) {
            let mut source = FileSource::new(path);
            let result = run(runbook, &params, &mut source)?;
            noise.matches = Some(result.coverage.events_matched);
            noise.findings = Some(match &result.counts {
                Some(counts) if counts.thresholded => counts.groups.len() as u64,
                _ => result.coverage.events_matched,
            });
        }
        out.push(noise);
    }
    Ok(out)
}

/// The measurements as a markdown table, one row per runbook in library order.
pub fn table(noise: &[Noise]) -> String {
    let mut out = String::from("| runbook | severity | matches | findings |\n|---|---|---|---|\n");
    for entry in noise {
        let number = |value: Option<u64>| match value {
            Some(value) => value.to_string(),
            None => "needs parameters".to_owned(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            entry.id,
            entry.severity,
            number(entry.matches),
            number(entry.findings)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_runbook_and_names_runbooks_needing_values() {
        let noise = vec![
            Noise {
                id: "a".to_owned(),
                severity: "high".to_owned(),
                matches: Some(3),
                findings: Some(1),
            },
            Noise {
                id: "b".to_owned(),
                severity: "info".to_owned(),
                matches: None,
                findings: None,
            },
        ];
        assert_eq!(
            table(&noise),
            "| runbook | severity | matches | findings |\n|---|---|---|---|\n| `a` | high | 3 | 1 |\n| `b` | info | needs parameters | needs parameters |\n"
        );
    }
}
