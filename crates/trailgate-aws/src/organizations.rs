//! The `Accounts` port: the Organization's accounts and OUs from AWS Organizations, cached
//! with a TTL, and whether a member account's agent role lets the hub in.
//!
//! Organizations answers only in the management account or a delegated administrator: the
//! hub reads it with its own credentials when it is one (`ORGANIZATION_READER_ROLE_ARN`
//! empty), or through a read-only role in the management account (member/template.yaml's
//! `OrganizationReaderRole`). One walk is `DescribeOrganization`, `ListAccounts` (20 a page),
//! `ListRoots`, and per OU `ListOrganizationalUnitsForParent` and `ListAccountsForParent`; a
//! catalog answered from the cache makes no call at all.

use crate::agents::Agents;
use crate::errors::classify;
use aws_sdk_organizations::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trailgate_domain::error::Result;
use trailgate_domain::organization::{OrgAccount, Organization};
use trailgate_domain::ports::Accounts;

/// How long an agent probe's answer is kept: a member stack deployed after a refusal is
/// seen within this time.
const PROBE_TTL: Duration = Duration::from_secs(300);

pub struct OrgAccounts {
    agents: Arc<Agents>,
    /// The management account's reader role, if the hub is not a delegated administrator.
    reader_role_arn: Option<String>,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Option<Arc<Organization>>)>>,
    probes: Mutex<HashMap<String, (Instant, bool)>>,
}

impl OrgAccounts {
    pub fn new(agents: Arc<Agents>, reader_role_arn: Option<String>, ttl: Duration) -> OrgAccounts {
        OrgAccounts {
            agents,
            reader_role_arn,
            ttl,
            cached: Mutex::new(None),
            probes: Mutex::new(HashMap::new()),
        }
    }

    async fn client(&self) -> Result<Client> {
        match &self.reader_role_arn {
            None => Ok(Client::new(self.agents.hub_config())),
            Some(arn) => Ok(Client::new(&self.agents.assume(arn, None).await?.0)),
        }
    }

    /// One walk of the Organization; `None` when the hub's account belongs to none.
    async fn read(&self) -> Result<Option<Organization>> {
        let client = self.client().await?;
        let described = match client.describe_organization().send().await {
            Ok(output) => output,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_aws_organizations_not_in_use_exception()) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(classify("Organizations DescribeOrganization", &err)),
        };
        let management_account = described
            .organization
            .and_then(|org| org.master_account_id)
            .unwrap_or_default();
        let mut accounts = Vec::new();
        let mut next = None;
        loop {
            let page = client
                .list_accounts()
                .set_next_token(next)
                .send()
                .await
                .map_err(|err| classify("Organizations ListAccounts", &err))?;
            for account in page.accounts.unwrap_or_default() {
                #[allow(deprecated)]
                let status = account
                    .status
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default();
                accounts.push(OrgAccount {
                    id: account.id.unwrap_or_default(),
                    name: account.name.unwrap_or_default(),
                    status,
                    ous: Vec::new(),
                });
            }
            match page.next_token {
                Some(token) => next = Some(token),
                None => break,
            }
        }
        let ous_of = self.walk_units(&client).await?;
        for account in &mut accounts {
            if let Some(ous) = ous_of.get(&account.id) {
                account.ous = ous.clone();
            }
        }
        Ok(Some(Organization {
            management_account,
            accounts,
        }))
    }

    /// Every account's OUs, nearest first, from a breadth-first walk from the root.
    async fn walk_units(&self, client: &Client) -> Result<HashMap<String, Vec<String>>> {
        let roots = client
            .list_roots()
            .send()
            .await
            .map_err(|err| classify("Organizations ListRoots", &err))?;
        // (parent id, the OUs above and including it, nearest first)
        let mut queue: Vec<(String, Vec<String>)> = roots
            .roots
            .unwrap_or_default()
            .into_iter()
            .filter_map(|root| root.id)
            .map(|id| (id, Vec::new()))
            .collect();
        let mut ous_of = HashMap::new();
        while let Some((parent, above)) = queue.pop() {
            let mut next = None;
            loop {
                let page = client
                    .list_organizational_units_for_parent()
                    .parent_id(&parent)
                    .set_next_token(next)
                    .send()
                    .await
                    .map_err(|err| {
                        classify("Organizations ListOrganizationalUnitsForParent", &err)
                    })?;
                for unit in page.organizational_units.unwrap_or_default() {
                    if let Some(id) = unit.id {
                        let mut path = vec![id.clone()];
                        path.extend(above.iter().cloned());
                        queue.push((id, path));
                    }
                }
                match page.next_token {
                    Some(token) => next = Some(token),
                    None => break,
                }
            }
            if above.is_empty() {
                continue; // the root: its accounts are under no OU
            }
            let mut next = None;
            loop {
                let page = client
                    .list_accounts_for_parent()
                    .parent_id(&parent)
                    .set_next_token(next)
                    .send()
                    .await
                    .map_err(|err| classify("Organizations ListAccountsForParent", &err))?;
                for account in page.accounts.unwrap_or_default() {
                    if let Some(id) = account.id {
                        ous_of.insert(id, above.clone());
                    }
                }
                match page.next_token {
                    Some(token) => next = Some(token),
                    None => break,
                }
            }
        }
        Ok(ous_of)
    }
}

impl Accounts for OrgAccounts {
    async fn organization(&self) -> Result<Option<Arc<Organization>>> {
        if let Some((read_at, organization)) = self.cached.lock().expect("lock").as_ref()
            && read_at.elapsed() < self.ttl
        {
            return Ok(organization.clone());
        }
        let organization = self.read().await?.map(Arc::new);
        *self.cached.lock().expect("lock") = Some((Instant::now(), organization.clone()));
        Ok(organization)
    }

    async fn agent_reachable(&self, account: &str) -> Result<bool> {
        if let Some((probed_at, reachable)) = self.probes.lock().expect("lock").get(account)
            && probed_at.elapsed() < PROBE_TTL
        {
            return Ok(*reachable);
        }
        let reachable = self.agents.reachable(account).await?;
        self.probes
            .lock()
            .expect("lock")
            .insert(account.to_owned(), (Instant::now(), reachable));
        Ok(reachable)
    }
}
