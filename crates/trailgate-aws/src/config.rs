//! Environment variables, named exactly as in template.yaml, read once at cold start.
//!
//! A missing or malformed variable fails the cold start with its name, so a misconfigured
//! deployment is loud at once instead of failing one request at a time.

use std::env;
use thiserror::Error;
use trailgate_domain::catalog::Catalog;

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

/// The catalog from `CATALOG`, validated against trailgate's own role prefix.
pub fn catalog() -> Result<(Catalog, String), ConfigError> {
    let prefix = optional("TRAILGATE_ROLE_PREFIX", "trailgate-");
    let catalog =
        Catalog::load(&required("CATALOG")?, &prefix).map_err(|err| ConfigError::Invalid {
            name: "CATALOG",
            reason: err.message,
        })?;
    Ok((catalog, prefix))
}
