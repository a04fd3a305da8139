//! CloudTrail `LookupEvents` for the runbook engine: [`CloudTrailLookup`] implements
//! trailgate-runbooks' `LookupEventsApi` with the AWS SDK, so `LookupSource` can scan the event
//! history of every Region it is given; [`OrganizationLookups`] gives one per account, the
//! hub's own or a member account's through its agent role.
//!
//! LookupEvents throttles at 2 calls per second per Region with an HTTP 400
//! `ThrottlingException`; that (and the SDK's other throttling codes) is reported as
//! [`LookupCallError::Throttled`] so the source backs off and paces itself. The SDK's own retries
//! are switched off for these calls: the source owns pacing, and a hidden retry loop would spend
//! the caller's time budget without telling it.

use std::future::Future;
use std::time::Duration;

use aws_sdk_cloudtrail::Client;
use aws_sdk_cloudtrail::config::Region;
use aws_sdk_cloudtrail::config::retry::RetryConfig;
use aws_sdk_cloudtrail::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudtrail::primitives::DateTime;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use std::sync::Arc;

use trailgate_runbooks::source::lookup::{
    AccountLookups, LookupCallError, LookupEvent, LookupEventsApi, LookupPage, LookupRequest,
};
use trailgate_runbooks::spec::LookupAttribute as Attribute;

use crate::SdkConfig;
use crate::agents::Agents;

/// Error codes that mean "slow down" rather than "this will not work".
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// LookupEvents through the AWS SDK.
#[derive(Debug, Clone)]
pub struct CloudTrailLookup {
    client: Client,
}

impl CloudTrailLookup {
    /// A lookup client from the shared SDK configuration ([`crate::sdk::load`]).
    pub fn new(config: &SdkConfig) -> CloudTrailLookup {
        let conf = aws_sdk_cloudtrail::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .build();
        CloudTrailLookup {
            client: Client::from_conf(conf),
        }
    }

    /// A lookup client over an already configured client.
    pub fn from_client(client: Client) -> CloudTrailLookup {
        CloudTrailLookup { client }
    }
}

/// Whether a LookupEvents failure is throttling (HTTP 400 `ThrottlingException` and friends).
pub fn is_throttling<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    match error {
        SdkError::ServiceError(service) => service
            .err()
            .code()
            .is_some_and(|code| THROTTLING_CODES.contains(&code)),
        _ => false,
    }
}

fn attribute_key(attribute: Attribute) -> LookupAttributeKey {
    LookupAttributeKey::from(attribute.as_str())
}

fn to_datetime(time: time::OffsetDateTime) -> DateTime {
    DateTime::from_secs(time.unix_timestamp())
}

impl LookupEventsApi for CloudTrailLookup {
    fn lookup(
        &self,
        request: LookupRequest,
    ) -> impl Future<Output = Result<LookupPage, LookupCallError>> + Send {
        let client = self.client.clone();
        async move {
            let attribute = LookupAttribute::builder()
                .attribute_key(attribute_key(request.attribute))
                .attribute_value(request.value)
                .build()
                .map_err(|error| LookupCallError::Failed(error.to_string()))?;
            let call = client
                .lookup_events()
                .lookup_attributes(attribute)
                .start_time(to_datetime(request.start))
                .end_time(to_datetime(request.end))
                .max_results(i32::from(request.max_results))
                .set_next_token(request.next_token)
                .customize()
                .config_override(
                    aws_sdk_cloudtrail::config::Builder::default()
                        .region(Region::new(request.region)),
                );
            let output = match call.send().await {
                Ok(output) => output,
                Err(error) if is_throttling(&error) => return Err(LookupCallError::Throttled),
                Err(error) => {
                    return Err(LookupCallError::Failed(
                        DisplayErrorContext(&error).to_string(),
                    ));
                }
            };
            let events = output
                .events()
                .iter()
                .map(|event| LookupEvent {
                    event_id: event.event_id().map(str::to_owned),
                    cloud_trail_event: event.cloud_trail_event().map(str::to_owned),
                })
                .collect();
            Ok(LookupPage {
                events,
                next_token: output.next_token().map(str::to_owned),
            })
        }
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// LookupEvents in every account of the Organization: the hub's with its own credentials, a
/// member account's through that account's agent role (a cached session, see [`Agents`]). The
/// member stack allows the agent `cloudtrail:LookupEvents` for exactly this.
#[derive(Debug, Clone)]
pub struct OrganizationLookups {
    agents: Arc<Agents>,
}

impl OrganizationLookups {
    pub fn new(agents: Arc<Agents>) -> OrganizationLookups {
        OrganizationLookups { agents }
    }
}

impl AccountLookups for OrganizationLookups {
    type Api = CloudTrailLookup;

    fn home_account(&self) -> &str {
        self.agents.hub_account()
    }

    fn in_account(
        &self,
        account: &str,
    ) -> impl Future<Output = Result<CloudTrailLookup, String>> + Send {
        let agents = Arc::clone(&self.agents);
        let account = account.to_owned();
        async move {
            let config = agents
                .config_for(&account)
                .await
                .map_err(|error| error.to_string())?;
            Ok(CloudTrailLookup::new(&config))
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a one-shot HTTP server answering like CloudTrail: the classification is about
    //! the wire (status 400, `__type`), so it is tested on the wire.

    use super::*;
    use aws_sdk_cloudtrail::config::{BehaviorVersion, Credentials};
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use time::macros::datetime;

    /// Serves one HTTP response with `status` and `body` on a free port; returns its URL.
    fn serve_once(status: u16, body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buffer = vec![0u8; 65536];
            let mut read = 0;
            // Read headers and the (small) body: stop once Content-Length bytes follow them.
            loop {
                let n = stream.read(&mut buffer[read..]).unwrap_or(0);
                read += n;
                let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if read >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).expect("write");
        });
        url
    }

    fn lookup(url: &str) -> CloudTrailLookup {
        let config = aws_sdk_cloudtrail::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(url)
            .retry_config(RetryConfig::disabled())
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        CloudTrailLookup::from_client(Client::from_conf(config))
    }

    fn request() -> LookupRequest {
        LookupRequest {
            region: "eu-west-1".into(),
            attribute: Attribute::Username,
            value: "alice".into(),
            start: datetime!(2026-11-20 00:00 UTC),
            end: datetime!(2026-11-21 00:00 UTC),
            next_token: None,
            max_results: 50,
        }
    }

    #[tokio::test]
    async fn throttling_exception_is_throttling() {
        let url = serve_once(
            400,
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        );
        assert_eq!(
            lookup(&url).lookup(request()).await,
            Err(LookupCallError::Throttled)
        );
    }

    #[tokio::test]
    async fn other_errors_fail_with_their_code() {
        let url = serve_once(
            400,
            r#"{"__type":"AccessDeniedException","message":"not allowed"}"#,
        );
        match lookup(&url).lookup(request()).await {
            Err(LookupCallError::Failed(text)) => assert!(text.contains("AccessDenied"), "{text}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_page_is_read() {
        let url = serve_once(
            200,
            r#"{"Events":[{"EventId":"e1","EventName":"StopLogging","CloudTrailEvent":"{\"eventID\":\"e1\"}"}],"NextToken":"t2"}"#,
        );
        let page = lookup(&url).lookup(request()).await.expect("a page");
        assert_eq!(page.next_token.as_deref(), Some("t2"));
        assert_eq!(page.events[0].event_id.as_deref(), Some("e1"));
        assert_eq!(
            page.events[0].cloud_trail_event.as_deref(),
            Some(r#"{"eventID":"e1"}"#)
        );
    }
}
