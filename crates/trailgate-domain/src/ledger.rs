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
//!
//! # The chain
//! Each event's `hash` covers the event and the previous event's hash, so an event cannot be
//! edited, dropped or moved without breaking every later link. Version 2 events (everything
//! written now) are keyed and cover the record as well:
//! - the hash is HMAC-SHA256 under the [`ChainKey`], which only trailgate's function roles
//!   can read, so whoever can write the table still cannot write an event that verifies;
//! - the event carries `record_hash`, a digest of the record's decisive fields as the change
//!   left them ([`record_digest`]), so a record edited without an event no longer matches the
//!   last event of its chain.
//!
//! Version 1 events (SHA-256 over the event alone, no key, no record) were written before
//! the key existed and still verify as what they are. They may only come first in a chain:
//! once a request has a keyed event, an unkeyed one after it is refused, so a table writer
//! cannot continue a keyed chain with events of their own.

use crate::error::{Error, Result};
use crate::request::{AccessRequest, Status, forges_text};
use crate::time::format_utc;
use ::time::OffsetDateTime;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The unkeyed chain of events written before the chain key existed.
pub const CHAIN_V1: u8 = 1;
/// The keyed chain that also covers the record.
pub const CHAIN_V2: u8 = 2;

fn legacy_version() -> u8 {
    CHAIN_V1
}

/// The HMAC key of the event chain, at least 32 bytes. A different key from the link key:
/// every function that writes the ledger needs this one, while only the approval and decision
/// functions may sign links.
#[derive(Clone)]
pub struct ChainKey {
    /// The id new events are keyed with.
    current: String,
    /// Every key the ring holds, by id: the current one and the earlier ones, which the
    /// events they keyed still need to verify.
    keys: std::collections::BTreeMap<String, Vec<u8>>,
}

/// The id of the key of a chain key secret that is a plain string (the format before
/// rotation): events keyed with it carry no key id, so they hash as they always did.
pub const FIRST_KEY_ID: &str = "0";

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even in debug logs; the ids are not secret.
        write!(
            f,
            "ChainKey(current {}, ids {:?}, <redacted>)",
            self.current,
            self.keys.keys().collect::<Vec<_>>()
        )
    }
}

impl ChainKey {
    /// A ring of one key, [`FIRST_KEY_ID`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<ChainKey> {
        ChainKey::ring(FIRST_KEY_ID, [(FIRST_KEY_ID.to_owned(), bytes.into())])
    }

    /// A ring of `keys` whose `current` keys new events.
    pub fn ring(
        current: &str,
        keys: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<ChainKey> {
        let keys: std::collections::BTreeMap<String, Vec<u8>> = keys.into_iter().collect();
        if let Some((id, _)) = keys.iter().find(|(_, bytes)| bytes.len() < 32) {
            return Err(Error::internal(format!(
                "the ledger chain key `{id}` is shorter than 32 bytes"
            )));
        }
        if let Some(id) = keys.keys().find(|id| !is_key_id(id)) {
            return Err(Error::internal(format!(
                "the ledger chain key id `{id}` is not 1-32 letters, digits, `-` or `_`"
            )));
        }
        if !keys.contains_key(current) {
            return Err(Error::internal(format!(
                "the ledger chain key ring has no key `{current}`, which it names as current"
            )));
        }
        Ok(ChainKey {
            current: current.to_owned(),
            keys,
        })
    }

    /// The chain key secret's value: a plain string (one key, [`FIRST_KEY_ID`]), or, once the
    /// key has been rotated, `{"current": "<id>", "keys": {"<id>": "<key>", ...}}` keeping every
    /// earlier key the stored events were keyed with.
    pub fn from_secret(text: &str) -> Result<ChainKey> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ring {
            current: String,
            keys: std::collections::BTreeMap<String, String>,
        }
        if text.trim_start().starts_with('{') {
            let ring: Ring = serde_json::from_str(text).map_err(|err| {
                Error::internal(format!(
                    "the ledger chain key ring is not valid JSON: {err}"
                ))
            })?;
            return ChainKey::ring(
                &ring.current,
                ring.keys
                    .into_iter()
                    .map(|(id, key)| (id, key.into_bytes())),
            );
        }
        ChainKey::new(text.as_bytes().to_vec())
    }

    /// The key id new events carry: `None` for [`FIRST_KEY_ID`], so a ring that was never
    /// rotated writes events exactly as before.
    pub fn current_id(&self) -> Option<&str> {
        (self.current != FIRST_KEY_ID).then_some(self.current.as_str())
    }

    /// The MAC of any message under the key `key_id` names (`None`: [`FIRST_KEY_ID`]), hex;
    /// `None` when the ring does not hold that key. The catalog's version records use it.
    pub fn mac_message(&self, key_id: Option<&str>, message: &[u8]) -> Option<String> {
        self.mac(key_id, message)
    }

    fn mac(&self, key_id: Option<&str>, message: &[u8]) -> Option<String> {
        let key = self.keys.get(key_id.unwrap_or(FIRST_KEY_ID))?;
        // new_from_slice accepts any key length for HMAC, so this cannot fail.
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(message);
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether the ring holds the key `key_id` names (`None`: [`FIRST_KEY_ID`]).
    pub fn holds(&self, key_id: Option<&str>) -> bool {
        self.keys.contains_key(key_id.unwrap_or(FIRST_KEY_ID))
    }
}

