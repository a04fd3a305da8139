//! The use cases, one function each, written against the ports.
//!
//! Handlers call exactly one of these; everything that decides lives here or below.
//! Each function that changes a request reads it, builds a `Change` and commits it; a
//! `Conflict` from the ledger means another writer got there first, so the use case reads
//! again and re-decides (`with_retry`).

use crate::catalog::{Catalog, Entry, role_name};
use crate::error::{Error, ErrorKind, Result};
use crate::ledger::{Change, ClaimExpect, OpenClaim, change, open_claim_key};
use crate::link::{LinkKey, LinkParams};
use crate::policy::{self, MANAGED_TAG, REQUEST_TAG, REVOCATIONS_POLICY_NAME};
use crate::ports::{
    AssumeRequest, CredentialIssuer, IdempotencyRecord, IssuedCredentials, Ledger, Notifier,
    RequestPage, Roles, Topic, Workflow,
};
use crate::request::{
    AccessRequest, Acknowledgement, Caller, ContextSummary, Decision, NewRequest, Status,
};
use crate::time::{format_duration, format_utc, parse_utc};
use ::time::{Duration, OffsetDateTime};
use serde_json::json;
use sha2::{Digest, Sha256};

/// How often a use case re-reads after losing a race before giving up.
const CONFLICT_RETRIES: usize = 4;

async fn load<L: Ledger>(ledger: &L, id: &str) -> Result<AccessRequest> {
    ledger
        .get(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no request `{id}`")))
}

/// Runs `attempt` again when it lost a race on the ledger.
async fn with_retry<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(err)
                if err.kind == ErrorKind::Conflict
                    && err.message == STALE
                    && tries < CONFLICT_RETRIES =>
            {
                tries += 1
            }
            Err(err) if err.message == STALE => {
                return Err(Error::retryable("the request kept changing; try again"));
            }
            other => return other,
        }
    }
}

/// The message the ledger adapter uses for a lost conditional write.
pub const STALE: &str = "the request changed while it was being updated";

async fn commit<L: Ledger>(ledger: &L, change: Change) -> Result<AccessRequest> {
    ledger.commit(&change).await?;
    Ok(change.record)
}

// ---------------------------------------------------------------------------------------------
// Intake

/// Settings intake passes to the state machine.
#[derive(Debug, Clone, Copy)]
pub struct IntakeSettings {
    pub audit_delay: Duration,
}

/// Validates and records a new request as PENDING, then starts its execution. No request
/// policy: see [`submit_with_policy`] for what intake does.
#[allow(clippy::too_many_arguments)]
pub async fn submit<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    catalog: &Catalog,
    settings: IntakeSettings,
    caller: &Caller,
    input: &NewRequest,
    id: String,
    now: OffsetDateTime,
) -> Result<AccessRequest> {
    let entry = find_entry(catalog, input)?;
    let request = AccessRequest::create(id, caller, input, entry, now)?;
    create_and_start(
        ledger,
        workflow,
        entry,
        settings,
        request,
        ClaimExpect::Any,
        now,
    )
    .await
}

fn find_entry<'a>(catalog: &'a Catalog, input: &NewRequest) -> Result<&'a Entry> {
    catalog.entry(&input.catalog_id).ok_or_else(|| {
        Error::invalid(
            "catalog_id",
            format!("there is no catalog entry `{}`", input.catalog_id),
        )
    })
}

/// Records a validated request as PENDING, moving its (requester, role) claim under
/// `expect`, then starts its execution.
async fn create_and_start<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    entry: &Entry,
    settings: IntakeSettings,
    request: AccessRequest,
    expect: ClaimExpect,
    now: OffsetDateTime,
) -> Result<AccessRequest> {
    let requester = request.requester.clone();
    let mut created = change(None, request, &requester, "Requested", None, now)?;
    created.claim = Some(OpenClaim {
        key: open_claim_key(&created.record.requester, &created.record.role_arn),
        expect,
    });
    let created = commit(ledger, created).await?;
    let execution_input = json!({"request": {
        "id": created.id,
        "approval_window_seconds": entry.approval_window()?.whole_seconds(),
        "audit_delay_seconds": settings.audit_delay.whole_seconds(),
        // Steers the state machine's `Break Glass?` choice; the break-glass step checks the
        // catalog again, so a forged execution input cannot skip approval on its own.
        "break_glass": created.break_glass,
    }});
    if let Err(err) = workflow.start(&created.id, &execution_input).await {
        // Without an execution nobody would ever decide or expire the request: close it
        // rather than leave a PENDING record that looks alive.
        let mut cancelled = created.clone();
        cancelled.status = Status::Cancelled;
        cancelled.outcome = Some("the approval workflow could not be started".into());
        let detail = Some(err.message.clone());
        commit(
            ledger,
            change(
                Some(&created),
                cancelled,
                "trailgate:intake",
                "WorkflowStartFailed",
                detail,
                now,
            )?,
        )
        .await?;
        return Err(Error::retryable(format!(
            "could not start the approval workflow: {}",
            err.message
        )));
    }
    Ok(created)
}

