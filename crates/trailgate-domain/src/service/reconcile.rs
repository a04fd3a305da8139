//! The reconciler: the backstop that revokes overdue grants, re-applies lost denies, collects
//! expired ones, and alerts on roles whose revocations are about to fill IAM's limit.

use super::revoke::{Applied, GC_MARGIN, apply_deny, other_inline_size};
use crate::catalog::role_name;
use crate::error::Result;
use crate::policy::{self, REVOCATIONS_POLICY_NAME};
use crate::ports::{IdentityCenter, Ledger, Notifier, Roles, Topic};
use crate::request::{AccessRequest, Status};
use crate::time::{format_utc, parse_utc};
use ::time::{Duration, OffsetDateTime};

/// How far back the reconciler looks for ended grants whose roles may hold expired statements.
const GC_LOOKBACK: Duration = Duration::days(1);

/// What one reconciler run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// ACTIVE grants past expiry that it revoked.
    pub revoked: Vec<String>,
    /// REVOKED or AUDITED requests whose deny was missing (a failed or lost write) and is back.
    pub reapplied: Vec<String>,
    /// Roles (ARNs) whose expired deny statements it removed.
    pub collected: Vec<String>,
    /// (request id or role ARN, error) for anything it could not do; the next run retries.
    pub failed: Vec<(String, String)>,
    /// Roles whose inline policies, after collection, use at least
    /// [`policy::CAPACITY_WARNING_PERCENT`] of IAM's limit: (role, characters used).
    pub near_capacity: Vec<(String, usize)>,
    /// Roles holding a role-wide fallback deny, which ends every trailgate session on the role
    /// issued before its time (role, that time, RFC 3339).
    pub fallbacks: Vec<(String, String)>,
    /// Identity Center assignments of managed permission sets that no request held (made by
    /// hand, or left behind), removed with their users' sessions denied.
    pub swept: Vec<super::Swept>,
}

impl ReconcileReport {
    /// Whether the run found something the state machine should have done.
    pub fn found_anything(&self) -> bool {
        !self.revoked.is_empty()
            || !self.reapplied.is_empty()
            || !self.failed.is_empty()
            || !self.near_capacity.is_empty()
            || !self.fallbacks.is_empty()
            || !self.swept.is_empty()
    }
}

/// The reconciler: the backstop for a stopped execution, a deleted or replaced state machine,
/// a revoke whose retries ran out, or a deny lost to a concurrent write. It
/// 1. revokes every ACTIVE grant past its expiry,
/// 2. re-applies the deny of every REVOKED or AUDITED request whose deny is still needed
///    (`expires_at` + the collection margin is in the future),
/// 3. collects expired deny statements on the roles it looked at,
/// 4. measures those roles' inline policies against IAM's limit.
///
/// Every step is idempotent and reads before it writes, so it is safe to run while executions
/// revoke. IAM has no conditional write, so a revoke racing this run's collection on the same
/// role could lose its statement; collection therefore runs before the re-apply step, and the
/// revoke itself reads its deny back, so a lost statement is re-applied by this run or the next.
/// Anything it has to do is reported on the alerts topic: it means the state machine did not.
pub async fn reconcile<L: Ledger, R: Roles, I: IdentityCenter, N: Notifier>(
    ledger: &L,
    roles: &R,
    identity_center: &I,
    notifier: &N,
    now: OffsetDateTime,
) -> Result<ReconcileReport> {
    reconcile_with(ledger, roles, identity_center, None, notifier, now).await
}

