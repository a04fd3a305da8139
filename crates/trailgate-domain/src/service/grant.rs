//! Activation and the grantable-role contract the grant step checks every time.

use super::{commit, entry_of, load, with_retry};
use crate::catalog::{Catalog, role_name};
use crate::error::{Error, Result};
use crate::ledger::change;
use crate::policy::{self, MANAGED_TAG};
use crate::ports::{Ledger, Roles};
use crate::request::Status;
use crate::time::format_utc;
use ::time::OffsetDateTime;

/// What a role must satisfy to be granted, as this deployment defines it.
#[derive(Debug, Clone, Copy)]
pub struct RoleContract<'a> {
    /// The prefix of trailgate's own role names; such roles are never granted.
    pub own_role_prefix: &'a str,
    /// The credentials function's role, the only principal the target role may trust.
    pub broker_role_arn: &'a str,
    /// The stack's `TrailgateProtectionPolicy`, which the role must have attached: without it a
    /// granted session could delete its own revocation deny or rewrite the ledger.
    pub protection_policy_arn: &'a str,
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
    let entry = entry_of(catalog, &current)?;
    if entry.role_arn != current.role_arn {
        return Err(Error::not_grantable(
            "the catalog entry now points at another role",
        ));
    }
    // Checked again here, not only at intake: the record may have been edited since.
    if current.duration() > entry.max_duration()? {
        return Err(Error::not_grantable(format!(
            "the request's duration is longer than the {} its catalog entry allows",
            crate::time::format_duration(entry.max_duration()?)
        )));
    }
    check_grantable(roles, contract, &current.role_arn).await?;
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

/// The grantable-role contract: the role exists, carries `trailgate:managed=true`, is not
/// one of trailgate's own roles, and its trust policy lets only the credentials function's role
/// (`broker_role_arn`) assume it, with a source identity ([`policy::check_trust_policy`]).
pub async fn check_grantable<R: Roles>(
    roles: &R,
    contract: RoleContract<'_>,
    role_arn: &str,
) -> Result<()> {
    let RoleContract {
        own_role_prefix,
        broker_role_arn,
        protection_policy_arn,
    } = contract;
    let name = role_name(role_arn)
        .ok_or_else(|| Error::not_grantable(format!("`{role_arn}` is not a role ARN")))?;
    if !own_role_prefix.is_empty() && name.starts_with(own_role_prefix) {
        return Err(Error::not_grantable(format!(
            "`{role_arn}` is one of trailgate's own roles"
        )));
    }
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
    if !info
        .attached_policies
        .iter()
        .any(|attached| attached == protection_policy_arn)
    {
        return Err(Error::not_grantable(format!(
            "role `{role_arn}` does not have `{protection_policy_arn}` attached, so a session \
             could delete its own revocation"
        )));
    }
    policy::check_trust_policy(&info.trust_policy, broker_role_arn).map_err(|reason| {
        Error::not_grantable(format!(
            "role `{role_arn}` breaks the trust contract: {reason}"
        ))
    })?;
    Ok(())
}

#[cfg(test)]
#[path = "grant_tests.rs"]
mod tests;
