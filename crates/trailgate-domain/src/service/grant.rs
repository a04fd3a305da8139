//! Activation and the grantable-role contract the grant step checks every time.

use super::{commit, entry_of, load, with_retry};
use crate::catalog::{Catalog, Protected, role_account, role_name};
use crate::error::{Error, Result};
use crate::ledger::change;
use crate::policy::{self, MANAGED_TAG};
use crate::ports::{Ledger, Roles};
use crate::request::{AccessRequest, Status};
use crate::time::format_utc;
use ::time::OffsetDateTime;

/// What a role must satisfy to be granted, as this deployment defines it.
#[derive(Debug, Clone, Copy)]
pub struct RoleContract<'a> {
    /// What is never granted: trailgate's own roles, the agent role, the protected accounts.
    pub protected: &'a Protected,
    /// The credentials function's role, the only principal the target role may trust.
    pub broker_role_arn: &'a str,
    /// The stack's `TrailgateProtectionPolicy`, which a hub-account role must have attached:
    /// without it a granted session could delete its own revocation deny or rewrite the ledger.
    /// A member account's role must have that account's own
    /// [`policy::MEMBER_PROTECTION_POLICY_NAME`] instead (member/template.yaml).
    pub protection_policy_arn: &'a str,
}

impl RoleContract<'_> {
    /// The protection policy a role in `account` must have attached.
    pub fn protection_policy_for(&self, account: &str) -> String {
        if self.protected.hub_account.is_empty() || account == self.protected.hub_account {
            self.protection_policy_arn.to_owned()
        } else {
            format!(
                "arn:aws:iam::{account}:policy/{}",
                policy::MEMBER_PROTECTION_POLICY_NAME
            )
        }
    }
}

/// Checks that the request's role is one trailgate may grant, and marks the request ACTIVE.
/// Idempotent: a retried call on an ACTIVE request returns the same expiry.
pub async fn activate<L: Ledger, R: Roles>(
    ledger: &L,
    roles: &R,
    catalog: &Catalog,
    contract: RoleContract<'_>,
    id: &str,
    now: OffsetDateTime,
) -> Result<String> {
    let current = load(ledger, id).await?;
    if current.assignment.is_some() {
        return Err(Error::internal(
            "a permission-set request is activated through `activate_target`",
        ));
    }
    if current.status == Status::Active {
        return current
            .expires_at
            .ok_or_else(|| Error::internal("an ACTIVE request has no expires_at"));
    }
    if current.status != Status::Approved {
        return Err(Error::conflict(format!(
            "the request is {}, not APPROVED",
            current.status
        )));
    }
    refuse_before_start(&current, now)?;
    let entry = entry_of(catalog, &current)?;
    if !entry.may_grant(&current.role_arn) {
        return Err(Error::not_grantable(
            "the catalog entry now points at another role",
        ));
    }
    check_duration(entry, &current)?;
    check_grantable(roles, contract, &current.role_arn).await?;
    commit_active(ledger, id, None, now).await
}

/// Whether `Activate` finds the request cancelled while it waited for its scheduled start
/// (`service::cancel`): then nothing is granted and the execution closes. Any other state is
/// for [`activate`] to judge.
pub async fn cancelled_before_start<L: Ledger>(ledger: &L, id: &str) -> Result<bool> {
    let current = load(ledger, id).await?;
    Ok(current.status == Status::Cancelled && current.start_at.is_some())
}

/// A scheduled grant is never activated before its `start_at`, whatever the workflow says:
/// the state machine waits for it, and this holds if it did not. A start a few seconds
/// ahead is `Retryable` (the Wait state's timer and this function's clock may differ by a
/// second, and `Activate` retries after 2, 4 and 8 s); one further ahead is a workflow that
/// did not wait, `Internal`, which ends in `Revoke`.
pub(super) fn refuse_before_start(request: &AccessRequest, now: OffsetDateTime) -> Result<()> {
    match request.starts_after(now) {
        Some(at) if at - now <= START_SKEW => Err(Error::retryable(format!(
            "the grant starts at {}: not yet",
            format_utc(at)
        ))),
        Some(at) => Err(Error::internal(format!(
            "the grant starts at {}; it is not activated before",
            format_utc(at)
        ))),
        None => Ok(()),
    }
}

