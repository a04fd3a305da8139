//! Permission-set grants through IAM Identity Center: which Identity Center user the requester
//! is, the account assignment made and removed (each polled to completion), two grants that
//! share one assignment, and the deny that ends the user's sessions already issued.
//!
//! Identity Center keeps one assignment per (permission set, account, user), so two grants of
//! the same permission set to the same user in the same account share it: the ledger counts
//! its holders, and only the revoke that releases the last one removes it, under a fence that
//! keeps a new grant from taking it while the removal runs (AWS TEAM's bug #279 is the first
//! revoke deleting the assignment under the second grant).

use super::identity_center_budget::Budgeted;
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
    let identity_center = &Budgeted::new(ledger, identity_center, id);
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
    // Before the assignment is made: a permission set granted early is granted.
    super::grant::refuse_before_start(&current, now)?;
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
    let info = check_permission_set(identity_center, &assignment).await?;
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
    super::grant::commit_active(ledger, id, Some(&info.name), now).await
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
    let identity_center = &Budgeted::new(ledger, identity_center, id);
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
    deny_sessions(
        identity_center,
        instance,
        &assignment.permission_set_arn,
        &assignment.account,
        std::slice::from_ref(&assignment.user_id),
        now,
    )
    .await?;
    Ok(AssignmentRevoked::Removed)
}

/// Denies `users`' sessions of the permission set in `account` issued until now (the second
/// after, for sessions issued within it), in one write of the inline policy, provisioned to
/// the account, polled, and read back; kept for the permission set's session duration.
async fn deny_sessions<I: IdentityCenter>(
    identity_center: &I,
    instance: &str,
    permission_set_arn: &str,
    account: &str,
    users: &[String],
    now: OffsetDateTime,
) -> Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    // Every session the assignment gave was issued before the deletion was seen done; the
    // second covers sessions issued within the second it was seen.
    let issued_before = (identity_center.now() + Duration::seconds(1)).unix_timestamp();
    let longest = identity_center
        .permission_set(instance, permission_set_arn)
        .await?
        .map_or(LONGEST_SESSION, |info| {
            Duration::seconds(info.session_duration_seconds.max(0)).min(LONGEST_SESSION)
        });
    let remove_after = issued_before + longest.whole_seconds() + user_deny::SKEW_SECONDS;
    let mut document = identity_center
        .inline_policy(instance, permission_set_arn)
        .await?;
    for user in users {
        let deny = user_deny::add_user_deny(
            document.as_deref(),
            user,
            account,
            issued_before,
            remove_after,
            now.unix_timestamp(),
            INLINE_POLICY_LIMIT,
        )?;
        document = Some(deny.document);
    }
    let Some(document) = document else {
        return Ok(());
    };
    identity_center
        .put_inline_policy(instance, permission_set_arn, &document)
        .await?;
    let request_id = identity_center
        .provision(instance, permission_set_arn, account)
        .await?;
    wait_for(identity_center, Operation::Provision, instance, &request_id).await?;
    let read_back = identity_center
        .inline_policy(instance, permission_set_arn)
        .await?;
    if let Some(missing) = users.iter().find(|user| {
        !read_back
            .as_deref()
            .is_some_and(|doc| user_deny::denies_user(doc, user, account, issued_before))
    }) {
        return Err(Error::retryable(format!(
            "the deny for user {missing} is not in permission set {permission_set_arn} after \
             provisioning"
        )));
    }
    Ok(())
}

/// Removes a group's assignment of a managed permission set (trailgate assigns only users, so
/// any group assignment of one is drift) and denies the sessions of the group's members in the
/// account, except members a grant holds a user assignment for: their sessions are the
/// grant's. Returns the members denied.
async fn sweep_group<I: IdentityCenter>(
    identity_center: &I,
    instance: &str,
    permission_set_arn: &str,
    account: &str,
    group_id: &str,
    now: OffsetDateTime,
) -> Result<Vec<String>> {
    // Read before the removal: a member removed from the group meanwhile still had sessions.
    let members = identity_center.group_members(instance, group_id).await?;
    if let Some(request_id) = identity_center
        .delete_group_assignment(instance, permission_set_arn, account, group_id)
        .await?
    {
        wait_for(
            identity_center,
            Operation::DeleteAssignment,
            instance,
            &request_id,
        )
        .await?;
    }
    if identity_center
        .assigned_groups(instance, permission_set_arn, account)
        .await?
        .iter()
        .any(|g| g == group_id)
    {
        return Err(Error::retryable(format!(
            "the assignment of {permission_set_arn} to group {group_id} in {account} is still \
             there after its deletion"
        )));
    }
    let mut denied = Vec::new();
    for user_id in members {
        let own = Assignment {
            instance_arn: instance.to_owned(),
            permission_set_arn: permission_set_arn.to_owned(),
            account: account.to_owned(),
            user_id: user_id.clone(),
        };
        if !identity_center.is_assigned(&own).await? {
            denied.push(user_id);
        }
    }
    deny_sessions(
        identity_center,
        instance,
        permission_set_arn,
        account,
        &denied,
        now,
    )
    .await?;
    Ok(denied)
}

/// The holder the drift sweep fences an assignment with: no request id looks like it.
const SWEEPER: &str = "reconciler-drift-sweep";

/// One assignment the drift sweep removed: made outside trailgate (by hand, by another tool),
/// or left by a grant the ledger no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    pub permission_set_arn: String,
    pub account: String,
    /// The user of a user assignment; empty for a group's.
    pub user_id: String,
    /// The group of a group assignment, whose members' sessions were denied (`members`).
    pub group_id: Option<String>,
    pub members: Vec<String>,
}

