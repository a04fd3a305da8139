//! The Lambda side of the router: reducing the function names moto's Step Functions interpreter
//! sends (full ARNs, qualifiers) to the binary names `cargo lambda watch` serves, and turning the
//! emulator's replies into what the real Lambda Invoke API answers.

use std::collections::HashMap;

use hyper::body::Bytes;
use serde_json::{Value, json};

/// The binary `cargo lambda watch` should run for a function name or ARN as sent to Invoke.
///
/// `arn:aws:lambda:us-east-1:123456789012:function:NAME[:QUALIFIER]` and `NAME:QUALIFIER`
/// become `NAME`; then the rename map (deployed name → binary) applies.
pub fn binary_name(function: &str, renames: &HashMap<String, String>) -> String {
    let decoded = percent_encoding::percent_decode_str(function).decode_utf8_lossy();
    let name = match decoded.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        // A partial ARN `123456789012:function:NAME` is handled above; a bare `NAME:QUALIFIER`
        // keeps what is before the colon.
        None => decoded.split(':').next().unwrap_or(&decoded),
    };
    renames
        .get(name)
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

/// The function name in `/2015-03-31/functions/<name>/invocations`, if the path is an Invoke.
pub fn invoke_target(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/2015-03-31/functions/")?;
    let name = rest.strip_suffix("/invocations")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// A reply in the shape of the Lambda Invoke API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

/// Translates the emulator's reply into Lambda's: 200 passes through with
/// `X-Amz-Executed-Version`; a 500 whose JSON body has `errorType` (a failing handler) becomes
/// 200 with `X-Amz-Function-Error: Unhandled` and the error document as payload, without which
/// moto's interpreter crashes instead of letting Retry/Catch see the error name.
pub fn translate(status: u16, body: Bytes, function: &str) -> InvokeReply {
    let version = ("X-Amz-Executed-Version", "$LATEST".to_owned());
    let json_type = ("Content-Type", "application/json".to_owned());
    if (200..300).contains(&status) {
        return InvokeReply {
            status: 200,
            headers: vec![version, json_type],
            body,
        };
    }
    let is_handler_error = status == 500
        && serde_json::from_slice::<Value>(&body)
            .ok()
            .is_some_and(|doc| doc.get("errorType").is_some());
    if is_handler_error {
        return InvokeReply {
            status: 200,
            headers: vec![
                version,
                json_type,
                ("X-Amz-Function-Error", "Unhandled".to_owned()),
            ],
            body,
        };
    }
    if status == 404 {
        return service_error(
            404,
            "ResourceNotFoundException",
            "User",
            &format!(
                "Function not found: arn:aws:lambda:us-east-1:123456789012:function:{function} \
                 (cargo lambda watch has no binary of that name)"
            ),
        );
    }
    service_error(
        500,
        "ServiceException",
        "Service",
        &format!(
            "the Lambda emulator answered HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ),
    )
}

/// A Lambda service error (`x-amzn-ErrorType` header and `{"Type","message"}` body).
pub fn service_error(status: u16, kind: &str, fault: &str, message: &str) -> InvokeReply {
    InvokeReply {
        status,
        headers: vec![
            ("x-amzn-ErrorType", kind.to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ],
        body: Bytes::from(json!({"Type": fault, "message": message}).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_and_qualifiers_become_binary_names() {
        let renames = HashMap::from([(
            "trailgate-intake-dev".to_owned(),
            "trailgate-intake".to_owned(),
        )]);
        let cases = [
            ("trailgate-grant", "trailgate-grant"),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:trailgate-grant",
                "trailgate-grant",
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:trailgate-grant:$LATEST",
                "trailgate-grant",
            ),
            (
                "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Atrailgate-grant%3Alive",
                "trailgate-grant",
            ),
            ("123456789012:function:trailgate-revoke", "trailgate-revoke"),
            ("trailgate-audit:7", "trailgate-audit"),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:trailgate-intake-dev",
                "trailgate-intake",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(binary_name(input, &renames), expected, "{input}");
        }
    }

    #[test]
    fn recognises_invoke_paths() {
        assert_eq!(
            invoke_target("/2015-03-31/functions/x/invocations"),
            Some("x")
        );
        assert_eq!(invoke_target("/2015-03-31/functions/x"), None);
        assert_eq!(invoke_target("/2015-03-31/functions/x/configuration"), None);
    }

    #[test]
    fn handler_errors_become_function_errors() {
        let body = Bytes::from(r#"{"errorType":"Retryable","errorMessage":"try again"}"#);
        let reply = translate(500, body.clone(), "trailgate-grant");
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .headers
                .contains(&("X-Amz-Function-Error", "Unhandled".to_owned()))
        );
        assert_eq!(reply.body, body);

        let ok = translate(200, Bytes::from("{\"ok\":true}"), "f");
        assert_eq!(ok.status, 200);
        assert!(
            ok.headers
                .contains(&("X-Amz-Executed-Version", "$LATEST".to_owned()))
        );
        assert!(
            !ok.headers
                .iter()
                .any(|(name, _)| *name == "X-Amz-Function-Error")
        );

        let missing = translate(404, Bytes::from("that function doesn't exist"), "nope");
        assert_eq!(missing.status, 404);
        assert!(
            missing
                .headers
                .contains(&("x-amzn-ErrorType", "ResourceNotFoundException".to_owned()))
        );

        let other = translate(500, Bytes::from("boom"), "f");
        assert_eq!(other.status, 500);
        assert!(
            other
                .headers
                .contains(&("x-amzn-ErrorType", "ServiceException".to_owned()))
        );
    }
}
