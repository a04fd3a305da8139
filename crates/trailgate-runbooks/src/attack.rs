//! MITRE ATT&CK technique ids: their shape, and the cloud-matrix techniques a runbook may name.
//!
//! The known techniques are data (`data/attack-cloud-techniques.tsv`, whose header names the
//! ATT&CK pages it was transcribed from), compiled in so that `jitctl runbook coverage` can name
//! each technique and flag ids that are malformed or not in the list.

/// The known techniques as `id<TAB>name` lines; `#` lines are comments.
const TECHNIQUES: &str = include_str!("../data/attack-cloud-techniques.tsv");

/// Whether `id` has the shape of a technique id: `T` and four digits, optionally `.` and three
/// digits for a sub-technique (`T1562`, `T1562.008`).
pub fn is_well_formed(id: &str) -> bool {
    let bytes = id.as_bytes();
    let digits = |range: &[u8]| range.iter().all(u8::is_ascii_digit);
    match bytes.len() {
        5 => bytes[0] == b'T' && digits(&bytes[1..5]),
        9 => bytes[0] == b'T' && digits(&bytes[1..5]) && bytes[5] == b'.' && digits(&bytes[6..9]),
        _ => false,
    }
}

/// The name of a known technique, or `None` if the id is not in the list.
pub fn name(id: &str) -> Option<&'static str> {
    known()
        .find(|(known_id, _)| *known_id == id)
        .map(|(_, name)| name)
}

/// Every known technique as `(id, name)`, in file order.
pub fn known() -> impl Iterator<Item = (&'static str, &'static str)> {
    TECHNIQUES
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split_once('\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn technique_and_sub_technique_shapes_are_accepted_and_others_refused() {
        for good in ["T1562", "T1562.008"] {
            assert!(is_well_formed(good), "{good}");
        }
        for bad in [
            "t1562",
            "T156",
            "T1562.8",
            "T1562.0080",
            "T1562-008",
            "TA0005",
            "",
        ] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn every_listed_technique_is_well_formed_named_and_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (id, name) in known() {
            assert!(is_well_formed(id), "{id}");
            assert!(!name.trim().is_empty(), "{id} has no name");
            assert!(seen.insert(id), "{id} is listed twice");
        }
        assert!(seen.len() > 50, "{} techniques", seen.len());
        assert_eq!(
            name("T1562.008"),
            Some("Impair Defenses: Disable or Modify Cloud Logs")
        );
        assert_eq!(name("T9999"), None);
    }
}
