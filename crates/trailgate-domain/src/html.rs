//! HTML escaping for every page trailgate renders (the decision pages, the runbook HTML report,
//! the local stack's outbox): one escaper, so no page escapes less than another.
//!
//! The text shown on those pages comes from requesters, CloudTrail records and e-mails, all of
//! which an attacker can write, so all five characters that matter in element content and in
//! quoted attribute values (either quote) are escaped.

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_characters_are_escaped_and_nothing_else() {
        assert_eq!(escape("&<>\"'x"), "&amp;&lt;&gt;&quot;&#39;x");
        assert_eq!(
            escape("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }
}
