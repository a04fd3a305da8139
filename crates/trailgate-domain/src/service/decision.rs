//! Deciding: the confirm page's review and the one decision core that links, signed callers
//! and Slack buttons share (self-approval, quorum, window, conflicts).

use super::{approver_for, commit, entry_of, is_requester_person, load, with_retry};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ledger::{Origin, change};
use crate::link::{LinkKey, LinkParams};
use crate::ports::{Ledger, Workflow};
use crate::request::{AccessRequest, Caller, Decision, Status};
use crate::slack;
use crate::time::{format_utc, parse_utc};
use ::time::OffsetDateTime;
use serde_json::json;

/// What one approver decides, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub approve: bool,
    /// Trimmed and cut to 500 characters; an empty comment is none.
    pub comment: Option<String>,
    pub now: OffsetDateTime,
    /// Where the decision came from (source IP, user agent), recorded on its ledger event.
    pub origin: Origin,
}

/// What the confirm page shows.
#[derive(Debug, Clone)]
pub struct Review {
    pub request: AccessRequest,
    pub approver_id: String,
    pub entry_description: String,
}

/// Verifies a link and returns what the approver should review. Changes nothing.
pub async fn review<L: Ledger>(
    ledger: &L,
    catalog: &Catalog,
    key: &LinkKey,
    link: &LinkParams,
    now: OffsetDateTime,
) -> Result<Review> {
    // The signature first: a forged link costs an HMAC, not a ledger read.
    key.verify_signature(link, now.unix_timestamp())?;
    // Unknown requests get the same answer as bad links: a link must not reveal what exists.
    let request = ledger
        .get(&link.request_id)
        .await?
        .ok_or_else(|| Error::forbidden("this link is not valid"))?;
    // Recomputed from the fields, never read from `content_hash`: whoever can write the table
    // could change the duration or the role and leave the stored hash as it was.
    link.binds(&request.compute_content_hash())?;
    let entry = entry_of(catalog, &request)?;
    let approver = entry
        .approver(&link.approver_id)
        .ok_or_else(|| Error::forbidden("you are no longer an approver for this role"))?;
    if catalog.is_requester(&request, &approver.id) {
        return Err(Error::forbidden("you cannot approve your own request"));
    }
    Ok(Review {
        request,
        approver_id: approver.id.clone(),
        entry_description: entry.description.clone(),
    })
}

/// Records the decision of the approver a verified link names. See [`decide_as`].
pub async fn decide<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    catalog: &Catalog,
    key: &LinkKey,
    link: &LinkParams,
    verdict: Verdict,
) -> Result<AccessRequest> {
    // The link is verified once: the content hash it is bound to never changes after intake,
    // and `decide_as` re-checks everything a decision can change on every attempt.
    let review = review(ledger, catalog, key, link, verdict.now).await?;
    decide_as(
        ledger,
        workflow,
        catalog,
        &link.request_id,
        &review.approver_id,
        verdict,
    )
    .await
}

/// Records the decision of a SigV4-signed caller (`jitctl approve|deny`): the caller's ARN must
/// be one of the entry's approvers and must not be the requester. See [`decide_as`].
pub async fn decide_by_principal<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    catalog: &Catalog,
    caller: &Caller,
    id: &str,
    verdict: Verdict,
) -> Result<AccessRequest> {
    let request = load(ledger, id).await?;
    if is_requester_person(catalog, &request, caller) {
        return Err(Error::forbidden("you cannot approve your own request"));
    }
    let entry = entry_of(catalog, &request)?;
    // Whoever may not decide a request is not told it exists (as `GET /requests/{id}`).
    let approver = approver_for(catalog, entry, caller)
        .ok_or_else(|| Error::not_found(format!("no request `{id}`")))?;
    decide_as(ledger, workflow, catalog, id, &approver.id, verdict).await
}

/// What Slack sent to the interactivity endpoint: its two signature headers and the raw body.
#[derive(Debug, Clone, Copy)]
pub struct SlackDelivery<'a> {
    /// `X-Slack-Request-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-Slack-Signature`.
    pub signature: Option<&'a str>,
    /// The body exactly as received (the signature covers its bytes).
    pub body: &'a [u8],
}

