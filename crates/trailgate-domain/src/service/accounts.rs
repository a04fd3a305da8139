//! Which account a request is for: the entry's role in the account the request names, inside
//! the Organization, reachable through its agent role, and never a protected account. Also what
//! `GET /catalog` lists per entry: the accounts a caller may ask for.

use super::find_entry;
use crate::catalog::{Catalog, Entry, Protected, is_account_id, role_account};
use crate::error::{Error, Result};
use crate::organization::Organization;
use crate::ports::Accounts;
use crate::request::{Assignment, NewRequest};
use serde_json::{Value, json};

/// The role a submission is for. Only [`resolve_target`] makes one, so a request cannot be
/// created for a role whose account was not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    role_arn: String,
    /// A permission-set target; its `user_id` is empty until
    /// [`super::identity_center::resolve_user`] has asked Identity Center.
    assignment: Option<Assignment>,
}

impl Target {
    /// The role; empty for a permission-set target.
    pub fn role_arn(&self) -> &str {
        &self.role_arn
    }

    pub fn assignment(&self) -> Option<&Assignment> {
        self.assignment.as_ref()
    }

    /// The permission-set target for the Identity Center user `user_id`.
    pub(crate) fn for_user(mut self, user_id: &str) -> Target {
        if let Some(assignment) = &mut self.assignment {
            user_id.clone_into(&mut assignment.user_id);
        }
        self
    }

    /// A target whose account was resolved: the entry's role there, or its permission set.
    fn in_account(entry: &Entry, account: &str, ous: &[String]) -> Option<Target> {
        if let Some(permission_set) = &entry.permission_set {
            return entry.covers_account(account, ous).then(|| Target {
                role_arn: String::new(),
                assignment: Some(Assignment {
                    instance_arn: permission_set.instance_arn.clone(),
                    permission_set_arn: permission_set.permission_set_arn.clone(),
                    account: account.to_owned(),
                    user_id: String::new(),
                }),
            });
        }
        entry.role_in(account, ous).map(|role_arn| Target {
            role_arn,
            assignment: None,
        })
    }

    /// A target in the hub's own account, for use cases and tests that have no Organization
    /// (the entry must name one `role_arn`).
    pub fn single(entry: &Entry) -> Result<Target> {
        entry
            .single_role()
            .map(|arn| Target {
                role_arn: arn.to_owned(),
                assignment: None,
            })
            .ok_or_else(|| {
                Error::invalid(
                    "account",
                    format!(
                        "entry `{}` covers several accounts: name one with `account`",
                        entry.id
                    ),
                )
            })
    }
}

