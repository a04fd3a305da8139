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
    /// Records `body` (an STS query-protocol form) if it is an `AssumeRole` call, and says
    /// whether it was.
    pub fn record(&self, body: &[u8]) -> bool {
        let Some(call) = parse(body) else {
            return false;
        };
        {
            let mut calls = self.calls.lock().expect("assume calls lock");
            if calls.len() == MAX_CALLS {
                calls.remove(0);
            }
            calls.push(call);
        }
        true
    }

    /// Every recorded call: `{role_arn, session_name, source_identity, duration_seconds,
    /// policy, tags: [{key, value}], transitive_tag_keys}`, absent parameters as null.
    pub fn list(&self) -> Vec<Value> {
        self.calls.lock().expect("assume calls lock").clone()
    }
}

/// The session an `AssumeRole` answer (STS's XML) describes, as a caller the API emulation
/// accepts, if it is a session of an Identity Center role (`AWSReservedSSO_*`). On AWS those
/// sessions come from Identity Center's sign-in; locally a user assumes such a role with their
/// Identity Center user name as the session name (crates/trailgate-local/README.md), and the
/// API must know the session's keys to verify its signature as API Gateway would.
pub fn identity_center_session(xml: &str) -> Option<super::sigv4::LocalUser> {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = xml.find(&open)? + open.len();
        let end = start + xml[start..].find(&format!("</{name}>"))?;
        Some(xml[start..end].trim().to_owned())
    };
    let arn = element("Arn")?;
    let (_, rest) = arn.split_once(":assumed-role/")?;
    if !rest.starts_with(trailgate_domain::identity::IDENTITY_CENTER_ROLE_PREFIX) {
        return None;
    }
    let session = rest.rsplit('/').next()?.to_owned();
    Some(super::sigv4::LocalUser {
        name: session,
        role: "identity-center-session".into(),
        email: String::new(),
        user_id: element("AssumedRoleId")?,
        arn,
        access_key_id: element("AccessKeyId")?,
        secret_access_key: element("SecretAccessKey")?,
    })
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
    fn only_identity_center_sessions_become_api_callers() {
        let answer = |arn: &str| {
            format!(
                "<AssumeRoleResponse><AssumeRoleResult><Credentials><SessionToken>t</SessionToken>\
                 <SecretAccessKey>secret</SecretAccessKey><Expiration>2026-12-02T22:00:00Z</Expiration>\
                 <AccessKeyId>ASIAEXAMPLE</AccessKeyId></Credentials><AssumedRoleUser>\
                 <AssumedRoleId>AROAEXAMPLE:alice@example.com</AssumedRoleId><Arn>{arn}</Arn>\
                 </AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>"
            )
        };
        let session = identity_center_session(&answer(
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ProdAccess_0a1b2c3d4e5f6a7b/alice@example.com",
        ))
        .unwrap();
        assert_eq!(session.access_key_id, "ASIAEXAMPLE");
        assert_eq!(session.secret_access_key, "secret");
        assert_eq!(session.user_id, "AROAEXAMPLE:alice@example.com");
        assert_eq!(session.name, "alice@example.com");
        assert!(
            identity_center_session(&answer(
                "arn:aws:sts::123456789012:assumed-role/trailgate-agent/trailgate-grant"
            ))
            .is_none()
        );
        assert!(identity_center_session("<Error/>").is_none());
    }

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
