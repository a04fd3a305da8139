//! STS: the credentials the credentials function vends.

use crate::errors::classify;
use aws_sdk_sts::Client;
use aws_sdk_sts::types::Tag;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ports::{AssumeRequest, CredentialIssuer, IssuedCredentials};
use trailgate_domain::time::format_utc;

#[derive(Clone, Debug)]
pub struct StsIssuer {
    client: Client,
}

impl StsIssuer {
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> StsIssuer {
        StsIssuer::new(Client::new(sdk))
    }

    pub fn new(client: Client) -> StsIssuer {
        StsIssuer { client }
    }
}

impl CredentialIssuer for StsIssuer {
    async fn assume(&self, request: &AssumeRequest) -> Result<IssuedCredentials> {
        let mut call = self
            .client
            .assume_role()
            .role_arn(&request.role_arn)
            .role_session_name(&request.session_name)
            .source_identity(&request.source_identity)
            .policy(&request.session_policy)
            .duration_seconds(request.duration_seconds);
        for (key, value) in &request.tags {
            call = call.tags(
                Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(|err| Error::internal(err.to_string()))?,
            );
        }
        let output = call.send().await.map_err(|err| {
            let denied = err
                .as_service_error()
                .and_then(|e| aws_sdk_sts::error::ProvideErrorMetadata::code(e))
                == Some("AccessDenied");
            if denied {
                // The target role's trust policy does not let trailgate in: a catalog or role problem.
                Error::not_grantable(format!(
                    "STS refused to assume `{}`: check the role's trust policy",
                    request.role_arn
                ))
            } else {
                classify("STS AssumeRole", &err)
            }
        })?;
        let credentials = output
            .credentials
            .ok_or_else(|| Error::internal("STS AssumeRole returned no credentials"))?;
        let expiration = time::OffsetDateTime::from_unix_timestamp(credentials.expiration.secs())
            .map_err(|err| Error::internal(err.to_string()))?;
        Ok(IssuedCredentials {
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret_access_key,
            session_token: credentials.session_token,
            expiration: format_utc(expiration),
        })
    }
}
