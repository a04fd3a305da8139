//! The end-of-session audit and the approvers' acknowledgement of a break-glass session.

use super::credentials::session_name;
use super::messages::audit_message;
use super::submit::show;
use super::{approver_for, commit, entry_of, is_requester_person, load, with_retry};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ledger::change;
use crate::ports::{Ledger, Notifier, Topic};
use crate::request::{AccessRequest, Acknowledgement, Caller, Status};
use crate::time::format_utc;
use ::time::OffsetDateTime;
use serde_json::json;

/// Records the end-of-session report, sends it to the approvers (the requester excluded) and
/// marks the request AUDITED. A break-glass report says it needs review.
///
/// The e-mails go out before the ledger write: a retried step may send them twice, but a
/// failure between the two can never leave an AUDITED request whose report nobody received.
pub async fn audit<L: Ledger, N: Notifier>(
    ledger: &L,
    notifier: &N,
    catalog: &Catalog,
    id: &str,
    cloudtrail: serde_json::Value,
    now: OffsetDateTime,
) -> Result<serde_json::Value> {
    with_retry(|| {
        let cloudtrail = cloudtrail.clone();
        async move {
            let current = load(ledger, id).await?;
            if current.status == Status::Audited {
                return current.audit.clone().ok_or_else(|| Error::internal("an AUDITED request has no report"));
            }
            if current.status != Status::Revoked {
                return Err(Error::conflict(format!("the request is {}, not REVOKED", current.status)));
            }
            let events = ledger.events(id).await?;
            let chain = crate::ledger::verify_chain(&current, &events, Some(ledger.chain_key()))?;
            let report = json!({
                "granted_until": current.expires_at,
                "revoked_at": current.revoked_at,
                "credentials_issued": current.credentials_issued,
                "session_name": session_name(&current),
                "source_identity": current.source_identity(),
                "break_glass": current.break_glass,
                "cloudtrail": cloudtrail,
                "ledger_events": events.iter().map(|e| json!({"at": e.at, "actor": e.actor, "action": e.action})).collect::<Vec<_>>(),
                "ledger_chain_verified": true,
                // Keyed events (version 2) of the chain; the rest predate the chain key.
                "ledger_chain_keyed": chain.keyed,
                // The first pass: the state machine audits again after ReauditDelaySeconds, for
                // what CloudTrail delivers late (`reaudit`).
                "final": false,
                "passes": 1,
            });
            let (subject, body) = audit_message(&current, &report);
            tell_approvers(notifier, catalog, &current, &subject, &body).await?;
            let mut next = current.clone();
            next.status = Status::Audited;
            next.audit = Some(report.clone());
            commit(ledger, change(Some(&current), next, "trailgate:audit", "Audited", None, now)?).await?;
            Ok(report)
        }
    })
    .await
}

/// The audit's second pass, after CloudTrail's late deliveries: the session is read again,
/// the report replaced by the new one (the first pass's figures kept under `first_pass`) and
/// marked `final`, and the approvers are written to only when the second pass found something
/// the first did not: more CloudTrail events, errors or incident findings, or completeness
/// where there was none. Idempotent: a final report is returned as it is.
pub async fn reaudit<L: Ledger, N: Notifier>(
    ledger: &L,
    notifier: &N,
    catalog: &Catalog,
    id: &str,
    cloudtrail: serde_json::Value,
    now: OffsetDateTime,
) -> Result<serde_json::Value> {
    with_retry(|| {
        let cloudtrail = cloudtrail.clone();
        async move {
            let current = load(ledger, id).await?;
            if current.status != Status::Audited {
                return Err(Error::conflict(format!(
                    "the request is {}, not AUDITED",
                    current.status
                )));
            }
            let first = current
                .audit
                .clone()
                .ok_or_else(|| Error::internal("an AUDITED request has no report"))?;
            if !current.awaits_second_audit() {
                // Final already (a retried step), or a report from before two passes.
                return Ok(first);
            }
            let news = late_findings(&first["cloudtrail"], &cloudtrail);
            let mut report = first.clone();
            report["first_pass"] = json!({
                "events": first["cloudtrail"]["events"],
                "complete": first["cloudtrail"]["coverage"]["complete"],
                "window_end": first["cloudtrail"]["coverage"]["window_end"],
            });
            report["cloudtrail"] = cloudtrail;
            report["final"] = json!(true);
            report["passes"] = json!(2);
            report["late_findings"] = json!(news);
            if !news.is_empty() {
                let (subject, body) = super::messages::reaudit_message(&current, &report, &news);
                tell_approvers(notifier, catalog, &current, &subject, &body).await?;
            }
            let detail = if news.is_empty() {
                "nothing new since the first pass".to_owned()
            } else {
                news.join("; ")
            };
            let mut next = current.clone();
            next.audit = Some(report.clone());
            commit(
                ledger,
                change(
                    Some(&current),
                    next,
                    "trailgate:audit",
                    "AuditUpdated",
                    Some(detail),
                    now,
                )?,
            )
            .await?;
            Ok(report)
        }
    })
    .await
}

