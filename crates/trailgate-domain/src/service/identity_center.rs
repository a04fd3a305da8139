//! Permission-set grants through IAM Identity Center: which Identity Center user the requester
//! is, the account assignment made and removed (each polled to completion), two grants that
//! share one assignment, and the deny that ends the user's sessions already issued.
//!
//! Identity Center keeps one assignment per (permission set, account, user), so two grants of
//! the same permission set to the same user in the same account share it: the ledger counts
//! its holders, and only the revoke that releases the last one removes it, under a fence that
//! keeps a new grant from taking it while the removal runs (AWS TEAM's bug #279 is the first
//! revoke deleting the assignment under the second grant).

use super::revoke::commit_revoked;
use super::{Target, entry_of, load};
use crate::catalog::{Catalog, Protected};
use crate::error::{Error, Result};
use crate::identity::{Principal, is_identity_center_user_id};
use crate::policy::{INLINE_POLICY_LIMIT, MANAGED_TAG};
use crate::ports::{IdentityCenter, Ledger, Operation, OperationStatus, PermissionSetInfo, Roles};
use crate::request::{AccessRequest, Assignment, Caller, Status};
use crate::user_deny;
use ::time::{Duration, OffsetDateTime};

/// How long a step waits for one Identity Center operation before it fails `Retryable` (the
/// state machine retries the step, which polls again). Assignments usually finish in seconds;
/// the grant and revoke functions' timeouts (90 s) leave room for two such waits.
pub const OPERATION_BOUND: std::time::Duration = std::time::Duration::from_secs(30);
const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
const LONGEST_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// The longest session Identity Center issues (a permission set's session duration is at
/// most 12 hours): what a deny must outlast when the permission set cannot be read.
const LONGEST_SESSION: Duration = Duration::hours(12);

/// Fills in the Identity Center user a permission-set target is for: the caller must be an
/// Identity Center session (`AWSReservedSSO_*`, whose session name Identity Center sets to
/// the user name), and Identity Center must name that user by its id (`GetUserId` on the
/// unique `UserName` attribute, never an e-mail match). Anything else is a 403 naming why. A
/// role target is returned as it is.
pub async fn resolve_user<I: IdentityCenter>(
    identity_center: &I,
    caller: &Caller,
    target: Target,
) -> Result<Target> {
    let Some(assignment) = target.assignment() else {
        return Ok(target);
    };
    let principal = Principal::parse(&caller.arn)
        .map_err(|err| Error::forbidden(format!("trailgate cannot tell who is calling: {err}")))?;
    let Some(user_name) = principal.identity_center_user_name() else {
        return Err(Error::forbidden(format!(
            "a permission set is granted to an IAM Identity Center user: call trailgate \
             through your Identity Center session (an `AWSReservedSSO_*` role), not `{}`",
            caller.arn
        )));
    };
    match identity_center
        .user_id(&assignment.instance_arn, user_name)
        .await?
    {
        Some(user_id) if is_identity_center_user_id(&user_id) => Ok(target.for_user(&user_id)),
        Some(_) | None => Err(Error::forbidden(format!(
            "IAM Identity Center has no user named `{user_name}` in the identity store of \
             `{}`, so trailgate cannot tell which user to grant",
            assignment.instance_arn
        ))),
    }
}

/// The permission set's side of the grant contract: it exists and carries
/// `trailgate:managed=true`, so a catalog typo cannot hand out a permission set nobody meant
/// trailgate to manage, and the reconciler's drift sweep knows which ones are its own.
pub async fn check_permission_set<I: IdentityCenter>(
    identity_center: &I,
    assignment: &Assignment,
) -> Result<PermissionSetInfo> {
    let info = identity_center
        .permission_set(&assignment.instance_arn, &assignment.permission_set_arn)
        .await?
        .ok_or_else(|| {
            Error::not_grantable(format!(
                "permission set `{}` does not exist",
                assignment.permission_set_arn
            ))
        })?;
    let managed = info
        .tags
        .iter()
        .any(|(key, value)| key == MANAGED_TAG && value.eq_ignore_ascii_case("true"));
    if !managed {
        return Err(Error::not_grantable(format!(
            "permission set `{}` ({}) is not tagged `{MANAGED_TAG}=true`",
            assignment.permission_set_arn, info.name
        )));
    }
    Ok(info)
}

