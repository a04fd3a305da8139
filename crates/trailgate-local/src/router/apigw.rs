//! The API Gateway REST emulation's pure parts: matching a request to a template route, building
//! the Lambda proxy event (the `ApiGatewayProxyRequest` shape), and turning the function's proxy
//! reply into an HTTP response.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::sigv4::{CallerIdentity, decode_form};
use crate::cloudformation::{ACCOUNT_ID, ApiRoute};

/// The stage the local API serves, as in `https://<api>.execute-api.<region>.amazonaws.com/v1`.
pub const STAGE: &str = "v1";

/// The route serving `method path` (path without the stage) and its path parameters; the most
/// specific template path wins (literal segments before `{param}`, `{proxy+}` last) and an
/// exact method before `ANY`.
pub fn match_route<'a>(
    routes: &'a [ApiRoute],
    method: &str,
    path: &str,
) -> Option<(&'a ApiRoute, BTreeMap<String, String>)> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut best: Option<((usize, usize, bool), &ApiRoute, BTreeMap<String, String>)> = None;
    for route in routes {
        if route.method != "ANY" && !route.method.eq_ignore_ascii_case(method) {
            continue;
        }
        let pattern: Vec<&str> = route
            .path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let Some((literals, greedy, parameters)) = match_segments(&pattern, &segments) else {
            continue;
        };
        let score = (literals, usize::from(!greedy), route.method != "ANY");
        if best
            .as_ref()
            .is_none_or(|(best_score, _, _)| score > *best_score)
        {
            best = Some((score, route, parameters));
        }
    }
    best.map(|(_, route, parameters)| (route, parameters))
}

fn match_segments(
    pattern: &[&str],
    segments: &[&str],
) -> Option<(usize, bool, BTreeMap<String, String>)> {
    let mut parameters = BTreeMap::new();
    let mut literals = 0;
    for (index, part) in pattern.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            // A greedy parameter takes the rest, at least one segment, and must be last.
            if index != pattern.len() - 1 || segments.len() <= index {
                return None;
            }
            let rest: Vec<String> = segments[index..].iter().map(|s| decode_path(s)).collect();
            parameters.insert(name.to_owned(), rest.join("/"));
            return Some((literals, true, parameters));
        }
        let segment = segments.get(index)?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            parameters.insert(name.to_owned(), decode_path(segment));
        } else if *part == *segment {
            literals += 1;
        } else {
            return None;
        }
    }
    (pattern.len() == segments.len()).then_some((literals, false, parameters))
}

fn decode_path(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// What the emulation knows about a received request.
#[derive(Debug)]
pub struct ProxyInput<'a> {
    pub route: &'a ApiRoute,
    pub path_parameters: &'a BTreeMap<String, String>,
    pub method: &'a str,
    /// Path without the stage prefix, as received.
    pub path: &'a str,
    pub raw_query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    pub identity: Option<&'a CallerIdentity>,
    pub source_ip: &'a str,
    pub request_id: &'a str,
    pub api_id: &'a str,
    pub now: OffsetDateTime,
}

