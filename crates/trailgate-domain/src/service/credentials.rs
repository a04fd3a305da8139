//! Vending STS credentials for an ACTIVE grant to its requester.

use super::{commit, load, with_retry};
use crate::error::{Error, Result};
use crate::ledger::change;
use crate::policy::{self, REQUEST_TAG};
use crate::ports::{AssumeRequest, CredentialIssuer, IssuedCredentials, Ledger};
use crate::request::{AccessRequest, Caller, Status};
use crate::time::parse_utc;
use ::time::OffsetDateTime;

/// STS's bounds on `DurationSeconds` for a role assumed by a role (role chaining caps it at 1 h).
const MIN_SESSION: i64 = 900;
const MAX_SESSION: i64 = 3600;

/// Vends credentials for an ACTIVE grant to its requester.
pub async fn vend<L: Ledger, C: CredentialIssuer>(
    ledger: &L,
    issuer: &C,
    caller: &Caller,
    id: &str,
    now: OffsetDateTime,
) -> Result<IssuedCredentials> {
    let current = load(ledger, id).await?;
    if current.requester != caller.arn {
        return Err(Error::not_found(format!("no request `{id}`")));
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
    let assume = AssumeRequest {
        role_arn: current.role_arn.clone(),
        session_name: session_name(&current),
        source_identity: current.requester_identity.clone(),
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
