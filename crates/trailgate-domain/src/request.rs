//! An access request: what was asked, by whom, its status, and the rules for moving between statuses.

use crate::catalog::Entry;
use crate::error::{Error, Result};
use crate::time::{format_duration, format_utc, format_utc_millis, parse_duration};
use ::time::{Duration, OffsetDateTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Stored with the request (`context`); defined with the other finding types, so `findings`
/// needs nothing from this module.
pub use crate::findings::ContextSummary;

/// Where a request is in its life. The ledger's conditional writes enforce these transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,
    Active,
    Revoked,
    Audited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Approved => "APPROVED",
            Status::Denied => "DENIED",
            Status::Expired => "EXPIRED",
            Status::Cancelled => "CANCELLED",
            Status::Active => "ACTIVE",
            Status::Revoked => "REVOKED",
            Status::Audited => "AUDITED",
        }
    }

    /// Whether the ledger may move a request from `self` to `to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Pending, Approved | Denied | Expired | Cancelled)
                // Cancelled: a scheduled grant, before its start (`service::cancel`).
                | (Approved, Active | Expired | Revoked | Cancelled)
                | (Active, Revoked)
                | (Revoked, Audited)
        )
    }

    /// PENDING, APPROVED or ACTIVE: the request may still lead to, or is, a grant.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Pending | Status::Approved | Status::Active)
    }

    /// No approval decision can change a request in this state.
    pub fn is_decided(self) -> bool {
        self != Status::Pending
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An approver's decision on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub approve: bool,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An approver's review of a break-glass session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The approver id from the catalog.
    pub by: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The caller of an API, as established by SigV4 (never by the request body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub arn: String,
    /// API Gateway's `identity.user`: the principal's unique id (`AIDA…` for an IAM user,
    /// `AROA…:<session>` for a role session). A user deleted and created again under the same
    /// name gets a new one, so a request bound to it cannot be taken over by the namesake.
    #[serde(default)]
    pub principal_id: Option<String>,
}

impl Caller {
    /// A caller known by its ARN alone (tests, tools that sign with an ARN they were given).
    pub fn from_arn(arn: impl Into<String>) -> Caller {
        Caller {
            arn: arn.into(),
            principal_id: None,
        }
    }
}

/// Makes `text` a valid STS `SourceIdentity` or session-name part: characters STS does not
/// accept become `-`, at most `max` characters, at least 2.
fn sts_safe(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    if cleaned.len() < 2 {
        format!("{cleaned}--")
    } else {
        cleaned
    }
}

impl Caller {
    /// The short identity shown in session names and messages: the user name for IAM users,
    /// the session name for assumed roles.
    /// Characters STS does not accept are replaced, and the result is cut to 64.
    pub fn identity(&self) -> String {
        sts_safe(self.arn.rsplit(['/', ':']).next().unwrap_or_default(), 64)
    }
}

/// The request as a requester submits it (identity excluded: that comes from SigV4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    pub catalog_id: String,
    /// The account to grant the entry's role in: required when the entry covers several
    /// accounts, optional (and checked) when it names one `role_arn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub duration: String,
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    /// When the grant should start (RFC 3339), if not as soon as it is approved: within the
    /// entry's `max_start_delay`. Approvals are collected at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
}

/// The scheduled start of a new request: `None` for "as soon as approved", else a time in the
/// future within the entry's `max_start_delay`, normalised to UTC. Break-glass cannot wait.
fn scheduled_start(
    text: Option<&str>,
    entry: &Entry,
    now: OffsetDateTime,
) -> Result<Option<String>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let at = crate::time::parse_utc(text).map_err(|_| {
        Error::invalid(
            "start_at",
            format!("`{text}` is not a time: use RFC 3339, like 2026-12-08T09:00:00Z"),
        )
    })?;
    if entry.break_glass {
        return Err(Error::invalid(
            "start_at",
            "break-glass access starts at once: it cannot be scheduled",
        ));
    }
    if at <= now {
        return Err(Error::invalid(
            "start_at",
            format!("{} is not in the future", format_utc(at)),
        ));
    }
    let max = entry.max_start_delay()?;
    if at > now + max {
        return Err(Error::invalid(
            "start_at",
            format!(
                "{} is more than the {} ahead this role allows",
                format_utc(at),
                format_duration(max)
            ),
        ));
    }
    Ok(Some(format_utc(at)))
}