/// Returns a request to its requester or one of its approvers.
pub async fn show<L: Ledger>(
    ledger: &L,
    catalog: &Catalog,
    caller: &Caller,
    id: &str,
) -> Result<AccessRequest> {
    let request = load(ledger, id).await?;
    let is_approver = catalog.entry(&request.catalog_id).is_some_and(|entry| {
        entry
            .approvers
            .iter()
            .any(|approver| approver.arn == caller.arn)
    });
    if request.requester != caller.arn && !is_approver {
        // Same answer as a missing request, so ids cannot be probed.
        return Err(Error::not_found(format!("no request `{id}`")));
    }
    Ok(request)
}

/// The request policy intake applies on top of the catalog's rules.
#[derive(Debug, Clone, Copy)]
pub struct RequestPolicy {
    /// Submissions one requester may make per minute (counted whatever their outcome).
    pub per_minute: u32,
    /// At most one PENDING, APPROVED or ACTIVE request per requester and role. Off only
    /// where a test needs concurrent requests for one role (template `OneOpenRequestPerRole`).
    pub one_open_per_role: bool,
}

impl Default for RequestPolicy {
    fn default() -> RequestPolicy {
        RequestPolicy {
            per_minute: 10,
            one_open_per_role: true,
        }
    }
}

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::hours(24);
/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
/// The most requests `GET /requests` returns in one page, and its default page size.
pub const MAX_PAGE: usize = 50;
pub const DEFAULT_PAGE: usize = 20;

/// The outcome of [`submit_with_policy`]: the request, and whether this call created it
/// (201) or found an existing one (200).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub request: AccessRequest,
    pub created: bool,
}

impl Submitted {
    /// The HTTP status the API answers with.
    pub fn http_status(&self) -> u16 {
        if self.created { 201 } else { 200 }
    }
}

/// Scopes an idempotency key to its requester, so two callers' keys never collide and a key
/// cannot be used to read someone else's request. Hashed to keep ledger keys bounded.
pub fn idempotency_scope(caller: &Caller, key: &str) -> String {
    hex::encode(Sha256::digest(format!("{}\n{key}", caller.arn)))
}

fn check_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_CHARS
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Error::invalid(
            "Idempotency-Key",
            format!(
                "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
            ),
        ));
    }
    Ok(())
}

fn body_hash(input: &NewRequest) -> Result<String> {
    // The parsed body, re-serialised: retries that differ only in whitespace or key order
    // are the same request.
    let bytes = serde_json::to_vec(input).map_err(|err| Error::internal(err.to_string()))?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

/// Submits a request under the request policy: an `Idempotency-Key` replays the first answer
/// (or is a `Conflict` when the body differs), the per-requester rate limit applies, and a
/// requester with an open (PENDING, APPROVED or ACTIVE) request for the same role gets that
/// request back instead of a second one.
#[allow(clippy::too_many_arguments)]
pub async fn submit_with_policy<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    catalog: &Catalog,
    settings: IntakeSettings,
    policy: RequestPolicy,
    caller: &Caller,
    input: &NewRequest,
    idempotency_key: Option<&str>,
    id: String,
    now: OffsetDateTime,
) -> Result<Submitted> {
    let idempotency = match idempotency_key {
        None => None,
        Some(key) => {
            check_idempotency_key(key)?;
            Some((idempotency_scope(caller, key), body_hash(input)?))
        }
    };
    if let Some((scope, hash)) = &idempotency
        && let Some(remembered) = ledger.idempotency(scope).await?
    {
        if &remembered.body_hash != hash {
            return Err(Error {
                kind: ErrorKind::Conflict,
                message: "this `Idempotency-Key` was used with a different request body".into(),
                field: Some("Idempotency-Key".into()),
            });
        }
        let request = ledger.get(&remembered.request_id).await?.ok_or_else(|| {
            Error::internal("an idempotency key names a request the ledger does not hold")
        })?;
        return Ok(Submitted {
            request,
            created: remembered.status == 201,
        });
    }

    check_rate(ledger, policy, caller, now).await?;

    // Validate before looking for a duplicate, so a bad repeat is still a 400.
    let submitted = if policy.one_open_per_role {
        let entry = find_entry(catalog, input)?;
        let request = AccessRequest::create(id, caller, input, entry, now)?;
        submit_one_open(ledger, workflow, entry, settings, request, now).await?
    } else {
        Submitted {
            request: submit(ledger, workflow, catalog, settings, caller, input, id, now).await?,
            created: true,
        }
    };
    if let Some((scope, hash)) = idempotency {
        // Remembered only once there is an answer to replay. Two retries racing with one key
        // may both get here; the first write wins, and the claim keeps the second from
        // creating another request (it answers with the first one's).
        let record = IdempotencyRecord {
            scope,
            body_hash: hash,
            request_id: submitted.request.id.clone(),
            status: submitted.http_status(),
        };
        ledger
            .remember(&record, (now + IDEMPOTENCY_TTL).unix_timestamp())
            .await?;
    }
    Ok(submitted)
}