/// Activation of a permission-set request: the entry and duration checked again against
/// today's catalog, the permission set's contract, the request counted as a holder of its
/// assignment, `CreateAccountAssignment` polled until `SUCCEEDED`, then ACTIVE. A `FAILED`
/// creation is `NotGrantable` with AWS's reason; a conflict or throttling is `Retryable`
/// (the adapter classifies them). Idempotent.
pub async fn activate_assignment<L: Ledger, I: IdentityCenter>(
    ledger: &L,
    identity_center: &I,
    catalog: &Catalog,
    protected: &Protected,
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
    let assignment = current
        .assignment
        .clone()
        .ok_or_else(|| Error::internal("not a permission-set request"))?;
    let entry = entry_of(catalog, &current)?;
    if !entry.may_grant_assignment(&assignment) {
        return Err(Error::not_grantable(
            "the catalog entry no longer grants this permission set in this account",
        ));
    }
    super::grant::check_duration(entry, &current)?;
    protected
        .check_role(&assignment.account, "")
        .map_err(|err| Error::not_grantable(err.message))?;
    check_permission_set(identity_center, &assignment).await?;
    // Counted before the assignment exists, so a revoke of another grant of it that runs
    // meanwhile sees this one and leaves the assignment alone.
    ledger
        .hold_assignment(&assignment.holders_key(), id)
        .await?;
    let request_id = identity_center.create_assignment(&assignment).await?;
    wait_for(
        identity_center,
        Operation::CreateAssignment,
        &assignment.instance_arn,
        &request_id,
    )
    .await?;
    super::grant::commit_active(ledger, id, now).await
}

/// What revoking a permission-set grant did to Identity Center.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentRevoked {
    /// The request never held the assignment, or was revoked before.
    Nothing,
    /// Another grant still holds the assignment: it and its sessions stay, as that grant
    /// allows.
    StillHeld,
    /// The assignment is gone and the user's sessions issued before its removal are denied.
    Removed,
}