/// Characters that can make text in an e-mail or a page say something other than what it
/// says: control characters (line breaks included), the Unicode line and paragraph
/// separators, and the bidirectional-text controls (U+202E and its kin).
pub fn forges_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// What a permission-set request grants: the permission set, in one account, to one
/// Identity Center user, named by the immutable id Identity Center gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub instance_arn: String,
    pub permission_set_arn: String,
    pub account: String,
    /// The identity-store user id (`identitystore:GetUserId`), never a name or an e-mail.
    pub user_id: String,
}

impl Assignment {
    /// The user as a catalog principal (`arn:aws:identitystore:::user/<id>`).
    pub fn user_arn(&self) -> String {
        let partition = self
            .instance_arn
            .split(':')
            .nth(1)
            .filter(|p| !p.is_empty())
            .unwrap_or("aws");
        crate::identity::identity_center_user_arn(partition, &self.user_id)
    }

    /// The assignment as the content hash and the record digest cover it.
    pub fn canonical(&self) -> serde_json::Value {
        serde_json::json!([
            "assignment",
            self.instance_arn,
            self.permission_set_arn,
            self.account,
            self.user_id
        ])
    }

    /// What two grants share when they overlap: the same permission set for the same user in
    /// the same account is one account assignment in Identity Center.
    pub fn holders_key(&self) -> String {
        let digest = Sha256::digest(
            serde_json::json!([
                self.instance_arn,
                self.permission_set_arn,
                self.account,
                self.user_id
            ])
            .to_string()
            .as_bytes(),
        );
        hex::encode(digest)
    }
}

/// Bounds on free text, so a request record never approaches DynamoDB's 400 KB item limit.
pub const MAX_REASON_CHARS: usize = 1000;
pub const MAX_TICKET_CHARS: usize = 128;

/// A request as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: String,
    pub status: Status,
    pub requester: String,
    pub requester_identity: String,
    /// The person the requester is ([`crate::catalog::Catalog::resolve_requester`]): what
    /// "an approver is never the requester" compares. Empty in records made before people.
    #[serde(default)]
    pub requester_person: String,
    /// The requester's principal id at submission ([`Caller::principal_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_principal_id: Option<String>,
    pub catalog_id: String,
    /// The role granted; empty for a permission-set request, which names its target in
    /// `assignment`.
    pub role_arn: String,
    /// The Identity Center account assignment a permission-set request grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Assignment>,
    /// The permission set's name, read from Identity Center when the grant became active: the
    /// audit finds the sessions of the role Identity Center provisioned for it,
    /// `AWSReservedSSO_<name>_<suffix>` (permission-set names cannot be changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_set_name: Option<String>,
    /// When the grant starts, if it was scheduled ([`NewRequest::start_at`]): the state
    /// machine waits for it after the approval, and nothing activates the grant before it.
    /// Part of the content approvers sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    pub duration_seconds: i64,
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// When approval links stop working and the request expires if undecided.
    pub approval_expires_at: String,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<String>,
    /// Hash of the fields an approver decides on; links are bound to it.
    pub content_hash: String,
    /// The Step Functions task token: server-side only, never returned by an API.
    #[serde(default)]
    pub task_token: Option<String>,
    #[serde(default)]
    pub decisions: BTreeMap<String, Decision>,
    #[serde(default)]
    pub context: Option<ContextSummary>,
    #[serde(default)]
    pub audit: Option<serde_json::Value>,
    #[serde(default)]
    pub credentials_issued: u32,
    /// Why the request ended where it did (denied by whom, expired, revoke reason).
    #[serde(default)]
    pub outcome: Option<String>,
    /// Copied from the catalog entry at creation: the request skips approval.
    #[serde(default)]
    pub break_glass: bool,
    /// An approver's sign-off on a break-glass session (see [`AccessRequest::needs_review`]).
    #[serde(default)]
    pub acknowledgement: Option<Acknowledgement>,
    /// The event after which nothing more is recorded for the request ([`AccessRequest::is_final`]),
    /// set by the change that makes it final: the lifecycle `closed` event follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_seq: Option<u64>,
    pub event_seq: u64,
    pub last_event_hash: String,
}

impl AccessRequest {
    /// Validates `input` against the catalog entry and builds a PENDING request.
    /// `id` is made by the caller (randomness is I/O).
    pub fn create(
        id: String,
        caller: &Caller,
        input: &NewRequest,
        entry: &Entry,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let target = crate::service::Target::single(entry)?;
        AccessRequest::create_for(id, caller, input, entry, &target, now)
    }

