//! Sessions in member accounts: the hub's functions reach a member account's IAM (and
//! CloudTrail) only through that account's `trailgate-agent` role (member/template.yaml), and
//! read the Organization through the management account's reader role when one is configured.
//!
//! A session is cached per account until five minutes before it expires, so a reconciler run
//! over many grants assumes each agent role once. An account whose agent role refuses the hub
//! fails on its own (`Retryable`, naming the account); the others are unaffected.

use crate::config;
use crate::errors::classify;
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use trailgate_domain::error::{Error, Result};

/// Sessions are renewed this long before STS says they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// A session policy that allows nothing: assuming the agent role with it proves the role exists
/// and trusts the hub, and gives the caller no permission at all.
const NOTHING: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;

/// The hub's way into member accounts.
#[derive(Debug)]
pub struct Agents {
    sdk: SdkConfig,
    sts: aws_sdk_sts::Client,
    /// `HUB_ACCOUNT_ID`; empty: every account is treated as the hub's (no agent is used).
    hub_account: String,
    /// `AGENT_ROLE_NAME`.
    agent_role_name: String,
    /// The session name agent sessions carry, so CloudTrail in the member account says which
    /// hub function acted.
    session_name: String,
    sessions: Mutex<HashMap<String, (SdkConfig, SystemTime)>>,
    /// Session tags of agent sessions: `trailgate-agent=write` for the functions that write
    /// revocations ([`Agents::writing`]), none for the others.
    session_tags: Vec<(String, String)>,
}

impl Agents {
    /// Reads `HUB_ACCOUNT_ID` and `AGENT_ROLE_NAME`; `function` names the caller in the
    /// member account's CloudTrail (`trailgate-<function>`).
    pub fn from_env(sdk: &SdkConfig, function: &str) -> Agents {
        Agents::new(
            sdk,
            &config::optional("HUB_ACCOUNT_ID", ""),
            &config::optional("AGENT_ROLE_NAME", trailgate_domain::policy::AGENT_ROLE_NAME),
            function,
        )
    }

    pub fn new(
        sdk: &SdkConfig,
        hub_account: &str,
        agent_role_name: &str,
        function: &str,
    ) -> Agents {
        Agents {
            sdk: sdk.clone(),
            sts: aws_sdk_sts::Client::new(sdk),
            hub_account: hub_account.to_owned(),
            agent_role_name: agent_role_name.to_owned(),
            session_name: format!("trailgate-{function}"),
            sessions: Mutex::new(HashMap::new()),
            session_tags: Vec::new(),
        }
    }

    /// Agent sessions tagged `trailgate-agent=write`, which the member stack's revocation
    /// writes require and only the revoke and reconcile functions' roles may set (the agent's
    /// trust policy allows them, and nobody else, `sts:TagSession`).
    pub fn writing(mut self) -> Agents {
        self.session_tags = vec![(
            trailgate_domain::policy::AGENT_WRITE_TAG.0.to_owned(),
            trailgate_domain::policy::AGENT_WRITE_TAG.1.to_owned(),
        )];
        self
    }

    /// `HUB_ACCOUNT_ID` (empty when not configured).
    pub fn hub_account(&self) -> &str {
        &self.hub_account
    }

    /// The hub's own configuration.
    pub fn hub_config(&self) -> &SdkConfig {
        &self.sdk
    }

    /// Whether `account` is reached with the hub's own credentials.
    pub fn is_hub(&self, account: &str) -> bool {
        self.hub_account.is_empty() || account == self.hub_account
    }

    fn agent_arn(&self, account: &str) -> String {
        format!("arn:aws:iam::{account}:role/{}", self.agent_role_name)
    }

    /// The SDK configuration that acts in `account`: the hub's own, or a cached session of the
    /// account's agent role.
    pub async fn config_for(&self, account: &str) -> Result<SdkConfig> {
        if self.is_hub(account) {
            return Ok(self.sdk.clone());
        }
        if let Some((config, renew_at)) = self.sessions.lock().expect("lock").get(account)
            && SystemTime::now() < *renew_at
        {
            return Ok(config.clone());
        }
        let arn = self.agent_arn(account);
        let config = self.assume_tagged(&arn, None, &self.session_tags).await?;
        self.sessions
            .lock()
            .expect("lock")
            .insert(account.to_owned(), config.clone());
        Ok(config.0)
    }

    /// Assumes `role_arn` (with an optional session policy): the configuration that acts as it,
    /// and when to renew it.
    pub async fn assume(
        &self,
        role_arn: &str,
        policy: Option<&str>,
    ) -> Result<(SdkConfig, SystemTime)> {
        self.assume_tagged(role_arn, policy, &[]).await
    }

    async fn assume_tagged(
        &self,
        role_arn: &str,
        policy: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<(SdkConfig, SystemTime)> {
        let tags = tags
            .iter()
            .map(|(key, value)| {
                aws_sdk_sts::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(|err| Error::internal(format!("session tag: {err}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let output = self
            .sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(&self.session_name)
            .set_policy(policy.map(str::to_owned))
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|err| {
                let refused = err
                    .as_service_error()
                    .and_then(|e| aws_sdk_sts::error::ProvideErrorMetadata::code(e))
                    == Some("AccessDenied");
                if refused {
                    // Retryable, not final: a revoke must keep trying (and alert) rather than
                    // give up on an account whose agent role is being redeployed.
                    Error::retryable(format!(
                        "`{role_arn}` does not let this hub in: deploy member/template.yaml in \
                         that account with this hub's role ARNs"
                    ))
                } else {
                    classify("STS AssumeRole (agent)", &err)
                }
            })?;
        let credentials = output
            .credentials
            .ok_or_else(|| Error::internal("STS AssumeRole returned no credentials"))?;
        let expires = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(credentials.expiration.secs()).unwrap_or(0));
        let provider = SharedCredentialsProvider::new(Credentials::new(
            credentials.access_key_id,
            credentials.secret_access_key,
            Some(credentials.session_token),
            Some(expires),
            "trailgate-agent",
        ));
        let config = self.sdk.to_builder().credentials_provider(provider).build();
        Ok((config, expires.checked_sub(RENEW_BEFORE).unwrap_or(expires)))
    }

    /// Whether `account`'s agent role exists and trusts the hub: assumed with a session policy
    /// that allows nothing, so the probe gains no permission.
    pub async fn reachable(&self, account: &str) -> Result<bool> {
        if self.is_hub(account) {
            return Ok(true);
        }
        match self.assume(&self.agent_arn(account), Some(NOTHING)).await {
            Ok(_) => Ok(true),
            Err(err) if err.message.contains("does not let this hub in") => Ok(false),
            Err(err) => Err(err),
        }
    }
}
