//! Intake's use cases: submit (with the request policy: idempotency keys, the rate limit and
//! one open request per role), show, list and cancel.

use super::{
    CONFLICT_RETRIES, STALE, approver_for, commit, find_entry, is_requester_principal, load,
    with_retry,
};
use crate::catalog::{Catalog, Entry};
use crate::error::{Error, ErrorKind, Result};
use crate::ledger::{ClaimExpect, OpenClaim, change, open_claim_key};
use crate::ports::{IdempotencyRecord, Ledger, RequestPage, Workflow};
use crate::request::{AccessRequest, Caller, NewRequest, Status};
use ::time::{Duration, OffsetDateTime};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Settings intake passes to the state machine.
#[derive(Debug, Clone, Copy)]
pub struct IntakeSettings {
    pub audit_delay: Duration,
    /// How long after the first audit the second pass runs (`Await Late Events`).
    pub reaudit_delay: Duration,
}

/// One submission: who asks for what, under which catalog, with the id intake chose for it.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub catalog: &'a Catalog,
    pub settings: IntakeSettings,
    pub caller: &'a Caller,
    pub input: &'a NewRequest,
    /// The role the submission is for, resolved by [`super::resolve_target`].
    pub target: &'a super::Target,
    /// The new request's id (random, chosen by the caller so this crate stays free of I/O).
    pub id: String,
    pub now: OffsetDateTime,
}

/// The PENDING request a submission makes: the entry's rules, then the requester as a person
/// (a caller who names no person is refused, see [`Catalog::resolve_requester`]).
fn pending_for(submission: &Submission<'_>, entry: &Entry) -> Result<AccessRequest> {
    let Submission {
        catalog,
        caller,
        input,
        now,
        ..
    } = submission;
    let mut request = AccessRequest::create_for(
        submission.id.clone(),
        caller,
        input,
        entry,
        submission.target,
        *now,
    )?;
    request.requester_person = match &request.assignment {
        // Identity Center said which user this is; the person is that user's.
        Some(assignment) => {
            catalog.resolve_identity_center_user(&caller.arn, &assignment.user_arn())
        }
        None => catalog.resolve_requester(&caller.arn)?,
    };
    Ok(request)
}

/// Validates and records a new request as PENDING, then starts its execution. No request
/// policy: see [`submit_with_policy`] for what intake does.
pub async fn submit<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    submission: Submission<'_>,
) -> Result<AccessRequest> {
    let entry = find_entry(submission.catalog, submission.input)?;
    let (settings, now) = (submission.settings, submission.now);
    let request = pending_for(&submission, entry)?;
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
        key: open_claim_key(&created.record.requester, &created.record.claim_target()),
        expect,
    });
    let created = commit(ledger, created).await?;
    let execution_input = json!({"request": {
        "id": created.id,
        "approval_window_seconds": entry.approval_window()?.whole_seconds(),
        "audit_delay_seconds": settings.audit_delay.whole_seconds(),
        "reaudit_delay_seconds": settings.reaudit_delay.whole_seconds(),
        // Steers the state machine's `Break Glass?` choice; the break-glass step checks the
        // catalog again, so a forged execution input cannot skip approval on its own.
        "break_glass": created.break_glass,
    }});
    // `Scheduled?` waits for it after the approval (the key only when there is a start:
    // the Wait state's TimestampPath must name a time). Activation checks it again.
    let mut execution_input = execution_input;
    if let Some(start_at) = &created.start_at {
        execution_input["request"]["start_at"] = json!(start_at);
    }
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
    let is_approver = catalog
        .entry(&request.catalog_id)
        .is_some_and(|entry| approver_for(catalog, entry, caller).is_some());
    if !is_requester_principal(&request, caller) && !is_approver {
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
pub async fn submit_with_policy<L: Ledger, W: Workflow>(
    ledger: &L,
    workflow: &W,
    submission: Submission<'_>,
    policy: RequestPolicy,
    idempotency_key: Option<&str>,
) -> Result<Submitted> {
    let Submission {
        catalog,
        settings,
        caller,
        input,
        now,
        ..
    } = submission;
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
        let request = pending_for(&submission, entry)?;
        submit_one_open(ledger, workflow, entry, settings, request, now).await?
    } else {
        Submitted {
            request: submit(ledger, workflow, submission).await?,
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

/// Counts one submission against the caller's rate window; `RateLimited` when it is full.
/// Every submission counts, refused ones too, so probing with bad requests is limited as well.
pub async fn check_rate<L: Ledger>(
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
    let key = open_claim_key(&request.requester, &request.claim_target());
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

/// How long before a scheduled start a cancel is still taken.
pub const CANCEL_MARGIN: ::time::Duration = ::time::Duration::minutes(1);

/// Cancels a PENDING request at its requester's word, or an APPROVED one whose scheduled
/// start (`start_at`) is still ahead. The waiting execution is left to run out (intake may
/// not stop executions): the decision core refuses a non-PENDING request, the expiry step
/// records nothing for a CANCELLED one, and `Activate` finds it cancelled after
/// `Wait For Start` ([`super::cancelled_before_start`]) and grants nothing.
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
        // Up to a minute before the start, longer than a cancel can take (intake's 30 s
        // timeout): so a cancel never lands while `Activate` is granting.
        let waiting_to_start = current.status == Status::Approved
            && current.starts_after(now + CANCEL_MARGIN).is_some();
        if current.status != Status::Pending && !waiting_to_start {
            return Err(Error::conflict(format!(
                "the request is {}; only a PENDING request, or an APPROVED one until a minute \
                 before its start_at, can be cancelled",
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

#[cfg(test)]
#[path = "submit_tests.rs"]
mod tests;
