//! Regions and source IPs new to the requester: the one reviewer-context finding computed from the
//! records themselves rather than by a runbook, because "new" needs the whole fetched history as
//! its baseline, which a per-record filter cannot see.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use serde_json::Value;
use time::OffsetDateTime;
use trailgate_domain::findings::{Finding, Level, clip, newest_evidence};

/// A record's `eventTime` in unix seconds.
fn event_time(record: &Value) -> Option<i64> {
    let text = record.get("eventTime").and_then(Value::as_str)?;
    trailgate_domain::time::parse_utc(text)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Regions and source IPs the requester used since `recent_since` but not before it in the
/// fetched history: the classic sign of a stolen key used from somewhere new. Nothing is
/// reported without a baseline (no earlier record), since then everything would look new.
/// Source "IPs" that are service names (`s3.amazonaws.com`, `AWS Internal`) are ignored.
pub fn new_origins(records: &[Value], recent_since: OffsetDateTime) -> Vec<Finding> {
    let since = recent_since.unix_timestamp();
    let checks: [(&str, &str, Level); 2] = [
        ("awsRegion", "Regions", Level::Medium),
        ("sourceIPAddress", "source IPs", Level::Low),
    ];
    let mut found = Vec::new();
    for (field, label, level) in checks {
        let value = |record: &Value| {
            let text = record.get(field).and_then(Value::as_str)?;
            if field == "sourceIPAddress" && text.parse::<IpAddr>().is_err() {
                return None;
            }
            Some(text.to_owned())
        };
        let mut baseline: HashSet<String> = HashSet::new();
        let mut baseline_events: u64 = 0;
        let mut recent: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for record in records {
            let (Some(at), Some(value)) = (event_time(record), value(record)) else {
                continue;
            };
            if at < since {
                baseline.insert(value);
                baseline_events += 1;
            } else {
                recent.entry(value).or_default().push(record);
            }
        }
        if baseline.is_empty() {
            continue;
        }
        let new: Vec<(&String, &Vec<&Value>)> = recent
            .iter()
            .filter(|(value, _)| !baseline.contains(*value))
            .collect();
        if new.is_empty() {
            continue;
        }
        let count = new.iter().map(|(_, records)| records.len() as u64).sum();
        let mut names: Vec<String> = new
            .iter()
            .take(3)
            .map(|(value, _)| clip(value, 64))
            .collect();
        if new.len() > 3 {
            names.push(format!("and {} more", new.len() - 3));
        }
        found.push(Finding {
            level,
            what: format!(
                "{label} not seen before in the window: {} (compared with {baseline_events} earlier events)",
                names.join(", ")
            ),
            count,
            evidence: newest_evidence(new.iter().flat_map(|(_, records)| records.iter().copied())),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A CloudTrail record of alice `hours_ago` before 2026-11-21T00:00:00Z.
    fn record(id: &str, hours_ago: i64, region: &str, ip: &str) -> Value {
        let at = time::macros::datetime!(2026-11-21 00:00 UTC) - time::Duration::hours(hours_ago);
        json!({"eventID": id, "eventTime": trailgate_domain::time::format_utc(at), "eventName": "ListBuckets",
               "eventSource": "s3.amazonaws.com", "awsRegion": region, "sourceIPAddress": ip})
    }

    #[test]
    fn regions_and_ips_new_in_the_last_day_are_flagged_against_the_earlier_baseline() {
        let since = time::macros::datetime!(2026-11-20 00:00 UTC);
        let mut records: Vec<Value> = (0..10)
            .map(|i| record(&format!("old{i}"), 48 + i, "us-east-1", "203.0.113.9"))
            .collect();
        records.push(record("same", 2, "us-east-1", "203.0.113.9"));
        records.push(record("new1", 3, "ap-southeast-1", "198.51.100.66"));
        records.push(record("new2", 1, "ap-southeast-1", "198.51.100.66"));
        // Calls a service made for the requester carry its name, not an IP: never "new".
        records.push(record("svc", 1, "us-east-1", "AWS Internal"));
        let found = new_origins(&records, since);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].level, Level::Medium);
        assert_eq!(
            found[0].what,
            "Regions not seen before in the window: ap-southeast-1 (compared with 10 earlier events)"
        );
        assert_eq!(found[0].count, 2);
        assert_eq!(found[0].evidence[0].event_id, "new2", "newest first");
        assert_eq!(found[1].level, Level::Low);
        assert!(
            found[1]
                .what
                .starts_with("source IPs not seen before in the window: 198.51.100.66")
        );
        // Without a baseline nothing is new; with only known origins nothing is flagged.
        assert!(new_origins(&records[10..], since).is_empty());
        assert!(new_origins(&records[..11], since).is_empty());
    }
}