/// Builds the API Gateway REST proxy event, as `aws_lambda_events::apigw::ApiGatewayProxyRequest`
/// deserialises it.
pub fn proxy_event(input: &ProxyInput<'_>) -> Value {
    let mut headers = Map::new();
    let mut multi_headers: Map<String, Value> = Map::new();
    for (name, value) in input.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.insert(name.as_str().to_owned(), Value::String(value.clone()));
        match multi_headers.get_mut(name.as_str()) {
            Some(Value::Array(values)) => values.push(Value::String(value)),
            _ => {
                multi_headers.insert(name.as_str().to_owned(), json!([value]));
            }
        }
    }
    let mut query = Map::new();
    let mut multi_query: Map<String, Value> = Map::new();
    for pair in input
        .raw_query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (decode_form(key), decode_form(value));
        // REST APIs put the last value in queryStringParameters and all in the multi-value map.
        query.insert(key.clone(), Value::String(value.clone()));
        match multi_query.get_mut(&key) {
            Some(Value::Array(values)) => values.push(Value::String(value)),
            _ => {
                multi_query.insert(key, json!([value]));
            }
        }
    }
    let null_if_empty = |map: Map<String, Value>| {
        if map.is_empty() {
            Value::Null
        } else {
            Value::Object(map)
        }
    };
    let path_parameters: Map<String, Value> = input
        .path_parameters
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let (body, is_base64) = if input.body.is_empty() {
        (Value::Null, false)
    } else {
        match std::str::from_utf8(input.body) {
            Ok(text) => (Value::String(text.to_owned()), false),
            Err(_) => (
                Value::String(base64::engine::general_purpose::STANDARD.encode(input.body)),
                true,
            ),
        }
    };
    let user_agent = input
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok());
    let identity = match input.identity {
        Some(caller) => json!({
            "sourceIp": input.source_ip,
            "userAgent": user_agent,
            "accessKey": caller.access_key,
            "accountId": caller.account_id,
            "caller": caller.caller,
            "user": caller.user,
            "userArn": caller.user_arn,
        }),
        None => json!({"sourceIp": input.source_ip, "userAgent": user_agent}),
    };
    let request_time = input
        .now
        .format(time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    json!({
        "resource": input.route.path,
        "path": input.path,
        "httpMethod": input.method,
        "headers": null_if_empty(headers),
        "multiValueHeaders": null_if_empty(multi_headers),
        "queryStringParameters": null_if_empty(query),
        "multiValueQueryStringParameters": null_if_empty(multi_query),
        "pathParameters": null_if_empty(path_parameters),
        "stageVariables": null,
        "body": body,
        "isBase64Encoded": is_base64,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": input.api_id,
            "resourceId": crate::cloudformation::stable_token(&input.route.path, 6, false),
            "resourcePath": input.route.path,
            "stage": STAGE,
            "requestId": input.request_id,
            "extendedRequestId": input.request_id,
            "requestTime": request_time,
            "requestTimeEpoch": input.now.unix_timestamp() * 1000,
            "httpMethod": input.method,
            "path": format!("/{STAGE}{}", input.path),
            "protocol": "HTTP/1.1",
            "domainName": input.headers.get("host").and_then(|v| v.to_str().ok()),
            "identity": identity,
        },
    })
}

/// An HTTP response built from a function's proxy reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads `{statusCode, headers, multiValueHeaders, body, isBase64Encoded}`; `None` when the
/// reply is malformed, which API Gateway answers with 502.
pub fn proxy_reply(payload: &[u8]) -> Option<ProxyReply> {
    let reply: Value = serde_json::from_slice(payload).ok()?;
    let status = match reply.get("statusCode")? {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (100..600).contains(s))?;
    let mut headers = Vec::new();
    if let Some(Value::Object(map)) = reply.get("headers") {
        for (name, value) in map {
            headers.push((name.clone(), scalar_string(value)?));
        }
    }
    if let Some(Value::Object(map)) = reply.get("multiValueHeaders") {
        for (name, values) in map {
            // Single-value headers of the same name are replaced by the multi-value list.
            headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
            for value in values.as_array()? {
                headers.push((name.clone(), scalar_string(value)?));
            }
        }
    }
    let body = match reply.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => {
            if reply
                .get("isBase64Encoded")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .ok()?
            } else {
                text.clone().into_bytes()
            }
        }
        Some(_) => return None,
    };
    Some(ProxyReply {
        status,
        headers,
        body,
    })
}

