//! The local Organization: a management account, two member accounts (one in an OU) and the
//! member stack (member/template.yaml) deployed in each, on moto.
//!
//! moto keeps every account's state apart and maps an assumed role's keys to the role's account,
//! so the deployer acts in an account by assuming a role there; Organizations lives in the
//! management account's state only, which is why the hub reads it through the management
//! account's `trailgate-organization-reader` role, as a hub that is no delegated administrator
//! would. moto's `CreateAccount` picks random ids, so the catalog names them through
//! placeholders ([`LocalOrganization::substitute`]).

use aws_credential_types::Credentials;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::cloudformation::{self, DeployOptions, MemberTarget};
use crate::error::{Error, Result};
use crate::router::Log;

/// The management account (fixed: moto makes whoever creates the Organization its manager).
pub const MANAGEMENT_ACCOUNT: &str = "000000000001";
/// The member stacks' name.
pub const MEMBER_STACK: &str = "trailgate-member";

/// What the stack records of its Organization (state.json `organization`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalOrganization {
    pub id: String,
    pub management_account: String,
    /// The OU `prod` lives in.
    pub prod_ou: String,
    pub members: Vec<LocalMember>,
    /// The management account's member stack: resource → physical id (empty when left out).
    #[serde(default)]
    pub management_resources: BTreeMap<String, String>,
}

/// One member account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalMember {
    pub name: String,
    pub account_id: String,
    /// member/template.yaml's outputs in this account.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// Every resource of the member template → its physical id here (empty when its condition
    /// left it out of this account's stack).
    #[serde(default)]
    pub resources: BTreeMap<String, String>,
}

impl LocalOrganization {
    /// Replaces `${MemberAccount:<name>}`, `${ProdOu}` and `${ManagementAccount}` in `text`
    /// (the local catalog) with this Organization's ids.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = text
            .replace("${ProdOu}", &self.prod_ou)
            .replace("${ManagementAccount}", &self.management_account);
        for member in &self.members {
            out = out.replace(
                &format!("${{MemberAccount:{}}}", member.name),
                &member.account_id,
            );
        }
        out
    }

    /// The hub template parameters that make it an Organization's hub.
    pub fn hub_parameters(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("OrganizationId".to_owned(), self.id.clone()),
            (
                "ManagementAccountId".to_owned(),
                self.management_account.clone(),
            ),
            (
                "OrganizationReaderRoleArn".to_owned(),
                format!(
                    "arn:aws:iam::{}:role/trailgate-organization-reader",
                    self.management_account
                ),
            ),
            // The local scenarios also target the hub's own sample role (ARCHITECTURE.md,
            // departure 13): a deployed Organization hub keeps the default, false.
            ("HubRolesRequestable".to_owned(), "true".to_owned()),
        ])
    }

    pub fn member(&self, name: &str) -> Option<&LocalMember> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// Credentials that act in `account`: moto gives an assumed role's keys that account.
pub async fn credentials_in(endpoint: &str, account: &str) -> Result<Credentials> {
    let sts = aws_sdk_sts::Client::new(&cloudformation::sdk_config(endpoint));
    let assumed = sts
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("trailgate-local-setup")
        .send()
        .await
        .map_err(|err| {
            Error::deploy(
                "Organization",
                format!("AssumeRole into {account}: {err:?}"),
            )
        })?;
    let c = assumed
        .credentials
        .ok_or_else(|| Error::deploy("Organization", "AssumeRole returned no credentials"))?;
    Ok(Credentials::new(
        c.access_key_id,
        c.secret_access_key,
        Some(c.session_token),
        None,
        "trailgate-local-member",
    ))
}

/// The decoded `trailgate-revocations` of `role` in `account`, read with a session there;
/// `None` when the role has none.
pub async fn revocations_in(endpoint: &str, account: &str, role: &str) -> Result<Option<String>> {
    let config = cloudformation::sdk_config_as(endpoint, credentials_in(endpoint, account).await?);
    let iam = aws_sdk_iam::Client::new(&config);
    match iam
        .get_role_policy()
        .role_name(role)
        .policy_name("trailgate-revocations")
        .send()
        .await
    {
        // IAM returns policy documents URL-encoded.
        Ok(output) => Ok(Some(
            percent_encoding::percent_decode_str(output.policy_document())
                .decode_utf8_lossy()
                .into_owned(),
        )),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_no_such_entity_exception()) =>
        {
            Ok(None)
        }
        Err(err) => Err(Error::deploy(
            "Organization",
            format!("GetRolePolicy {role} in {account}: {err:?}"),
        )),
    }
}

