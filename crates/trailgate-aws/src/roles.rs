//! IAM, limited to what trailgate does to target roles: read tags, trust and attached
//! policies, and manage the one inline policy that holds revocations (listing the others,
//! which share its size limit); and, for `jitctl catalog check --roles`, whether the
//! catalog's IAM users exist.

use crate::errors::classify;
use aws_sdk_iam::Client;
use trailgate_domain::catalog::role_name;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ports::{Principals, RoleInfo, Roles};

#[derive(Clone, Debug)]
pub struct IamRoles {
    client: Client,
}

impl IamRoles {
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> IamRoles {
        IamRoles::new(Client::new(sdk))
    }

    pub fn new(client: Client) -> IamRoles {
        IamRoles { client }
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
        let name = role_name(role_arn)
            .ok_or_else(|| Error::not_grantable(format!("`{role_arn}` is not a role ARN")))?;
        let output = match self.client.get_role().role_name(name).send().await {
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
        let tags = self
            .client
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
            let page = self
                .client
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

    async fn inline_policy(&self, role_name: &str, policy_name: &str) -> Result<Option<String>> {
        match self
            .client
            .get_role_policy()
            .role_name(role_name)
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

    async fn inline_policy_names(&self, role_name: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .client
                .list_role_policies()
                .role_name(role_name)
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
        role_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()> {
        self.client
            .put_role_policy()
            .role_name(role_name)
            .policy_name(policy_name)
            .policy_document(document)
            .send()
            .await
            .map_err(|err| classify("IAM PutRolePolicy", &err))?;
        Ok(())
    }

    async fn delete_inline_policy(&self, role_name: &str, policy_name: &str) -> Result<()> {
        match self
            .client
            .delete_role_policy()
            .role_name(role_name)
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
