//! A fast, conservative JSON validator for the records the prefilter rules out: it reads a
//! record's top-level time and checks the grammar without building anything.
//!
//! It answers only when sure: `Some` means `serde_json::from_slice::<Value>` accepts the record
//! too and reads the same `eventTime`/`@timestamp`; `None` means "ask serde_json". It refuses
//! to answer for what serde_json checks beyond the grammar or what it does not handle: any
//! non-ASCII byte (UTF-8 validity), any `\u` escape (surrogates), numbers with an exponent or
//! more than 18 digits in a row (`f64` range), nesting beyond [`MAX_DEPTH`] (serde_json's
//! limit is 128), a non-object, an escaped time. On what remains it accepts exactly the JSON
//! grammar (RFC 8259), as serde_json does.

use crate::timefmt;

/// Deepest nesting answered here (serde_json refuses 128).
pub(crate) const MAX_DEPTH: usize = 100;

/// For the object starting at `start` (a `{`): its end (exclusive) and time (`None` inside
/// when missing, not a string, or unparsable); `None` when unsure.
pub(crate) fn object_end(bytes: &[u8], start: usize) -> Option<(usize, Option<i64>)> {
    let mut cursor = Cursor { bytes, at: start };
    if cursor.peek()? != b'{' {
        return None;
    }
    let time = cursor.top_object()?;
    Some((cursor.at, time))
}

/// [`object_end`] for a whole record (only whitespace may follow the object).
#[cfg(test)]
pub(crate) fn object_time(bytes: &[u8]) -> Option<Option<i64>> {
    let mut cursor = Cursor { bytes, at: 0 };
    cursor.whitespace();
    let (end, time) = object_end(bytes, cursor.at)?;
    cursor.at = end;
    cursor.whitespace();
    (cursor.at == bytes.len()).then_some(time)
}