/// How far ahead of its start an activation is taken for clock skew and retried.
const START_SKEW: ::time::Duration = ::time::Duration::seconds(10);

/// Commits ACTIVE with `expires_at` = `now` + the duration (idempotent: an ACTIVE request
/// answers its expiry). The last step of every activation, role or permission set; a
/// permission set's name is recorded with it (what the audit looks for).
pub(super) async fn commit_active<L: Ledger>(
    ledger: &L,
    id: &str,
    permission_set_name: Option<&str>,
    now: OffsetDateTime,
) -> Result<String> {
    with_retry(|| async {
        let current = load(ledger, id).await?;
        if current.status == Status::Active {
            return current
                .expires_at
                .ok_or_else(|| Error::internal("an ACTIVE request has no expires_at"));
        }
        let mut next = current.clone();
        next.status = Status::Active;
        let expires_at = format_utc(now + current.duration());
        next.expires_at = Some(expires_at.clone());
        if let Some(name) = permission_set_name {
            next.permission_set_name = Some(name.to_owned());
        }
        let detail = Some(format!("until {expires_at}"));
        commit(
            ledger,
            change(
                Some(&current),
                next,
                "trailgate:grant",
                "Activated",
                detail,
                now,
            )?,
        )
        .await?;
        Ok(expires_at)
    })
    .await
}

/// The request's duration against today's entry: checked at activation, not only at intake,
/// because the record may have been edited since.
pub(super) fn check_duration(entry: &crate::catalog::Entry, request: &AccessRequest) -> Result<()> {
    if request.duration() > entry.max_duration()? {
        return Err(Error::not_grantable(format!(
            "the request's duration is longer than the {} its catalog entry allows",
            crate::time::format_duration(entry.max_duration()?)
        )));
    }
    Ok(())
}

/// The grantable-role contract: the role exists, carries `trailgate:managed=true`, is not
/// one of trailgate's own roles, the agent role or in a protected account, has its account's
/// protection policy attached, and its trust policy lets only the credentials function's role
/// (`broker_role_arn`) assume it, with a source identity ([`policy::check_trust_policy`]).
pub async fn check_grantable<R: Roles>(
    roles: &R,
    contract: RoleContract<'_>,
    role_arn: &str,
) -> Result<()> {
    let name = role_name(role_arn)
        .ok_or_else(|| Error::not_grantable(format!("`{role_arn}` is not a role ARN")))?;
    let account = role_account(role_arn).unwrap_or_default();
    // Checked at grant as well as at catalog load: the record may have been edited since.
    contract
        .protected
        .check_role(account, name)
        .map_err(|err| Error::not_grantable(format!("`{role_arn}`: {}", err.message)))?;
    let protection_policy_arn = contract.protection_policy_for(account);
    let info = roles
        .describe(role_arn)
        .await?
        .ok_or_else(|| Error::not_grantable(format!("role `{role_arn}` does not exist")))?;
    let managed = info
        .tags
        .iter()
        .any(|(key, value)| key == MANAGED_TAG && value.eq_ignore_ascii_case("true"));
    if !managed {
        return Err(Error::not_grantable(format!(
            "role `{role_arn}` is not tagged `{MANAGED_TAG}=true`"
        )));
    }
    if !info.attached_policies.contains(&protection_policy_arn) {
        return Err(Error::not_grantable(format!(
            "role `{role_arn}` does not have `{protection_policy_arn}` attached, so a session \
             could delete its own revocation"
        )));
    }
    policy::check_trust_policy(&info.trust_policy, contract.broker_role_arn).map_err(|reason| {
        Error::not_grantable(format!(
            "role `{role_arn}` breaks the trust contract: {reason}"
        ))
    })?;
    Ok(())
}

#[cfg(test)]
#[path = "grant_tests.rs"]
mod tests;