/// Records the decision of a Slack button press: the request must carry Slack's signature
/// under `signing_secret` and be fresh ([`slack::verify`]), and the Slack user must be a
/// catalog person ([`Catalog::person_of_slack`]); that person then decides through
/// [`decide_as`], with every rule of a link (approver, not the requester, once, in the window,
/// not after the request is decided). Returns the request as it now stands and the press.
pub async fn decide_by_slack<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    catalog: &Catalog,
    signing_secret: &[u8],
    delivery: SlackDelivery<'_>,
    now: OffsetDateTime,
    origin: Origin,
) -> Result<(AccessRequest, slack::Interaction)> {
    // The signature first: a forged request costs an HMAC, not a ledger read.
    slack::verify(
        signing_secret,
        delivery.timestamp,
        delivery.signature,
        delivery.body,
        now.unix_timestamp(),
    )
    .map_err(|error| Error::forbidden(format!("{}: {error}", error.name())))?;
    let press = slack::parse_interaction(delivery.body)
        .map_err(|error| Error::invalid("payload", error.to_string()))?;
    let person = catalog
        .person_of_slack(&press.team_id, &press.user_id)
        .ok_or_else(|| Error::forbidden("this Slack user is not a person of trailgate's catalog"))?
        .to_owned();
    let verdict = Verdict {
        approve: press.value.decision == slack::ButtonDecision::Approve,
        comment: None,
        now,
        origin,
    };
    let decided = decide_as(
        ledger,
        workflow,
        catalog,
        &press.value.request_id,
        &person,
        verdict,
    )
    .await?;
    Ok((decided, press))
}

/// Records one approver's decision: the core shared by the link and the signed-principal paths,
/// so both obey the same rules. When it decides the request (the first deny, or the
/// quorum-th approval) the waiting execution is told. Returns the request as it now stands.
pub async fn decide_as<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    catalog: &Catalog,
    id: &str,
    approver_id: &str,
    verdict: Verdict,
) -> Result<AccessRequest> {
    let Verdict {
        approve,
        comment,
        now,
        origin,
    } = verdict;
    let comment = comment
        .map(|c| c.trim().chars().take(500).collect::<String>())
        .filter(|c| !c.is_empty());
    let origin = &origin;
    let decided = with_retry(|| {
        let comment = comment.clone();
        async move {
            let current = load(ledger, id).await?;
            let entry = entry_of(catalog, &current)?;
            // Re-checked on every attempt: the catalog is per cold start, the request is not.
            let approver = entry
                .approver(approver_id)
                .ok_or_else(|| Error::forbidden("you are no longer an approver for this role"))?;
            if catalog.is_requester(&current, &approver.id) {
                return Err(Error::forbidden("you cannot approve your own request"));
            }
            if let Some(previous) = current.decisions.get(approver_id) {
                return Err(Error::conflict(format!(
                    "you already {} this request at {}",
                    if previous.approve {
                        "approved"
                    } else {
                        "denied"
                    },
                    previous.at
                )));
            }
            if current.status.is_decided() {
                return Err(Error::conflict(format!(
                    "this request is already {}{}",
                    current.status,
                    current
                        .outcome
                        .as_deref()
                        .map(|o| format!(": {o}"))
                        .unwrap_or_default()
                )));
            }
            // A link cannot outlive the window, but a signed caller has no link: the window is
            // enforced here for both, so a decision never lands after the execution gave up.
            if parse_utc(&current.approval_expires_at)? <= now {
                return Err(Error::conflict(
                    "the approval window has closed; the request is expiring",
                ));
            }
            // Before the approval step stored the token nobody has been asked yet, and a
            // decision could not be handed to the execution.
            if current.task_token.is_none() {
                return Err(Error::conflict(
                    "the request is not open for approval yet; try again in a moment",
                ));
            }
            let mut next = current.clone();
            next.decisions.insert(
                approver_id.to_owned(),
                Decision {
                    approve,
                    at: format_utc(now),
                    comment,
                },
            );
            let action = if approve { "Approved" } else { "Denied" };
            if !approve {
                next.status = Status::Denied;
                next.outcome = Some(format!("denied by {approver_id}"));
            } else if next.approvals() >= entry.quorum as usize {
                next.status = Status::Approved;
                let approvers: Vec<&str> = next
                    .decisions
                    .iter()
                    .filter(|(_, d)| d.approve)
                    .map(|(id, _)| id.as_str())
                    .collect();
                next.outcome = Some(format!("approved by {}", approvers.join(", ")));
            }
            // The token is kept only while the execution waits for it: once the request is
            // decided it is cleared in the same write and handed to the workflow from memory.
            let token = current.task_token.clone();
            if next.status.is_decided() {
                next.task_token = None;
            }
            let actor = format!("approver:{approver_id}");
            let decided = commit(
                ledger,
                change(Some(&current), next, &actor, action, None, now)?.with_origin(origin),
            )
            .await?;
            Ok((decided, token))
        }
    })
    .await?;
    let (decided, token) = decided;
    if decided.status.is_decided() {
        let token = token
            .as_deref()
            .ok_or_else(|| Error::internal("the request has no task token"))?;
        // The ledger already holds the decision; if the execution no longer waits (its window
        // closed a moment ago), the expiry step records that and no access is granted.
        workflow
            .complete(token, &json!({"outcome": decided.status.as_str()}))
            .await?;
    }
    Ok(decided)
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