/// Ends a permission-set grant: REVOKED first (as for roles), then, if no other grant holds
/// the assignment, `DeleteAccountAssignment` polled to completion and checked gone, then the
/// deny of the user's sessions issued until then written into the permission set's inline
/// policy, provisioned to the account, polled, and read back. Idempotent; any step that fails
/// leaves the request REVOKED and the step `Retryable`.
pub async fn revoke_assignment<L: Ledger, I: IdentityCenter>(
    ledger: &L,
    identity_center: &I,
    id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(Status, AssignmentRevoked)> {
    let revoked = commit_revoked(ledger, id, reason, now).await?;
    if !matches!(revoked.status, Status::Revoked | Status::Audited) {
        return Ok((revoked.status, AssignmentRevoked::Nothing));
    }
    let assignment = revoked
        .assignment
        .clone()
        .ok_or_else(|| Error::internal("not a permission-set request"))?;
    let key = assignment.holders_key();
    if !ledger.release_assignment(&key, id).await? {
        return Ok((revoked.status, AssignmentRevoked::StillHeld));
    }
    let removed = remove_assignment(
        identity_center,
        revoked.expires_at.is_some(),
        &assignment,
        now,
    )
    .await?;
    ledger.unfence_assignment(&key, id).await?;
    Ok((revoked.status, removed))
}

/// Deletes the assignment and denies the sessions it gave; the caller holds the fence.
/// `was_active`: a grant had it ACTIVE, so sessions may exist even if the assignment is gone.
async fn remove_assignment<I: IdentityCenter>(
    identity_center: &I,
    was_active: bool,
    assignment: &Assignment,
    now: OffsetDateTime,
) -> Result<AssignmentRevoked> {
    let instance = assignment.instance_arn.as_str();
    let existed = match identity_center.delete_assignment(assignment).await? {
        Some(request_id) => {
            wait_for(
                identity_center,
                Operation::DeleteAssignment,
                instance,
                &request_id,
            )
            .await?;
            true
        }
        None => false,
    };
    if identity_center.is_assigned(assignment).await? {
        return Err(Error::retryable(format!(
            "the assignment of {} to user {} in {} is still there after its deletion",
            assignment.permission_set_arn, assignment.user_id, assignment.account
        )));
    }
    if !existed && !was_active {
        // Never active and never assigned: no session can exist.
        return Ok(AssignmentRevoked::Nothing);
    }
    // Every session the assignment gave was issued before the deletion was seen done; the
    // second covers sessions issued within the second it was seen.
    let issued_before = (identity_center.now() + Duration::seconds(1)).unix_timestamp();
    let longest = identity_center
        .permission_set(instance, &assignment.permission_set_arn)
        .await?
        .map_or(LONGEST_SESSION, |info| {
            Duration::seconds(info.session_duration_seconds.max(0)).min(LONGEST_SESSION)
        });
    let remove_after = issued_before + longest.whole_seconds() + user_deny::SKEW_SECONDS;
    let current = identity_center
        .inline_policy(instance, &assignment.permission_set_arn)
        .await?;
    let deny = user_deny::add_user_deny(
        current.as_deref(),
        &assignment.user_id,
        &assignment.account,
        issued_before,
        remove_after,
        now.unix_timestamp(),
        INLINE_POLICY_LIMIT,
    )?;
    identity_center
        .put_inline_policy(instance, &assignment.permission_set_arn, &deny.document)
        .await?;
    let request_id = identity_center
        .provision(
            instance,
            &assignment.permission_set_arn,
            &assignment.account,
        )
        .await?;
    wait_for(identity_center, Operation::Provision, instance, &request_id).await?;
    let read_back = identity_center
        .inline_policy(instance, &assignment.permission_set_arn)
        .await?;
    if !read_back.as_deref().is_some_and(|doc| {
        user_deny::denies_user(doc, &assignment.user_id, &assignment.account, issued_before)
    }) {
        return Err(Error::retryable(format!(
            "the deny for user {} is not in permission set {} after provisioning",
            assignment.user_id, assignment.permission_set_arn
        )));
    }
    Ok(AssignmentRevoked::Removed)
}

/// The holder the drift sweep fences an assignment with: no request id looks like it.
const SWEEPER: &str = "reconciler-drift-sweep";

/// One assignment the drift sweep removed: made outside trailgate (by hand, by another tool),
/// or left by a grant the ledger no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    pub permission_set_arn: String,
    pub account: String,
    pub user_id: String,
}

/// The drift sweep (the reconciler's, as SSO Elevator does it): every user assignment of a
/// permission set the catalog grants and Identity Center shows tagged `trailgate:managed=true`,
/// in each account the entry lists by id and each account a permission-set request in
/// `requests` names, that no request holds is removed as a revoke would remove it (fenced,
/// deleted, the user's sessions there denied). An assignment being granted is held (a grant
/// counts itself before it creates the assignment) and one being revoked is fenced, so
/// neither is touched. Returns what it removed and, per assignment, what it could not do.
pub async fn sweep_assignments<L: Ledger, I: IdentityCenter>(
    ledger: &L,
    identity_center: &I,
    catalog: &Catalog,
    requests: &[&AccessRequest],
    now: OffsetDateTime,
) -> (Vec<Swept>, Vec<(String, String)>) {
    let mut targets: Vec<(String, String, String)> = Vec::new();
    for entry in &catalog.entries {
        let Some(set) = &entry.permission_set else {
            continue;
        };
        for account in entry
            .accounts
            .iter()
            .filter(|a| crate::catalog::is_account_id(a))
        {
            targets.push((
                set.instance_arn.clone(),
                set.permission_set_arn.clone(),
                account.clone(),
            ));
        }
    }
    for assignment in requests.iter().filter_map(|r| r.assignment.as_ref()) {
        targets.push((
            assignment.instance_arn.clone(),
            assignment.permission_set_arn.clone(),
            assignment.account.clone(),
        ));
    }
    targets.sort();
    targets.dedup();
    let (mut swept, mut failed) = (Vec::new(), Vec::new());
    let mut managed: std::collections::BTreeMap<String, bool> = std::collections::BTreeMap::new();
    for (instance, set, account) in targets {
        let is_managed = match managed.get(&set) {
            Some(known) => *known,
            None => {
                let probe = Assignment {
                    instance_arn: instance.clone(),
                    permission_set_arn: set.clone(),
                    account: account.clone(),
                    user_id: String::new(),
                };
                let known = check_permission_set(identity_center, &probe).await.is_ok();
                managed.insert(set.clone(), known);
                known
            }
        };
        if !is_managed {
            continue;
        }
        let users = match identity_center
            .assigned_users(&instance, &set, &account)
            .await
        {
            Ok(users) => users,
            Err(err) => {
                failed.push((format!("{set} in {account}"), err.message));
                continue;
            }
        };
        for user_id in users {
            let assignment = Assignment {
                instance_arn: instance.clone(),
                permission_set_arn: set.clone(),
                account: account.clone(),
                user_id,
            };
            let key = assignment.holders_key();
            let outcome = async {
                if !ledger.release_assignment(&key, SWEEPER).await? {
                    return Ok(false);
                }
                let removed = remove_assignment(identity_center, true, &assignment, now).await;
                ledger.unfence_assignment(&key, SWEEPER).await?;
                removed.map(|_| true)
            };
            match outcome.await {
                Ok(true) => swept.push(Swept {
                    permission_set_arn: set.clone(),
                    account: account.clone(),
                    user_id: assignment.user_id.clone(),
                }),
                Ok(false) => {}
                Err(err) => failed.push((
                    format!("{set} in {account} for user {}", assignment.user_id),
                    err.message,
                )),
            }
        }
    }
    (swept, failed)
}