/// Most digits in a row in a number answered here: 18 digits never overflow `f64`.
const MAX_DIGITS: usize = 18;

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The top-level object, keeping `eventTime` (else `@timestamp`), the last of duplicates,
    /// as `Value::get` sees them.
    fn top_object(&mut self) -> Option<Option<i64>> {
        self.at += 1;
        let mut event_time: Option<Option<i64>> = None;
        let mut timestamp: Option<Option<i64>> = None;
        self.whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(None);
        }
        loop {
            self.whitespace();
            // Keys with escapes never equal these names: only `\u` (excluded) spells letters.
            let key = self.string()?;
            self.whitespace();
            self.expect(b':')?;
            self.whitespace();
            match key {
                b"eventTime" => event_time = Some(self.time()?),
                b"@timestamp" => timestamp = Some(self.time()?),
                _ => self.value(1)?,
            }
            self.whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(event_time.or(timestamp).flatten());
                }
                _ => return None,
            }
        }
    }

    fn time(&mut self) -> Option<Option<i64>> {
        if self.peek()? != b'"' {
            self.value(1)?;
            return Some(None);
        }
        let text = self.string()?;
        if text.contains(&b'\\') {
            return None;
        }
        let text = std::str::from_utf8(text).ok()?;
        Some(timefmt::parse_event_time(text))
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                self.at += 1;
                self.whitespace();
                if self.peek()? == b'}' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.whitespace();
                    self.string()?;
                    self.whitespace();
                    self.expect(b':')?;
                    self.whitespace();
                    self.value(depth + 1)?;
                    self.whitespace();
                    match self.peek()? {
                        b',' => self.at += 1,
                        b'}' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.at += 1;
                self.whitespace();
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.whitespace();
                    self.value(depth + 1)?;
                    self.whitespace();
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn word(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)?`; an exponent is left to serde_json.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits()?,
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits()?;
        }
        match self.peek() {
            Some(b'e' | b'E') => None,
            // `01`: a digit right after a leading zero.
            Some(byte) if byte.is_ascii_digit() => None,
            _ => Some(()),
        }
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.at;
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.at += 1;
        }
        (self.at - start <= MAX_DIGITS).then_some(())
    }

    /// The raw content of the string at the cursor (escapes kept).
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let mut at = start;
        loop {
            at = special(self.bytes, at)?;
            match self.bytes[at] {
                b'"' => {
                    self.at = at + 1;
                    return Some(&self.bytes[start..at]);
                }
                b'\\' => match self.bytes.get(at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 2,
                    _ => return None,
                },
                // A control character (not allowed in a JSON string) or a non-ASCII byte.
                _ => return None,
            }
        }
    }
}

/// Next `"`, `\`, control character or non-ASCII byte at or after `at`, eight bytes at a time.
/// Each test flags a byte by its high bit; a borrow can only come from a lower flagged byte,
/// so the lowest flagged byte is always a true one.
fn special(bytes: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word)
            | word;
        let found = found & HIGHS;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes
        .get(at..)?
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || !(0x20..0x80).contains(&byte))
        .map(|offset| at + offset)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// What serde_json says: `Some(time)` for a valid object, `None` otherwise.
    fn serde(bytes: &[u8]) -> Option<Option<i64>> {
        let value = serde_json::from_slice::<Value>(bytes).ok()?;
        value.is_object().then(|| {
            value
                .get("eventTime")
                .or_else(|| value.get("@timestamp"))
                .and_then(Value::as_str)
                .and_then(timefmt::parse_event_time)
        })
    }

    fn check(bytes: &[u8]) {
        if let Some(answer) = object_time(bytes) {
            assert_eq!(
                Some(answer),
                serde(bytes),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn answers_agree_with_serde_json() {
        let valid: &[&[u8]] = &[
            br#"{"eventTime":"2023-07-10T12:00:00Z","a":[1,-2.5,0,{"b":null}],"c":true}"#,
            br#" { "@timestamp" : "2023-07-10T12:00:00Z" , "x" : [ ] , "y" : { } } "#,
            br#"{"eventTime":null,"@timestamp":"2023-07-10T12:00:00Z"}"#,
            br#"{"eventTime":"x","eventTime":"2023-07-10T12:00:00Z"}"#,
            br#"{"a":"q\"uo\\te\/\b\f\n\r\t","eventTime":"2023-07-10T12:00:00Z"}"#,
            br#"{}"#,
        ];
        for bytes in valid {
            assert!(
                object_time(bytes).is_some(),
                "{}",
                String::from_utf8_lossy(bytes)
            );
            check(bytes);
        }
        let refused: &[&[u8]] = &[
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":-}"#,
            br#"{"a":.5}"#,
            br#"{"a":1e5}"#,
            br#"{"a":"x\qy"}"#,
            br#"{"a":tru}"#,
            br#"{"a" 1}"#,
            br#"{"a":1,}"#,
            br#"{"a":[1,]}"#,
            br#"{"a":1} x"#,
            br#"{"a":"#,
            br#"[1]"#,
            b"{\"a\":\"\x01\"}",
            br#"{"eventTime":"2023-07-10T12:00:00\u005A"}"#,
            br#"{"a":"\u0041"}"#,
            br#"{"a":1234567890123456789}"#,
            br#"{"a":0.1234567890123456789}"#,
            "{\"a\":\"é\"}".as_bytes(),
        ];
        for bytes in refused {
            assert!(
                object_time(bytes).is_none(),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(120), "]".repeat(120));
        assert!(object_time(deep.as_bytes()).is_none());
    }

    /// Every single-byte corruption of real-looking records: whenever the validator answers,
    /// serde_json agrees.
    #[test]
    fn corruptions_never_make_it_disagree() {
        let record = br#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a b","sessionContext":{"attributes":{"mfaAuthenticated":"true"}}},"eventTime":"2023-07-10T11:42:36Z","readOnly":true,"n":[0,-1,2.50,null,false],"requestParameters":{"q":"a\"b\\c\/d\n"}}"#;
        let replacements = b"\"\\{}[],:0123456789.-+eEtrufalsn \t\n\x01\x7f\x80\xffxu/";
        for position in 0..record.len() {
            for &byte in replacements {
                let mut bytes = record.to_vec();
                bytes[position] = byte;
                check(&bytes);
            }
            let mut cut = record.to_vec();
            cut.remove(position);
            check(&cut);
            check(&record[..position]);
        }
    }
}
