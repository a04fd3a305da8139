//! A SigV4-signed client of the trailgate API (API Gateway, `AWS_IAM` auth).
//!
//! Credentials come from the normal AWS chain (environment, profiles, `credential_process`),
//! and every call is signed for the `execute-api` service with the real `aws-sigv4` signer.

use crate::endpoint::{Target, resolve};
use anyhow::{Context, Result, anyhow, bail};
use aws_config::BehaviorVersion;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

/// A raw API answer, for callers that need the status or headers (tests, idempotent retries).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
}

impl Reply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Client {
    base_url: String,
    region: String,
    credentials: SharedCredentialsProvider,
    http: reqwest::Client,
}

/// Percent-encodes a path segment (request ids are checked by the server; this keeps a bad
/// id from changing the path).
pub fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Client {
    pub async fn connect(target: &Target) -> Result<Client> {
        // reqwest is built without a default crypto provider; ring is the one the workspace uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let resolved = resolve(target)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        );
        if let Some(profile) = &target.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(file) = &resolved.aws_config_file {
            loader = loader.profile_files(
                EnvConfigFiles::builder()
                    .with_file(EnvConfigFileKind::Config, file)
                    .build(),
            );
        }
        let sdk = loader.load().await;
        let region = resolved
            .region
            .clone()
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .unwrap_or_else(|| "us-east-1".into());
        let credentials = sdk.credentials_provider().ok_or_else(|| {
            anyhow!("no AWS credentials found: set AWS_PROFILE or pass --profile")
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Client {
            base_url: resolved.api_url,
            region,
            credentials,
            http,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, None).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        self.call("POST", path, Some(body.to_string().into_bytes()))
            .await
    }

    /// PUTs a raw body (the catalog file, sent byte for byte).
    pub async fn put(&self, path: &str, body: Vec<u8>) -> Result<Value> {
        self.call("PUT", path, Some(body)).await
    }

    async fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<Value> {
        let reply = self
            .send(method, path, body.unwrap_or_default(), &[])
            .await?;
        let (status, value) = (reply.status, reply.body);
        if (200..300).contains(&status) {
            return Ok(value);
        }
        if let Some(error) = value.get("error") {
            let field = error["field"]
                .as_str()
                .map(|f| format!(", field `{f}`"))
                .unwrap_or_default();
            bail!(
                "{} ({}{field})",
                error["message"].as_str().unwrap_or("error"),
                error["code"].as_str().unwrap_or("?")
            );
        }
        // API Gateway's own refusals (auth) have only a message.
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        bail!("{message} (HTTP {status})")
    }

    /// Sends one signed call and returns the answer whatever its status; `headers` are added
    /// (and signed) as given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        extra_headers: &[(&str, &str)],
    ) -> Result<Reply> {
        let url = format!("{}{}", self.base_url, path);
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("bad endpoint URL `{url}`"))?;
        let host = uri
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| anyhow!("the endpoint URL has no host"))?;
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("host", host);
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in extra_headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(body)?;

        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .context("loading AWS credentials")?;
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| Ok((name.as_str().to_owned(), value.to_str()?.to_owned())))
            .collect::<Result<_>>()?;
        let signable = SignableRequest::new(
            method,
            &url,
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
            SignableBody::Bytes(request.body()),
        )?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut request);

        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
        let response = self
            .http
            .execute(request)
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let text = response.text().await?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Polls a request until its status leaves `statuses`, showing a live status line when
    /// stderr is a terminal.
    pub async fn wait_while(&self, id: &str, statuses: &[&str], limit: Duration) -> Result<Value> {
        let started = std::time::Instant::now();
        let live = std::io::stderr().is_terminal();
        loop {
            let request = self.get(&format!("/requests/{}", segment(id))).await?;
            let status = request["status"].as_str().unwrap_or("?").to_owned();
            if !statuses.contains(&status.as_str()) {
                if live {
                    eprint!("\r\x1b[2K");
                }
                return Ok(request);
            }
            if live {
                eprint!("\r\x1b[2K{id}: {status} ({}s)", started.elapsed().as_secs());
                let _ = std::io::stderr().flush();
            }
            if started.elapsed() > limit {
                bail!(
                    "gave up waiting after {}s; the request is still {status}",
                    limit.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}
