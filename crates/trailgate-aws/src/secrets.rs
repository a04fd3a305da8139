//! Secrets Manager: the approval-link signing key, read once at cold start.

use crate::errors::classify;
use aws_sdk_secretsmanager::Client;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::link::LinkKey;

/// Reads the link signing key with a client from the shared SDK configuration.
pub async fn link_key_from_sdk(sdk: &aws_config::SdkConfig, secret_id: &str) -> Result<LinkKey> {
    link_key(&Client::new(sdk), secret_id).await
}

/// Reads the link signing key. The value never leaves this function except inside `LinkKey`,
/// whose `Debug` is redacted.
pub async fn link_key(client: &Client, secret_id: &str) -> Result<LinkKey> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|err| classify("Secrets Manager GetSecretValue", &err))?;
    let value = output
        .secret_string
        .ok_or_else(|| Error::internal("the link signing secret has no string value"))?;
    LinkKey::new(value.into_bytes())
}
