//! Fault injection on the AWS port: `POST /_local/faults` makes the next N matching AWS calls
//! fail the way AWS would, so system tests can show that retries, the revoke-failed alert and the
//! reconciler still end access when IAM (or any other service moto plays) misbehaves.
//!
//! A rule is `{"service": "iam", "action": "PutRolePolicy", "error": "ServiceFailure" |
//! "Throttling" | <any AWS error code>, "count": N, "match": "RoleName=fault-a"}`; `match` is
//! optional and must be a substring of the (URL-decoded) request body, so scenarios running
//! concurrently on one stack fault only their own calls. `GET /_local/faults` lists the rules with
//! how many failures each has injected; `DELETE /_local/faults` removes them all, or with a body
//! `{"match": "..."}` only the rules with that `match`.
//! The service is read from the SigV4 credential scope, the action from `X-Amz-Target` (JSON
//! protocols) or the `Action` parameter (query protocols such as IAM).

use std::sync::Mutex;

use http::HeaderMap;
use serde_json::{Value, json};

/// One injected failure, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultReply {
    pub status: u16,
    pub content_type: &'static str,
    /// The error code, also sent as `x-amzn-ErrorType`.
    pub code: String,
    pub body: String,
}

#[derive(Debug, Clone)]
struct Rule {
    service: String,
    action: String,
    error: String,
    matching: Option<String>,
    remaining: u64,
    injected: u64,
}

/// The rules in force; shared by every connection of the AWS port.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
}

impl Faults {
    /// Adds a rule (or a list of rules) from the endpoint's JSON body.
    pub fn add(&self, spec: &Value) -> Result<usize, String> {
        let specs = match spec {
            Value::Array(many) => many.clone(),
            one => vec![one.clone()],
        };
        let mut parsed = Vec::new();
        for spec in &specs {
            let text = |name: &str| {
                spec.get(name)
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| format!("fault rule needs a string `{name}`: {spec}"))
            };
            parsed.push(Rule {
                service: text("service")?.to_ascii_lowercase(),
                action: text("action")?,
                error: text("error")?,
                matching: spec.get("match").and_then(Value::as_str).map(str::to_owned),
                remaining: spec
                    .get("count")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("fault rule needs a number `count`: {spec}"))?,
                injected: 0,
            });
        }
        let added = parsed.len();
        self.rules.lock().expect("faults lock").extend(parsed);
        Ok(added)
    }

    /// Removes every rule, or only those with this `match` (one scenario's rules).
    pub fn clear(&self, matching: Option<&str>) {
        let mut rules = self.rules.lock().expect("faults lock");
        match matching {
            Some(matching) => rules.retain(|rule| rule.matching.as_deref() != Some(matching)),
            None => rules.clear(),
        }
    }

    /// The rules with their remaining and injected counts.
    pub fn list(&self) -> Value {
        let rules = self.rules.lock().expect("faults lock");
        Value::Array(
            rules
                .iter()
                .map(|rule| {
                    json!({"service": rule.service, "action": rule.action, "error": rule.error,
                           "match": rule.matching, "remaining": rule.remaining, "injected": rule.injected})
                })
                .collect(),
        )
    }

    /// Whether any rule could still fire, so that bodies are only buffered while faults are on.
    pub fn armed(&self) -> bool {
        self.rules
            .lock()
            .expect("faults lock")
            .iter()
            .any(|rule| rule.remaining > 0)
    }

    /// The failure to answer this call with, if a rule matches it (and counts it).
    pub fn take(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Option<FaultReply> {
        let service = service_of(headers)?;
        let body = decode(body);
        let action = action_of(headers, query, &body)?;
        let json_protocol = headers.contains_key("x-amz-target");
        let mut rules = self.rules.lock().expect("faults lock");
        let rule = rules.iter_mut().find(|rule| {
            rule.remaining > 0
                && rule.service == service
                && rule.action.eq_ignore_ascii_case(&action)
                && rule.matching.as_deref().is_none_or(|m| body.contains(m))
        })?;
        rule.remaining -= 1;
        rule.injected += 1;
        Some(reply(&rule.error, &action, json_protocol))
    }
}