/// What the drift sweep looks at: the catalog's permission-set entries, and the Organization
/// (when the reconciler could read it) for the accounts an entry covers through an OU.
#[derive(Debug, Clone, Copy)]
pub struct SweepScope<'a> {
    pub catalog: &'a Catalog,
    pub organization: Option<&'a crate::organization::Organization>,
}

impl SweepScope<'_> {
    /// The accounts `entry` covers: those it lists by id, and, with the Organization, every
    /// active account under an OU it lists (never the management account).
    fn accounts_of(&self, entry: &crate::catalog::Entry) -> Vec<String> {
        let mut accounts: Vec<String> = entry
            .accounts
            .iter()
            .filter(|a| crate::catalog::is_account_id(a))
            .cloned()
            .collect();
        if let Some(organization) = self.organization {
            for account in &organization.accounts {
                if account.is_active()
                    && account.id != organization.management_account
                    && entry.covers_account(&account.id, &account.ous)
                {
                    accounts.push(account.id.clone());
                }
            }
        }
        accounts
    }
}

/// The drift sweep (the reconciler's, as SSO Elevator does it): every user assignment of a
/// permission set the catalog grants and Identity Center shows tagged `trailgate:managed=true`,
/// in each account the entry covers (by id, or under its OUs when the Organization was read)
/// and each account a permission-set request in `requests` names, that no request holds is
/// removed as a revoke would remove it (fenced, deleted, the user's sessions there denied). An
/// assignment being granted is held (a grant counts itself before it creates the assignment)
/// and one being revoked is fenced, so neither is touched. Returns what it removed and, per
/// assignment, what it could not do.
pub async fn sweep_assignments<L: Ledger, I: IdentityCenter>(
    ledger: &L,
    identity_center: &I,
    scope: SweepScope<'_>,
    requests: &[&AccessRequest],
    now: OffsetDateTime,
) -> (Vec<Swept>, Vec<(String, String)>) {
    let identity_center = &Budgeted::new(ledger, identity_center, SWEEPER);
    let mut targets: Vec<(String, String, String)> = Vec::new();
    for entry in &scope.catalog.entries {
        let Some(set) = &entry.permission_set else {
            continue;
        };
        for account in scope.accounts_of(entry) {
            targets.push((
                set.instance_arn.clone(),
                set.permission_set_arn.clone(),
                account,
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
                    group_id: None,
                    members: Vec::new(),
                }),
                Ok(false) => {}
                Err(err) => failed.push((
                    format!("{set} in {account} for user {}", assignment.user_id),
                    err.message,
                )),
            }
        }
        let groups = match identity_center
            .assigned_groups(&instance, &set, &account)
            .await
        {
            Ok(groups) => groups,
            Err(err) => {
                failed.push((format!("{set} in {account} (groups)"), err.message));
                continue;
            }
        };
        for group_id in groups {
            match sweep_group(identity_center, &instance, &set, &account, &group_id, now).await {
                Ok(members) => swept.push(Swept {
                    permission_set_arn: set.clone(),
                    account: account.clone(),
                    user_id: String::new(),
                    group_id: Some(group_id),
                    members,
                }),
                Err(err) => failed.push((
                    format!("{set} in {account} for group {group_id}"),
                    err.message,
                )),
            }
        }
    }
    (swept, failed)
}

/// The reconciler's re-check of an ended permission-set grant's deny (as it re-applies role
/// denies): while sessions the grant gave may still live (its revoke plus the permission set's
/// session duration), the permission set's inline policy must deny the user's sessions in the
/// account issued before the revoke. If it does not (a lost write, a hand edit), the fenced
/// removal runs again as the drift sweep runs it: the assignment checked gone and the deny
/// written, provisioned and read back. An assignment another grant holds now is that grant's
/// and is left alone. `true` when it re-applied the deny.
pub async fn recheck_user_deny<L: Ledger, I: IdentityCenter>(
    ledger: &L,
    identity_center: &I,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Result<bool> {
    let identity_center = &Budgeted::new(ledger, identity_center, SWEEPER);
    let (Some(assignment), Some(revoked_at)) = (&request.assignment, &request.revoked_at) else {
        return Ok(false);
    };
    if request.expires_at.is_none() {
        // Never active: the revoke had no sessions to deny.
        return Ok(false);
    }
    let revoked_at = crate::time::parse_utc(revoked_at)?;
    let instance = assignment.instance_arn.as_str();
    let longest = identity_center
        .permission_set(instance, &assignment.permission_set_arn)
        .await?
        .map_or(LONGEST_SESSION, |info| {
            Duration::seconds(info.session_duration_seconds.max(0)).min(LONGEST_SESSION)
        });
    if now > revoked_at + longest {
        // Every session the grant gave has expired; the deny may have been collected.
        return Ok(false);
    }
    let current = identity_center
        .inline_policy(instance, &assignment.permission_set_arn)
        .await?;
    if current.as_deref().is_some_and(|doc| {
        user_deny::denies_user(
            doc,
            &assignment.user_id,
            &assignment.account,
            revoked_at.unix_timestamp(),
        )
    }) {
        return Ok(false);
    }
    let key = assignment.holders_key();
    if !ledger.release_assignment(&key, SWEEPER).await? {
        return Ok(false);
    }
    let removed = remove_assignment(identity_center, true, assignment, now).await;
    ledger.unfence_assignment(&key, SWEEPER).await?;
    removed.map(|_| true)
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
