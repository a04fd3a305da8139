//! Where the trailgate API is and which credentials sign calls to it.
//!
//! The endpoint comes from `--endpoint`/`TRAILGATE_ENDPOINT`, then `~/.config/trailgate/config.json`
//! (`{"endpoint": "...", "region": "..."}`, e.g. the stack's `ApiUrl` output), then a local stack
//! started from the current directory. With a local stack, the local users' profiles (alice,
//! bob, carol) are used unless `AWS_CONFIG_FILE` says otherwise.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;

/// What the user said about where to connect.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    pub region: Option<String>,
    /// An AWS config file to read profiles from instead of the default ones.
    pub aws_config_file: Option<PathBuf>,
}

/// A resolved endpoint.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub api_url: String,
    pub region: Option<String>,
    /// The AWS config file to read profiles from, when not the default.
    pub aws_config_file: Option<PathBuf>,
}

fn user_config() -> Option<serde_json::Value> {
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".config/trailgate/config.json");
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The local stack's state directory for the repository containing the current directory.
pub fn local_state_dir() -> Option<PathBuf> {
    let mut dir = std::env::current_dir().ok()?;
    loop {
        if dir.join("template.yaml").is_file() && dir.join("Cargo.toml").is_file() {
            return Some(dir.join(".trailgate").join("local"));
        }
        if !dir.pop() {
            return None;
        }
    }
}

pub fn resolve(target: &Target) -> Result<Resolved> {
    if let Some(endpoint) = &target.endpoint {
        return Ok(Resolved {
            api_url: endpoint.trim_end_matches('/').to_owned(),
            region: target.region.clone(),
            aws_config_file: target.aws_config_file.clone(),
        });
    }
    if let Some(config) = user_config()
        && let Some(endpoint) = config["endpoint"].as_str()
    {
        let region = target
            .region
            .clone()
            .or_else(|| config["region"].as_str().map(str::to_owned));
        return Ok(Resolved {
            api_url: endpoint.trim_end_matches('/').to_owned(),
            region,
            aws_config_file: target.aws_config_file.clone(),
        });
    }
    if let Some(state_dir) = local_state_dir()
        && let Ok(state) = trailgate_local::StackState::load(&state_dir)
    {
        if !state.supervisor_alive() {
            bail!(
                "the local stack in {} is not running: start it with `jitctl local up`",
                state_dir.display()
            );
        }
        let aws_config_file = target.aws_config_file.clone().or_else(|| {
            std::env::var_os("AWS_CONFIG_FILE")
                .is_none()
                .then(|| state.aws_config_file.clone())
        });
        return Ok(Resolved {
            api_url: state.api_url,
            region: Some(target.region.clone().unwrap_or(state.region)),
            aws_config_file,
        });
    }
    Err(anyhow::anyhow!("no trailgate endpoint: pass --endpoint, set TRAILGATE_ENDPOINT, or write ~/.config/trailgate/config.json"))
        .context("finding the API")
}
