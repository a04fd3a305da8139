//! Splitting a CloudTrail file's bytes into record slices without parsing the whole document.
//!
//! Finding record boundaries first (a string-aware bracket scan) lets one bad record be skipped
//! without losing the rest of the file, and lets an oversized record be skipped without parsing it.
//! Layouts: `{"Records": [...]}` (S3 delivery), a top-level `[...]`, and one record per line.
//! In arrays, the fast validator (`crate::validate`) is tried first: when it is sure, it gives
//! the record's end, its validity and its time in one pass ([`Item::Checked`]).

use crate::output::SkipReason;
use crate::validate;

/// One item found in a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Item<'a> {
    /// The bytes of one record (not yet parsed).
    Record(&'a [u8]),
    /// The bytes of one record the fast validator (`crate::validate`) found to be a valid
    /// object, and its time (`None` when missing, not a string or unparsable).
    Checked(&'a [u8], Option<i64>),
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
        if first == b'{'
            && let Some((end, time)) = validate::object_end(bytes, position)
        {
            let slice = &bytes[position..end];
            if slice.len() > max_record_bytes {
                sink(Item::Skip(SkipReason::RecordTooLarge));
            } else {
                sink(Item::Checked(slice, time));
            }
            position = end;
            continue;
        }
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
    let mut position = start;
    while position < bytes.len() {
        match bytes[position] {
            b'"' => position = string_end(bytes, position + 1)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(position + 1);
                }
            }
            _ => {}
        }
        position += 1;
    }
    None
}

/// Position of the `"` closing the string whose content starts at `position`; `None` if the
/// input ends first.
fn string_end(bytes: &[u8], mut position: usize) -> Option<usize> {
    loop {
        position = quote_or_backslash(bytes, position)?;
        if bytes[position] == b'"' {
            return Some(position);
        }
        // A backslash escapes the next byte, whatever it is.
        position += 2;
    }
}

/// Next `"` or `\\` at or after `position`. Record text is mostly string content, so this
/// tests eight bytes at a time (a zero-byte test on each byte XOR the wanted value).
fn quote_or_backslash(bytes: &[u8], mut position: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    while let Some(chunk) = bytes.get(position..position + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let quote = word ^ QUOTES;
        let backslash = word ^ BACKSLASHES;
        // The lowest set bit of (x - ONES) & !x & HIGHS marks the first zero byte of x exactly.
        let found =
            (quote.wrapping_sub(ONES) & !quote | backslash.wrapping_sub(ONES) & !backslash) & HIGHS;
        if found != 0 {
            return Some(position + (found.trailing_zeros() / 8) as usize);
        }
        position += 8;
    }
    bytes
        .get(position..)?
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\')
        .map(|offset| position + offset)
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
                Item::Checked(bytes, _) => String::from_utf8_lossy(bytes).into_owned(),
                Item::Record(bytes) => format!("unchecked:{}", String::from_utf8_lossy(bytes)),
                Item::Skip(reason) => format!("skip:{}", reason.as_str()),
            })
        });
        out
    }

    #[test]
    fn string_scanning_handles_escapes_at_every_alignment() {
        for pad in 0..20 {
            let filler = "x".repeat(pad);
            let text = format!(
                r#"{{"Records":[{{"a":"{filler}\\\"}}]\\\\","b":"{filler}"}},{{"c":1}}]}}"#
            );
            assert_eq!(
                items(&text),
                vec![
                    format!(r#"{{"a":"{filler}\\\"}}]\\\\","b":"{filler}"}}"#),
                    r#"{"c":1}"#.to_owned()
                ],
                "pad {pad}"
            );
        }
        // The same through the bracket scan: a `\u` escape sends records past the validator.
        for pad in 0..16 {
            let filler = "x".repeat(pad);
            let record = format!(r#"{{"a":"{filler}\\\"}}]\u0041","b":"{filler}"}}"#);
            assert_eq!(
                items(&format!(r#"{{"Records":[{record},{{"c":1}}]}}"#)),
                vec![format!("unchecked:{record}"), r#"{"c":1}"#.to_owned()],
                "pad {pad}"
            );
        }
        // A string cut off, with or without a dangling backslash.
        assert_eq!(
            items(r#"{"Records":[{"a":"abc"#),
            vec!["skip:truncated_record"]
        );
        assert_eq!(
            items(r#"{"Records":[{"a":"abc\"#),
            vec!["skip:truncated_record"]
        );
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
            vec!["unchecked:{\"a\":1}", "unchecked:{\"b\":2}"]
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
            vec!["unchecked:1", "unchecked:\"x\"", r#"{"b":2}"#]
        );
        assert_eq!(items(r#"{"Records": 5}"#), vec!["skip:unknown_layout"]);
    }
}
