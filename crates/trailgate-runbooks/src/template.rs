//! `{{ name }}` parameter references inside runbook strings.

use std::collections::BTreeMap;

/// A piece of a template: literal text or a parameter reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text copied as is.
    Text(&'a str),
    /// `{{ name }}`.
    Param(&'a str),
}

/// Splits `text` into literal pieces and references; `None` if a `{{` is unclosed or empty.
pub fn pieces(text: &str) -> Option<Vec<Piece<'_>>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        let name = after[..end].trim();
        if name.is_empty() || !is_name(name) {
            return None;
        }
        out.push(Piece::Param(name));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Some(out)
}

/// Whether `name` is a valid parameter name: ASCII letters, digits and `_`, not starting with a digit.
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `text` contains a reference.
pub fn has_reference(text: &str) -> bool {
    text.contains("{{")
}

/// The name if `text` is exactly one reference (`{{ names }}`), which may expand to a list.
pub fn sole_reference(text: &str) -> Option<&str> {
    match pieces(text)?.as_slice() {
        [Piece::Param(name)] => Some(name),
        _ => None,
    }
}

/// Substitutes references with their text values; `escape` is applied to each value
/// (for example `regex::escape`, so a parameter can never inject regex syntax).
/// References to unknown names are left empty; load-time validation makes that unreachable.
pub fn render(
    text: &str,
    values: &BTreeMap<String, Vec<String>>,
    escape: fn(&str) -> String,
) -> String {
    let Some(parts) = pieces(text) else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(text.len());
    for part in parts {
        match part {
            Piece::Text(literal) => out.push_str(literal),
            Piece::Param(name) => {
                if let Some(value) = values.get(name) {
                    out.push_str(&escape(&value.join(",")));
                }
            }
        }
    }
    out
}

/// Identity escape for [`render`].
pub fn no_escape(text: &str) -> String {
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_text_and_references() {
        assert_eq!(
            pieces("arn:aws:iam::{{account}}:role/{{ role_name }}"),
            Some(vec![
                Piece::Text("arn:aws:iam::"),
                Piece::Param("account"),
                Piece::Text(":role/"),
                Piece::Param("role_name"),
            ])
        );
        assert_eq!(pieces("plain"), Some(vec![Piece::Text("plain")]));
        assert_eq!(pieces("{{ open"), None);
        assert_eq!(pieces("{{ }}"), None);
        assert_eq!(pieces("{{ a-b }}"), None);
    }

    #[test]
    fn render_escapes_values() {
        let values = BTreeMap::from([("who".to_owned(), vec!["a.b".to_owned()])]);
        assert_eq!(render("^{{ who }}$", &values, regex::escape), "^a\\.b$");
        assert_eq!(render("x-{{who}}", &values, no_escape), "x-a.b");
        assert_eq!(sole_reference(" {{ who }}"), None);
        assert_eq!(sole_reference("{{ who }}"), Some("who"));
    }
}
