//! The ledger's write model: every change to a request is one `Change`, the new record plus
//! one audit event that extends the request's hash chain.
//!
//! The adapter commits a `Change` as a single conditional transaction (the record only if it
//! still has `expected_seq`, the event only if it does not exist), so two concurrent writers
//! cannot both win and no record is ever half-written.
//!
//! A new request also carries an [`OpenClaim`]: one small item per (requester, role) naming
//! the newest request for that pair, written in the same transaction. Its condition is what
//! makes "one open request per role" hold under concurrent submissions: two submissions that
//! both saw the pair free cannot both create a request.

use crate::error::{Error, Result};
use crate::request::{AccessRequest, Status};
use crate::time::format_utc;
use ::time::OffsetDateTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One entry of a request's append-only event list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub request_id: String,
    pub seq: u64,
    pub at: String,
    /// Who did it: a principal ARN, `approver:<id>`, or `trailgate:<function>`.
    pub actor: String,
    pub action: String,
    #[serde(default)]
    pub from: Option<Status>,
    pub to: Status,
    #[serde(default)]
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl Event {
    /// The hash of this event's content and the previous hash.
    pub fn compute_hash(&self) -> String {
        let canonical = serde_json::json!([
            "trailgate-event-v1",
            self.request_id,
            self.seq,
            self.at,
            self.actor,
            self.action,
            self.from,
            self.to,
            self.detail,
            self.prev_hash,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// A record update plus the event that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `None` when the record is being created.
    pub expected_seq: Option<u64>,
    pub record: AccessRequest,
    pub event: Event,
    /// Set only when a request is created: the pair's claim moves to this request.
    pub claim: Option<OpenClaim>,
}

/// The claim a new request makes on its (requester, role) pair. The ledger keeps one claim
/// per pair, naming the newest request for it; the pair has an open request exactly when
/// that request is PENDING, APPROVED or ACTIVE. A claim is never released: a closed request's
/// claim is simply taken over by the next one, so there is nothing to clean up on any path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenClaim {
    /// [`open_claim_key`] of the pair.
    pub key: String,
    /// What the claim must hold for the commit to succeed.
    pub expect: ClaimExpect,
}

/// The condition on a claim write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimExpect {
    /// No condition: the one-open rule is off (`ONE_OPEN_REQUEST_PER_ROLE=false`), and the
    /// claim is only kept current so the rule can be turned on at any time.
    Any,
    /// No request has claimed the pair yet.
    Vacant,
    /// The claim still names this (closed) request.
    HeldBy(String),
}

/// The claim key of a (requester, role) pair: hashed, so ledger keys stay short and no
/// ARN's characters reach a key.
pub fn open_claim_key(requester: &str, role_arn: &str) -> String {
    hex::encode(Sha256::digest(format!("{requester}\n{role_arn}")))
}

/// Builds the change that moves `current` to `next` (already modified by the caller),
/// checking the status transition and chaining the event.
pub fn change(
    current: Option<&AccessRequest>,
    mut next: AccessRequest,
    actor: &str,
    action: &str,
    detail: Option<String>,
    now: OffsetDateTime,
) -> Result<Change> {
    let from = current.map(|record| record.status);
    if let Some(from) = from
        && from != next.status
        && !from.can_become(next.status)
    {
        return Err(Error::conflict(format!(
            "the request is {from} and cannot become {}",
            next.status
        )));
    }
    let (seq, prev_hash) = match current {
        Some(record) => (record.event_seq + 1, record.last_event_hash.clone()),
        None => (1, String::new()),
    };
    let at = format_utc(now);
    let mut event = Event {
        request_id: next.id.clone(),
        seq,
        at: at.clone(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        from,
        to: next.status,
        detail,
        prev_hash,
        hash: String::new(),
    };
    event.hash = event.compute_hash();
    next.event_seq = seq;
    next.last_event_hash = event.hash.clone();
    next.updated_at = at;
    Ok(Change {
        expected_seq: current.map(|record| record.event_seq),
        record: next,
        event,
        claim: None,
    })
}

/// Checks that `events` (in seq order) form an unbroken chain ending at `record`.
pub fn verify_chain(record: &AccessRequest, events: &[Event]) -> Result<()> {
    let mut prev = String::new();
    for (index, event) in events.iter().enumerate() {
        if event.seq != index as u64 + 1
            || event.prev_hash != prev
            || event.compute_hash() != event.hash
        {
            return Err(Error::internal(format!(
                "event {} of {} breaks the hash chain",
                event.seq, record.id
            )));
        }
        prev = event.hash.clone();
    }
    if prev != record.last_event_hash || events.len() as u64 != record.event_seq {
        return Err(Error::internal(format!(
            "the events of {} do not end at the record",
            record.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{now, pending_request};

    #[test]
    fn changes_chain_their_events() {
        let created = change(None, pending_request(), "alice", "Requested", None, now()).unwrap();
        let mut approved = created.record.clone();
        approved.status = Status::Approved;
        let second = change(
            Some(&created.record),
            approved,
            "approver:bob",
            "Approved",
            None,
            now(),
        )
        .unwrap();
        assert_eq!(second.expected_seq, Some(1));
        assert_eq!(second.event.prev_hash, created.event.hash);
        verify_chain(
            &second.record,
            &[created.event.clone(), second.event.clone()],
        )
        .unwrap();

        let mut tampered = second.event.clone();
        tampered.actor = "approver:mallory".into();
        assert!(verify_chain(&second.record, &[created.event, tampered]).is_err());
    }

    #[test]
    fn illegal_transitions_are_conflicts() {
        let created = change(None, pending_request(), "alice", "Requested", None, now()).unwrap();
        let mut active = created.record.clone();
        active.status = Status::Active;
        let err = change(Some(&created.record), active, "x", "Activated", None, now()).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Conflict);
    }
}
