//! What a set of runbooks covers: the ATT&CK techniques they name and the CloudTrail event
//! names they watch, each mapped to the runbooks concerned (`jitctl runbook coverage`).
//!
//! Event names are read from the filter text, not from matches: a condition on `eventName` with
//! `equals` or `any_of` contributes its names, one with `prefix` contributes `Name*` (Lambda's
//! versioned names, `UpdateFunctionCode20150331v2`, are watched that way). Conditions under
//! `not` are exclusions and contribute nothing; parameter references (`{{ names }}`) are not
//! names and are skipped. A runbook that watches no event name (it filters on identities or
//! error codes) is listed as such.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attack;
use crate::runbook::Runbook;
use crate::spec::FilterSpec;

/// The coverage of a set of runbooks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    /// Every runbook with what it contributes, in the order given.
    pub runbooks: Vec<Entry>,
    /// Technique id -> ids of the runbooks naming it.
    pub techniques: BTreeMap<String, Technique>,
    /// Event name (or `Prefix*`) -> ids of the runbooks watching it.
    pub event_names: BTreeMap<String, Vec<String>>,
    /// Runbooks whose filter names no event (identity, error-code or user-agent filters).
    pub without_event_names: Vec<String>,
}

/// One runbook's contribution.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Runbook id.
    pub id: String,
    /// Which library it came from (`built-in`, `sigma`, ...), as the caller labelled it.
    pub library: String,
    /// Its severity.
    pub severity: String,
    /// Its ATT&CK ids, as written.
    pub attack: Vec<String>,
    /// The event names its filter watches.
    pub event_names: Vec<String>,
}

/// One technique of the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Technique {
    /// The technique's name, when the id is in the known list.
    pub name: Option<String>,
    /// Whether the id has the `T####` / `T####.###` shape.
    pub well_formed: bool,
    /// Ids of the runbooks naming it.
    pub runbooks: Vec<String>,
}

impl Inventory {
    /// Adds runbooks from one library, labelled `library` in the report.
    pub fn add<'a>(&mut self, library: &str, runbooks: impl IntoIterator<Item = &'a Runbook>) {
        for runbook in runbooks {
            let spec = runbook.spec();
            let mut names = Vec::new();
            event_names(&spec.filter, &mut names);
            names.sort();
            names.dedup();
            for technique in &spec.attack {
                let entry = self.techniques.entry(technique.clone()).or_default();
                entry.name = attack::name(technique).map(str::to_owned);
                entry.well_formed = attack::is_well_formed(technique);
                entry.runbooks.push(runbook.id().to_owned());
            }
            for name in &names {
                self.event_names
                    .entry(name.clone())
                    .or_default()
                    .push(runbook.id().to_owned());
            }
            if names.is_empty() {
                self.without_event_names.push(runbook.id().to_owned());
            }
            self.runbooks.push(Entry {
                id: runbook.id().to_owned(),
                library: library.to_owned(),
                severity: spec.severity.to_string(),
                attack: spec.attack.clone(),
                event_names: names,
            });
        }
    }

    /// Technique ids that are malformed or not in the known list.
    pub fn unknown_techniques(&self) -> Vec<&str> {
        self.techniques
            .iter()
            .filter(|(_, technique)| technique.name.is_none())
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// The report as text: techniques, then event names, each with its runbooks.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let libraries: BTreeMap<&str, usize> =
            self.runbooks
                .iter()
                .fold(BTreeMap::new(), |mut counts, entry| {
                    *counts.entry(entry.library.as_str()).or_default() += 1;
                    counts
                });
        let summary: Vec<String> = libraries
            .iter()
            .map(|(library, count)| format!("{count} {library}"))
            .collect();
        out.push_str(&format!(
            "{} runbooks ({}), {} ATT&CK techniques, {} event names\n\n",
            self.runbooks.len(),
            summary.join(", "),
            self.techniques.len(),
            self.event_names.len()
        ));
        out.push_str("ATT&CK techniques\n");
        for (id, technique) in &self.techniques {
            let name = match (&technique.name, technique.well_formed) {
                (Some(name), _) => name.clone(),
                (None, true) => "(not in the known cloud-technique list)".to_owned(),
                (None, false) => "(malformed id)".to_owned(),
            };
            out.push_str(&format!(
                "  {id:<10} {name}\n             {}\n",
                technique.runbooks.join(", ")
            ));
        }
        out.push_str("\nEvent names\n");
        for (name, runbooks) in &self.event_names {
            out.push_str(&format!("  {name:<48} {}\n", runbooks.join(", ")));
        }
        if !self.without_event_names.is_empty() {
            out.push_str(
                "\nRunbooks that watch no event name (identity, error or user-agent filters)\n",
            );
            out.push_str(&format!("  {}\n", self.without_event_names.join(", ")));
        }
        out
    }
}

/// Collects the event names a filter requires or admits, outside `not`.
fn event_names(spec: &FilterSpec, out: &mut Vec<String>) {
    for part in spec.all.iter().chain(spec.any.iter()).flatten() {
        event_names(part, out);
    }
    if spec.field.as_deref() != Some("eventName") {
        return;
    }
    let literal = |text: String| (!text.contains("{{")).then_some(text);
    if let Some(value) = &spec.equals {
        out.extend(literal(value.to_text()));
    }
    for value in spec.any_of.iter().flatten() {
        out.extend(literal(value.to_text()));
    }
    for value in spec.prefix.iter().flat_map(|values| values.as_slice()) {
        out.extend(literal(value.to_text()).map(|text| format!("{text}*")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runbook(filter: &str) -> Runbook {
        let text = format!(
            "id: t\ntitle: t\nseverity: high\nattack: [T1562.008, T9999, x1]\nparameters:\n  - {{name: names, type: list, default: [a]}}\nfilter: {filter}\n"
        );
        Runbook::parse(&text, "t.yaml").expect("test runbook parses")
    }

    #[test]
    fn names_come_from_equals_any_of_and_prefix_but_not_from_not_or_parameters() {
        let runbook = runbook(
            "{any: [{field: eventName, equals: StopLogging}, {all: [{field: eventName, any_of: [DeleteTrail, '{{ names }}']}, {not: {field: eventName, equals: StartLogging}}]}, {field: eventName, prefix: UpdateFunctionCode}, {field: eventSource, equals: x}]}",
        );
        let mut inventory = Inventory::default();
        inventory.add("built-in", [&runbook]);
        let names: Vec<&str> = inventory.event_names.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            vec!["DeleteTrail", "StopLogging", "UpdateFunctionCode*"]
        );
        assert_eq!(inventory.event_names["StopLogging"], vec!["t"]);
        assert!(inventory.without_event_names.is_empty());
    }

    #[test]
    fn techniques_are_named_and_unknown_or_malformed_ids_flagged() {
        let runbook = runbook("{field: errorCode, exists: true}");
        let mut inventory = Inventory::default();
        inventory.add("sigma", [&runbook]);
        assert_eq!(
            inventory.techniques["T1562.008"].name.as_deref(),
            Some("Impair Defenses: Disable or Modify Cloud Logs")
        );
        assert_eq!(inventory.unknown_techniques(), vec!["T9999", "x1"]);
        assert!(!inventory.techniques["x1"].well_formed);
        assert_eq!(inventory.without_event_names, vec!["t"]);
        let text = inventory.to_text();
        assert!(text.contains("1 runbooks (1 sigma), 3 ATT&CK techniques, 0 event names"));
        assert!(text.contains("(malformed id)"), "{text}");
    }
}