async fn check_rate<L: Ledger>(
    ledger: &L,
    policy: RequestPolicy,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<()> {
    let window_start = now.unix_timestamp() - now.unix_timestamp().rem_euclid(60);
    let window = format!("{window_start}");
    // Counters live two windows, so a clock slightly behind DynamoDB's TTL sweep never
    // finds a purged counter for the current minute.
    if !ledger
        .count_call(&caller.arn, &window, policy.per_minute, window_start + 120)
        .await?
    {
        let wait = retry_after(now);
        return Err(Error::rate_limited(format!(
            "at most {} requests a minute; try again in {wait} seconds",
            policy.per_minute
        )));
    }
    Ok(())
}

/// Seconds until the current rate window ends (at least 1): the `Retry-After` of a 429.
pub fn retry_after(now: OffsetDateTime) -> i64 {
    (60 - now.unix_timestamp().rem_euclid(60)).max(1)
}

/// Creates `request` unless its requester already has an open request for the same role,
/// which is returned instead. The check and the create are one conditional write on the
/// pair's claim, so concurrent submissions make exactly one request: a loser reads the claim
/// again and finds the winner's request.
async fn submit_one_open<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    entry: &Entry,
    settings: IntakeSettings,
    request: AccessRequest,
    now: OffsetDateTime,
) -> Result<Submitted> {
    let key = open_claim_key(&request.requester, &request.role_arn);
    for _ in 0..=CONFLICT_RETRIES {
        let expect = match ledger.open_claim(&key).await? {
            None => ClaimExpect::Vacant,
            Some(holder) => match ledger.get(&holder).await? {
                Some(open) if open.status.is_open() => {
                    return Ok(Submitted {
                        request: open,
                        created: false,
                    });
                }
                // Closed (or, after a manual clean-up, gone): the claim may be taken over.
                _ => ClaimExpect::HeldBy(holder),
            },
        };
        let attempt = create_and_start(
            ledger,
            workflow,
            entry,
            settings,
            request.clone(),
            expect,
            now,
        )
        .await;
        match attempt {
            Err(err) if err.kind == ErrorKind::Conflict && err.message == STALE => continue,
            other => {
                return other.map(|request| Submitted {
                    request,
                    created: true,
                });
            }
        }
    }
    Err(Error::retryable(
        "other requests for this role kept arriving; try again",
    ))
}

/// Parses `GET /requests`' `limit` (1 to [`MAX_PAGE`], default [`DEFAULT_PAGE`]).
pub fn parse_limit(text: Option<&str>) -> Result<usize> {
    let Some(text) = text else {
        return Ok(DEFAULT_PAGE);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(Error::invalid(
            "limit",
            format!("`limit` must be a whole number from 1 to {MAX_PAGE}"),
        )),
    }
}

/// The longest `next` token accepted, so a forged one is refused before it reaches the ledger.
const MAX_TOKEN_CHARS: usize = 1024;

/// The caller's own requests, newest first, one page at a time.
pub async fn list_mine<L: Ledger>(
    ledger: &L,
    caller: &Caller,
    limit: usize,
    next: Option<&str>,
) -> Result<RequestPage> {
    if next.is_some_and(|token| token.is_empty() || token.len() > MAX_TOKEN_CHARS) {
        return Err(Error::invalid("next", "`next` is not a page token"));
    }
    ledger.by_requester(&caller.arn, limit, next).await
}

