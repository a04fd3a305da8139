//! Secrets Manager: the approval-link signing key and the ledger chain key, each read once at
//! cold start.

use crate::errors::classify;
use aws_sdk_secretsmanager::Client;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ledger::ChainKey;
use trailgate_domain::link::LinkKey;

/// Reads the link signing key with a client from the shared SDK configuration.
pub async fn link_key_from_sdk(sdk: &aws_config::SdkConfig, secret_id: &str) -> Result<LinkKey> {
    link_key(&Client::new(sdk), secret_id).await
}

/// Reads the link signing key. The value never leaves this function except inside `LinkKey`,
/// whose `Debug` is redacted.
pub async fn link_key(client: &Client, secret_id: &str) -> Result<LinkKey> {
    LinkKey::new(
        secret_string(client, secret_id, "the link signing secret")
            .await?
            .into_bytes(),
    )
}

/// Reads the ledger chain key with a client from the shared SDK configuration.
pub async fn chain_key_from_sdk(sdk: &aws_config::SdkConfig, secret_id: &str) -> Result<ChainKey> {
    chain_key(&Client::new(sdk), secret_id).await
}

/// Reads the ledger chain key (one key, or a ring after rotation: `ChainKey::from_secret`);
/// like the link key, it leaves only inside a redacted `ChainKey`.
pub async fn chain_key(client: &Client, secret_id: &str) -> Result<ChainKey> {
    ChainKey::from_secret(&secret_string(client, secret_id, "the ledger chain key secret").await?)
}

async fn secret_string(client: &Client, secret_id: &str, what: &str) -> Result<String> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|err| classify("Secrets Manager GetSecretValue", &err))?;
    output
        .secret_string
        .ok_or_else(|| Error::internal(format!("{what} has no string value")))
}