/// Resolves the role `input` asks for. Every refusal is a 400 on field `account` naming the
/// account and the reason: not a 12-digit id, not covered by the entry, protected (the hub or
/// the management account), outside the Organization or not active in it, or without an
/// agent role that trusts this hub.
pub async fn resolve_target<A: Accounts>(
    accounts: &A,
    catalog: &Catalog,
    protected: &Protected,
    input: &NewRequest,
) -> Result<Target> {
    let entry = find_entry(catalog, input)?;
    let invalid = |message: String| Error::invalid("account", message);
    let account = match (entry.single_role(), input.account.as_deref()) {
        (Some(arn), named) => {
            let own = role_account(arn).unwrap_or_default();
            if let Some(named) = named
                && named != own
            {
                return Err(invalid(format!(
                    "entry `{}` grants `{arn}`, in account {own} only, not in `{}`",
                    entry.id,
                    printable(named)
                )));
            }
            own.to_owned()
        }
        (None, None) => {
            return Err(invalid(format!(
                "entry `{}` covers several accounts: name one with `account` \
                 (`jitctl catalog` lists them)",
                entry.id
            )));
        }
        (None, Some(named)) => named.to_owned(),
    };
    if !is_account_id(&account) {
        return Err(invalid(format!(
            "`{}` is not a 12-digit AWS account id",
            printable(&account)
        )));
    }
    let name = entry
        .role_name
        .as_deref()
        .or(entry.role_arn.as_deref())
        .and_then(|text| text.rsplit('/').next())
        .unwrap_or_default();
    protected
        .check_role(&account, name)
        .map_err(|err| invalid(err.message))?;
    let not_covered = || {
        invalid(format!(
            "entry `{}` does not cover account {account}",
            entry.id
        ))
    };
    if protected.hub_account.is_empty() || account == protected.hub_account {
        return Target::in_account(entry, &account, &[]).ok_or_else(not_covered);
    }
    let organization = accounts.organization().await?.ok_or_else(|| {
        invalid(format!(
            "account {account} is not the hub's, and the hub's account belongs to no \
             Organization"
        ))
    })?;
    let member = organization
        .account(&account)
        .ok_or_else(|| invalid(format!("account {account} is not in the Organization")))?;
    if !member.is_active() {
        return Err(invalid(format!(
            "account {account} is {} in the Organization",
            member.status
        )));
    }
    if account == organization.management_account {
        return Err(invalid(format!(
            "account {account} is the Organization's management account: none of its roles \
             is requestable"
        )));
    }
    let target = Target::in_account(entry, &account, &member.ous).ok_or_else(not_covered)?;
    if target.assignment.is_some() {
        // Identity Center assigns from its own account; nothing of trailgate's need be there.
        return Ok(target);
    }
    if !accounts.agent_reachable(&account).await? {
        return Err(invalid(format!(
            "account {account} has no `{}` role that trusts this hub: deploy \
             member/template.yaml there first",
            protected.agent_role_name
        )));
    }
    Ok(target)
}

/// At most this much of a caller's text is echoed in an error.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// `GET /catalog`: the entries `caller_arn` may request, each with the accounts it may be
/// requested in (`[{id, name}]`): an entry's one account, or each active member account it
/// covers by id or by OU, except protected ones. Agent roles are not probed here (one call per
/// account); a request for an account without one is refused with its reason.
pub async fn requestable<A: Accounts>(
    accounts: &A,
    catalog: &Catalog,
    protected: &Protected,
    caller_arn: &str,
) -> Result<Vec<Value>> {
    let entries = catalog.requestable_by(caller_arn);
    let needs_organization = entries.iter().any(|entry| {
        entry.single_role().is_none()
            || entry
                .single_role()
                .and_then(role_account)
                .is_some_and(|a| !protected.hub_account.is_empty() && a != protected.hub_account)
    });
    let organization = if needs_organization {
        accounts.organization().await?
    } else {
        None
    };
    Ok(entries
        .into_iter()
        .map(|entry| {
            let mut view = entry.public_view();
            view["accounts_available"] =
                Value::Array(available(entry, organization.as_deref(), protected));
            view
        })
        .collect())
}

/// The accounts one entry may be requested in, `{id, name}` each, in Organization order.
pub fn available(
    entry: &Entry,
    organization: Option<&Organization>,
    protected: &Protected,
) -> Vec<Value> {
    let name_of = |id: &str| {
        organization
            .and_then(|org| org.account(id))
            .map(|account| account.name.clone())
            .unwrap_or_default()
    };
    let allowed = |id: &str| {
        !protected.accounts.iter().any(|a| a == id)
            && organization.is_none_or(|org| org.management_account != id)
    };
    if let Some(arn) = entry.single_role() {
        let id = role_account(arn).unwrap_or_default();
        return if allowed(id) {
            vec![json!({"id": id, "name": name_of(id)})]
        } else {
            Vec::new()
        };
    }
    let Some(organization) = organization else {
        // No Organization to ask: the entry's listed account ids are all that can be said.
        return entry
            .accounts
            .iter()
            .filter(|id| is_account_id(id) && allowed(id))
            .map(|id| json!({"id": id, "name": ""}))
            .collect();
    };
    organization
        .accounts
        .iter()
        .filter(|account| account.is_active() && allowed(&account.id))
        .filter(|account| Target::in_account(entry, &account.id, &account.ous).is_some())
        .map(|account| json!({"id": account.id, "name": account.name}))
        .collect()
}

#[cfg(test)]
#[path = "accounts_tests.rs"]
mod tests;
