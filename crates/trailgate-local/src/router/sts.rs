//! STS `AssumeRole` calls as their callers sent them, recorded on the way to moto: the system
//! tests judge the session policy and session tags trailgate's credentials function really put
//! on the wire (issue 12), not what the domain meant to send. moto keeps neither in a form one
//! can read back.

use std::sync::Mutex;

use serde_json::{Map, Value, json};

use super::sigv4::decode_form;

/// Most calls kept; the oldest go first.
const MAX_CALLS: usize = 10_000;

/// The recorded calls, oldest first.
#[derive(Debug, Default)]
pub struct AssumeCalls {
    calls: Mutex<Vec<Value>>,
}

impl AssumeCalls {
    /// Records `body` (an STS query-protocol form) if it is an `AssumeRole` call.
    pub fn record(&self, body: &[u8]) {
        if let Some(call) = parse(body) {
            let mut calls = self.calls.lock().expect("assume calls lock");
            if calls.len() == MAX_CALLS {
                calls.remove(0);
            }
            calls.push(call);
        }
    }

    /// Every recorded call: `{role_arn, session_name, source_identity, duration_seconds,
    /// policy, tags: [{key, value}], transitive_tag_keys}`, absent parameters as null.
    pub fn list(&self) -> Vec<Value> {
        self.calls.lock().expect("assume calls lock").clone()
    }
}

fn parse(body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    let mut fields = Map::new();
    for pair in text.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        fields.insert(decode_form(key), Value::String(decode_form(value)));
    }
    if fields.get("Action").and_then(Value::as_str) != Some("AssumeRole") {
        return None;
    }
    let field = |name: &str| fields.get(name).cloned().unwrap_or(Value::Null);
    let members = |prefix: &str| -> Vec<(u32, String, Value)> {
        let mut found: Vec<(u32, String, Value)> = fields
            .iter()
            .filter_map(|(key, value)| {
                let rest = key.strip_prefix(prefix)?;
                let (index, part) = rest.split_once('.').unwrap_or((rest, ""));
                Some((index.parse().ok()?, part.to_owned(), value.clone()))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        found
    };
    let mut tags: Vec<Value> = Vec::new();
    let tag_members = members("Tags.member.");
    let mut indices: Vec<u32> = tag_members.iter().map(|(index, _, _)| *index).collect();
    indices.dedup();
    for index in indices {
        let part = |name: &str| {
            tag_members
                .iter()
                .find(|(i, p, _)| *i == index && p == name)
                .map_or(Value::Null, |(_, _, value)| value.clone())
        };
        tags.push(json!({"key": part("Key"), "value": part("Value")}));
    }
    let transitive: Vec<Value> = members("TransitiveTagKeys.member.")
        .into_iter()
        .map(|(_, _, value)| value)
        .collect();
    Some(json!({
        "role_arn": field("RoleArn"),
        "session_name": field("RoleSessionName"),
        "source_identity": field("SourceIdentity"),
        "duration_seconds": field("DurationSeconds"),
        "policy": field("Policy"),
        "tags": tags,
        "transitive_tag_keys": transitive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assume_role_form_is_recorded_as_sent_and_other_calls_are_not() {
        let calls = AssumeCalls::default();
        calls.record(b"Action=GetCallerIdentity&Version=2011-06-15");
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*"}]}"#;
        let encoded: String = policy.bytes().map(|b| format!("%{b:02X}")).collect();
        let body = format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fr\
             &RoleSessionName=tg-alice-r-1&SourceIdentity=alice&DurationSeconds=900&Policy={encoded}\
             &Tags.member.1.Key=trailgate-request&Tags.member.1.Value=r-1\
             &Tags.member.2.Key=b&Tags.member.2.Value=two+words&TransitiveTagKeys.member.1=b"
        );
        calls.record(body.as_bytes());
        let listed = calls.list();
        assert_eq!(listed.len(), 1);
        let call = &listed[0];
        assert_eq!(call["role_arn"], "arn:aws:iam::123456789012:role/r");
        assert_eq!(call["session_name"], "tg-alice-r-1");
        assert_eq!(call["source_identity"], "alice");
        assert_eq!(call["duration_seconds"], "900");
        assert_eq!(call["policy"], policy);
        assert_eq!(
            call["tags"],
            json!([{"key": "trailgate-request", "value": "r-1"}, {"key": "b", "value": "two words"}])
        );
        assert_eq!(call["transitive_tag_keys"], json!(["b"]));
    }
}
