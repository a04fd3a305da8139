//! UTC instants and durations in the formats trailgate stores and exchanges.
//!
//! Instants are always written as RFC 3339 UTC with a `Z` suffix and whole seconds: moto's
//! Wait state accepts only `…Z` timestamps, and whole seconds keep ledger values comparable
//! as strings (the `ByStatus` index sorts `expires_at` lexically). The one exception is a
//! request's `created_at`, written with exactly three fraction digits
//! ([`format_utc_millis`]): the `ByRequester` index sorts on it, and two requests made in
//! the same second must still list newest first.

use crate::error::{Error, Result};
use ::time::format_description::well_known::Rfc3339;
use ::time::{Duration, OffsetDateTime, UtcOffset};

/// Formats an instant as `2026-11-21T10:00:00Z`.
pub fn format_utc(at: OffsetDateTime) -> String {
    let at = at
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    // Formatting a UTC instant with a four-digit year cannot fail.
    at.format(&Rfc3339).unwrap_or_default()
}

/// Formats an instant as `2026-11-21T10:00:00.250Z`: always three fraction digits, so
/// values of this form sort lexically in time order (a mix with [`format_utc`] would not).
pub fn format_utc_millis(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Parses an RFC 3339 instant (any offset) into UTC.
pub fn parse_utc(text: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|at| at.to_offset(UtcOffset::UTC))
        .map_err(|err| Error::internal(format!("bad timestamp `{text}`: {err}")))
}

/// Parses a duration written as ISO 8601 (`PT2H`, `PT90M`, `PT1H30M`, `PT45S`, `P1D`)
/// or as a short form (`2h`, `90m`, `45s`, `1h30m`, `1d`).
///
/// Returns `None` for anything else, including zero and negative durations; the caller
/// knows which field it was and turns that into a precise error.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() || text.len() > 32 {
        return None;
    }
    let upper = text.to_ascii_uppercase();
    let (body, iso) = match upper.strip_prefix('P') {
        Some(rest) => (rest.to_owned(), true),
        None => (upper, false),
    };
    let mut seconds: i64 = 0;
    let mut number = String::new();
    let mut in_time = !iso;
    let mut seen_unit = false;
    for ch in body.chars() {
        match ch {
            '0'..='9' => number.push(ch),
            'T' if iso && !in_time && number.is_empty() => in_time = true,
            'D' | 'H' | 'M' | 'S' => {
                let value: i64 = number.parse().ok()?;
                number.clear();
                let unit = match ch {
                    'D' if !in_time || !iso => 86_400,
                    'H' if in_time => 3_600,
                    'M' if in_time => 60,
                    'S' if in_time => 1,
                    _ => return None,
                };
                seconds = seconds.checked_add(value.checked_mul(unit)?)?;
                seen_unit = true;
            }
            _ => return None,
        }
    }
    if !number.is_empty() || !seen_unit || seconds <= 0 {
        return None;
    }
    Some(Duration::seconds(seconds))
}

/// Writes a duration as ISO 8601 (`PT2H30M`), the form the API returns.
pub fn format_duration(duration: Duration) -> String {
    let total = duration.whole_seconds().max(0);
    let (hours, minutes, seconds) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut out = String::from("PT");
    if hours > 0 {
        out.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}M"));
    }
    if seconds > 0 || total == 0 {
        out.push_str(&format!("{seconds}S"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expect: Option<i64>) {
        assert_eq!(
            parse_duration(input).map(|d| d.whole_seconds()),
            expect,
            "input {input:?}"
        );
    }

    #[test]
    fn durations_in_both_notations() {
        check("PT2H", Some(7200));
        check("pt90m", Some(5400));
        check("PT1H30M", Some(5400));
        check("PT45S", Some(45));
        check("P1D", Some(86_400));
        check("P1DT1H", Some(90_000));
        check("2h", Some(7200));
        check("1h30m", Some(5400));
        check("45s", Some(45));
        check("1d", Some(86_400));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "",
            "PT",
            "2",
            "PT0S",
            "0h",
            "-1h",
            "PT2X",
            "2hh",
            "P2H",
            "PT1D",
            "h",
            "PT99999999999999999H",
            "T2H",
        ] {
            check(bad, None);
        }
    }

    #[test]
    fn millisecond_instants_sort_in_time_order() {
        let base = parse_utc("2026-11-21T10:13:50Z").unwrap();
        let texts: Vec<String> = [0, 7, 120, 999, 1000, 61_001]
            .iter()
            .map(|ms| format_utc_millis(base + Duration::milliseconds(*ms)))
            .collect();
        assert_eq!(texts[0], "2026-11-21T10:13:50.000Z");
        assert_eq!(texts[1], "2026-11-21T10:13:50.007Z");
        assert_eq!(texts[5], "2026-11-21T10:14:51.001Z");
        assert!(texts.windows(2).all(|pair| pair[0] < pair[1]), "{texts:?}");
        let round = parse_utc(&texts[2]).unwrap();
        assert_eq!(round, base + Duration::milliseconds(120));
    }

    #[test]
    fn instants_round_trip_in_utc_with_z() {
        let at = parse_utc("2026-11-21T11:00:00.75+01:00").unwrap();
        assert_eq!(format_utc(at), "2026-11-21T10:00:00Z");
    }

    #[test]
    fn durations_format_as_iso() {
        assert_eq!(format_duration(Duration::seconds(5400)), "PT1H30M");
        assert_eq!(format_duration(Duration::seconds(30)), "PT30S");
    }
}