fn is_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where a decision came from: API Gateway's `requestContext.identity.sourceIp` and the
/// `User-Agent` header. Both are chosen by the caller (the IP only as far as the network
/// lets them), so they are evidence for a reader of the ledger, never a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Longest source IP kept (an IPv6 address with a zone fits).
pub const MAX_SOURCE_IP_CHARS: usize = 64;
/// Longest user agent kept.
pub const MAX_USER_AGENT_CHARS: usize = 256;

impl Origin {
    /// Cleans what the request said: characters that forge text (control characters, line
    /// breaks, bidi controls) removed, surrounding space trimmed, cut to its bound; empty is none.
    pub fn new(source_ip: Option<&str>, user_agent: Option<&str>) -> Origin {
        let clean = |value: Option<&str>, max: usize| {
            value
                .map(|text| {
                    text.chars()
                        .filter(|c| !forges_text(*c))
                        .collect::<String>()
                        .trim()
                        .chars()
                        .take(max)
                        .collect::<String>()
                })
                .filter(|text| !text.is_empty())
        };
        Origin {
            source_ip: clean(source_ip, MAX_SOURCE_IP_CHARS),
            user_agent: clean(user_agent, MAX_USER_AGENT_CHARS),
        }
    }
}

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
    /// Where the actor acted from (decision events; see [`Origin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// [`record_digest`] of the record as this change left it (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_hash: Option<String>,
    /// [`CHAIN_V1`] or [`CHAIN_V2`]; events stored without it are version 1.
    #[serde(default = "legacy_version")]
    pub version: u8,
    /// Which key of the ring keyed the hash (version 2); absent for [`FIRST_KEY_ID`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl Event {
    /// The hash this event should carry: for version 1, SHA-256 of its content and the previous
    /// hash; for version 2, the HMAC under `key` of that, the origin and the record digest. An
    /// unknown version has no valid hash.
    pub fn compute_hash(&self, key: &ChainKey) -> Option<String> {
        match self.version {
            CHAIN_V1 => Some(self.unkeyed_hash()),
            CHAIN_V2 => {
                // A JSON array: every part is delimited, so no two different events share
                // the bytes the MAC is computed over.
                let mut canonical = serde_json::json!([
                    "trailgate-event-v2",
                    self.request_id,
                    self.seq,
                    self.at,
                    self.actor,
                    self.action,
                    self.from,
                    self.to,
                    self.detail,
                    self.source_ip,
                    self.user_agent,
                    self.record_hash,
                    self.prev_hash,
                ]);
                // Covered when present, so an event cannot be pointed at another key; events of
                // the first key hash as before rotation existed.
                if let (Some(id), Some(parts)) = (&self.key_id, canonical.as_array_mut()) {
                    parts.push(serde_json::json!(["key", id]));
                }
                key.mac(self.key_id.as_deref(), canonical.to_string().as_bytes())
            }
            _ => None,
        }
    }
}