/// A string for a scalar JSON header value (API Gateway turns numbers and booleans into strings).
fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, method: &str, binary: &str) -> ApiRoute {
        ApiRoute {
            path: path.into(),
            method: method.into(),
            function: binary.into(),
            binary: binary.into(),
            iam_auth: true,
        }
    }

    fn routes() -> Vec<ApiRoute> {
        vec![
            route("/requests", "POST", "intake"),
            route("/requests/{id}", "GET", "intake"),
            route("/requests/{id}/credentials", "GET", "credentials"),
            route("/requests/mine", "GET", "mine"),
            route("/files/{proxy+}", "ANY", "files"),
        ]
    }

    #[test]
    fn picks_the_most_specific_route() {
        let routes = routes();
        let (r, p) = match_route(&routes, "GET", "/requests/r-1").unwrap();
        assert_eq!((r.binary.as_str(), p["id"].as_str()), ("intake", "r-1"));
        let (r, p) = match_route(&routes, "GET", "/requests/r%201/credentials").unwrap();
        assert_eq!(
            (r.binary.as_str(), p["id"].as_str()),
            ("credentials", "r 1")
        );
        let (r, _) = match_route(&routes, "GET", "/requests/mine").unwrap();
        assert_eq!(r.binary, "mine");
        let (r, p) = match_route(&routes, "DELETE", "/files/a/b").unwrap();
        assert_eq!((r.binary.as_str(), p["proxy"].as_str()), ("files", "a/b"));
        assert!(match_route(&routes, "DELETE", "/requests/r-1").is_none());
        assert!(match_route(&routes, "GET", "/nope").is_none());
        assert!(match_route(&routes, "GET", "/files").is_none());
    }

    #[test]
    fn builds_a_proxy_event_that_aws_lambda_events_reads() {
        let routes = routes();
        let (route, parameters) = match_route(&routes, "GET", "/requests/r-1").unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "127.0.0.1:4567".parse().unwrap());
        headers.append("x-multi", "a".parse().unwrap());
        headers.append("x-multi", "b".parse().unwrap());
        let identity = CallerIdentity {
            access_key: "AKIA".into(),
            account_id: ACCOUNT_ID.into(),
            caller: "AIDA".into(),
            user: "AIDA".into(),
            user_arn: "arn:aws:iam::123456789012:user/alice".into(),
        };
        let event = proxy_event(&ProxyInput {
            route,
            path_parameters: &parameters,
            method: "GET",
            path: "/requests/r-1",
            raw_query: Some("a=1&a=2&b=x+y"),
            headers: &headers,
            body: b"",
            identity: Some(&identity),
            source_ip: "127.0.0.1",
            request_id: "req-1",
            api_id: "abcdefghij",
            now: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        });
        assert_eq!(event["resource"], "/requests/{id}");
        assert_eq!(event["pathParameters"], json!({"id": "r-1"}));
        assert_eq!(
            event["queryStringParameters"],
            json!({"a": "2", "b": "x y"})
        );
        assert_eq!(
            event["multiValueQueryStringParameters"]["a"],
            json!(["1", "2"])
        );
        assert_eq!(event["multiValueHeaders"]["x-multi"], json!(["a", "b"]));
        assert_eq!(event["body"], Value::Null);
        assert_eq!(event["requestContext"]["path"], "/v1/requests/r-1");
        assert_eq!(
            event["requestContext"]["identity"]["userArn"],
            "arn:aws:iam::123456789012:user/alice"
        );
        assert_eq!(event["requestContext"]["identity"]["caller"], "AIDA");
        // The functions read it with aws_lambda_events.
        let typed: aws_lambda_events::apigw::ApiGatewayProxyRequest =
            serde_json::from_value(event).unwrap();
        assert_eq!(typed.path_parameters["id"], "r-1");
        assert_eq!(
            typed.request_context.identity.user_arn.as_deref(),
            Some("arn:aws:iam::123456789012:user/alice")
        );
        assert_eq!(typed.query_string_parameters.first("b"), Some("x y"));
    }

    #[test]
    fn reads_proxy_replies() {
        let reply = proxy_reply(
            br#"{"statusCode":201,"headers":{"content-type":"application/json"},"multiValueHeaders":{"set-cookie":["a=1","b=2"]},"body":"{\"id\":\"r-1\"}","isBase64Encoded":false}"#,
        )
        .unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(reply.body, br#"{"id":"r-1"}"#);
        assert_eq!(
            reply
                .headers
                .iter()
                .filter(|(n, _)| n == "set-cookie")
                .count(),
            2
        );
        let binary =
            proxy_reply(br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#).unwrap();
        assert_eq!(binary.body, b"hi");
        assert!(proxy_reply(br#"{"body":"no status"}"#).is_none());
        assert!(proxy_reply(b"not json").is_none());
    }
}
