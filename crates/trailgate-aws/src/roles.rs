//! IAM, limited to what trailgate does to target roles: read tags, trust and attached
//! policies, and manage the one inline policy that holds revocations (listing the others,
//! which share its size limit); and, for `jitctl catalog check --roles`, whether the
//! catalog's IAM users exist.
//!
//! Each call works in the role's own account: the hub's roles with the function's own
//! credentials, a member account's through that account's agent role ([`Agents`]).

use crate::agents::Agents;
use crate::errors::classify;
use aws_sdk_iam::Client;
use std::sync::Arc;
use trailgate_domain::catalog::{role_account, role_name};
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ports::{Principals, RoleInfo, Roles};

#[derive(Clone, Debug)]
pub struct IamRoles {
    client: Client,
    agents: Option<Arc<Agents>>,
}

impl IamRoles {
    /// The hub's IAM only.
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> IamRoles {
        IamRoles::new(Client::new(sdk))
    }

    pub fn new(client: Client) -> IamRoles {
        IamRoles {
            client,
            agents: None,
        }
    }

    /// The hub's IAM, and every member account's through its agent role, as configured by
    /// `HUB_ACCOUNT_ID` and `AGENT_ROLE_NAME` ([`Agents::from_env`]).
    pub fn from_env(sdk: &aws_config::SdkConfig, function: &str) -> IamRoles {
        IamRoles::with_agents(sdk, Arc::new(Agents::from_env(sdk, function)))
    }

    /// Like [`IamRoles::from_env`], for the functions that write revocations (revoke and
    /// reconcile): their agent sessions carry the write tag ([`Agents::writing`]).
    pub fn writer_from_env(sdk: &aws_config::SdkConfig, function: &str) -> IamRoles {
        IamRoles::with_agents(sdk, Arc::new(Agents::from_env(sdk, function).writing()))
    }

    /// The hub's IAM, and every member account's through its agent role.
    pub fn with_agents(sdk: &aws_config::SdkConfig, agents: Arc<Agents>) -> IamRoles {
        IamRoles {
            client: Client::new(sdk),
            agents: Some(agents),
        }
    }

    /// The IAM client of `role_arn`'s account, and the role's name (IAM calls take names).
    async fn client_for<'a>(&self, role_arn: &'a str) -> Result<(Client, &'a str)> {
        let name = role_name(role_arn)
            .ok_or_else(|| Error::internal(format!("`{role_arn}` is not a role ARN")))?;
        let account = role_account(role_arn).unwrap_or_default();
        match &self.agents {
            Some(agents) if !agents.is_hub(account) => {
                Ok((Client::new(&agents.config_for(account).await?), name))
            }
            _ => Ok((self.client.clone(), name)),
        }
    }
}

/// IAM returns policy documents URL-encoded.
fn decode(document: &str) -> String {
    percent_encoding::percent_decode_str(document)
        .decode_utf8_lossy()
        .into_owned()
}

impl Principals for IamRoles {
    async fn iam_user_arn(&self, name: &str) -> Result<Option<String>> {
        match self.client.get_user().user_name(name).send().await {
            Ok(output) => Ok(output.user.map(|user| user.arn)),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(classify("IAM GetUser", &err)),
        }
    }
}

impl Roles for IamRoles {
    async fn describe(&self, role_arn: &str) -> Result<Option<RoleInfo>> {
        if role_name(role_arn).is_none() {
            return Err(Error::not_grantable(format!(
                "`{role_arn}` is not a role ARN"
            )));
        }
        let (client, name) = self.client_for(role_arn).await?;
        let output = match client.get_role().role_name(name).send().await {
            Ok(output) => output,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(classify("IAM GetRole", &err)),
        };
        let role = output
            .role
            .ok_or_else(|| Error::internal("IAM GetRole returned no role"))?;
        if role.arn != role_arn {
            // Same name, other path or account: not the role the catalog names.
            return Ok(None);
        }
        let tags = client
            .list_role_tags()
            .role_name(name)
            .send()
            .await
            .map_err(|err| classify("IAM ListRoleTags", &err))?
            .tags
            .into_iter()
            .map(|tag| (tag.key, tag.value))
            .collect();
        let mut attached_policies = Vec::new();
        let mut marker = None;
        loop {
            let page = client
                .list_attached_role_policies()
                .role_name(name)
                .set_marker(marker)
                .send()
                .await
                .map_err(|err| classify("IAM ListAttachedRolePolicies", &err))?;
            attached_policies.extend(
                page.attached_policies
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|policy| policy.policy_arn),
            );
            match page.marker {
                Some(next) if page.is_truncated => marker = Some(next),
                _ => break,
            }
        }
        Ok(Some(RoleInfo {
            name: role.role_name,
            tags,
            attached_policies,
            trust_policy: role
                .assume_role_policy_document
                .as_deref()
                .map(decode)
                .unwrap_or_default(),
        }))
    }

    async fn inline_policy(&self, role_arn: &str, policy_name: &str) -> Result<Option<String>> {
        let (client, name) = self.client_for(role_arn).await?;
        match client
            .get_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .send()
            .await
        {
            Ok(output) => Ok(Some(decode(&output.policy_document))),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(classify("IAM GetRolePolicy", &err)),
        }
    }

    async fn inline_policy_names(&self, role_arn: &str) -> Result<Vec<String>> {
        let (client, name) = self.client_for(role_arn).await?;
        let mut names = Vec::new();
        let mut marker = None;
        loop {
            let page = client
                .list_role_policies()
                .role_name(name)
                .set_marker(marker)
                .send()
                .await
                .map_err(|err| classify("IAM ListRolePolicies", &err))?;
            names.extend(page.policy_names);
            match page.marker {
                Some(next) if page.is_truncated => marker = Some(next),
                _ => break,
            }
        }
        Ok(names)
    }

    async fn put_inline_policy(
        &self,
        role_arn: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()> {
        let (client, name) = self.client_for(role_arn).await?;
        client
            .put_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .policy_document(document)
            .send()
            .await
            .map_err(|err| classify("IAM PutRolePolicy", &err))?;
        Ok(())
    }

    async fn delete_inline_policy(&self, role_arn: &str, policy_name: &str) -> Result<()> {
        let (client, name) = self.client_for(role_arn).await?;
        match client
            .delete_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(classify("IAM DeleteRolePolicy", &err)),
        }
    }

    async fn pause(&self, delay: std::time::Duration) {
        // The SDK's own sleep (tokio in Lambda), so this crate needs no runtime of its own.
        match self.client.config().sleep_impl() {
            Some(sleep) => aws_sdk_iam::config::AsyncSleep::sleep(&sleep, delay).await,
            None => std::thread::sleep(delay),
        }
    }
}