impl Event {
    /// The version 1 hash: SHA-256 of the event's content and the previous hash.
    fn unkeyed_hash(&self) -> String {
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

/// SHA-256 of the record's decisive fields: who asked for what, for how long, in which state,
/// decided by whom, with which content hash. Every field that decides access or what an
/// approver saw is here; the reviewer context and the audit report (large, free-form JSON
/// without one canonical serialisation) and the task token (cleared as the request is
/// decided, and useless without the execution) are not. The fields are listed one by one,
/// never serialised as a struct, so a field added to [`AccessRequest`] later cannot change
/// the digest of a record written before it.
pub fn record_digest(record: &AccessRequest) -> String {
    let decisions: Vec<serde_json::Value> = record
        .decisions
        .iter()
        .map(|(approver, decision)| {
            serde_json::json!([approver, decision.approve, decision.at, decision.comment])
        })
        .collect();
    let acknowledgement = record
        .acknowledgement
        .as_ref()
        .map(|ack| serde_json::json!([ack.by, ack.at, ack.comment]));
    let canonical = serde_json::json!([
        "trailgate-record-v1",
        record.id,
        record.status,
        record.requester,
        record.requester_identity,
        record.requester_person,
        record.requester_principal_id,
        record.catalog_id,
        record.role_arn,
        record.duration_seconds,
        record.reason,
        record.ticket,
        record.created_at,
        record.approval_expires_at,
        record.expires_at,
        record.revoked_at,
        record.content_hash,
        record.break_glass,
        record.credentials_issued,
        record.outcome,
        decisions,
        acknowledgement,
    ]);
    let mut canonical = canonical;
    // Appended only when present, so records written before permission sets keep their digest.
    if let (Some(a), Some(fields)) = (&record.assignment, canonical.as_array_mut()) {
        fields.push(a.canonical());
    }
    if let (Some(name), Some(fields)) = (&record.permission_set_name, canonical.as_array_mut()) {
        fields.push(serde_json::json!(["permission_set_name", name]));
    }
    if let (Some(seq), Some(fields)) = (record.closed_seq, canonical.as_array_mut()) {
        fields.push(serde_json::json!(["closed_seq", seq]));
    }
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
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

impl Change {
    /// Records where the actor acted from on the event (before sealing).
    pub fn with_origin(mut self, origin: &Origin) -> Change {
        self.event.source_ip = origin.source_ip.clone();
        self.event.user_agent = origin.user_agent.clone();
        self
    }

    /// Binds the event to the record as it will be committed and computes its keyed hash;
    /// the record then names the event as its last. Sealing again gives the same result.
    pub fn seal(&mut self, key: &ChainKey) {
        self.event.version = CHAIN_V2;
        self.event.key_id = key.current_id().map(str::to_owned);
        self.event.record_hash = Some(record_digest(&self.record));
        self.event.hash = self
            .event
            .compute_hash(key)
            .expect("version 2 always has a hash");
        self.record.last_event_hash = self.event.hash.clone();
    }

    /// Whether [`Change::seal`] has run: the adapters refuse to commit an unsealed change.
    pub fn is_sealed(&self) -> bool {
        !self.event.hash.is_empty() && self.record.last_event_hash == self.event.hash
    }
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
/// checking the status transition and linking the event to the chain. The change is not yet
/// sealed: `service::commit` seals it with the ledger's chain key ([`Change::seal`]) just
/// before the commit, so whatever the use case sets on it until then is covered.
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
    let event = Event {
        request_id: next.id.clone(),
        seq,
        at: at.clone(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        from,
        to: next.status,
        detail,
        source_ip: None,
        user_agent: None,
        record_hash: None,
        version: CHAIN_V2,
        key_id: None,
        prev_hash,
        hash: String::new(),
    };
    next.event_seq = seq;
    next.updated_at = at;
    // The change that makes the request final names itself, once: the lifecycle `closed` event
    // follows exactly that event.
    if next.closed_seq.is_none() && next.is_final() && !current.is_some_and(AccessRequest::is_final)
    {
        next.closed_seq = Some(seq);
    }
    Ok(Change {
        expected_seq: current.map(|record| record.event_seq),
        record: next,
        event,
        claim: None,
    })
}

/// What a verified chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub events: usize,
    /// How many of them are keyed (version 2); the rest are an unkeyed version 1 prefix.
    pub keyed: usize,
    /// Whether the keyed hashes were recomputed (a verifier without the key checks only how
    /// the events link up; the export comparison covers the rest).
    pub hashes_checked: bool,
    /// Whether the last event covers the record's decisive fields (it is version 2).
    pub record_covered: bool,
}

fn broken(id: &str, what: String) -> Error {
    Error::internal(format!("the ledger of {id} has been tampered with: {what}"))
}

/// Checks that `events` (in seq order) are one unbroken chain of request `id`: numbered from 1
/// without gaps, each linked to the one before, unkeyed events only before keyed ones, and,
/// with `key`, each hash what its content gives. Detects an edited, deleted, inserted or
/// reordered event.
pub fn verify_events(id: &str, events: &[Event], key: Option<&ChainKey>) -> Result<ChainReport> {
    let mut prev = String::new();
    let mut keyed = 0;
    for (index, event) in events.iter().enumerate() {
        let expected_seq = index as u64 + 1;
        if event.request_id != id {
            return Err(broken(
                id,
                format!("event {} belongs to {}", event.seq, event.request_id),
            ));
        }
        if event.seq != expected_seq {
            return Err(broken(
                id,
                format!(
                    "event {expected_seq} is missing or out of order (found event {} in its place)",
                    event.seq
                ),
            ));
        }
        if event.prev_hash != prev {
            return Err(broken(
                id,
                format!("event {} does not follow event {}", event.seq, index),
            ));
        }
        match event.version {
            CHAIN_V1 if keyed > 0 => {
                return Err(broken(
                    id,
                    format!("event {} is unkeyed but follows keyed events", event.seq),
                ));
            }
            CHAIN_V1 => {}
            CHAIN_V2 => keyed += 1,
            other => {
                return Err(broken(
                    id,
                    format!("event {} has unknown chain version {other}", event.seq),
                ));
            }
        }
        if event.version == CHAIN_V2
            && let Some(key) = key
            && !key.holds(event.key_id.as_deref())
        {
            return Err(broken(
                id,
                format!(
                    "event {} was keyed with chain key `{}`, which the key ring no longer \
                     holds (keep every earlier key in the secret when rotating)",
                    event.seq,
                    event.key_id.as_deref().unwrap_or(FIRST_KEY_ID)
                ),
            ));
        }
        // Version 1 needs no key; version 2 is checked when the key is at hand.
        let expected = match (event.version, key) {
            (CHAIN_V1, _) => Some(event.unkeyed_hash()),
            (_, Some(key)) => event.compute_hash(key),
            (_, None) => None,
        };
        if let Some(expected) = expected
            && expected != event.hash
        {
            return Err(broken(
                id,
                format!(
                    "event {} ({}) does not match its hash: it was altered or forged",
                    event.seq, event.action
                ),
            ));
        }
        prev = event.hash.clone();
    }
    Ok(ChainReport {
        events: events.len(),
        keyed,
        hashes_checked: key.is_some(),
        record_covered: events.last().is_some_and(|last| last.version == CHAIN_V2),
    })
}

/// Checks that `events` form an unbroken chain ([`verify_events`]) ending at `record`: the
/// record names the last event, counts every event, and (for a keyed chain) still has the
/// decisive fields the last event covers, so a record edited without an event is found.
pub fn verify_chain(
    record: &AccessRequest,
    events: &[Event],
    key: Option<&ChainKey>,
) -> Result<ChainReport> {
    let report = verify_events(&record.id, events, key)?;
    let last = events.last();
    if events.len() as u64 != record.event_seq
        || last.map(|event| event.hash.as_str()).unwrap_or_default() != record.last_event_hash
    {
        return Err(broken(
            &record.id,
            format!(
                "the record counts {} events ending at {:.12}, the chain has {} ending at {:.12}",
                record.event_seq,
                record.last_event_hash,
                events.len(),
                last.map(|event| event.hash.as_str()).unwrap_or("nothing"),
            ),
        ));
    }
    if let Some(last) = last.filter(|event| event.version == CHAIN_V2)
        && last.record_hash.as_deref() != Some(record_digest(record).as_str())
    {
        return Err(broken(
            &record.id,
            format!(
                "the record differs from what event {} ({}) recorded",
                last.seq, last.action
            ),
        ));
    }
    Ok(report)
}

/// Where the export of a closed request's events lives in the archive bucket.
pub fn archive_key(id: &str) -> String {
    format!("requests/{id}.ndjson")
}

/// The events as NDJSON: one JSON object per line, in seq order, each exactly as the ledger
/// stores it (so the export can be compared field by field).
pub fn to_ndjson(events: &[Event]) -> Result<String> {
    let mut text = String::new();
    for event in events {
        text.push_str(
            &serde_json::to_string(event).map_err(|err| Error::internal(err.to_string()))?,
        );
        text.push('\n');
    }
    Ok(text)
}

/// Reads an export written by [`to_ndjson`]; blank lines are skipped.
pub fn from_ndjson(text: &str) -> Result<Vec<Event>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|err| {
                Error::internal(format!(
                    "line {} of the export is not an event: {err}",
                    index + 1
                ))
            })
        })
        .collect()
}

