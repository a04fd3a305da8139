//! The capabilities the use cases need from the outside world, one trait per capability.
//!
//! `trailgate-aws` implements them with the AWS SDK; `testing` implements them in memory.
//! Methods return `impl Future + Send` rather than using `async fn` so that callers may
//! rely on `Send` futures (rustc's `async_fn_in_trait` guidance).

use crate::catalog_version::CatalogVersion;
use crate::error::Result;
use crate::ledger::{ChainKey, Change, Event};
use crate::request::{AccessRequest, Status};
use std::future::Future;

/// The DynamoDB ledger.
pub trait Ledger: Send + Sync {
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<AccessRequest>>> + Send;
    /// The key the ledger's events are chained with (`ledger::Change::seal`). It belongs to the
    /// ledger because every writer of the ledger needs it and nothing else does.
    fn chain_key(&self) -> &ChainKey;
    /// Commits a sealed change atomically (an unsealed one is `Internal`); `Conflict` ([`crate::service::STALE`]) if the record
    /// moved on since it was read or the change's claim no longer holds what it expects.
    fn commit(&self, change: &Change) -> impl Future<Output = Result<()>> + Send;
    /// The id of the request holding the claim `key` ([`crate::ledger::open_claim_key`]),
    /// read consistently.
    fn open_claim(&self, key: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    fn events(&self, id: &str) -> impl Future<Output = Result<Vec<Event>>> + Send;
    /// ACTIVE requests whose `expires_at` is before `before` (RFC 3339).
    fn active_expiring_before(
        &self,
        before: &str,
    ) -> impl Future<Output = Result<Vec<AccessRequest>>> + Send;
    /// Requests in `status` whose `expires_at` is after `after` (RFC 3339): for the reconciler,
    /// revoked grants whose deny statement is still needed.
    fn expiring_after(
        &self,
        status: Status,
        after: &str,
    ) -> impl Future<Output = Result<Vec<AccessRequest>>> + Send;
    /// One page of `requester`'s requests, newest first (the `ByRequester` index). `next` is
    /// the opaque token of the previous page; a token the adapter did not make is
    /// `InvalidRequest` on field `next`.
    /// The closed requests whose last change was on `day` (`YYYY-MM-DD`, UTC).
    fn closed_on(&self, day: &str) -> impl Future<Output = Result<Vec<AccessRequest>>> + Send;
    fn by_requester(
        &self,
        requester: &str,
        limit: usize,
        next: Option<&str>,
    ) -> impl Future<Output = Result<RequestPage>> + Send;
    /// Counts one call by `requester` in the rate window `window` unless the window already
    /// holds `limit` calls; `false` when it does. The counter may be purged after `purge_at`
    /// (unix seconds).
    fn count_call(
        &self,
        requester: &str,
        window: &str,
        limit: u32,
        purge_at: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// What an idempotency key (already scoped to its requester) remembered, if anything.
    fn idempotency(
        &self,
        scope: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>>> + Send;
    /// Remembers an idempotency key unless it is already remembered (`false` then).
    fn remember(
        &self,
        record: &IdempotencyRecord,
        purge_at: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Adds `request_id` to the holders of the account assignment `key`
    /// ([`crate::request::Assignment::holders_key`]), unless a revoke is removing that
    /// assignment (its fence is set): then `Retryable`, and the grant tries again once the
    /// removal is done. Idempotent.
    fn hold_assignment(
        &self,
        key: &str,
        request_id: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Removes `request_id` from the holders of `key`. When no holder is left, sets the fence
    /// to `request_id` in a write conditional on the holders still being none, and answers
    /// `true`: the caller alone may now delete the assignment, and no grant can hold it until
    /// [`Ledger::unfence_assignment`]. `false` when another grant still holds it. Idempotent
    /// for the request that holds the fence.
    fn release_assignment(
        &self,
        key: &str,
        request_id: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Clears the fence of `key` if `request_id` holds it.
    fn unfence_assignment(
        &self,
        key: &str,
        request_id: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Takes slot `slot` of the counted semaphore `key` for `holder` until `lease_until` (unix
    /// seconds), in one conditional write: `true` when the slot was free, its lease had run out
    /// at `now`, or `holder` held it already (the lease is renewed); `false` when another
    /// holder's lease still runs. A holder that dies frees its slot when the lease ends.
    fn take_slot(
        &self,
        key: &str,
        slot: u32,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Frees slot `slot` of `key` if `holder` holds it.
    fn free_slot(
        &self,
        key: &str,
        slot: u32,
        holder: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// One page of a requester's requests, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestPage {
    pub requests: Vec<AccessRequest>,
    /// Opaque token for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// What an `Idempotency-Key` header is bound to: the body it came with and the answer given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The key, scoped to its requester and hashed (see `service::idempotency_scope`).
    pub scope: String,
    /// SHA-256 (hex) of the normalised request body.
    pub body_hash: String,
    pub request_id: String,
    /// The HTTP status first answered (201 created, 200 an existing request).
    pub status: u16,
}

/// The archive of closed requests' events (an S3 bucket with Object Lock): written once per
/// closed request, never changed or deleted within its retention.
pub trait Archive: Send + Sync {
    /// Stores `body` (NDJSON) under `key` (`ledger::archive_key`).
    fn put(&self, key: &str, body: &str) -> impl Future<Output = Result<()>> + Send;
    /// Whether anything is stored under `key`.
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;
}

/// Reading request records, and nothing else: what the lifecycle publisher needs of the
/// ledger (it writes nothing, so it holds no chain key). Every [`Ledger`] reads records.
pub trait RecordReader: Send + Sync {
    fn record(&self, id: &str) -> impl Future<Output = Result<Option<AccessRequest>>> + Send;
}

impl<L: Ledger> RecordReader for L {
    fn record(&self, id: &str) -> impl Future<Output = Result<Option<AccessRequest>>> + Send {
        self.get(id)
    }
}

/// The event bus the lifecycle events go to (EventBridge).
pub trait EventBus: Send + Sync {
    /// Puts at most [`crate::lifecycle::MAX_ENTRIES_PER_PUT`] entries; for each, `None` if the
    /// bus took it, else why not (a partial failure is not an error: the caller retries the
    /// rest).
    fn put(
        &self,
        entries: &[crate::lifecycle::LifecycleEvent],
    ) -> impl Future<Output = Result<Vec<Option<String>>>> + Send;
}

/// The deployed catalog's store (`CatalogTable`): the current version with its document, and
/// every earlier version's record and document. Only the catalog function writes it.
pub trait CatalogStore: Send + Sync {
    /// The current version's record, `None` before the first push.
    fn latest(&self) -> impl Future<Output = Result<Option<CatalogVersion>>> + Send;
    /// Stores `document` as `version` and makes it current, only if `version.version - 1` is
    /// still current (or nothing is, for version 1): `Conflict` ([`crate::service::STALE`])
    /// when another push got there first. `TooLarge` when the document does not fit.
    fn publish(
        &self,
        version: &CatalogVersion,
        document: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Up to `limit` version records, newest first.
    fn history(&self, limit: usize) -> impl Future<Output = Result<Vec<CatalogVersion>>> + Send;
}

/// Step Functions.
pub trait Workflow: Send + Sync {
    /// Starts the access-request execution, named by the request id.
    fn start(
        &self,
        name: &str,
        input: &serde_json::Value,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Completes a waiting task. `Conflict` when the token is no longer valid (timed out, used).
    fn complete(
        &self,
        task_token: &str,
        output: &serde_json::Value,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Which SNS topic a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Approvals,
    Alerts,
}

/// SNS.
pub trait Notifier: Send + Sync {
    /// Publishes a plain-text message; `approver` sets the message attribute that the
    /// approver's subscription filter policy matches.
    fn publish(
        &self,
        topic: Topic,
        subject: &str,
        message: &str,
        approver: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Temporary credentials as STS returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// RFC 3339.
    pub expiration: String,
}

/// What an `AssumeRole` call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRequest {
    pub role_arn: String,
    pub session_name: String,
    pub source_identity: String,
    pub tags: Vec<(String, String)>,
    pub session_policy: String,
    pub duration_seconds: i32,
}

/// STS.
pub trait CredentialIssuer: Send + Sync {
    fn assume(
        &self,
        request: &AssumeRequest,
    ) -> impl Future<Output = Result<IssuedCredentials>> + Send;
}

/// What trailgate needs to know about a target role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    pub name: String,
    pub tags: Vec<(String, String)>,
    /// The trust policy (decoded JSON text).
    pub trust_policy: String,
    /// The ARNs of the managed policies attached to the role.
    pub attached_policies: Vec<String>,
}

/// IAM users, as far as the catalog names them: `jitctl catalog check --roles` checks that
/// every approver and listed person who is an IAM user exists, so that a typo in an approver
/// ARN does not silently name nobody.
pub trait Principals: Send + Sync {
    /// The ARN of the IAM user `name`, `None` when there is none.
    fn iam_user_arn(&self, name: &str) -> impl Future<Output = Result<Option<String>>> + Send;
}

/// AWS Organizations and the member accounts' agent roles, as intake needs them to tell
/// which accounts an entry covers and whether trailgate can reach them.
pub trait Accounts: Send + Sync {
    /// The Organization (the adapter caches it with a TTL), `None` when the hub's account
    /// belongs to none.
    fn organization(
        &self,
    ) -> impl Future<Output = Result<Option<std::sync::Arc<crate::organization::Organization>>>> + Send;
    /// Whether `account` has the agent role and it trusts this hub (the adapter proves it by
    /// assuming the role with a session policy that allows nothing, and caches the answer).
    fn agent_reachable(&self, account: &str) -> impl Future<Output = Result<bool>> + Send;
}

/// IAM, limited to target roles. Roles are named by ARN: the adapter works in the role's own
/// account, through that account's agent role when it is not the hub's.
pub trait Roles: Send + Sync {
    /// `None` when the role does not exist.
    fn describe(&self, role_arn: &str) -> impl Future<Output = Result<Option<RoleInfo>>> + Send;
    /// The decoded inline policy document, `None` when absent.
    fn inline_policy(
        &self,
        role_arn: &str,
        policy_name: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// The names of every inline policy of the role (IAM counts them all against one limit).
    fn inline_policy_names(
        &self,
        role_arn: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    fn put_inline_policy(
        &self,
        role_arn: &str,
        policy_name: &str,
        document: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    fn delete_inline_policy(
        &self,
        role_arn: &str,
        policy_name: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Waits `delay` before the next read-back. IAM is eventually consistent, and the domain
    /// has no timer of its own, so the adapter that talks to IAM owns the sleeping.
    fn pause(&self, delay: std::time::Duration) -> impl Future<Output = ()> + Send;
}

/// What trailgate needs to know about a permission set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionSetInfo {
    pub name: String,
    /// How long the sessions Identity Center issues for it last, at most.
    pub session_duration_seconds: i64,
    pub tags: Vec<(String, String)>,
}

/// Where an asynchronous Identity Center operation is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationStatus {
    InProgress,
    Succeeded,
    /// With AWS's `FailureReason`.
    Failed(String),
}

/// Which asynchronous Identity Center operation a request id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateAssignment,
    DeleteAssignment,
    Provision,
}

/// IAM Identity Center (sso-admin and identitystore), in the account that administers it.
pub trait IdentityCenter: Send + Sync {
    /// The identity-store user id of the user named `user_name` (the name Identity Center
    /// gives its sessions) in `instance_arn`'s identity store; `None` when there is none.
    fn user_id(
        &self,
        instance_arn: &str,
        user_name: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// `None` when the permission set does not exist.
    fn permission_set(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
    ) -> impl Future<Output = Result<Option<PermissionSetInfo>>> + Send;
    /// Starts `CreateAccountAssignment` (principal type USER); the request id to poll.
    fn create_assignment(
        &self,
        assignment: &crate::request::Assignment,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Starts `DeleteAccountAssignment`; `None` when there is no such assignment.
    fn delete_assignment(
        &self,
        assignment: &crate::request::Assignment,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Whether the user holds the assignment now (`ListAccountAssignments`).
    fn is_assigned(
        &self,
        assignment: &crate::request::Assignment,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// The user ids the permission set is assigned to in `account` now (principal type USER).
    fn assigned_users(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// The group ids the permission set is assigned to in `account` now (principal type
    /// GROUP).
    fn assigned_groups(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// The user ids of the members of `group_id` in `instance_arn`'s identity store.
    fn group_members(
        &self,
        instance_arn: &str,
        group_id: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Starts `DeleteAccountAssignment` of a group's assignment; `None` when there is none.
    fn delete_group_assignment(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
        group_id: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Where the operation `request_id` is.
    fn status(
        &self,
        operation: Operation,
        instance_arn: &str,
        request_id: &str,
    ) -> impl Future<Output = Result<OperationStatus>> + Send;
    /// The permission set's inline policy, `None` when it has none.
    fn inline_policy(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    fn put_inline_policy(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        document: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Starts `ProvisionPermissionSet` to `account`; the request id to poll.
    fn provision(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Waits before the next poll (the domain has no timer of its own).
    fn pause(&self, delay: std::time::Duration) -> impl Future<Output = ()> + Send;
    /// The time now: a revoke's deny must cover every session issued up to the moment the
    /// assignment's deletion was seen done, which is later than the use case's `now`.
    fn now(&self) -> ::time::OffsetDateTime;
}
