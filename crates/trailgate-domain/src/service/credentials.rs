//! Vending STS credentials for an ACTIVE grant to its requester.

use super::{commit, is_requester_principal, load, with_retry};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ledger::change;
use crate::policy::{self, REQUEST_TAG};
use crate::ports::{AssumeRequest, CredentialIssuer, IssuedCredentials, Ledger};
use crate::request::{AccessRequest, Caller, Status};
use crate::time::parse_utc;
use ::time::{Duration, OffsetDateTime};

/// STS's bounds on `DurationSeconds` for a role assumed by a role (role chaining caps it at 1 h).
const MIN_SESSION: i64 = 900;
const MAX_SESSION: i64 = 3600;

/// Vends credentials for an ACTIVE grant to its requester.
pub async fn vend<L: Ledger, C: CredentialIssuer>(
    ledger: &L,
    issuer: &C,
    catalog: &Catalog,
    caller: &Caller,
    id: &str,
    now: OffsetDateTime,
) -> Result<IssuedCredentials> {
    let current = load(ledger, id).await?;
    if !is_requester_principal(&current, caller) {
        return Err(Error::not_found(format!("no request `{id}`")));
    }
    if let Some(assignment) = &current.assignment {
        // Identity Center issues the sessions of a permission set; trailgate vends none.
        return Err(Error::conflict(format!(
            "request `{id}` grants a permission set: sign in through the AWS access portal \
             and choose account {}",
            assignment.account
        )));
    }
    if current.status != Status::Active {
        return Err(Error::conflict(format!(
            "the request is {}: credentials are only issued while it is ACTIVE",
            current.status
        )));
    }
    let expires_at_text = current
        .expires_at
        .clone()
        .ok_or_else(|| Error::internal("an ACTIVE request has no expires_at"))?;
    let expires_at = parse_utc(&expires_at_text)?;
    let remaining = (expires_at - now).whole_seconds();
    if remaining <= 0 {
        return Err(Error::conflict("the grant has expired"));
    }
    within_todays_catalog(catalog, &current, expires_at - now)?;
    let assume = AssumeRequest {
        role_arn: current.role_arn.clone(),
        session_name: session_name(&current),
        source_identity: current.source_identity(),
        tags: vec![(REQUEST_TAG.to_owned(), current.id.clone())],
        session_policy: policy::session_policy(&expires_at_text),
        duration_seconds: remaining.clamp(MIN_SESSION, MAX_SESSION) as i32,
    };
    let mut credentials = issuer.assume(&assume).await?;
    // STS never issues less than 15 minutes; the session policy denies everything after
    // expires_at, and the expiration we report makes SDKs refresh (and be refused) then.
    if let Ok(sts_expiration) = parse_utc(&credentials.expiration)
        && sts_expiration > expires_at
    {
        credentials.expiration = expires_at_text.clone();
    }
    // Record the issue; if the request was revoked meanwhile the commit conflicts and the
    // credentials are withheld (and the revocation deny covers them anyway).
    with_retry(|| async {
        let current = load(ledger, id).await?;
        if current.status != Status::Active {
            return Err(Error::conflict(format!(
                "the request is {}",
                current.status
            )));
        }
        let mut next = current.clone();
        next.credentials_issued += 1;
        let detail = Some(format!(
            "session {} for {}s",
            assume.session_name, assume.duration_seconds
        ));
        commit(
            ledger,
            change(
                Some(&current),
                next,
                &caller.arn,
                "CredentialsIssued",
                detail,
                now,
            )?,
        )
        .await
    })
    .await?;
    Ok(credentials)
}

/// The record a vend trusts must still be one today's catalog allows: its entry exists, names
/// the same role, allows its duration, and the time left is no more than that. The ledger
/// alone is not enough: whoever can write the table could point an ACTIVE record at another
/// role or push its `expires_at` out by a week.
fn within_todays_catalog(
    catalog: &Catalog,
    request: &AccessRequest,
    remaining: Duration,
) -> Result<()> {
    let entry = catalog.entry(&request.catalog_id).ok_or_else(|| {
        Error::not_grantable(format!(
            "catalog entry `{}` no longer exists",
            request.catalog_id
        ))
    })?;
    if !entry.may_grant(&request.role_arn) {
        return Err(Error::not_grantable(
            "the request's role is not its catalog entry's role",
        ));
    }
    let max = entry.max_duration()?;
    if request.duration() > max || remaining > max {
        return Err(Error::not_grantable(format!(
            "the grant is longer than the {} its catalog entry allows",
            crate::time::format_duration(max)
        )));
    }
    Ok(())
}

/// `tg-<requester>-<request id>`, cut to STS's 64 characters, so CloudTrail shows both.
pub fn session_name(request: &AccessRequest) -> String {
    let who: String = request
        .requester_identity
        .chars()
        .take(64 - 4 - request.id.len())
        .collect();
    format!("tg-{who}-{}", request.id)
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