/// How the ledger's events compare with the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// Events in both, identical.
    pub exported: usize,
    /// Events the ledger gained after the export (an acknowledgement of a break-glass session
    /// after its audit); they are covered by the chain, not by the export.
    pub later: usize,
}

/// Compares the ledger's events with the export: every exported event must be in the ledger,
/// at the same place, identical in every field. The ledger may have events after the export
/// (see [`Agreement::later`]), never fewer or different ones.
pub fn compare_with_export(id: &str, ledger: &[Event], exported: &[Event]) -> Result<Agreement> {
    if exported.is_empty() {
        return Err(Error::internal(format!(
            "the export of {id} holds no events"
        )));
    }
    for (index, archived) in exported.iter().enumerate() {
        let Some(stored) = ledger.get(index) else {
            return Err(broken(
                id,
                format!(
                    "the export has {} events, the ledger only {}: event {} was deleted",
                    exported.len(),
                    ledger.len(),
                    index + 1
                ),
            ));
        };
        if stored != archived {
            let (stored_json, archived_json) = (
                serde_json::to_value(stored).unwrap_or_default(),
                serde_json::to_value(archived).unwrap_or_default(),
            );
            let mut fields: Vec<String> = match (stored_json.as_object(), archived_json.as_object())
            {
                (Some(a), Some(b)) => a
                    .keys()
                    .chain(b.keys())
                    .filter(|field| a.get(*field) != b.get(*field))
                    .cloned()
                    .collect(),
                _ => Vec::new(),
            };
            fields.sort();
            fields.dedup();
            return Err(broken(
                id,
                format!(
                    "event {} differs from the export in {}",
                    index + 1,
                    fields.join(", ")
                ),
            ));
        }
    }
    Ok(Agreement {
        exported: exported.len(),
        later: ledger.len() - exported.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Decision;
    use crate::testing::{now, pending_request};

    fn key() -> ChainKey {
        ChainKey::new(vec![7u8; 32]).unwrap()
    }

    #[test]
    fn the_change_that_makes_a_request_final_names_its_event_once() {
        let request = pending_request();
        let created = change(None, request.clone(), "alice", "Requested", None, now()).unwrap();
        assert_eq!(created.record.closed_seq, None);
        let mut denied = created.record.clone();
        denied.status = Status::Denied;
        let closing = change(
            Some(&created.record),
            denied,
            "approver:bob",
            "Denied",
            None,
            now(),
        )
        .unwrap();
        assert_eq!(closing.record.closed_seq, Some(2));
        // A later event (none is written after a denial, but the rule holds) keeps the first.
        let later = change(
            Some(&closing.record),
            closing.record.clone(),
            "x",
            "Other",
            None,
            now(),
        )
        .unwrap();
        assert_eq!(later.record.closed_seq, Some(2));
        // The digest covers it: a record that claims another closing event is not the one sealed.
        let mut moved = later.record.clone();
        moved.closed_seq = Some(3);
        assert_ne!(record_digest(&moved), record_digest(&later.record));
        // Records without it keep the digest they were sealed with: a real run's record from
        // before `closed_seq` still matches what its last event recorded.
        let (sealed, events) = crate::testing::ledger_fixture("audited.json");
        assert_eq!(
            events.last().unwrap().record_hash.as_deref(),
            Some(record_digest(&sealed).as_str())
        );
    }

    fn sealed(mut change: Change) -> Change {
        change.seal(&key());
        change
    }

    /// A request created, then approved by bob: the record and its two keyed events.
    fn approved() -> (AccessRequest, Vec<Event>) {
        let created =
            sealed(change(None, pending_request(), "alice", "Requested", None, now()).unwrap());
        let mut next = created.record.clone();
        next.status = Status::Approved;
        next.decisions.insert(
            "bob".into(),
            Decision {
                approve: true,
                at: "2026-11-21T10:01:00Z".into(),
                comment: None,
            },
        );
        let second = sealed(
            change(
                Some(&created.record),
                next,
                "approver:bob",
                "Approved",
                None,
                now(),
            )
            .unwrap()
            .with_origin(&Origin::new(Some("198.51.100.7"), Some("Mozilla/5.0"))),
        );
        assert_eq!(second.expected_seq, Some(1));
        assert_eq!(second.event.prev_hash, created.event.hash);
        (second.record, vec![created.event, second.event])
    }

    fn message(result: Result<ChainReport>) -> String {
        result.unwrap_err().message
    }

    #[test]
    fn sealed_changes_chain_keyed_events_that_cover_the_record() {
        let (record, events) = approved();
        let report = verify_chain(&record, &events, Some(&key())).unwrap();
        assert_eq!(
            report,
            ChainReport {
                events: 2,
                keyed: 2,
                hashes_checked: true,
                record_covered: true
            }
        );
        assert_eq!(events[1].version, CHAIN_V2);
        assert_eq!(
            events[1].record_hash.as_deref(),
            Some(record_digest(&record).as_str())
        );
        assert_eq!(events[1].source_ip.as_deref(), Some("198.51.100.7"));
        // Without the key the links and the record are still checked.
        assert!(!verify_chain(&record, &events, None).unwrap().hashes_checked);
    }

    #[test]
    fn a_rotated_key_keys_new_events_and_the_earlier_key_still_verifies_the_old_ones() {
        // Before rotation: the plain secret, events without a key id, hashed as always.
        let (record, events) = approved();
        assert!(events.iter().all(|e| e.key_id.is_none()));
        let first = ChainKey::from_secret(&"\u{7}".repeat(32)).unwrap();
        assert!(verify_chain(&record, &events, Some(&first)).is_ok());

        // Rotated: `{"current": "2026-12", "keys": {"0": <old>, "2026-12": <new>}}`.
        let ring_text = serde_json::json!({
            "current": "2026-12",
            "keys": {"0": "\u{7}".repeat(32), "2026-12": "n".repeat(40)},
        })
        .to_string();
        let ring = ChainKey::from_secret(&ring_text).unwrap();
        let mut next = record.clone();
        next.status = Status::Active;
        let mut third = change(
            Some(&record),
            next,
            "trailgate:grant",
            "Activated",
            None,
            now(),
        )
        .unwrap();
        third.seal(&ring);
        assert_eq!(third.event.key_id.as_deref(), Some("2026-12"));
        let chain = [events.clone(), vec![third.event.clone()]].concat();
        let report = verify_chain(&third.record, &chain, Some(&ring)).unwrap();
        assert_eq!(report.keyed, 3);

        // The new event does not verify under the old key alone, nor under a ring that
        // dropped the old key; pointing it at the old key breaks its hash.
        assert!(
            message(verify_chain(&third.record, &chain, Some(&first))).contains("no longer holds")
        );
        let dropped = ChainKey::ring("2026-12", [("2026-12".to_owned(), b"n".repeat(40))]).unwrap();
        assert!(
            message(verify_chain(&third.record, &chain, Some(&dropped)))
                .contains("event 1 was keyed with chain key `0`")
        );
        let mut repointed = chain.clone();
        repointed[2].key_id = None;
        assert!(
            message(verify_chain(&third.record, &repointed, Some(&ring)))
                .contains("altered or forged")
        );
    }

    #[test]
    fn chain_key_secrets_are_checked_when_read() {
        assert!(ChainKey::from_secret("short").is_err());
        let bad = |value: serde_json::Value| {
            ChainKey::from_secret(&value.to_string())
                .unwrap_err()
                .message
        };
        assert!(
            bad(serde_json::json!({"current": "b", "keys": {"a": "k".repeat(32)}}))
                .contains("no key `b`")
        );
        assert!(
            bad(serde_json::json!({"current": "a", "keys": {"a": "short"}}))
                .contains("shorter than 32")
        );
        assert!(
            bad(serde_json::json!({"current": "a b", "keys": {"a b": "k".repeat(32)}}))
                .contains("is not 1-32")
        );
        assert!(
            bad(serde_json::json!({"current": "a", "keys": {}, "extra": 1}))
                .contains("not valid JSON")
        );
        // The key material is never printed.
        let ring = ChainKey::from_secret(&"s".repeat(32)).unwrap();
        assert!(!format!("{ring:?}").contains("sss"));
    }

    #[test]
    fn an_edited_event_breaks_the_chain() {
        let (record, mut events) = approved();
        events[1].actor = "approver:mallory".into();
        assert!(
            message(verify_chain(&record, &events, Some(&key())))
                .contains("event 2 (Approved) does not match its hash")
        );
        // The origin is covered too.
        let (record, mut events) = approved();
        events[1].source_ip = Some("203.0.113.1".into());
        assert!(verify_chain(&record, &events, Some(&key())).is_err());
    }

    #[test]
    fn an_event_forged_without_the_key_does_not_verify() {
        let (record, mut events) = approved();
        events[1].actor = "approver:mallory".into();
        let other = ChainKey::new(vec![8u8; 32]).unwrap();
        events[1].hash = events[1].compute_hash(&other).unwrap();
        let mut forged = record.clone();
        forged.last_event_hash = events[1].hash.clone();
        assert!(
            message(verify_chain(&forged, &events, Some(&key()))).contains("altered or forged")
        );
    }

    #[test]
    fn an_edited_record_field_without_an_event_is_found() {
        let (record, events) = approved();
        for edit in [
            |r: &mut AccessRequest| r.duration_seconds = 7 * 24 * 3600,
            |r: &mut AccessRequest| {
                r.role_arn = "arn:aws:iam::123456789012:role/trailgate-GrantFunctionRole-X".into()
            },
            |r: &mut AccessRequest| r.status = Status::Active,
            |r: &mut AccessRequest| r.expires_at = Some("2030-01-01T00:00:00Z".into()),
            |r: &mut AccessRequest| r.requester_person = "bob".into(),
            |r: &mut AccessRequest| {
                r.decisions.insert(
                    "carol".into(),
                    Decision {
                        approve: true,
                        at: "x".into(),
                        comment: None,
                    },
                );
            },
        ] {
            let mut edited = record.clone();
            edit(&mut edited);
            assert!(
                message(verify_chain(&edited, &events, Some(&key())))
                    .contains("the record differs from what event 2 (Approved) recorded"),
                "{edited:?}"
            );
        }
        // Fields outside the digest (the task token) may change without an event.
        let mut token = record.clone();
        token.task_token = Some("t".into());
        verify_chain(&token, &events, Some(&key())).unwrap();
    }

    #[test]
    fn a_deleted_or_reordered_event_breaks_the_chain() {
        let (record, events) = approved();
        // The first event gone: the second is in its place.
        assert!(
            message(verify_chain(&record, &events[1..], Some(&key())))
                .contains("event 1 is missing or out of order")
        );
        // The last event gone: the record no longer ends where the chain does.
        assert!(
            message(verify_chain(&record, &events[..1], Some(&key())))
                .contains("the record counts 2 events")
        );
        let reordered = vec![events[1].clone(), events[0].clone()];
        assert!(verify_chain(&record, &reordered, Some(&key())).is_err());
        // Renumbered to hide the reorder: the links still give it away.
        let mut renumbered = reordered.clone();
        renumbered[0].seq = 1;
        renumbered[1].seq = 2;
        assert!(
            message(verify_chain(&record, &renumbered, Some(&key()))).contains("does not follow")
        );
    }

    /// An event as the ledger wrote it before the chain was keyed.
    fn legacy(record: &AccessRequest, seq: u64, action: &str, prev_hash: &str) -> Event {
        let mut event = Event {
            request_id: record.id.clone(),
            seq,
            at: "2026-11-21T10:00:00Z".into(),
            actor: "alice".into(),
            action: action.into(),
            from: None,
            to: record.status,
            detail: None,
            source_ip: None,
            user_agent: None,
            record_hash: None,
            version: CHAIN_V1,
            key_id: None,
            prev_hash: prev_hash.into(),
            hash: String::new(),
        };
        event.hash = event.unkeyed_hash();
        event
    }

    #[test]
    fn unkeyed_v1_chains_still_verify_and_may_continue_keyed() {
        let mut record = pending_request();
        let first = legacy(&record, 1, "Requested", "");
        // Stored without `version`, as every old event is.
        let mut stored = serde_json::to_value(&first).unwrap();
        stored.as_object_mut().unwrap().remove("version");
        let first: Event = serde_json::from_value(stored).unwrap();
        assert_eq!(first.version, CHAIN_V1);
        record.event_seq = 1;
        record.last_event_hash = first.hash.clone();
        let report = verify_chain(&record, std::slice::from_ref(&first), Some(&key())).unwrap();
        assert_eq!((report.keyed, report.record_covered), (0, false));

        // After the upgrade the same request gets keyed events.
        let mut next = record.clone();
        next.status = Status::Cancelled;
        let second =
            sealed(change(Some(&record), next, "alice", "Cancelled", None, now()).unwrap());
        let events = vec![first.clone(), second.event.clone()];
        let report = verify_chain(&second.record, &events, Some(&key())).unwrap();
        assert_eq!((report.keyed, report.record_covered), (1, true));

        // An unkeyed event after a keyed one is a table writer's, not trailgate's.
        let mut third_record = second.record.clone();
        third_record.event_seq = 3;
        let third = legacy(&third_record, 3, "Approved", &second.event.hash);
        third_record.last_event_hash = third.hash.clone();
        let downgraded = vec![first, second.event, third];
        assert!(
            message(verify_chain(&third_record, &downgraded, Some(&key())))
                .contains("unkeyed but follows keyed")
        );
    }

    #[test]
    fn origins_are_cleaned_and_bounded() {
        let origin = Origin::new(
            Some(" 198.51.100.7 "),
            Some("curl/8\r\nX-Forged: 1\u{202E}"),
        );
        assert_eq!(origin.source_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(origin.user_agent.as_deref(), Some("curl/8X-Forged: 1"));
        let long = "a".repeat(1000);
        let origin = Origin::new(Some(""), Some(&long));
        assert_eq!(origin.source_ip, None);
        assert_eq!(origin.user_agent.unwrap().len(), MAX_USER_AGENT_CHARS);
    }

    #[test]
    fn the_export_round_trips_and_differences_are_named() {
        let (_, events) = approved();
        let text = to_ndjson(&events).unwrap();
        assert_eq!(text.lines().count(), 2);
        let exported = from_ndjson(&text).unwrap();
        assert_eq!(exported, events);
        let agreement = compare_with_export("r-a", &events, &exported).unwrap();
        assert_eq!(
            agreement,
            Agreement {
                exported: 2,
                later: 0
            }
        );

        let mut edited = events.clone();
        edited[1].detail = Some("edited".into());
        let err = compare_with_export("r-a", &edited, &exported).unwrap_err();
        assert!(
            err.message
                .contains("event 2 differs from the export in detail"),
            "{}",
            err.message
        );
        let err = compare_with_export("r-a", &events[..1], &exported).unwrap_err();
        assert!(
            err.message.contains("event 2 was deleted"),
            "{}",
            err.message
        );
        // Events after the export (a later acknowledgement) are reported, not refused.
        let agreement = compare_with_export("r-a", &events, &exported[..1]).unwrap();
        assert_eq!(agreement.later, 1);
        assert!(from_ndjson("{not json").is_err());
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