/// Polls an operation until it succeeds, with backoff, for at most [`OPERATION_BOUND`]:
/// `FAILED` is `NotGrantable` with AWS's reason, a wait past the bound `Retryable`.
async fn wait_for<I: IdentityCenter>(
    identity_center: &I,
    operation: Operation,
    instance_arn: &str,
    request_id: &str,
) -> Result<()> {
    let mut waited = std::time::Duration::ZERO;
    let mut pause = FIRST_PAUSE;
    loop {
        match identity_center
            .status(operation, instance_arn, request_id)
            .await?
        {
            OperationStatus::Succeeded => return Ok(()),
            OperationStatus::Failed(reason) => {
                return Err(Error::not_grantable(format!(
                    "IAM Identity Center's {operation:?} {request_id} failed: {reason}"
                )));
            }
            OperationStatus::InProgress if waited >= OPERATION_BOUND => {
                return Err(Error::retryable(format!(
                    "IAM Identity Center's {operation:?} {request_id} is still in progress after \
                     {}s",
                    waited.as_secs()
                )));
            }
            OperationStatus::InProgress => {}
        }
        let this_pause = pause.min(OPERATION_BOUND - waited);
        identity_center.pause(this_pause).await;
        waited += this_pause;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// Activation of any request: a role through [`super::activate`], a permission set through
/// [`activate_assignment`].
pub async fn activate_target<L: Ledger, R: Roles, I: IdentityCenter>(
    ledger: &L,
    roles: &R,
    identity_center: &I,
    catalog: &Catalog,
    contract: super::RoleContract<'_>,
    id: &str,
    now: OffsetDateTime,
) -> Result<String> {
    if load(ledger, id).await?.assignment.is_some() {
        activate_assignment(
            ledger,
            identity_center,
            catalog,
            contract.protected,
            id,
            now,
        )
        .await
    } else {
        super::activate(ledger, roles, catalog, contract, id, now).await
    }
}

/// Revoke of any request: a role through [`super::revoke`], a permission set through
/// [`revoke_assignment`].
pub async fn revoke_target<L: Ledger, R: Roles, I: IdentityCenter>(
    ledger: &L,
    roles: &R,
    identity_center: &I,
    id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Status> {
    if load(ledger, id).await?.assignment.is_some() {
        Ok(revoke_assignment(ledger, identity_center, id, reason, now)
            .await?
            .0)
    } else {
        super::revoke(ledger, roles, id, reason, now).await
    }
}

#[cfg(test)]
#[path = "identity_center_tests.rs"]
mod tests;
