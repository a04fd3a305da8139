//! The shared SDK configuration.
//!
//! aws-config is built without its default HTTPS client (which pulls in aws-lc, a slow C
//! build that also complicates cross-compiling); rustls with ring is supplied here instead.
//! `AWS_ENDPOINT_URL` (set by the local stack) is honoured by every client.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::{Builder, tls};

/// Loads the SDK configuration from the environment, once per cold start.
pub async fn load() -> SdkConfig {
    let http_client = Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .load()
        .await
}
