//! API Gateway REST proxy events in, responses out: the HTTP edge shared by the intake,
//! credentials and decision functions.
//!
//! Every client mistake becomes a 4xx with `{"error": {"code", "message", "field"}}`; only
//! trailgate's own failures are 5xx, and their details go to the log, not to the caller.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use http::HeaderValue;
use serde::de::DeserializeOwned;
use trailgate_domain::error::{Error, ErrorKind, Result};
use trailgate_domain::request::Caller;

/// The largest request body trailgate reads. Requests are small; anything bigger is a mistake
/// or an attack, and is refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The caller established by API Gateway's SigV4 check (`AWS_IAM`), never by the body.
pub fn caller(request: &ApiGatewayProxyRequest) -> Result<Caller> {
    let identity = &request.request_context.identity;
    let arn = identity
        .user_arn
        .as_deref()
        .filter(|arn| arn.starts_with("arn:"))
        .ok_or_else(|| Error::forbidden("the request is not signed with AWS credentials"))?;
    Ok(Caller {
        arn: arn.to_owned(),
        principal_id: identity.user.clone().filter(|id| !id.is_empty()),
    })
}

/// The raw body, base64-decoded if API Gateway encoded it.
pub fn body_bytes(request: &ApiGatewayProxyRequest) -> Result<Vec<u8>> {
    body_bytes_up_to(request, MAX_BODY_BYTES)
}

/// [`body_bytes`] for the one route whose body is big by nature (`PUT /catalog`).
pub fn body_bytes_up_to(request: &ApiGatewayProxyRequest, limit: usize) -> Result<Vec<u8>> {
    let body = request.body.as_deref().unwrap_or_default();
    let bytes = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| Error::invalid("body", "the body is not valid base64"))?
    } else {
        body.as_bytes().to_vec()
    };
    if bytes.len() > limit {
        return Err(Error::too_large(format!(
            "the body is larger than {limit} bytes"
        )));
    }
    Ok(bytes)
}

/// Parses a JSON body into `T`, naming the offending field when serde can.
pub fn json_body<T: DeserializeOwned>(request: &ApiGatewayProxyRequest) -> Result<T> {
    let bytes = body_bytes(request)?;
    if bytes.is_empty() {
        return Err(Error::invalid("body", "a JSON body is required"));
    }
    serde_json::from_slice(&bytes).map_err(|err| {
        let text = err.to_string();
        // serde names unknown and missing fields in backticks: surface that as the field.
        let field = text
            .split('`')
            .nth(1)
            .filter(|_| text.contains("field"))
            .unwrap_or("body");
        Error::invalid(field, format!("the body is not a valid request: {text}"))
    })
}

/// A path parameter API Gateway extracted.
pub fn path_param<'a>(request: &'a ApiGatewayProxyRequest, name: &str) -> Result<&'a str> {
    request
        .path_parameters
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| Error::invalid(name, format!("the path has no `{name}`")))
}

/// A JSON response.
pub fn json(status: u16, body: &serde_json::Value) -> ApiGatewayProxyResponse {
    response(status, "application/json", body.to_string())
}

/// An HTML response, with headers that keep the page from being framed or cached.
pub fn html(status: u16, body: String) -> ApiGatewayProxyResponse {
    let mut response = response(status, "text/html; charset=utf-8", body);
    response.headers.insert("content-security-policy", HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"));
    response
        .headers
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
        .headers
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn response(status: u16, content_type: &'static str, body: String) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert("content-type", HeaderValue::from_static(content_type));
    response
        .headers
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response.body = Some(Body::Text(body));
    response
}

/// The JSON error response for `err`. Internal details are logged, not returned.
pub fn error(err: &Error) -> ApiGatewayProxyResponse {
    match err.kind {
        ErrorKind::Internal | ErrorKind::Retryable => {
            tracing::error!(kind = err.kind.name(), message = %err.message, "request failed");
            let public = Error::new(
                err.kind,
                if err.kind == ErrorKind::Retryable {
                    "trailgate is busy; try again shortly"
                } else {
                    "trailgate failed to handle the request; the error was logged"
                },
            );
            json(err.kind.http_status(), &public.to_http_body())
        }
        _ => json(err.kind.http_status(), &err.to_http_body()),
    }
}

/// Turns a handler result into a response.
pub fn respond(result: Result<ApiGatewayProxyResponse>) -> ApiGatewayProxyResponse {
    result.unwrap_or_else(|err| error(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body2 {
        name: String,
    }

    fn request(body: &str) -> ApiGatewayProxyRequest {
        let mut request = ApiGatewayProxyRequest::default();
        request.body = Some(body.to_owned());
        request
    }

    #[test]
    fn bad_bodies_are_400s_naming_the_field() {
        let err = json_body::<Body2>(&request(r#"{"name": "x", "evil": 1}"#)).unwrap_err();
        assert_eq!(
            (err.kind, err.field.as_deref()),
            (ErrorKind::InvalidRequest, Some("evil"))
        );
        let err = json_body::<Body2>(&request("{}")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("name"));
        let err = json_body::<Body2>(&request("not json")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("body"));
        let err = json_body::<Body2>(&request(&"x".repeat(MAX_BODY_BYTES + 1))).unwrap_err();
        assert!(err.message.contains("larger"));
        assert_eq!(err.kind.http_status(), 413);
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let response = error(&Error::internal("DynamoDB said table xyz is gone"));
        assert_eq!(response.status_code, 500);
        let Some(Body::Text(text)) = response.body else {
            panic!("no body")
        };
        assert!(!text.contains("xyz"));
    }

    #[test]
    fn unsigned_requests_have_no_caller() {
        assert_eq!(caller(&request("")).unwrap_err().kind, ErrorKind::Forbidden);
    }
}