    /// [`AccessRequest::create`] for the role `target` resolved (an entry over several
    /// accounts has one role per account).
    pub fn create_for(
        id: String,
        caller: &Caller,
        input: &NewRequest,
        entry: &Entry,
        target: &crate::service::Target,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let covered = match target.assignment() {
            Some(assignment) => entry.may_grant_assignment(assignment),
            None => entry.may_grant(target.role_arn()),
        };
        if !covered {
            return Err(Error::internal("the target is not this entry's"));
        }
        if target.assignment().is_some_and(|a| a.user_id.is_empty()) {
            return Err(Error::internal(
                "a permission-set target needs the Identity Center user resolved first",
            ));
        }
        if !entry.allows_requester(&caller.arn) {
            return Err(Error::forbidden(format!(
                "you may not request `{}`",
                entry.id
            )));
        }
        let duration = parse_duration(&input.duration).ok_or_else(|| {
            Error::invalid(
                "duration",
                format!(
                    "`{}` is not a duration: use ISO 8601 like PT2H or a short form like 2h",
                    input.duration
                ),
            )
        })?;
        let max = entry.max_duration()?;
        if duration > max {
            return Err(Error::invalid(
                "duration",
                format!(
                    "{} is longer than the {} this role allows",
                    format_duration(duration),
                    format_duration(max)
                ),
            ));
        }
        let reason = input.reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid("reason", "a reason is required"));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(Error::invalid(
                "reason",
                format!("the reason is longer than {MAX_REASON_CHARS} characters"),
            ));
        }
        if reason.chars().any(forges_text) {
            // A newline or a bidi override in a reason would forge lines in the approvers'
            // e-mail (a fake "Approved by" line, say, or text that reads backwards).
            return Err(Error::invalid(
                "reason",
                "the reason must be one line of text: no line breaks, control characters or \
                 bidirectional-text controls",
            ));
        }
        let ticket = match input.ticket.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(ticket) => {
                if ticket.chars().count() > MAX_TICKET_CHARS || ticket.chars().any(forges_text) {
                    return Err(Error::invalid(
                        "ticket",
                        format!(
                            "the ticket must be at most {MAX_TICKET_CHARS} printable characters"
                        ),
                    ));
                }
                Some(ticket.to_owned())
            }
        };
        if let Some(pattern) = &entry.ticket_pattern {
            let regex = regex::Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|err| Error::internal(err.to_string()))?;
            match &ticket {
                Some(ticket) if regex.is_match(ticket) => {}
                Some(_) => {
                    return Err(Error::invalid(
                        "ticket",
                        format!("the ticket must match `{pattern}`"),
                    ));
                }
                None => return Err(Error::invalid("ticket", "this role requires a ticket")),
            }
        }
        let start_at = scheduled_start(input.start_at.as_deref(), entry, now)?;
        let now_text = format_utc(now);
        let mut request = AccessRequest {
            id,
            status: Status::Pending,
            requester: caller.arn.clone(),
            requester_identity: caller.identity(),
            requester_person: String::new(),
            requester_principal_id: caller.principal_id.clone(),
            catalog_id: entry.id.clone(),
            role_arn: target.role_arn().to_owned(),
            assignment: target.assignment().cloned(),
            permission_set_name: None,
            start_at,
            duration_seconds: duration.whole_seconds(),
            reason: reason.to_owned(),
            ticket,
            // Milliseconds: the `ByRequester` index lists newest first by this value.
            created_at: format_utc_millis(now),
            updated_at: now_text,
            approval_expires_at: format_utc(now + entry.approval_window()?),
            expires_at: None,
            revoked_at: None,
            content_hash: String::new(),
            task_token: None,
            decisions: BTreeMap::new(),
            context: None,
            audit: None,
            credentials_issued: 0,
            outcome: None,
            break_glass: entry.break_glass,
            acknowledgement: None,
            closed_seq: None,
            event_seq: 0,
            last_event_hash: String::new(),
        };
        request.content_hash = request.compute_content_hash();
        Ok(request)
    }

    /// SHA-256 over the fields an approver decides on, so that a link signed for one
    /// version of a request does not work for a changed one.
    pub fn compute_content_hash(&self) -> String {
        let mut canonical = serde_json::json!([
            "trailgate-request-v1",
            self.id,
            self.requester,
            self.catalog_id,
            self.role_arn,
            self.duration_seconds,
            self.reason,
            self.ticket,
            self.created_at,
        ]);
        // Appended only when present, so the hash of every role request stays what it was.
        if let (Some(a), Some(fields)) = (&self.assignment, canonical.as_array_mut()) {
            fields.push(a.canonical());
        }
        // Tagged, so a start time can never be read as (or collide with) an assignment.
        if let (Some(at), Some(fields)) = (&self.start_at, canonical.as_array_mut()) {
            fields.push(serde_json::json!({ "start_at": at }));
        }
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    pub fn duration(&self) -> Duration {
        Duration::seconds(self.duration_seconds)
    }

    /// The scheduled start, if it is still ahead at `now`.
    pub fn starts_after(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.start_at
            .as_deref()
            .and_then(|text| crate::time::parse_utc(text).ok())
            .filter(|at| now < *at)
    }

    /// The account the grant is in: the role's, or the assignment's.
    pub fn target_account(&self) -> &str {
        match &self.assignment {
            Some(assignment) => &assignment.account,
            None => crate::catalog::role_account(&self.role_arn).unwrap_or_default(),
        }
    }

    /// What is granted, for messages and logs.
    pub fn target_label(&self) -> String {
        match &self.assignment {
            Some(a) => format!(
                "permission set {} in account {} (Identity Center user {})",
                a.permission_set_arn, a.account, a.user_id
            ),
            None => self.role_arn.clone(),
        }
    }

    /// What one open request per requester and target means: the role, or the permission
    /// set in its account.
    pub fn claim_target(&self) -> String {
        match &self.assignment {
            Some(a) => format!("{}@{}", a.permission_set_arn, a.account),
            None => self.role_arn.clone(),
        }
    }

    /// Whether the request's report is the audit's first pass, which `service::reaudit` replaces.
    pub fn awaits_second_audit(&self) -> bool {
        self.status == Status::Audited
            && self
                .audit
                .as_ref()
                .and_then(|audit| audit.get("final"))
                .and_then(serde_json::Value::as_bool)
                == Some(false)
    }

    /// Whether nothing more will be recorded for the request: denied, expired or cancelled; or
    /// audited for the last time (the audit's second pass, `audit.final`) and, for break-glass,
    /// acknowledged.
    pub fn is_final(&self) -> bool {
        match self.status {
            Status::Denied | Status::Expired | Status::Cancelled => true,
            Status::Audited => {
                self.audit
                    .as_ref()
                    .and_then(|audit| audit.get("final"))
                    .and_then(serde_json::Value::as_bool)
                    == Some(true)
                    && !self.needs_review()
            }
            _ => false,
        }
    }

    /// A break-glass request stays flagged until an approver acknowledges it, whatever its
    /// status: nobody approved it beforehand, so somebody must look at it afterwards.
    pub fn needs_review(&self) -> bool {
        self.break_glass && self.acknowledgement.is_none()
    }

    /// How many approvals have been recorded.
    pub fn approvals(&self) -> usize {
        self.decisions
            .values()
            .filter(|decision| decision.approve)
            .count()
    }

    /// The `SourceIdentity` of every session vended for the request, which CloudTrail carries
    /// through role chaining and nobody can change once set: the requester's principal id as
    /// AWS knows it (`AIDA…` for an IAM user; `AROA…` and the identity provider's session name
    /// for a role session, the `:` written `-`, which STS does not accept, and `,` too, which
    /// runbook list parameters split on), never a name a namesake could take over. Records
    /// made before principal ids were kept fall back to the identity name.
    pub fn source_identity(&self) -> String {
        match self.requester_principal_id.as_deref() {
            Some(id) if id.len() >= 2 => sts_safe(&id.replace(',', "-"), 64),
            _ => self.requester_identity.clone(),
        }
    }

    /// The request as the API shows it: no task token, nothing internal.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "status": self.status,
            "requester": self.requester,
            "catalog_id": self.catalog_id,
            "role_arn": self.role_arn,
            "permission_set": self.assignment.as_ref().map(|a| serde_json::json!({
                "instance_arn": a.instance_arn,
                "permission_set_arn": a.permission_set_arn,
                "account": a.account,
                "user_id": a.user_id,
                "name": self.permission_set_name,
            })),
            "duration": format_duration(self.duration()),
            "start_at": self.start_at,
            "reason": self.reason,
            "ticket": self.ticket,
            "created_at": self.created_at,
            "approval_expires_at": self.approval_expires_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "decisions": self.decisions.iter().map(|(approver, decision)| serde_json::json!({
                "approver": approver, "approve": decision.approve, "at": decision.at, "comment": decision.comment,
            })).collect::<Vec<_>>(),
            "context": self.context,
            "audit": self.audit,
            "credentials_issued": self.credentials_issued,
            "outcome": self.outcome,
            "break_glass": self.break_glass,
            "review": self.break_glass.then(|| serde_json::json!({
                "required": self.needs_review(),
                "acknowledgement": self.acknowledgement,
            })),
        })
    }
}

