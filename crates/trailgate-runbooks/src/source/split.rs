//! Splitting a CloudTrail file's bytes into record slices without parsing the whole document.
//!
//! Finding record boundaries first (a string-aware bracket scan) lets one bad record be skipped
//! without losing the rest of the file, and lets an oversized record be skipped without parsing it.
//! Layouts: `{"Records": [...]}` (S3 delivery), a top-level `[...]`, and one record per line.

use crate::output::SkipReason;

/// One item found in a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Item<'a> {
    /// The bytes of one record (not yet parsed).
    Record(&'a [u8]),
    /// Something that could not be a record.
    Skip(SkipReason),
}

/// Calls `sink` with each record slice or skip, in file order.
pub(crate) fn split(bytes: &[u8], max_record_bytes: usize, sink: &mut dyn FnMut(Item<'_>)) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = skip_whitespace(bytes, 0);
    match bytes.get(start) {
        None => {}
        Some(b'[') => array(bytes, start + 1, max_record_bytes, sink),
        Some(b'{') => match records_array_start(bytes, start) {
            Some(Layout::Records(position)) => array(bytes, position, max_record_bytes, sink),
            Some(Layout::Lines) => lines(bytes, max_record_bytes, sink),
            None => sink(Item::Skip(SkipReason::UnknownLayout)),
        },
        Some(_) => lines(bytes, max_record_bytes, sink),
    }
}

enum Layout {
    /// Position just after the `[` of the `Records` array.
    Records(usize),
    /// The document is not a `Records` wrapper: one record per line.
    Lines,
}

/// Reads the first key of the object at `start`: `"Records"` followed by `[` is the S3 layout.
fn records_array_start(bytes: &[u8], start: usize) -> Option<Layout> {
    let key_start = skip_whitespace(bytes, start + 1);
    const KEY: &[u8] = b"\"Records\"";
    if !bytes[key_start..].starts_with(KEY) {
        return Some(Layout::Lines);
    }
    let colon = skip_whitespace(bytes, key_start + KEY.len());
    if bytes.get(colon) != Some(&b':') {
        return None;
    }
    let value = skip_whitespace(bytes, colon + 1);
    match bytes.get(value) {
        Some(b'[') => Some(Layout::Records(value + 1)),
        _ => None,
    }
}

fn array(
    bytes: &[u8],
    mut position: usize,
    max_record_bytes: usize,
    sink: &mut dyn FnMut(Item<'_>),
) {
    loop {
        while position < bytes.len()
            && (bytes[position].is_ascii_whitespace() || bytes[position] == b',')
        {
            position += 1;
        }
        let Some(&first) = bytes.get(position) else {
            return;
        };
        let end = match first {
            b']' => return,
            b'{' | b'[' => match value_end(bytes, position) {
                Some(end) => end,
                None => {
                    sink(Item::Skip(SkipReason::TruncatedRecord));
                    return;
                }
            },
            _ => scalar_end(bytes, position),
        };
        emit(&bytes[position..end], max_record_bytes, sink);
        position = end;
    }
}

fn lines(bytes: &[u8], max_record_bytes: usize, sink: &mut dyn FnMut(Item<'_>)) {
    for line in bytes.split(|&byte| byte == b'\n') {
        let line = line.trim_ascii();
        if !line.is_empty() {
            emit(line, max_record_bytes, sink);
        }
    }
}

fn emit(slice: &[u8], max_record_bytes: usize, sink: &mut dyn FnMut(Item<'_>)) {
    if slice.len() > max_record_bytes {
        sink(Item::Skip(SkipReason::RecordTooLarge));
    } else {
        sink(Item::Record(slice));
    }
}

fn skip_whitespace(bytes: &[u8], mut position: usize) -> usize {
    while position < bytes.len() && bytes[position].is_ascii_whitespace() {
        position += 1;
    }
    position
}

/// End (exclusive) of the object or array starting at `start`; `None` if the input ends first.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth: usize = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &byte) in bytes[start..].iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(start + offset + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// End of a scalar (or garbage) element: the next `,` or `]` outside a string.
fn scalar_end(bytes: &[u8], start: usize) -> usize {
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &byte) in bytes[start..].iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b',' | b']' | b'{' if offset > 0 => return start + offset,
            _ => {}
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        split(text.as_bytes(), 64, &mut |item| {
            out.push(match item {
                Item::Record(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Item::Skip(reason) => format!("skip:{}", reason.as_str()),
            })
        });
        out
    }

    #[test]
    fn records_wrapper_and_strings_with_brackets() {
        assert_eq!(
            items(r#"{"Records": [{"a":"}]"}, {"b":{"c":[1]}}]}"#),
            vec![r#"{"a":"}]"}"#, r#"{"b":{"c":[1]}}"#]
        );
        assert_eq!(items(r#"{"Records":[]}"#), Vec::<String>::new());
    }

    #[test]
    fn lines_and_top_level_arrays() {
        assert_eq!(
            items("{\"a\":1}\n\n{\"b\":2}\n"),
            vec!["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(
            items("[{\"a\":1},{\"b\":2}]"),
            vec!["{\"a\":1}", "{\"b\":2}"]
        );
    }

    #[test]
    fn truncation_oversize_and_scalars_are_reported_in_place() {
        assert_eq!(
            items(r#"{"Records":[{"a":1},{"b":"#),
            vec![r#"{"a":1}"#, "skip:truncated_record"]
        );
        let big = format!(r#"{{"Records":[{{"a":"{}"}},{{"b":2}}]}}"#, "x".repeat(100));
        assert_eq!(items(&big), vec!["skip:record_too_large", r#"{"b":2}"#]);
        assert_eq!(
            items(r#"{"Records":[1, "x", {"b":2}]}"#),
            vec!["1", "\"x\"", r#"{"b":2}"#]
        );
        assert_eq!(items(r#"{"Records": 5}"#), vec!["skip:unknown_layout"]);
    }
}
