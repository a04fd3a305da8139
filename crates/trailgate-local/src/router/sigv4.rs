//! SigV4 verification for the API Gateway emulation: rebuilds the canonical request from what
//! was received, exactly as `aws-sigv4` builds it when `jitctl` signs, and compares signatures
//! in constant time. The messages are API Gateway's own.

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::cloudformation::{ACCOUNT_ID, REGION};

/// The service name API Gateway signs for.
pub const SERVICE: &str = "execute-api";

/// How far `x-amz-date` may be from the server's clock.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// AWS's URI encoding: everything but unreserved characters.
const URI_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The same, keeping `/` for paths.
const PATH_ENCODE: &AsciiSet = &URI_ENCODE.remove(b'/');

/// A local IAM user whose access key the verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalUser {
    pub name: String,
    /// `requester` or `approver`; informational.
    pub role: String,
    pub email: String,
    /// IAM's user id (`AIDA…`).
    pub user_id: String,
    pub arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The caller identity API Gateway puts in `requestContext.identity` for an IAM-signed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub access_key: String,
    pub account_id: String,
    pub caller: String,
    pub user: String,
    pub user_arn: String,
}

/// Why a request was refused; `message()` is API Gateway's body text (HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    MissingToken,
    InvalidKey,
    SignatureMismatch {
        canonical_request: String,
        string_to_sign: String,
    },
    Expired {
        date: String,
        now: String,
    },
    Malformed(String),
}

impl Rejection {
    /// The `message` API Gateway answers with.
    pub fn message(&self) -> String {
        match self {
            Rejection::MissingToken => "Missing Authentication Token".to_owned(),
            Rejection::InvalidKey => {
                "The security token included in the request is invalid.".to_owned()
            }
            Rejection::SignatureMismatch {
                canonical_request,
                string_to_sign,
            } => format!(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service \
                 documentation for details.\n\nThe Canonical String for this request should have \
                 been\n'{canonical_request}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
            ),
            Rejection::Expired { date, now } => {
                format!("Signature expired: {date} is now earlier than {now} - 15 min.")
            }
            Rejection::Malformed(detail) => detail.clone(),
        }
    }
}

/// The parts of a received request the signature covers.
#[derive(Debug)]
pub struct ReceivedRequest<'a> {
    pub method: &'a str,
    /// Path as received on the wire (still percent-encoded), including the stage.
    pub raw_path: &'a str,
    /// Query string as received, without `?`.
    pub raw_query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// Verifies a SigV4-signed request against the local users; `now` is the server's clock.
