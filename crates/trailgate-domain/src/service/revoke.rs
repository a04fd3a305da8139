//! Ending a grant: the per-request deny written and verified, on time or early, within the
//! room the role's other inline policies leave.

use super::submit::show;
use super::{commit, is_requester_principal, load, with_retry};
use crate::catalog::{Catalog, role_name};
use crate::error::{Error, Result};
use crate::ledger::change;
use crate::policy::{self, REVOCATIONS_POLICY_NAME};
use crate::ports::{IdentityCenter, Ledger, Roles};
use crate::request::{AccessRequest, Caller, Status};
use crate::time::{format_utc, parse_utc};
use ::time::{Duration, OffsetDateTime};

/// How long past `expires_at` a deny statement stays on the role. STS issues no session
/// shorter than 15 minutes, so a credential vended just before the end outlives it by up to
/// that (its session policy denies everything past `expires_at`, and the deny covers it as
/// well until it has expired), plus 5 minutes for clock skew between the clocks involved.
pub const GC_MARGIN: Duration = Duration::minutes(20);

/// Ends a grant: REVOKED first, so that no credential is vended from then on, then the
/// per-request deny on the target role, read back to verify. Idempotent, and a no-op for
/// requests that never got access. A deny that IAM refuses or does not show fails the step
/// `Retryable` with the request already REVOKED: the retry (or the reconciler, which re-applies
/// the deny of every REVOKED request whose sessions may still live) finishes it.
pub async fn revoke<L: Ledger, R: Roles>(
    ledger: &L,
    roles: &R,
    id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Status> {
    if load(ledger, id).await?.assignment.is_some() {
        // Checked before anything is committed: a permission set has no role to deny on.
        return Err(Error::internal(
            "a permission-set request is revoked through `revoke_target`",
        ));
    }
    let revoked = commit_revoked(ledger, id, reason, now).await?;
    // A request that was never ACTIVE has no `expires_at` and no credential was ever vended.
    if matches!(revoked.status, Status::Revoked | Status::Audited) && revoked.expires_at.is_some() {
        apply_deny(roles, &revoked, now).await?;
    }
    Ok(revoked.status)
}

/// Commits REVOKED (idempotent; a request that cannot become REVOKED is returned as it is).
/// Whatever is denied afterwards is denied for the record this commit produced, never for one
/// read earlier: a revoke that read APPROVED while activation committed ACTIVE loses the race,
/// reads again, and denies the ACTIVE grant it then revokes.
pub(super) async fn commit_revoked<L: Ledger>(
    ledger: &L,
    id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<AccessRequest> {
    with_retry(|| async {
        let current = load(ledger, id).await?;
        if matches!(current.status, Status::Revoked | Status::Audited) {
            return Ok(current);
        }
        if !current.status.can_become(Status::Revoked) {
            return Ok(current);
        }
        let mut next = current.clone();
        next.status = Status::Revoked;
        next.revoked_at = Some(format_utc(now));
        next.outcome = Some(if current.status == Status::Approved {
            // Only the Activate step's Catch revokes an APPROVED request, and the state machine
            // passes its usual reason there; the event detail keeps that reason.
            "never activated: the grant step failed".to_owned()
        } else {
            format!("revoked: {reason}")
        });
        commit(
            ledger,
            change(
                Some(&current),
                next,
                "trailgate:revoke",
                "Revoked",
                Some(reason.to_owned()),
                now,
            )?,
        )
        .await
    })
    .await
}

/// Ends a grant before its expiry, at the request of its requester or one of its entry's
/// approvers (`POST /requests/{id}/revoke`). It does exactly what the timer's revoke does, so
/// the later timer revoke finds the deny in place and changes nothing; it touches no other
/// request's deny statement on the role.
pub async fn revoke_early<L: Ledger, R: Roles, I: IdentityCenter>(
    ledger: &L,
    roles: &R,
    identity_center: &I,
    catalog: &Catalog,
    caller: &Caller,
    id: &str,
    now: OffsetDateTime,
) -> Result<AccessRequest> {
    // Same visibility rule as `show`: others get the answer a missing request gets.
    let current = show(ledger, catalog, caller, id).await?;
    if !matches!(
        current.status,
        Status::Approved | Status::Active | Status::Revoked | Status::Audited
    ) {
        return Err(Error::conflict(format!(
            "the request is {}: only a granted request can be revoked",
            current.status
        )));
    }
    let who = if is_requester_principal(&current, caller) {
        "the requester"
    } else {
        "an approver"
    };
    let reason = format!("revoked early by {who} ({})", caller.arn);
    super::revoke_target(ledger, roles, identity_center, id, &reason, now).await?;
    load(ledger, id).await
}

/// What [`apply_deny`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Applied {
    /// The role already ended the request's sessions; nothing was written.
    AlreadyThere,
    /// The request's id was added.
    Added,
    /// The role had no room for the id: the role-wide fallback was written instead.
    Fallback,
}

/// Puts the request's deny on its role unless the role already ends its sessions, and waits
/// until IAM shows it.
pub(super) async fn apply_deny<R: Roles>(
    roles: &R,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Result<Applied> {
    let role = request.role_arn.as_str();
    if role_name(role).is_none() {
        return Err(Error::internal(format!("`{role}` is not a role ARN")));
    }
    let expires_at = parse_utc(request.expires_at.as_deref().unwrap_or_default())?;
    let remove_after = (expires_at + GC_MARGIN).unix_timestamp();
    // Every session of the request was vended before it was REVOKED (a vend racing the revoke
    // withholds what it got), which is what a role-wide fallback is measured against.
    let revoked_at = match request.revoked_at.as_deref() {
        Some(at) => parse_utc(at)?.unix_timestamp(),
        None => now.unix_timestamp(),
    };
    let current = roles.inline_policy(role, REVOCATIONS_POLICY_NAME).await?;
    if current
        .as_deref()
        .is_some_and(|doc| policy::covers(doc, &request.id, revoked_at))
    {
        return Ok(Applied::AlreadyThere);
    }
    let room = policy::INLINE_POLICY_LIMIT.saturating_sub(other_inline_size(roles, role).await?);
    let revocation = policy::add_revocation(
        current.as_deref(),
        &request.id,
        remove_after,
        now.unix_timestamp(),
        room,
    )?;
    roles
        .put_inline_policy(role, REVOCATIONS_POLICY_NAME, &revocation.document)
        .await?;
    wait_until_visible(roles, role, &request.id, revoked_at).await?;
    Ok(if revocation.fallback {
        Applied::Fallback
    } else {
        Applied::Added
    })
}

/// The size IAM counts for the role's inline policies other than the revocations policy.
pub(super) async fn other_inline_size<R: Roles>(roles: &R, role: &str) -> Result<usize> {
    let mut size = 0;
    for policy_name in roles.inline_policy_names(role).await? {
        if policy_name == REVOCATIONS_POLICY_NAME {
            continue;
        }
        if let Some(document) = roles.inline_policy(role, &policy_name).await? {
            size += policy::policy_size(&document);
        }
    }
    Ok(size)
}

/// How long a revoke waits for IAM to show its deny before it reports failure, and the
/// pauses between read-backs (doubling). IAM changes usually show within a second or two but
/// "might take a few minutes" (IAM user guide), so the bound is a step's budget, not a promise:
/// past it the step fails `Retryable` and the state machine (or the reconciler) tries again.
pub const VISIBILITY_BOUND: std::time::Duration = std::time::Duration::from_secs(10);
const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
const LONGEST_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the revocations policy back until it ends `request_id`'s sessions, pausing with
/// backoff, for at most [`VISIBILITY_BOUND`] of pauses. Success is reported only once IAM
/// returns the deny.
async fn wait_until_visible<R: Roles>(
    roles: &R,
    role: &str,
    request_id: &str,
    revoked_at: i64,
) -> Result<()> {
    let mut waited = std::time::Duration::ZERO;
    let mut pause = FIRST_PAUSE;
    loop {
        let read_back = roles.inline_policy(role, REVOCATIONS_POLICY_NAME).await?;
        if read_back
            .as_deref()
            .is_some_and(|doc| policy::covers(doc, request_id, revoked_at))
        {
            return Ok(());
        }
        if waited >= VISIBILITY_BOUND {
            return Err(Error::retryable(format!(
                "the deny for {request_id} is not visible on `{role}` after {}s",
                waited.as_secs()
            )));
        }
        let this_pause = pause.min(VISIBILITY_BOUND - waited);
        roles.pause(this_pause).await;
        waited += this_pause;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

#[cfg(test)]
#[path = "revoke_tests.rs"]
mod tests;