/// Cancels a PENDING request at its requester's word. The waiting execution is left to time
/// out (intake may not stop executions): the decision core refuses a non-PENDING request,
/// and the expiry step records nothing for a CANCELLED one, so nothing is ever granted.
pub async fn cancel<L: Ledger>(
    ledger: &L,
    catalog: &Catalog,
    caller: &Caller,
    id: &str,
    now: OffsetDateTime,
) -> Result<AccessRequest> {
    with_retry(|| async {
        let current = show(ledger, catalog, caller, id).await?;
        if current.requester != caller.arn {
            return Err(Error::forbidden("only the requester can cancel a request"));
        }
        if current.status == Status::Cancelled {
            // A double click: the request is already what the caller wants.
            return Ok(current);
        }
        if current.status != Status::Pending {
            return Err(Error::conflict(format!(
                "the request is {}; only a PENDING request can be cancelled",
                current.status
            )));
        }
        let mut next = current.clone();
        next.status = Status::Cancelled;
        next.task_token = None;
        next.outcome = Some("cancelled by the requester".into());
        let actor = caller.arn.clone();
        commit(
            ledger,
            change(Some(&current), next, &actor, "Cancelled", None, now)?,
        )
        .await
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Context

/// Records what reviewers will be shown. Until a CloudTrail source is configured this says so
/// plainly instead of pretending the requester's history is clean.
pub async fn record_context<L: Ledger>(
    ledger: &L,
    id: &str,
    context: ContextSummary,
    now: OffsetDateTime,
) -> Result<ContextSummary> {
    with_retry(|| {
        let context = context.clone();
        async move {
            let current = load(ledger, id).await?;
            let mut next = current.clone();
            next.context = Some(context.clone());
            commit(
                ledger,
                change(
                    Some(&current),
                    next,
                    "trailgate:context",
                    "ContextGathered",
                    Some(context.summary.clone()),
                    now,
                )?,
            )
            .await?;
            Ok(context)
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Approval

/// What approval messages need besides the request.
pub struct ApprovalSettings<'a> {
    pub key: &'a LinkKey,
    /// Base URL of the public decision route, without a trailing slash.
    pub decision_base_url: &'a str,
}

/// Stores the task token and sends one message per approver, each with its own signed link.
/// Returns the ids of the approvers notified.
pub async fn request_approval<L: Ledger, N: Notifier>(
    ledger: &L,
    notifier: &N,
    catalog: &Catalog,
    settings: &ApprovalSettings<'_>,
    id: &str,
    task_token: &str,
    now: OffsetDateTime,
) -> Result<Vec<String>> {
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
            .filter(|a| a.arn != current.requester)
            .map(|a| a.id.as_str())
            .collect();
        let detail = Some(format!("notifying {}", eligible.join(", ")));
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
        if approver.arn == request.requester {
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
    Ok(notified)
}

/// The plain-text approval e-mail. SNS subjects must be printable ASCII under 100 characters.
pub fn approval_message(request: &AccessRequest, entry: &Entry, url: &str) -> (String, String) {
    let subject = sanitize_subject(&format!(
        "trailgate: {} requests {} for {}",
        request.requester_identity,
        entry.id,
        format_duration(request.duration())
    ));
    let mut body = String::new();
    body.push_str(&format!(
        "{} asks for temporary access.\n\n",
        request.requester
    ));
    push_facts(&mut body, request, entry, "");
    body.push_str("What the requester has been doing:\n");
    push_context(&mut body, request);
    body.push_str(&format!(
        "\nReview and decide (the page asks you to confirm; opening it changes nothing):\n{url}\n\nThis link is yours alone and stops working at {}.\n",
        request.approval_expires_at
    ));
    (subject, body)
}

fn sanitize_subject(text: &str) -> String {
    let mut subject: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    subject.truncate(99);
    subject
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
        if approver.arn == request.requester {
            continue;
        }
        notifier
            .publish(Topic::Approvals, &subject, &body, Some(&approver.email))
            .await?;
        alerted.push(approver.id.clone());
    }
    Ok(alerted)
}

/// The alert sent when break-glass access starts.
pub fn break_glass_message(request: &AccessRequest, entry: &Entry) -> (String, String) {
    let subject = sanitize_subject(&format!(
        "trailgate BREAK-GLASS: {} took {} for {}",
        request.requester_identity,
        entry.id,
        format_duration(request.duration())
    ));
    let mut body = String::new();
    body.push_str(&format!(
        "{} used break-glass access. Nobody approved it; it starts now.\n\n",
        request.requester
    ));
    let cap = format!(
        " (break-glass is capped at {})",
        format_duration(crate::catalog::BREAK_GLASS_MAX_DURATION)
    );
    push_facts(&mut body, request, entry, &cap);
    body.push_str("What the requester had been doing:\n");
    push_context(&mut body, request);
    body.push_str(&format!(
        "\nTo end it now:        jitctl revoke {id}\nAfter reviewing it:   jitctl ack {id} --comment \"...\"\nThe session audit is sent to you after it ends; the request stays flagged for review until an approver acknowledges it.\n",
        id = request.id
    ));
    (subject, body)
}

/// The facts every message about a request starts with; `duration_note` follows the duration.
fn push_facts(body: &mut String, request: &AccessRequest, entry: &Entry, duration_note: &str) {
    body.push_str(&format!("Role:      {}\n", request.role_arn));
    body.push_str(&format!(
        "Catalog:   {} ({})\n",
        entry.id, entry.description
    ));
    body.push_str(&format!(
        "Duration:  {}{duration_note}\n",
        format_duration(request.duration())
    ));
    body.push_str(&format!("Reason:    {}\n", request.reason));
    body.push_str(&format!(
        "Ticket:    {}\n",
        request.ticket.as_deref().unwrap_or("none")
    ));
    body.push_str(&format!("Request:   {}\n\n", request.id));
}

fn push_context(body: &mut String, request: &AccessRequest) {
    match &request.context {
        Some(context) => {
            body.push_str(&format!("  {}\n", context.summary));
            for line in context.lines.iter().take(crate::findings::MAX_LINES) {
                body.push_str(&format!("  {line}\n"));
            }
        }
        None => body.push_str("  context unavailable\n"),
    }
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
            if current.requester == caller.arn {
                return Err(Error::forbidden(
                    "the requester cannot acknowledge their own break-glass access",
                ));
            }
            let approver = entry_of(catalog, &current)?
                .approvers
                .iter()
                .find(|approver| approver.arn == caller.arn)
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

// ---------------------------------------------------------------------------------------------
// Decision

/// What the confirm page shows.
#[derive(Debug, Clone)]
pub struct Review {
    pub request: AccessRequest,
    pub approver_id: String,
    pub entry_description: String,
}

fn entry_of<'c>(catalog: &'c Catalog, request: &AccessRequest) -> Result<&'c Entry> {
    catalog.entry(&request.catalog_id).ok_or_else(|| {
        Error::conflict(format!(
            "catalog entry `{}` no longer exists",
            request.catalog_id
        ))
    })
}

/// Verifies a link and returns what the approver should review. Changes nothing.
pub async fn review<L: Ledger>(
    ledger: &L,
    catalog: &Catalog,
    key: &LinkKey,
    link: &LinkParams,
    now: OffsetDateTime,
) -> Result<Review> {
    // Unknown requests get the same answer as bad links: a link must not reveal what exists.
    let request = ledger
        .get(&link.request_id)
        .await?
        .ok_or_else(|| Error::forbidden("this link is not valid"))?;
    key.verify(link, &request.content_hash, now.unix_timestamp())?;
    let entry = entry_of(catalog, &request)?;
    let approver = entry
        .approver(&link.approver_id)
        .ok_or_else(|| Error::forbidden("you are no longer an approver for this role"))?;
    if approver.arn == request.requester {
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
    approve: bool,
    comment: Option<String>,
    now: OffsetDateTime,
) -> Result<AccessRequest> {
    // The link is verified once: the content hash it is bound to never changes after intake,
    // and `decide_as` re-checks everything a decision can change on every attempt.
    let review = review(ledger, catalog, key, link, now).await?;
    decide_as(
        ledger,
        workflow,
        catalog,
        &link.request_id,
        &review.approver_id,
        approve,
        comment,
        now,
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
    approve: bool,
    comment: Option<String>,
    now: OffsetDateTime,
) -> Result<AccessRequest> {
    let request = load(ledger, id).await?;
    if request.requester == caller.arn {
        return Err(Error::forbidden("you cannot approve your own request"));
    }
    let entry = entry_of(catalog, &request)?;
    let approver = entry
        .approvers
        .iter()
        .find(|approver| approver.arn == caller.arn)
        .ok_or_else(|| {
            Error::forbidden(format!(
                "`{}` is not an approver of catalog entry `{}`",
                caller.arn, entry.id
            ))
        })?;
    decide_as(
        ledger,
        workflow,
        catalog,
        id,
        &approver.id,
        approve,
        comment,
        now,
    )
    .await
}

/// Records one approver's decision: the core shared by the link and the signed-principal paths,
/// so both obey the same rules. When it decides the request (the first deny, or the
/// quorum-th approval) the waiting execution is told. Returns the request as it now stands.
#[allow(clippy::too_many_arguments)]
pub async fn decide_as<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    catalog: &Catalog,
    id: &str,
    approver_id: &str,
    approve: bool,
    comment: Option<String>,
    now: OffsetDateTime,
) -> Result<AccessRequest> {
    let comment = comment
        .map(|c| c.trim().chars().take(500).collect::<String>())
        .filter(|c| !c.is_empty());
    let decided = with_retry(|| {
        let comment = comment.clone();
        async move {
            let current = load(ledger, id).await?;
            let entry = entry_of(catalog, &current)?;
            // Re-checked on every attempt: the catalog is per cold start, the request is not.
            let approver = entry
                .approver(approver_id)
                .ok_or_else(|| Error::forbidden("you are no longer an approver for this role"))?;
            if approver.arn == current.requester {
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
            let actor = format!("approver:{approver_id}");
            commit(
                ledger,
                change(Some(&current), next, &actor, action, None, now)?,
            )
            .await
        }
    })
    .await?;
    if decided.status.is_decided() {
        let token = decided
            .task_token
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

// ---------------------------------------------------------------------------------------------
// Grant

/// Checks that the request's role is one trailgate may grant, and marks the request ACTIVE.
/// Idempotent: a retried call on an ACTIVE request returns the same expiry.
/// `broker_role_arn` is the credentials function's role, the only principal the target
/// role may trust.
pub async fn activate<L: Ledger, R: Roles>(
    ledger: &L,
    roles: &R,
    catalog: &Catalog,
    own_role_prefix: &str,
    broker_role_arn: &str,
    id: &str,
    now: OffsetDateTime,
) -> Result<String> {
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
    let entry = entry_of(catalog, &current)?;
    if entry.role_arn != current.role_arn {
        return Err(Error::not_grantable(
            "the catalog entry now points at another role",
        ));
    }
    check_grantable(roles, &current.role_arn, own_role_prefix, broker_role_arn).await?;
    with_retry(|| async {
        let current = load(ledger, id).await?;
        if current.status == Status::Active {
            return current
                .expires_at
                .ok_or_else(|| Error::internal("an ACTIVE request has no expires_at"));
        }
        let mut next = current.clone();
        next.status = Status::Active;
        let expires_at = format_utc(now + current.duration());
        next.expires_at = Some(expires_at.clone());
        let detail = Some(format!("until {expires_at}"));
        commit(
            ledger,
            change(
                Some(&current),
                next,
                "trailgate:grant",
                "Activated",
                detail,
                now,
            )?,
        )
        .await?;
        Ok(expires_at)
    })
    .await
}

/// The grantable-role contract: the role exists, carries `trailgate:managed=true`, is not
/// one of trailgate's own roles, and its trust policy lets only the credentials function's role
/// (`broker_role_arn`) assume it, with a source identity ([`policy::check_trust_policy`]).
pub async fn check_grantable<R: Roles>(
    roles: &R,
    role_arn: &str,
    own_role_prefix: &str,
    broker_role_arn: &str,
) -> Result<()> {
    let name = role_name(role_arn)
        .ok_or_else(|| Error::not_grantable(format!("`{role_arn}` is not a role ARN")))?;
    if !own_role_prefix.is_empty() && name.starts_with(own_role_prefix) {
        return Err(Error::not_grantable(format!(
            "`{role_arn}` is one of trailgate's own roles"
        )));
    }
    let info = roles
        .describe(role_arn)
        .await?
        .ok_or_else(|| Error::not_grantable(format!("role `{role_arn}` does not exist")))?;
    let managed = info
        .tags
        .iter()
        .any(|(key, value)| key == MANAGED_TAG && value.eq_ignore_ascii_case("true"));
    if !managed {
        return Err(Error::not_grantable(format!(
            "role `{role_arn}` is not tagged `{MANAGED_TAG}=true`"
        )));
    }
    policy::check_trust_policy(&info.trust_policy, broker_role_arn).map_err(|reason| {
        Error::not_grantable(format!(
            "role `{role_arn}` breaks the trust contract: {reason}"
        ))
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Credentials

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

// ---------------------------------------------------------------------------------------------
// Revoke

/// Margin past `expires_at` before a deny statement may be collected, for clock skew.
const GC_MARGIN: Duration = Duration::minutes(5);
/// How far back the reconciler looks for ended grants whose roles may hold expired statements.
const GC_LOOKBACK: Duration = Duration::days(1);

/// Ends a grant: the per-request deny on the target role (read back to verify), then REVOKED.
/// Idempotent, and a no-op for requests that never got access.
pub async fn revoke<L: Ledger, R: Roles>(
    ledger: &L,
    roles: &R,
    id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Status> {
    let current = load(ledger, id).await?;
    match current.status {
        Status::Active | Status::Revoked | Status::Audited if current.expires_at.is_some() => {
            apply_deny(roles, &current, now).await?;
        }
        Status::Approved => {}
        other => return Ok(other),
    }
    if matches!(current.status, Status::Revoked | Status::Audited) {
        return Ok(current.status);
    }
    with_retry(|| async {
        let current = load(ledger, id).await?;
        if !current.status.can_become(Status::Revoked) {
            return Ok(current.status);
        }
        let mut next = current.clone();
        next.status = Status::Revoked;
        next.revoked_at = Some(format_utc(now));
        next.outcome = Some(if current.status == Status::Approved {
            // Only the Activate step's Catch revokes an APPROVED request, and the state machine
            // passes its usual reason there; the event detail keeps that reason.
            "never activated: the grant step failed".to_owned()
        } else {
            format!("revoked: {reason}")
        });
        commit(
            ledger,
            change(
                Some(&current),
                next,
                "trailgate:revoke",
                "Revoked",
                Some(reason.to_owned()),
                now,
            )?,
        )
        .await?;
        Ok(Status::Revoked)
    })
    .await
}

/// Ends a grant before its expiry, at the request of its requester or one of its entry's
/// approvers (`POST /requests/{id}/revoke`). It does exactly what the timer's revoke does, so
/// the later timer revoke finds the deny in place and changes nothing; it touches no other
/// request's deny statement on the role.
pub async fn revoke_early<L: Ledger, R: Roles>(
    ledger: &L,
    roles: &R,
    catalog: &Catalog,
    caller: &Caller,
    id: &str,
    now: OffsetDateTime,
) -> Result<AccessRequest> {
    // Same visibility rule as `show`: others get the answer a missing request gets.
    let current = show(ledger, catalog, caller, id).await?;
    if !matches!(
        current.status,
        Status::Approved | Status::Active | Status::Revoked | Status::Audited
    ) {
        return Err(Error::conflict(format!(
            "the request is {}: only a granted request can be revoked",
            current.status
        )));
    }
    let who = if current.requester == caller.arn {
        "the requester"
    } else {
        "an approver"
    };
    let reason = format!("revoked early by {who} ({})", caller.arn);
    revoke(ledger, roles, id, &reason, now).await?;
    load(ledger, id).await
}

/// Puts the request's deny on its role unless it is already there, and waits until IAM shows
/// it. Returns whether it had to write.
async fn apply_deny<R: Roles>(
    roles: &R,
    request: &AccessRequest,
    now: OffsetDateTime,
) -> Result<bool> {
    let name = role_name(&request.role_arn)
        .ok_or_else(|| Error::internal(format!("`{}` is not a role ARN", request.role_arn)))?;
    let expires_at = parse_utc(request.expires_at.as_deref().unwrap_or_default())?;
    let remove_after = (expires_at + GC_MARGIN).unix_timestamp();
    let current = roles.inline_policy(name, REVOCATIONS_POLICY_NAME).await?;
    if current
        .as_deref()
        .is_some_and(|doc| policy::denies_request(doc, &request.id))
    {
        return Ok(false);
    }
    let document = policy::add_revocation(
        current.as_deref(),
        &request.id,
        remove_after,
        now.unix_timestamp(),
    )?;
    roles
        .put_inline_policy(name, REVOCATIONS_POLICY_NAME, &document)
        .await?;
    wait_until_visible(roles, name, &request.id).await?;
    Ok(true)
}

/// How long a revoke waits for IAM to show its deny before it reports failure, and the
/// pauses between read-backs (doubling). IAM changes usually show within a second or two but
/// "might take a few minutes" (IAM user guide), so the bound is a step's budget, not a promise:
/// past it the step fails `Retryable` and the state machine (or the reconciler) tries again.
pub const VISIBILITY_BOUND: std::time::Duration = std::time::Duration::from_secs(10);
const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
const LONGEST_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the revocations policy back until it denies `request_id`, pausing with backoff, for
/// at most [`VISIBILITY_BOUND`] of pauses. Success is reported only once IAM returns the deny.
async fn wait_until_visible<R: Roles>(roles: &R, role: &str, request_id: &str) -> Result<()> {
    let mut waited = std::time::Duration::ZERO;
    let mut pause = FIRST_PAUSE;
    loop {
        let read_back = roles.inline_policy(role, REVOCATIONS_POLICY_NAME).await?;
        if read_back
            .as_deref()
            .is_some_and(|doc| policy::denies_request(doc, request_id))
        {
            return Ok(());
        }
        if waited >= VISIBILITY_BOUND {
            return Err(Error::retryable(format!(
                "the deny for {request_id} is not visible on `{role}` after {}s",
                waited.as_secs()
            )));
        }
        let this_pause = pause.min(VISIBILITY_BOUND - waited);
        roles.pause(this_pause).await;
        waited += this_pause;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

// ---------------------------------------------------------------------------------------------
// Audit

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
            crate::ledger::verify_chain(&current, &events)?;
            let report = json!({
                "granted_until": current.expires_at,
                "revoked_at": current.revoked_at,
                "credentials_issued": current.credentials_issued,
                "session_name": session_name(&current),
                "source_identity": current.requester_identity,
                "break_glass": current.break_glass,
                "cloudtrail": cloudtrail,
                "ledger_events": events.iter().map(|e| json!({"at": e.at, "actor": e.actor, "action": e.action})).collect::<Vec<_>>(),
                "ledger_chain_verified": true,
            });
            let entry = entry_of(catalog, &current)?;
            let (subject, body) = audit_message(&current, &report);
            for approver in &entry.approvers {
                if approver.arn != current.requester {
                    notifier.publish(Topic::Approvals, &subject, &body, Some(&approver.email)).await?;
                }
            }
            let mut next = current.clone();
            next.status = Status::Audited;
            next.audit = Some(report.clone());
            commit(ledger, change(Some(&current), next, "trailgate:audit", "Audited", None, now)?).await?;
            Ok(report)
        }
    })
    .await
}

/// The audit e-mail: what the session did, in a few lines, with the way to the full report.
pub fn audit_message(request: &AccessRequest, report: &serde_json::Value) -> (String, String) {
    let flag = if request.needs_review() {
        " [NEEDS REVIEW]"
    } else {
        ""
    };
    let subject = sanitize_subject(&format!(
        "trailgate audit{flag}: {} on {} ({})",
        request.requester_identity, request.catalog_id, request.id
    ));
    let number = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let mut body = String::new();
    if request.needs_review() {
        body.push_str(&format!(
            "NEEDS REVIEW: this was break-glass access that nobody approved. After reviewing it, run:\n  jitctl ack {} --comment \"...\"\n\n",
            request.id
        ));
    }
    body.push_str(&format!(
        "{} had {} ({}).\n",
        request.requester, request.role_arn, request.catalog_id
    ));
    body.push_str(&format!(
        "Granted until {}, revoked at {}, {} credential set(s) issued.\n\n",
        request.expires_at.as_deref().unwrap_or("?"),
        request.revoked_at.as_deref().unwrap_or("?"),
        request.credentials_issued
    ));
    let cloudtrail = &report["cloudtrail"];
    if cloudtrail["analysed"].as_bool() == Some(true) {
        body.push_str(&format!(
            "CloudTrail: {} calls ({} writes, {} reads), {} resources touched.\n",
            number("/cloudtrail/events"),
            number("/cloudtrail/writes"),
            number("/cloudtrail/reads"),
            number("/cloudtrail/resources_total"),
        ));
        if let Some(services) = cloudtrail["actions_by_service"].as_object() {
            for (service, actions) in services.iter().take(10) {
                let names: Vec<String> = actions
                    .as_object()
                    .into_iter()
                    .flatten()
                    .take(8)
                    .map(|(name, count)| format!("{name} x{count}"))
                    .collect();
                body.push_str(&format!("  {service}: {}\n", names.join(", ")));
            }
        }
        for error in cloudtrail["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .take(5)
        {
            body.push_str(&format!(
                "  ! {} on {} x{}\n",
                error["code"].as_str().unwrap_or("?"),
                error["action"].as_str().unwrap_or("?"),
                error["count"].as_u64().unwrap_or(0)
            ));
        }
        for finding in cloudtrail["incident_findings"]
            .as_array()
            .into_iter()
            .flatten()
            .take(10)
        {
            body.push_str(&format!("  ! {}\n", finding.as_str().unwrap_or("?")));
        }
        if cloudtrail["coverage"]["truncated"].as_bool() == Some(true) {
            body.push_str(
                "  (INCOMPLETE: the scan was cut short; see the coverage notes in the report)\n",
            );
        }
    } else {
        body.push_str(&format!(
            "CloudTrail: not analysed: {}\n",
            cloudtrail["reason"].as_str().unwrap_or("no reason given")
        ));
    }
    body.push_str(&format!(
        "\nFull report, with a least-privilege policy built from the calls made:\n  jitctl status {} --json\n",
        request.id
    ));
    (subject, body)
}

// ---------------------------------------------------------------------------------------------
// Reconcile

/// What one reconciler run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// ACTIVE grants past expiry that it revoked.
    pub revoked: Vec<String>,
    /// REVOKED or AUDITED requests whose deny was missing (a failed or lost write) and is back.
    pub reapplied: Vec<String>,
    /// Roles whose expired deny statements it removed.
    pub collected: Vec<String>,
    /// (request id or role name, error) for anything it could not do; the next run retries.
    pub failed: Vec<(String, String)>,
}

impl ReconcileReport {
    /// Whether the run found something the state machine should have done.
    pub fn found_anything(&self) -> bool {
        !self.revoked.is_empty() || !self.reapplied.is_empty() || !self.failed.is_empty()
    }
}

/// The reconciler: the backstop for a stopped execution, a deleted or replaced state machine,
/// a revoke whose retries ran out, or a deny lost to a concurrent write. It
/// 1. revokes every ACTIVE grant past its expiry,
/// 2. re-applies the deny of every REVOKED or AUDITED request whose deny is still needed
///    (`expires_at` + the collection margin is in the future),
/// 3. collects expired deny statements on the roles it looked at.
///
/// Every step is idempotent and reads before it writes, so it is safe to run while executions
/// revoke. IAM has no conditional write, so a revoke racing this run's collection on the same
/// role could lose its statement; collection therefore runs before the re-apply step, and the
/// revoke itself reads its deny back, so a lost statement is re-applied by this run or the next.
/// Anything it has to do is reported on the alerts topic: it means the state machine did not.
pub async fn reconcile<L: Ledger, R: Roles, N: Notifier>(
    ledger: &L,
    roles: &R,
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

    let mut touched: Vec<&str> = overdue
        .iter()
        .chain(&ended)
        .filter_map(|request| role_name(&request.role_arn))
        .collect();
    touched.sort_unstable();
    touched.dedup();
    for role in touched {
        match collect_role(roles, role, now).await {
            Ok(true) => report.collected.push(role.to_owned()),
            Ok(false) => {}
            Err(err) => report.failed.push((role.to_owned(), err.message)),
        }
    }

    for request in &overdue {
        match revoke(ledger, roles, &request.id, "past expiry (reconciler)", now).await {
            Ok(_) => report.revoked.push(request.id.clone()),
            Err(err) => report.failed.push((request.id.clone(), err.message)),
        }
    }
    for request in revoked {
        match apply_deny(roles, request, now).await {
            Ok(true) => report.reapplied.push(request.id.clone()),
            Ok(false) => {}
            Err(err) => report.failed.push((request.id.clone(), err.message)),
        }
    }

    if report.found_anything() {
        let message = format!(
            "The reconciler found grants the state machine did not end.\nRevoked (ACTIVE past expiry): {:?}\nDeny re-applied: {:?}\nFailed (will retry): {:?}\n",
            report.revoked, report.reapplied, report.failed
        );
        notifier
            .publish(
                Topic::Alerts,
                "trailgate: reconciler revoked overdue grants",
                &message,
                None,
            )
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

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
