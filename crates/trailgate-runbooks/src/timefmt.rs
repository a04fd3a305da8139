//! Time helpers: ISO-8601 durations (`P7D`), and a fast reader for CloudTrail's `eventTime`.
//!
//! `eventTime` is read for every record, so it is parsed by hand from its fixed layout
//! (`YYYY-MM-DDTHH:MM:SS[.fff]Z`) into Unix seconds, without allocating; other RFC 3339 forms
//! fall back to the `time` crate.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// Parses an ISO-8601 duration with days, weeks, hours, minutes and seconds (`P7D`, `PT4H`,
/// `P1DT12H30M`, `P2W`). Years and months are rejected: their length is ambiguous.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let rest = text.trim().strip_prefix('P')?;
    if rest.is_empty() {
        return None;
    }
    let (date_part, time_part) = match rest.split_once('T') {
        Some((date, time)) => {
            if time.is_empty() {
                return None;
            }
            (date, Some(time))
        }
        None => (rest, None),
    };
    let mut seconds: i64 = 0;
    seconds = seconds.checked_add(sum_units(date_part, &[('W', 604_800), ('D', 86_400)])?)?;
    if let Some(time_part) = time_part {
        seconds =
            seconds.checked_add(sum_units(time_part, &[('H', 3600), ('M', 60), ('S', 1)])?)?;
    }
    Some(Duration::seconds(seconds))
}

/// Sums `<digits><unit>` groups, units in the given order, each at most once.
fn sum_units(text: &str, units: &[(char, i64)]) -> Option<i64> {
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut next_unit = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let position = units[next_unit..].iter().position(|(unit, _)| *unit == c)?;
        let (_, factor) = units[next_unit + position];
        next_unit += position + 1;
        let value: i64 = number.parse().ok()?;
        total = total.checked_add(value.checked_mul(factor)?)?;
        number.clear();
    }
    if !number.is_empty() {
        return None;
    }
    Some(total)
}

/// Formats a duration back as ISO-8601 (`P1DT2H`), for display.
pub fn format_duration(duration: Duration) -> String {
    let mut seconds = duration.whole_seconds();
    if seconds == 0 {
        return "PT0S".to_owned();
    }
    let mut text = String::from("P");
    let days = seconds / 86_400;
    seconds %= 86_400;
    if days != 0 {
        text.push_str(&format!("{days}D"));
    }
    if seconds != 0 {
        text.push('T');
        let hours = seconds / 3600;
        let minutes = (seconds % 3600) / 60;
        let rest = seconds % 60;
        if hours != 0 {
            text.push_str(&format!("{hours}H"));
        }
        if minutes != 0 {
            text.push_str(&format!("{minutes}M"));
        }
        if rest != 0 {
            text.push_str(&format!("{rest}S"));
        }
    }
    text
}

/// Reads a CloudTrail timestamp as Unix seconds (fractions dropped).
pub fn parse_event_time(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    // The common case: `2023-07-10T11:42:36Z` or with `.000Z` fractions, always UTC.
    if bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && (bytes[10] == b'T' || bytes[10] == b't' || bytes[10] == b' ')
        && bytes[13] == b':'
        && bytes[16] == b':'
        && matches!(bytes[bytes.len() - 1], b'Z' | b'z')
        && (bytes.len() == 20 || bytes[19] == b'.')
    {
        let year = digits(&bytes[0..4])?;
        let month = digits(&bytes[5..7])?;
        let day = digits(&bytes[8..10])?;
        let hour = digits(&bytes[11..13])?;
        let minute = digits(&bytes[14..16])?;
        let second = digits(&bytes[17..19])?;
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        return Some(
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second,
        );
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    let mut value: i64 = 0;
    for byte in bytes {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(byte - b'0');
    }
    Some(value)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Formats Unix seconds as CloudTrail does (`2023-07-10T11:42:36Z`).
pub fn format_unix(seconds: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(moment) => format_time(moment),
        Err(_) => seconds.to_string(),
    }
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` in UTC.
pub fn format_time(moment: OffsetDateTime) -> String {
    let utc = moment.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_days_hours_and_weeks() {
        assert_eq!(parse_duration("P7D"), Some(Duration::days(7)));
        assert_eq!(parse_duration("PT4H"), Some(Duration::hours(4)));
        assert_eq!(
            parse_duration("P1DT12H30M"),
            Some(Duration::minutes(36 * 60 + 30))
        );
        assert_eq!(parse_duration("P2W"), Some(Duration::weeks(2)));
        assert_eq!(parse_duration("PT90S"), Some(Duration::seconds(90)));
    }

    #[test]
    fn durations_reject_ambiguous_and_malformed_text() {
        for text in [
            "", "P", "7D", "P1M", "P1Y", "PT", "P1H", "PT1D", "P1D2D", "PTH", "P-1D",
        ] {
            assert_eq!(parse_duration(text), None, "{text}");
        }
    }

    #[test]
    fn durations_format_back() {
        assert_eq!(format_duration(Duration::days(7)), "P7D");
        assert_eq!(format_duration(Duration::minutes(90)), "PT1H30M");
    }

    #[test]
    fn event_time_fast_path_agrees_with_the_time_crate() {
        for text in [
            "2023-07-10T11:42:36Z",
            "1970-01-01T00:00:00Z",
            "2020-02-29T23:59:59Z",
            "2100-03-01T00:00:01Z",
        ] {
            let expected = OffsetDateTime::parse(text, &Rfc3339)
                .map(OffsetDateTime::unix_timestamp)
                .ok();
            assert_eq!(parse_event_time(text), expected, "{text}");
        }
        assert_eq!(
            parse_event_time("2020-09-14T00:44:23.000Z"),
            parse_event_time("2020-09-14T00:44:23Z")
        );
        assert_eq!(
            parse_event_time("2023-07-10T13:42:36+02:00"),
            parse_event_time("2023-07-10T11:42:36Z")
        );
        assert_eq!(parse_event_time("yesterday"), None);
        assert_eq!(parse_event_time("2023-13-10T11:42:36Z"), None);
    }
}