/// The service of a SigV4-signed call: the fourth part of the credential scope.
pub fn service_of(headers: &HeaderMap) -> Option<String> {
    let authorization = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_ascii_lowercase)
}

/// The API action: `X-Amz-Target`'s operation, or the query protocol's `Action` parameter.
fn action_of(headers: &HeaderMap, query: Option<&str>, body: &str) -> Option<String> {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().map(str::to_owned);
    }
    [body, query.unwrap_or_default()]
        .iter()
        .flat_map(|text| text.split('&'))
        .find_map(|pair| pair.strip_prefix("Action=").map(str::to_owned))
}

fn decode(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).replace('+', " ");
    percent_encoding::percent_decode_str(&text)
        .decode_utf8_lossy()
        .into_owned()
}

/// What AWS answers: throttling is a 400 the SDKs retry, a service failure a 500; query
/// protocols (IAM, STS, SNS) answer XML, JSON protocols a `__type` document.
fn reply(code: &str, action: &str, json_protocol: bool) -> FaultReply {
    let throttling = code.contains("Throttl") || code.contains("TooManyRequests");
    let status = if throttling || code.ends_with("Exception") && !code.contains("Internal") {
        400
    } else {
        500
    };
    let message = format!("injected by the local stack's fault injection ({action})");
    let request_id = super::uuid();
    if json_protocol {
        return FaultReply {
            status,
            content_type: "application/x-amz-json-1.0",
            code: code.to_owned(),
            body: json!({"__type": code, "message": message}).to_string(),
        };
    }
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    FaultReply {
        status,
        content_type: "text/xml",
        code: code.to_owned(),
        body: format!(
            "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iam_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKID/20261121/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=ab"
                .parse()
                .unwrap(),
        );
        headers
    }

    #[test]
    fn the_next_n_matching_calls_fail_then_calls_pass() {
        let faults = Faults::default();
        faults
            .add(&json!({"service": "iam", "action": "PutRolePolicy", "error": "ServiceFailure", "count": 2, "match": "RoleName=fault-a&"}))
            .unwrap();
        let put_a = b"Action=PutRolePolicy&Version=2010-05-08&RoleName=fault-a&PolicyName=x";
        let put_b = b"Action=PutRolePolicy&Version=2010-05-08&RoleName=fault-b&PolicyName=x";
        let get_a = b"Action=GetRolePolicy&RoleName=fault-a&PolicyName=x";
        assert!(faults.take(&iam_headers(), None, put_b).is_none());
        assert!(faults.take(&iam_headers(), None, get_a).is_none());
        let reply = faults.take(&iam_headers(), None, put_a).unwrap();
        assert_eq!(reply.status, 500);
        assert!(reply.body.contains("<Code>ServiceFailure</Code>"));
        assert!(faults.take(&iam_headers(), None, put_a).is_some());
        assert!(faults.take(&iam_headers(), None, put_a).is_none());
        assert!(!faults.armed());
        assert_eq!(faults.list()[0]["injected"], 2);
    }

    #[test]
    fn throttling_is_a_400_and_json_protocols_get_json() {
        let faults = Faults::default();
        faults
            .add(&json!([{"service": "states", "action": "StartExecution", "error": "ThrottlingException", "count": 1}]))
            .unwrap();
        let mut headers = iam_headers();
        headers.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKID/20261121/us-east-1/states/aws4_request, SignedHeaders=host, Signature=ab"
                .parse()
                .unwrap(),
        );
        headers.insert(
            "x-amz-target",
            "AWSStepFunctions.StartExecution".parse().unwrap(),
        );
        let reply = faults.take(&headers, None, b"{}").unwrap();
        assert_eq!(reply.status, 400);
        assert_eq!(
            serde_json::from_str::<Value>(&reply.body).unwrap()["__type"],
            "ThrottlingException"
        );
        assert!(faults.add(&json!({"service": "iam"})).is_err());
        faults
            .add(&json!({"service": "iam", "action": "GetRole", "error": "Throttling", "count": 1}))
            .unwrap();
        faults.clear(Some("other"));
        assert!(faults.armed());
        faults.clear(None);
        assert!(!faults.armed());
    }
}
