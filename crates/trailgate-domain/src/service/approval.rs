//! Asking for approval: the task token stored and one signed link per approver, break-glass
//! self-approval with its alerts, and the approval window's expiry.

use super::messages::{approval_message, break_glass_message, notify_message};
use super::{commit, entry_of, load, with_retry};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ledger::change;
use crate::link::LinkKey;
use crate::ports::{Ledger, Notifier, Topic};
use crate::request::{Decision, Status};
use crate::time::{format_utc, parse_utc};
use ::time::OffsetDateTime;

/// What approval messages need besides the request.
pub struct ApprovalSettings<'a> {
    pub key: &'a LinkKey,
    /// Base URL of the public decision route, without a trailing slash.
    pub decision_base_url: &'a str,
}

/// The state machine's call: which request, the token its execution waits on, and when.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalTask<'a> {
    pub id: &'a str,
    /// Never logged, e-mailed or returned: it is written to the ledger and nowhere else.
    pub task_token: &'a str,
    pub now: OffsetDateTime,
}

/// Stores the task token and sends one message per approver, each with its own signed link.
/// Returns the ids of the approvers notified.
pub async fn request_approval<L: Ledger, N: Notifier>(
    ledger: &L,
    notifier: &N,
    catalog: &Catalog,
    settings: &ApprovalSettings<'_>,
    task: ApprovalTask<'_>,
) -> Result<Vec<String>> {
    let ApprovalTask {
        id,
        task_token,
        now,
    } = task;
    if task_token.is_empty() {
        return Err(Error::internal("no task token was passed"));
    }
    let (request, entry) = with_retry(|| async {
        let current = load(ledger, id).await?;
        if current.status != Status::Pending {
            return Err(Error::conflict(format!(
                "the request is {}, not PENDING",
                current.status
            )));
        }
        let entry = entry_of(catalog, &current)?.clone();
        let mut next = current.clone();
        next.task_token = Some(task_token.to_owned());
        let eligible: Vec<&str> = entry
            .approvers
            .iter()
            .filter(|a| !catalog.is_requester(&current, &a.id))
            .map(|a| a.id.as_str())
            .collect();
        let informed: Vec<&str> = entry
            .notify
            .iter()
            .filter(|w| !catalog.is_requester(&current, &w.id))
            .map(|w| w.id.as_str())
            .collect();
        let detail = Some(if informed.is_empty() {
            format!("notifying {}", eligible.join(", "))
        } else {
            format!(
                "notifying {}; informing {}",
                eligible.join(", "),
                informed.join(", ")
            )
        });
        let stored = commit(
            ledger,
            change(
                Some(&current),
                next,
                "trailgate:approval",
                "ApprovalRequested",
                detail,
                now,
            )?,
        )
        .await?;
        Ok((stored, entry))
    })
    .await?;

    let expires = parse_utc(&request.approval_expires_at)?.unix_timestamp();
    let mut notified = Vec::new();
    for approver in &entry.approvers {
        if catalog.is_requester(&request, &approver.id) {
            // An approver is never the requester: they get no link for their own request.
            continue;
        }
        let link = settings
            .key
            .sign(&request.id, &approver.id, expires, &request.content_hash);
        let url = format!(
            "{}/decisions/{}?{}",
            settings.decision_base_url,
            request.id,
            link.query()
        );
        let (subject, body) = approval_message(&request, &entry, &url);
        notifier
            .publish(Topic::Approvals, &subject, &body, Some(&approver.email))
            .await?;
        notified.push(approver.id.clone());
    }
    if notified.len() < entry.quorum as usize {
        return Err(Error::forbidden(format!(
            "only {} approver(s) other than the requester can decide, the quorum is {}",
            notified.len(),
            entry.quorum
        )));
    }
    // Told, not asked: the same facts and context, no link.
    let (subject, body) = notify_message(&request, &entry);
    for watcher in &entry.notify {
        if !catalog.is_requester(&request, &watcher.id) {
            notifier
                .publish(Topic::Approvals, &subject, &body, Some(&watcher.email))
                .await?;
        }
    }
    Ok(notified)
}

/// The decision key a break-glass self-approval is recorded under (approver ids cannot
/// contain spaces, so it never collides with a catalog approver).
pub const BREAK_GLASS_DECISION: &str = "break glass";

/// Break-glass: records the requester's own approval and alerts every approver and the alerts
/// topic at once. Returns the approver ids alerted.
///
/// Re-running it (a retried step) sends the alerts again rather than risk sending none: an
/// extra e-mail is cheap, an unnoticed emergency grant is not.
pub async fn break_glass<L: Ledger, N: Notifier>(
    ledger: &L,
    notifier: &N,
    catalog: &Catalog,
    id: &str,
    now: OffsetDateTime,
) -> Result<Vec<String>> {
    let (request, entry) = with_retry(|| async {
        let current = load(ledger, id).await?;
        let entry = entry_of(catalog, &current)?.clone();
        // Both the record and today's catalog must say break-glass: an entry turned back into
        // a normal one stops skipping approval at once.
        if !current.break_glass || !entry.break_glass {
            return Err(Error::forbidden(format!(
                "request {id} is not a break-glass request: it needs approval"
            )));
        }
        if current.duration() > crate::catalog::BREAK_GLASS_MAX_DURATION {
            return Err(Error::forbidden(
                "the request is longer than break-glass allows",
            ));
        }
        if current.status == Status::Approved {
            return Ok((current, entry));
        }
        if current.status != Status::Pending {
            return Err(Error::conflict(format!(
                "the request is {}, not PENDING",
                current.status
            )));
        }
        let mut next = current.clone();
        next.status = Status::Approved;
        next.decisions.insert(
            BREAK_GLASS_DECISION.to_owned(),
            Decision {
                approve: true,
                at: format_utc(now),
                comment: Some("break-glass: approval skipped, review required".into()),
            },
        );
        let actor = current.requester.clone();
        let stored = commit(
            ledger,
            change(
                Some(&current),
                next,
                &actor,
                "BreakGlassActivated",
                Some("approval skipped; every approver and the alerts topic notified".into()),
                now,
            )?,
        )
        .await?;
        Ok((stored, entry))
    })
    .await?;

    let (subject, body) = break_glass_message(&request, &entry);
    notifier
        .publish(Topic::Alerts, &subject, &body, None)
        .await?;
    let mut alerted = Vec::new();
    for approver in &entry.approvers {
        if catalog.is_requester(&request, &approver.id) {
            continue;
        }
        notifier
            .publish(Topic::Approvals, &subject, &body, Some(&approver.email))
            .await?;
        alerted.push(approver.id.clone());
    }
    Ok(alerted)
}

/// Records that nobody decided within the approval window. A no-op once the request has
/// moved past approval (the decision won the race).
pub async fn expire<L: Ledger>(ledger: &L, id: &str, now: OffsetDateTime) -> Result<Status> {
    with_retry(|| async {
        let current = load(ledger, id).await?;
        if !matches!(current.status, Status::Pending | Status::Approved) {
            return Ok(current.status);
        }
        let mut next = current.clone();
        next.status = Status::Expired;
        next.task_token = None;
        next.outcome = Some(match current.status {
            Status::Approved => {
                "approved, but the workflow's approval window had already closed".to_owned()
            }
            _ => "no decision within the approval window".to_owned(),
        });
        commit(
            ledger,
            change(
                Some(&current),
                next,
                "trailgate:approval",
                "Expired",
                None,
                now,
            )?,
        )
        .await?;
        Ok(Status::Expired)
    })
    .await
}

#[cfg(test)]
#[path = "approval_tests.rs"]
mod tests;