/// Makes a request id from 16 random bytes: `r-` and 26 base32 characters (lower case),
/// which is safe in URLs, execution names, session tags and STS session names.
pub fn request_id_from_bytes(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut value = u128::from_be_bytes(bytes);
    let mut out = String::with_capacity(28);
    out.push_str("r-");
    for _ in 0..26 {
        out.push(ALPHABET[(value & 31) as usize] as char);
        value >>= 5;
    }
    out
}

/// Whether `text` looks like an id `request_id_from_bytes` makes (checked before any lookup).
pub fn is_request_id(text: &str) -> bool {
    text.len() == 28
        && text.starts_with("r-")
        && text[2..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::testing::{alice, now, sample_catalog_json};

    fn entry() -> Entry {
        Catalog::load(&sample_catalog_json(), "trailgate-")
            .unwrap()
            .entry("sandbox-admin")
            .unwrap()
            .clone()
    }

    fn input(duration: &str, reason: &str) -> NewRequest {
        NewRequest {
            catalog_id: "sandbox-admin".into(),
            account: None,
            duration: duration.into(),
            reason: reason.into(),
            ticket: None,
            start_at: None,
        }
    }

    #[test]
    fn two_requests_in_one_second_sort_in_creation_order() {
        // `GET /requests` lists newest first on `created_at`; whole seconds would tie here.
        let make = |ms: i64, id: &str| {
            AccessRequest::create(
                id.into(),
                &alice(),
                &input("2h", "fix prod"),
                &entry(),
                now() + Duration::milliseconds(ms),
            )
            .unwrap()
        };
        let (older, newer) = (make(250, "r-z"), make(750, "r-a"));
        assert!(older.created_at < newer.created_at);
        assert_eq!(older.created_at[..19], newer.created_at[..19]);
        assert_eq!(older.updated_at, format_utc(now()));
    }

    #[test]
    fn a_valid_request_is_pending_with_a_content_hash() {
        let request = AccessRequest::create(
            "r-1".into(),
            &alice(),
            &input("2h", " fix prod "),
            &entry(),
            now(),
        )
        .unwrap();
        assert_eq!(request.status, Status::Pending);
        assert_eq!(request.duration_seconds, 7200);
        assert_eq!(request.reason, "fix prod");
        assert_eq!(request.requester_identity, "alice");
        // No principal id known: the name; with one, the id AWS gave the principal.
        assert_eq!(request.source_identity(), "alice");
        let mut bound = request.clone();
        bound.requester_principal_id = Some("AIDAEXAMPLEALICE00001".into());
        assert_eq!(bound.source_identity(), "AIDAEXAMPLEALICE00001");
        bound.requester_principal_id = Some("AROAEXAMPLESSO000001:alice@example.com".into());
        assert_eq!(
            bound.source_identity(),
            "AROAEXAMPLESSO000001-alice@example.com"
        );
        bound.requester_principal_id = Some(format!("AROAEXAMPLESSO000001:{}", "x".repeat(80)));
        assert_eq!(bound.source_identity().len(), 64);
        assert_eq!(request.content_hash, request.compute_content_hash());
        assert_eq!(request.approval_expires_at, "2026-11-21T11:00:00Z");
    }

    #[test]
    fn every_rule_names_its_field() {
        let cases = [
            (input("5h", "x"), Some("duration")),
            (input("soon", "x"), Some("duration")),
            (input("1h", "  "), Some("reason")),
            (
                input("1h", &"x".repeat(MAX_REASON_CHARS + 1)),
                Some("reason"),
            ),
            (input("1h", "a\u{7}b"), Some("reason")),
        ];
        for (input, field) in cases {
            let err =
                AccessRequest::create("r-1".into(), &alice(), &input, &entry(), now()).unwrap_err();
            assert_eq!(err.field.as_deref(), field, "{err}");
        }
        let stranger = Caller::from_arn("arn:aws:iam::999999999999:user/mallory");
        let err =
            AccessRequest::create("r-1".into(), &stranger, &input("1h", "x"), &entry(), now())
                .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Forbidden);
    }

    #[test]
    fn ticket_pattern_is_enforced() {
        let mut entry = entry();
        entry.ticket_pattern = Some("OPS-[0-9]+".into());
        let mut with_ticket = input("1h", "x");
        assert_eq!(
            AccessRequest::create("r".into(), &alice(), &with_ticket, &entry, now())
                .unwrap_err()
                .field
                .as_deref(),
            Some("ticket")
        );
        with_ticket.ticket = Some("OPS-12x".into());
        assert!(AccessRequest::create("r".into(), &alice(), &with_ticket, &entry, now()).is_err());
        with_ticket.ticket = Some("OPS-12".into());
        assert!(AccessRequest::create("r".into(), &alice(), &with_ticket, &entry, now()).is_ok());
    }

    #[test]
    fn a_start_is_in_the_future_within_the_entrys_delay_and_part_of_the_signed_content() {
        let at = |hours: i64| Some(format_utc(now() + Duration::hours(hours)));
        let with_start = |start: Option<String>| NewRequest {
            start_at: start,
            ..input("2h", "fix")
        };
        let create = |input: &NewRequest| {
            AccessRequest::create("r-1".into(), &alice(), input, &entry(), now())
        };
        let scheduled = create(&with_start(at(24))).unwrap();
        assert_eq!(scheduled.start_at, at(24));
        let plain = create(&input("2h", "fix")).unwrap();
        assert_ne!(scheduled.content_hash, plain.content_hash);
        assert_eq!(plain.start_at, None);
        // A start given with an offset is kept in UTC.
        let offset = create(&with_start(Some("2026-11-22T12:00:00+02:00".into()))).unwrap();
        assert_eq!(offset.start_at.as_deref(), Some("2026-11-22T10:00:00Z"));
        for (start, needle) in [
            (Some("tomorrow".to_owned()), "is not a time"),
            (at(-1), "is not in the future"),
            (Some(format_utc(now())), "is not in the future"),
            (at(24 * 8), "more than the PT168H ahead this role allows"),
        ] {
            let err = create(&with_start(start)).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::InvalidRequest);
            assert_eq!(err.field.as_deref(), Some("start_at"), "{err:?}");
            assert!(err.message.contains(needle), "{}", err.message);
        }
        let mut glass = entry();
        glass.break_glass = true;
        glass.max_duration = "PT1H".into();
        let err = AccessRequest::create(
            "r-1".into(),
            &alice(),
            &NewRequest {
                start_at: at(2),
                ..input("1h", "fix")
            },
            &glass,
            now(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("break-glass access starts at once"),
            "{err:?}"
        );
    }

    #[test]
    fn content_hash_changes_with_the_content() {
        let request =
            AccessRequest::create("r-1".into(), &alice(), &input("2h", "fix"), &entry(), now())
                .unwrap();
        let mut changed = request.clone();
        changed.duration_seconds += 1;
        assert_ne!(request.content_hash, changed.compute_content_hash());
    }

    #[test]
    fn transitions_follow_the_lifecycle() {
        use Status::*;
        assert!(Pending.can_become(Approved));
        assert!(Approved.can_become(Active));
        assert!(Active.can_become(Revoked));
        assert!(Revoked.can_become(Audited));
        assert!(!Denied.can_become(Approved));
        assert!(!Pending.can_become(Active));
        assert!(!Revoked.can_become(Active));
        assert!(!Expired.can_become(Approved));
    }

    #[test]
    fn request_ids_are_url_and_sts_safe() {
        let id = request_id_from_bytes([0xab; 16]);
        assert!(is_request_id(&id), "{id}");
        assert!(!is_request_id("r-../../etc"));
        assert!(!is_request_id("R-AAAAAAAAAAAAAAAAAAAAAAAAAA"));
    }

    #[test]
    fn caller_identity_is_sts_safe() {
        let assumed = Caller::from_arn("arn:aws:sts::1:assumed-role/Dev/jane doe");
        assert_eq!(assumed.identity(), "jane-doe");
        assert_eq!(alice().identity(), "alice");
    }
}