/// [`reconcile`], and with `sweep` the drift sweep of Identity Center assignments
/// ([`super::sweep_assignments`]) as its step 5: the reconciler function passes its catalog and
/// the Organization.
pub async fn reconcile_with<L: Ledger, R: Roles, I: IdentityCenter, N: Notifier>(
    ledger: &L,
    roles: &R,
    identity_center: &I,
    sweep: Option<super::SweepScope<'_>>,
    notifier: &N,
    now: OffsetDateTime,
) -> Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    let overdue = ledger.active_expiring_before(&format_utc(now)).await?;
    // Requests that ended within the look-back put their roles on the collection round even
    // once their own deny is no longer needed, so the last statements on a role go too.
    let looked_back = format_utc(now - GC_MARGIN - GC_LOOKBACK);
    let mut ended = ledger.expiring_after(Status::Revoked, &looked_back).await?;
    ended.extend(ledger.expiring_after(Status::Audited, &looked_back).await?);
    let still_needed_after = now - GC_MARGIN;
    let revoked: Vec<&AccessRequest> = ended
        .iter()
        .filter(|request| {
            request
                .expires_at
                .as_deref()
                .and_then(|e| parse_utc(e).ok())
                .is_some_and(|e| e > still_needed_after)
        })
        .collect();

    // By ARN, not name: the same role name in two accounts is two roles, and one account's
    // IAM failing is one entry in `failed`, never a stop for the others.
    let mut touched: Vec<&str> = overdue
        .iter()
        .chain(&ended)
        .map(|request| request.role_arn.as_str())
        .filter(|arn| role_name(arn).is_some())
        .collect();
    touched.sort_unstable();
    touched.dedup();
    for &role in &touched {
        match collect_role(roles, role, now).await {
            Ok(true) => report.collected.push(role.to_owned()),
            Ok(false) => {}
            Err(err) => report.failed.push((role.to_owned(), err.message)),
        }
    }

    for request in &overdue {
        let reason = "past expiry (reconciler)";
        match super::revoke_target(ledger, roles, identity_center, &request.id, reason, now).await {
            Ok(_) => report.revoked.push(request.id.clone()),
            Err(err) => report.failed.push((request.id.clone(), err.message)),
        }
    }
    for request in revoked.into_iter().filter(|r| r.assignment.is_none()) {
        match apply_deny(roles, request, now).await {
            Ok(Applied::Added | Applied::Fallback) => report.reapplied.push(request.id.clone()),
            Ok(Applied::AlreadyThere) => {}
            Err(err) => report.failed.push((request.id.clone(), err.message)),
        }
    }
    // A permission-set grant's deny lives in the permission set, and its sessions may outlive
    // the grant's expiry by the set's session duration: every permission-set request that
    // ended within the look-back is checked there.
    for request in ended.iter().filter(|r| r.assignment.is_some()) {
        match super::recheck_user_deny(ledger, identity_center, request, now).await {
            Ok(true) => report.reapplied.push(request.id.clone()),
            Ok(false) => {}
            Err(err) => report.failed.push((request.id.clone(), err.message)),
        }
    }
    if let Some(scope) = sweep {
        let seen: Vec<&AccessRequest> = overdue.iter().chain(&ended).collect();
        let (swept, failed) =
            super::sweep_assignments(ledger, identity_center, scope, &seen, now).await;
        report.swept = swept;
        report.failed.extend(failed);
    }
    // Measured last, so the figure includes what this run wrote. A role near the limit is
    // reported before a revoke has to fall back; one holding a fallback, while it lasts.
    for role in &touched {
        match measure_role(roles, role).await {
            Ok((used, fallback_before)) => {
                if used * 100 >= policy::INLINE_POLICY_LIMIT * policy::CAPACITY_WARNING_PERCENT {
                    report.near_capacity.push(((*role).to_owned(), used));
                }
                if let Some(before) = fallback_before {
                    report.fallbacks.push(((*role).to_owned(), before));
                }
            }
            Err(err) => report.failed.push(((*role).to_owned(), err.message)),
        }
    }

    if report.found_anything() {
        let message = format!(
            "The reconciler found grants the state machine did not end, or roles running out of room for revocations.\nRevoked (ACTIVE past expiry): {:?}\nDeny re-applied: {:?}\nFailed (will retry): {:?}\nRoles whose inline policies use {}% or more of IAM's {} characters (role, used): {:?}\nRoles with a role-wide fallback deny, which also ended the other grants' sessions issued before its time (they must fetch new credentials): {:?}\nIdentity Center assignments no request held, removed and their sessions denied (permission set, account, user or group with the members denied): {:?}\n",
            report.revoked,
            report.reapplied,
            report.failed,
            policy::CAPACITY_WARNING_PERCENT,
            policy::INLINE_POLICY_LIMIT,
            report.near_capacity,
            report.fallbacks,
            report
                .swept
                .iter()
                .map(|s| (
                    s.permission_set_arn.as_str(),
                    s.account.as_str(),
                    match &s.group_id {
                        Some(group) => format!("group {group} ({})", s.members.join(", ")),
                        None => format!("user {}", s.user_id),
                    }
                ))
                .collect::<Vec<_>>()
        );
        let subject = if !report.swept.is_empty() {
            "trailgate: reconciler removed Identity Center assignments no request held"
        } else if report.revoked.is_empty()
            && report.reapplied.is_empty()
            && report.failed.is_empty()
        {
            "trailgate: a target role is running out of room for revocations"
        } else {
            "trailgate: reconciler revoked overdue grants"
        };
        notifier
            .publish(Topic::Alerts, subject, &message, None)
            .await?;
    }
    Ok(report)
}

/// Removes the expired deny statements of one role's revocations policy. Returns whether it
/// wrote.
async fn collect_role<R: Roles>(roles: &R, role: &str, now: OffsetDateTime) -> Result<bool> {
    let Some(current) = roles.inline_policy(role, REVOCATIONS_POLICY_NAME).await? else {
        return Ok(false);
    };
    match policy::collect_garbage(&current, now.unix_timestamp())? {
        None => Ok(false),
        Some(None) => {
            roles
                .delete_inline_policy(role, REVOCATIONS_POLICY_NAME)
                .await?;
            Ok(true)
        }
        Some(Some(smaller)) => {
            roles
                .put_inline_policy(role, REVOCATIONS_POLICY_NAME, &smaller)
                .await?;
            Ok(true)
        }
    }
}

/// The size IAM counts for all of a role's inline policies, and the issue bound of a role-wide
/// fallback deny if one is in force.
async fn measure_role<R: Roles>(roles: &R, role: &str) -> Result<(usize, Option<String>)> {
    let others = other_inline_size(roles, role).await?;
    let Some(current) = roles.inline_policy(role, REVOCATIONS_POLICY_NAME).await? else {
        return Ok((others, None));
    };
    let fallback = policy::contents(&current)?
        .fallback_before
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .map(format_utc);
    Ok((others + policy::policy_size(&current), fallback))
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
