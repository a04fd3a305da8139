//! Environment variables, named exactly as in template.yaml, read once at cold start.
//!
//! A missing or malformed variable fails the cold start with its name, so a misconfigured
//! deployment is loud at once instead of failing one request at a time.

use std::env;
use thiserror::Error;
use trailgate_domain::catalog::{Catalog, Protected, is_account_id};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable `{0}` is not set")]
    Missing(&'static str),
    #[error("environment variable `{name}` is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional variable with a default.
pub fn optional(name: &'static str, default: &str) -> String {
    env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A number of seconds.
pub fn seconds(name: &'static str, default: i64) -> Result<time::Duration, ConfigError> {
    let text = optional(name, &default.to_string());
    let value: i64 = text.parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: format!("`{text}` is not a number of seconds"),
    })?;
    if value < 0 {
        return Err(ConfigError::Invalid {
            name,
            reason: "must not be negative".into(),
        });
    }
    Ok(time::Duration::seconds(value))
}

/// The catalog from `CATALOG` (the template's, used until the first push), validated against
/// what is never requestable ([`protected`], read once by the caller).
pub fn template_catalog(protected: &Protected) -> Result<Catalog, ConfigError> {
    Catalog::load_protected(&required("CATALOG")?, protected).map_err(|err| ConfigError::Invalid {
        name: "CATALOG",
        reason: err.message,
    })
}

/// What no grant may reach: trailgate's own roles (`TRAILGATE_ROLE_PREFIX`), the agent role
/// (`AGENT_ROLE_NAME`), the management account (`MANAGEMENT_ACCOUNT_ID`), and the hub's own
/// account (`HUB_ACCOUNT_ID`) unless `HUB_ROLES_REQUESTABLE` is `true`.
pub fn protected() -> Result<Protected, ConfigError> {
    let account = |name: &'static str| -> Result<String, ConfigError> {
        let value = optional(name, "");
        if !value.is_empty() && !is_account_id(&value) {
            return Err(ConfigError::Invalid {
                name,
                reason: format!("`{value}` is not a 12-digit account id"),
            });
        }
        Ok(value)
    };
    let hub_account = account("HUB_ACCOUNT_ID")?;
    let management = account("MANAGEMENT_ACCOUNT_ID")?;
    let hub_requestable = match optional("HUB_ROLES_REQUESTABLE", "true").as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(ConfigError::Invalid {
                name: "HUB_ROLES_REQUESTABLE",
                reason: format!("`{other}` is neither `true` nor `false`"),
            });
        }
    };
    let mut accounts = Vec::new();
    if !management.is_empty() {
        accounts.push(management);
    }
    if !hub_requestable && !hub_account.is_empty() {
        accounts.push(hub_account.clone());
    }
    Ok(Protected {
        own_role_prefix: optional("TRAILGATE_ROLE_PREFIX", "trailgate-"),
        agent_role_name: optional("AGENT_ROLE_NAME", trailgate_domain::policy::AGENT_ROLE_NAME),
        hub_account,
        accounts,
    })
}