/// Creates the Organization from [`MANAGEMENT_ACCOUNT`]: OU `Prod` under the root, accounts
/// `prod` (in Prod) and `data` (under the root).
pub async fn create(endpoint: &str, extra_accounts: usize, log: &Log) -> Result<LocalOrganization> {
    let fail = |what: &str, err: String| Error::deploy("Organization", format!("{what}: {err}"));
    let config = cloudformation::sdk_config_as(
        endpoint,
        credentials_in(endpoint, MANAGEMENT_ACCOUNT).await?,
    );
    let org = aws_sdk_organizations::Client::new(&config);
    let created = org
        .create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .map_err(|e| fail("CreateOrganization", format!("{e:?}")))?;
    let id = created
        .organization
        .and_then(|o| o.id)
        .ok_or_else(|| fail("CreateOrganization", "no id".into()))?;
    let root = org
        .list_roots()
        .send()
        .await
        .map_err(|e| fail("ListRoots", format!("{e:?}")))?
        .roots
        .unwrap_or_default()
        .into_iter()
        .find_map(|r| r.id)
        .ok_or_else(|| fail("ListRoots", "no root".into()))?;
    let prod_ou = org
        .create_organizational_unit()
        .parent_id(&root)
        .name("Prod")
        .send()
        .await
        .map_err(|e| fail("CreateOrganizationalUnit", format!("{e:?}")))?
        .organizational_unit
        .and_then(|ou| ou.id)
        .ok_or_else(|| fail("CreateOrganizationalUnit", "no id".into()))?;
    // One account, created by the management account and moved under `parent` (the root when
    // none); its id.
    let add = |name: String, parent: Option<String>| {
        let (org, root) = (&org, &root);
        async move {
            let account_id = org
                .create_account()
                .email(format!("{name}@example.com"))
                .account_name(&name)
                .send()
                .await
                .map_err(|e| fail("CreateAccount", format!("{e:?}")))?
                .create_account_status
                .and_then(|status| status.account_id)
                .ok_or_else(|| fail("CreateAccount", "no account id".into()))?;
            if let Some(parent) = parent {
                org.move_account()
                    .account_id(&account_id)
                    .source_parent_id(root)
                    .destination_parent_id(&parent)
                    .send()
                    .await
                    .map_err(|e| fail("MoveAccount", format!("{e:?}")))?;
            }
            Ok::<String, Error>(account_id)
        }
    };
    let mut members = Vec::new();
    for (name, parent) in [("prod", Some(prod_ou.clone())), ("data", None)] {
        members.push(LocalMember {
            name: name.to_owned(),
            account_id: add(name.to_owned(), parent).await?,
            outputs: BTreeMap::new(),
            resources: BTreeMap::new(),
        });
    }
    // Accounts without a member stack, for measuring an Organization of realistic size
    // (`serve --extra-accounts N`): listed by Organizations, never reachable through an agent.
    for n in 0..extra_accounts {
        add(format!("bench-{n:03}"), Some(prod_ou.clone())).await?;
    }
    log.line(format!(
        "Organization {id}: management {MANAGEMENT_ACCOUNT}, {} in {prod_ou}, {} under the root, \
         {extra_accounts} more in {prod_ou}",
        members[0].account_id, members[1].account_id
    ));
    Ok(LocalOrganization {
        id,
        management_account: MANAGEMENT_ACCOUNT.to_owned(),
        prod_ou,
        members,
        management_resources: BTreeMap::new(),
    })
}

/// Deploys member/template.yaml in each member account (with its sample role) and in the
/// management account (with the Organization reader only), trusting the hub's roles.
pub async fn deploy_members(
    organization: &mut LocalOrganization,
    repo: &std::path::Path,
    work_dir: &std::path::Path,
    endpoint: &str,
    hub_outputs: &BTreeMap<String, String>,
    log: &Log,
) -> Result<()> {
    let output = |name: &str| -> Result<String> {
        hub_outputs
            .get(name)
            .cloned()
            .ok_or_else(|| Error::deploy("Organization", format!("the hub has no output {name}")))
    };
    let common = BTreeMap::from([
        ("HubRoleArns".to_owned(), output("AgentTrustedRoleArns")?),
        (
            "HubWriterRoleArns".to_owned(),
            output("AgentWriterRoleArns")?,
        ),
        (
            "CredentialsRoleArn".to_owned(),
            output("CredentialsFunctionRoleArn")?,
        ),
        ("OrganizationId".to_owned(), organization.id.clone()),
    ]);
    let mut targets: Vec<(String, bool)> = organization
        .members
        .iter()
        .map(|m| (m.account_id.clone(), true))
        .collect();
    targets.push((organization.management_account.clone(), false));
    for (account, is_member) in targets {
        let mut parameters = common.clone();
        parameters.insert("CreateSampleRole".into(), is_member.to_string());
        parameters.insert("CreateOrganizationReader".into(), (!is_member).to_string());
        let member = MemberTarget {
            account_id: account.clone(),
            stack_name: MEMBER_STACK.to_owned(),
            credentials: credentials_in(endpoint, &account).await?,
        };
        let deployment = cloudformation::deploy(&DeployOptions {
            repo,
            template: "member/template.yaml",
            work_dir,
            endpoint,
            api_port: 0,
            parameters: &parameters,
            users: &[],
            log,
            member: Some(&member),
        })
        .await?;
        let resources: BTreeMap<String, String> = deployment
            .template_resources
            .keys()
            .map(|id| {
                let physical = deployment.resources.get(id).map(|r| r.physical_id.clone());
                (id.clone(), physical.unwrap_or_default())
            })
            .collect();
        if account == organization.management_account {
            organization.management_resources = resources;
        } else if let Some(m) = organization
            .members
            .iter_mut()
            .find(|m| m.account_id == account)
        {
            m.resources = resources;
            m.outputs = deployment.outputs;
        }
    }
    Ok(())
}