/// What the second pass found that the first did not, one line each (empty: nothing).
pub fn late_findings(first: &serde_json::Value, second: &serde_json::Value) -> Vec<String> {
    let count = |report: &serde_json::Value, key: &str| report[key].as_u64().unwrap_or(0);
    let mut news = Vec::new();
    if second["analysed"].as_bool() != Some(true) {
        return news;
    }
    if first["analysed"].as_bool() != Some(true) {
        news.push(format!(
            "the session's calls could be read this time: {} CloudTrail events",
            count(second, "events")
        ));
        return news;
    }
    let (before, after) = (count(first, "events"), count(second, "events"));
    if after > before {
        news.push(format!(
            "{} CloudTrail event(s) delivered after the first audit ({before} then, {after} now)",
            after - before
        ));
    }
    let errors = |report: &serde_json::Value| report["errors"].as_array().map_or(0, Vec::len);
    if errors(second) > errors(first) {
        news.push("new errors (refused calls) in the session".to_owned());
    }
    let findings = |report: &serde_json::Value| -> Vec<String> {
        report["incident_findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect()
    };
    for finding in findings(second) {
        if !findings(first).contains(&finding) {
            news.push(format!("new finding: {finding}"));
        }
    }
    news
}

/// Sends an audit mail to every approver of the request's entry but the requester.
async fn tell_approvers<N: Notifier>(
    notifier: &N,
    catalog: &Catalog,
    request: &AccessRequest,
    subject: &str,
    body: &str,
) -> Result<()> {
    for approver in &entry_of(catalog, request)?.approvers {
        if !catalog.is_requester(request, &approver.id) {
            notifier
                .publish(Topic::Approvals, subject, body, Some(&approver.email))
                .await?;
        }
    }
    Ok(())
}

/// Most characters of an acknowledgement comment.
pub const MAX_COMMENT_CHARS: usize = 1000;

/// An approver signs off a break-glass session. Idempotent: acknowledging again returns the
/// first acknowledgement unchanged.
pub async fn acknowledge<L: Ledger>(
    ledger: &L,
    catalog: &Catalog,
    caller: &Caller,
    id: &str,
    comment: Option<&str>,
    now: OffsetDateTime,
) -> Result<AccessRequest> {
    let comment = match comment.map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            if text.chars().count() > MAX_COMMENT_CHARS
                || text.chars().any(|c| c.is_control() && c != '\n')
            {
                return Err(Error::invalid(
                    "comment",
                    format!("the comment must be at most {MAX_COMMENT_CHARS} printable characters"),
                ));
            }
            Some(text.to_owned())
        }
    };
    with_retry(|| {
        let comment = comment.clone();
        async move {
            let current = show(ledger, catalog, caller, id).await?;
            if is_requester_person(catalog, &current, caller) {
                return Err(Error::forbidden(
                    "the requester cannot acknowledge their own break-glass access",
                ));
            }
            let approver = approver_for(catalog, entry_of(catalog, &current)?, caller)
                .ok_or_else(|| Error::forbidden("only an approver of this role can acknowledge"))?
                .id
                .clone();
            if !current.break_glass {
                return Err(Error::conflict(
                    "only break-glass requests need acknowledging",
                ));
            }
            if current.acknowledgement.is_some() {
                return Ok(current);
            }
            if !matches!(
                current.status,
                Status::Active | Status::Revoked | Status::Audited
            ) {
                return Err(Error::conflict(format!(
                    "the request is {}: there is no session to acknowledge yet",
                    current.status
                )));
            }
            let mut next = current.clone();
            next.acknowledgement = Some(Acknowledgement {
                by: approver.clone(),
                at: format_utc(now),
                comment: comment.clone(),
            });
            commit(
                ledger,
                change(
                    Some(&current),
                    next,
                    &caller.arn,
                    "Acknowledged",
                    comment.or_else(|| Some(format!("by {approver}"))),
                    now,
                )?,
            )
            .await
        }
    })
    .await
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