pub fn verify(
    request: &ReceivedRequest<'_>,
    users: &HashMap<String, LocalUser>,
    now: OffsetDateTime,
) -> Result<CallerIdentity, Rejection> {
    let Some(authorization) = request.headers.get(http::header::AUTHORIZATION) else {
        return Err(Rejection::MissingToken);
    };
    let authorization = authorization
        .to_str()
        .map_err(|_| Rejection::Malformed("Authorization header is not ASCII".into()))?;
    let parsed = parse_authorization(authorization)?;
    let user = users
        .get(&parsed.access_key_id)
        .ok_or(Rejection::InvalidKey)?;

    let amz_date = header_value(request.headers, "x-amz-date").ok_or_else(|| {
        Rejection::Malformed(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        )
    })?;
    let signed_at = time::PrimitiveDateTime::parse(
        &amz_date,
        format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map_err(|_| Rejection::Malformed(format!("Invalid X-Amz-Date `{amz_date}`")))?
    .assume_utc();
    if (now - signed_at).whole_seconds().abs() > MAX_SKEW_SECONDS {
        return Err(Rejection::Expired {
            date: amz_date,
            now: format_amz_date(now),
        });
    }
    if parsed.date != amz_date[..8] || parsed.region != REGION || parsed.service != SERVICE {
        return Err(Rejection::Malformed(format!(
            "Credential should be scoped to a valid region and service: expected \
             {}/{REGION}/{SERVICE}/aws4_request, got {}/{}/{}/aws4_request",
            &amz_date[..8],
            parsed.date,
            parsed.region,
            parsed.service
        )));
    }

    let canonical_request = canonical_request(request, &parsed.signed_headers)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        parsed.date, parsed.region, parsed.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let signing_key = derive_key(
        &user.secret_access_key,
        &parsed.date,
        &parsed.region,
        &parsed.service,
    );
    let expected = hex::encode(hmac(&signing_key, string_to_sign.as_bytes()));
    if !bool::from(expected.as_bytes().ct_eq(parsed.signature.as_bytes())) {
        return Err(Rejection::SignatureMismatch {
            canonical_request,
            string_to_sign,
        });
    }
    Ok(CallerIdentity {
        access_key: user.access_key_id.clone(),
        account_id: ACCOUNT_ID.to_owned(),
        caller: user.user_id.clone(),
        user: user.user_id.clone(),
        user_arn: user.arn.clone(),
    })
}

/// The credential scope of an `Authorization` header, if it is SigV4 (used by the CloudTrail
/// endpoint to find the region a call is for).
pub fn credential_region(authorization: &str) -> Option<String> {
    parse_authorization(authorization)
        .ok()
        .map(|parsed| parsed.region)
}

/// The service of a SigV4 `Authorization` header's credential scope (`sts`, `iam`, ...).
pub fn credential_service(authorization: &str) -> Option<String> {
    parse_authorization(authorization)
        .ok()
        .map(|parsed| parsed.service)
}

/// The access key id of a SigV4 `Authorization` header (the CloudTrail endpoint tells the
/// caller's account by it).
pub fn credential_access_key(authorization: &str) -> Option<String> {
    parse_authorization(authorization)
        .ok()
        .map(|parsed| parsed.access_key_id)
}

struct ParsedAuthorization {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Result<ParsedAuthorization, Rejection> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or(Rejection::MissingToken)?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key.trim() {
            "Credential" => credential = Some(value.trim().to_owned()),
            "SignedHeaders" => signed_headers = Some(value.trim().to_owned()),
            "Signature" => signature = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(Rejection::Malformed(format!(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' \
             parameters. Authorization={value}"
        )));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(Rejection::Malformed(format!(
            "Invalid credential scope `{credential}`"
        )));
    }
    Ok(ParsedAuthorization {
        access_key_id: scope[0].to_owned(),
        date: scope[1].to_owned(),
        region: scope[2].to_owned(),
        service: scope[3].to_owned(),
        signed_headers: signed_headers
            .split(';')
            .map(str::to_ascii_lowercase)
            .collect(),
        signature,
    })
}

fn header_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn canonical_request(
    request: &ReceivedRequest<'_>,
    signed_headers: &[String],
) -> Result<String, Rejection> {
    let path = utf8_percent_encode(&normalize_path(request.raw_path), PATH_ENCODE).to_string();
    let query = canonical_query(request.raw_query.unwrap_or(""));
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| trim_all(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        if values.is_empty() {
            return Err(Rejection::Malformed(format!(
                "'{name}' is listed in SignedHeaders but was not sent"
            )));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let body_hash = hex::encode(Sha256::digest(request.body));
    let payload_hash = match header_value(request.headers, "x-amz-content-sha256") {
        // A client that signs the payload hash has to tell the truth about the body; a tampered
        // body with the original hash header must not pass.
        Some(claimed) if signed_headers.iter().any(|h| h == "x-amz-content-sha256") => {
            if claimed != "UNSIGNED-PAYLOAD" && claimed != body_hash {
                body_hash
            } else {
                claimed
            }
        }
        _ => body_hash,
    };
    Ok(format!(
        "{}\n{path}\n{query}\n{headers}\n{}\n{payload_hash}",
        request.method,
        signed_headers.join(";")
    ))
}

/// Query parameters decoded (with `+` as space, as `aws-sigv4` reads them), re-encoded with
/// AWS's URI encoding and sorted.
fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                encode_component(&decode_form(key)),
                encode_component(&decode_form(value)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes one `application/x-www-form-urlencoded` component.
pub fn decode_form(component: &str) -> String {
    percent_decode_str(&component.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, URI_ENCODE).to_string()
}

/// RFC 3986 dot-segment removal and slash merging, as `aws-sigv4` normalises before signing.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if path.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

fn trim_all(text: &str) -> String {
    text.split(' ')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn derive_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn format_amz_date(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;

    use super::*;

    fn users() -> HashMap<String, LocalUser> {
        let alice = LocalUser {
            name: "alice".into(),
            role: "requester".into(),
            email: "alice@example.com".into(),
            user_id: "AIDAALICE".into(),
            arn: "arn:aws:iam::123456789012:user/alice".into(),
            access_key_id: "AKIAALICE".into(),
            secret_access_key: "alice-secret".into(),
        };
        HashMap::from([(alice.access_key_id.clone(), alice)])
    }

    /// Signs a request the way `jitctl` does: the real `aws-sigv4` crate, service execute-api.
    fn signed(
        method: &str,
        uri: &str,
        body: &[u8],
        key: (&str, &str),
        at: SystemTime,
    ) -> http::Request<Vec<u8>> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "127.0.0.1:4567")
            .header("content-type", "application/json")
            .body(body.to_vec())
            .unwrap();
        let identity: Identity = Credentials::new(key.0, key.1, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(SERVICE)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        let signable =
            SignableRequest::new(method, uri, headers.into_iter(), SignableBody::Bytes(body))
                .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut request);
        request
    }

    fn check(
        request: &http::Request<Vec<u8>>,
        now: SystemTime,
    ) -> Result<CallerIdentity, Rejection> {
        let received = ReceivedRequest {
            method: request.method().as_str(),
            raw_path: request.uri().path(),
            raw_query: request.uri().query(),
            headers: request.headers(),
            body: request.body(),
        };
        verify(&received, &users(), OffsetDateTime::from(now))
    }

    const URI: &str = "http://127.0.0.1:4567/v1/requests/r-1?b=2&a=x%20y&a=1";

    #[test]
    fn accepts_a_request_signed_by_aws_sigv4() {
        let now = SystemTime::now();
        let request = signed(
            "POST",
            URI,
            br#"{"catalog_id":"sandbox-admin"}"#,
            ("AKIAALICE", "alice-secret"),
            now,
        );
        let identity = check(&request, now).unwrap();
        assert_eq!(identity.user_arn, "arn:aws:iam::123456789012:user/alice");
        assert_eq!(
            (identity.caller.as_str(), identity.access_key.as_str()),
            ("AIDAALICE", "AKIAALICE")
        );
        assert_eq!(identity.account_id, ACCOUNT_ID);
        // An empty body (GET) and no query.
        let request = signed(
            "GET",
            "http://127.0.0.1:4567/v1/requests/r-1",
            b"",
            ("AKIAALICE", "alice-secret"),
            now,
        );
        check(&request, now).unwrap();
    }

    #[test]
    fn rejects_a_tampered_body() {
        let now = SystemTime::now();
        let mut request = signed(
            "POST",
            URI,
            br#"{"duration":"PT1H"}"#,
            ("AKIAALICE", "alice-secret"),
            now,
        );
        *request.body_mut() = br#"{"duration":"PT9H"}"#.to_vec();
        let rejection = check(&request, now).unwrap_err();
        assert!(
            matches!(rejection, Rejection::SignatureMismatch { .. }),
            "{rejection:?}"
        );
        assert!(
            rejection
                .message()
                .starts_with("The request signature we calculated does not match")
        );
    }

    #[test]
    fn rejects_a_tampered_path_or_query() {
        let now = SystemTime::now();
        let request = signed("GET", URI, b"", ("AKIAALICE", "alice-secret"), now);
        let (mut parts, body) = request.into_parts();
        parts.uri = "http://127.0.0.1:4567/v1/requests/r-2?b=2&a=x%20y&a=1"
            .parse()
            .unwrap();
        let tampered = http::Request::from_parts(parts.clone(), body.clone());
        assert!(matches!(
            check(&tampered, now),
            Err(Rejection::SignatureMismatch { .. })
        ));
        parts.uri = "http://127.0.0.1:4567/v1/requests/r-1?b=3&a=x%20y&a=1"
            .parse()
            .unwrap();
        let tampered = http::Request::from_parts(parts, body);
        assert!(matches!(
            check(&tampered, now),
            Err(Rejection::SignatureMismatch { .. })
        ));
    }

    #[test]
    fn rejects_a_stale_date() {
        let now = SystemTime::now();
        let request = signed(
            "GET",
            URI,
            b"",
            ("AKIAALICE", "alice-secret"),
            now - Duration::from_secs(16 * 60),
        );
        let rejection = check(&request, now).unwrap_err();
        assert!(
            matches!(rejection, Rejection::Expired { .. }),
            "{rejection:?}"
        );
        assert!(rejection.message().starts_with("Signature expired"));
        // Within the 15 minutes it passes.
        let request = signed(
            "GET",
            URI,
            b"",
            ("AKIAALICE", "alice-secret"),
            now - Duration::from_secs(14 * 60),
        );
        check(&request, now).unwrap();
    }

    #[test]
    fn rejects_an_unknown_key_a_wrong_secret_and_no_auth() {
        let now = SystemTime::now();
        let request = signed("GET", URI, b"", ("AKIAMALLORY", "whatever"), now);
        let rejection = check(&request, now).unwrap_err();
        assert_eq!(rejection, Rejection::InvalidKey);
        assert_eq!(
            rejection.message(),
            "The security token included in the request is invalid."
        );
        let request = signed("GET", URI, b"", ("AKIAALICE", "not-her-secret"), now);
        assert!(matches!(
            check(&request, now),
            Err(Rejection::SignatureMismatch { .. })
        ));
        let unsigned = http::Request::builder().uri(URI).body(Vec::new()).unwrap();
        let rejection = check(&unsigned, now).unwrap_err();
        assert_eq!(rejection.message(), "Missing Authentication Token");
    }

    #[test]
    fn canonical_query_matches_aws_rules() {
        assert_eq!(canonical_query("b=2&a=x+y&a=1&c"), "a=1&a=x%20y&b=2&c=");
        assert_eq!(canonical_query("k=%2F%3A"), "k=%2F%3A");
        assert_eq!(normalize_path("/v1//a/./b/../c/"), "/v1/a/c/");
        assert_eq!(credential_region("AWS4-HMAC-SHA256 Credential=AK/20240101/eu-west-1/cloudtrail/aws4_request, SignedHeaders=host, Signature=00").as_deref(), Some("eu-west-1"));
    }
}
