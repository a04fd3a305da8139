//! In-memory fakes of the ports and sample data, for unit tests here and in the function crates.
//!
//! The fakes keep the adapters' contracts that matter to the use cases: the ledger's
//! conditional commit, the token check of the workflow, IAM's inline policies.

use crate::error::{Error, Result};
use crate::ledger::{ChainKey, Change, ClaimExpect, Event, change, open_claim_key};
use crate::ports::{
    Archive, AssumeRequest, CredentialIssuer, IdempotencyRecord, IssuedCredentials, Ledger,
    Notifier, Principals, RequestPage, RoleInfo, Roles, Topic, Workflow,
};
use crate::request::{AccessRequest, Caller, NewRequest};
use crate::service::STALE;
use ::time::OffsetDateTime;
use ::time::macros::datetime;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A fixed "now": 2026-11-21T10:00:00Z.
pub fn now() -> OffsetDateTime {
    datetime!(2026-11-21 10:00:00 UTC)
}

pub fn alice() -> Caller {
    Caller::from_arn("arn:aws:iam::123456789012:user/alice")
}

pub const SAMPLE_ROLE: &str = "arn:aws:iam::123456789012:role/sample-target-trailgate";

/// A catalog with one entry, `sandbox-admin`, approvers bob and carol, quorum 1.
pub fn sample_catalog_json() -> String {
    format!(
        r#"{{"entries": [{{
        "id": "sandbox-admin",
        "role_arn": "{SAMPLE_ROLE}",
        "description": "Admin on the sandbox",
        "max_duration": "PT4H",
        "approval_window": "PT1H",
        "approvers": [
            {{"id": "bob", "email": "bob@example.com", "arn": "arn:aws:iam::123456789012:user/bob"}},
            {{"id": "carol", "email": "carol@example.com", "arn": "arn:aws:iam::123456789012:user/carol"}}
        ],
        "quorum": 1,
        "requesters": ["arn:aws:iam::123456789012:user/*"],
        "ticket_pattern": null,
        "break_glass": false
    }}]}}"#
    )
}

/// A PENDING request from alice for two hours of `sandbox-admin`, made at [`now`].
pub fn pending_request() -> AccessRequest {
    pending_request_at(now())
}

/// [`pending_request`], made at `at`. Handler tests whose handler reads the real clock (link
/// expiry, say) make their request at the real time: a fixed one would expire under them.
pub fn pending_request_at(at: OffsetDateTime) -> AccessRequest {
    let catalog = crate::catalog::Catalog::load(&sample_catalog_json(), "trailgate-")
        .expect("sample catalog");
    let input = NewRequest {
        catalog_id: "sandbox-admin".into(),
        account: None,
        duration: "PT2H".into(),
        reason: "fix prod".into(),
        ticket: None,
        start_at: None,
    };
    AccessRequest::create(
        "r-aaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        &alice(),
        &input,
        catalog.entry("sandbox-admin").expect("entry"),
        at,
    )
    .expect("valid request")
}

/// Stores a request as if intake had created it.
pub fn seed(ledger: &MemoryLedger, request: AccessRequest) -> AccessRequest {
    let mut created = change(None, request, "seed", "Requested", None, now()).expect("change");
    created.seal(ledger.chain_key());
    let mut state = ledger.state.lock().expect("lock");
    state.claims.insert(
        open_claim_key(&created.record.requester, &created.record.role_arn),
        created.record.id.clone(),
    );
    state
        .records
        .insert(created.record.id.clone(), created.record.clone());
    state
        .events
        .entry(created.record.id.clone())
        .or_default()
        .push(created.event);
    created.record
}

#[derive(Default)]
struct LedgerState {
    records: BTreeMap<String, AccessRequest>,
    events: BTreeMap<String, Vec<Event>>,
    /// Rate counters by (requester, window).
    counters: BTreeMap<(String, String), u32>,
    idempotency: BTreeMap<String, IdempotencyRecord>,
    /// Open claims: key → the request holding it.
    claims: BTreeMap<String, String>,
    /// Account assignments' holders and fence: key → (request ids, fence).
    pub(crate) holders: BTreeMap<String, (std::collections::BTreeSet<String>, Option<String>)>,
    /// Semaphore slots: (key, slot) → (holder, lease until).
    slots: BTreeMap<(String, u32), (String, i64)>,
}

/// Something another writer does between a read and a write, to test races.
type Interleaved = Box<dyn FnOnce(&MemoryLedger) + Send>;

/// The ledger, in memory, with the DynamoDB adapter's conditional semantics.
pub struct MemoryLedger {
    state: Mutex<LedgerState>,
    /// Run once, right after the next `open_claim` read (see [`MemoryLedger::after_claim_read`]).
    after_claim_read: Mutex<Option<Interleaved>>,
    key: ChainKey,
}

/// The chain key of every [`MemoryLedger`].
pub fn test_chain_key() -> ChainKey {
    ChainKey::new(vec![0x5au8; 32]).expect("32 bytes")
}

impl Default for MemoryLedger {
    fn default() -> Self {
        MemoryLedger {
            state: Mutex::default(),
            after_claim_read: Mutex::default(),
            key: test_chain_key(),
        }
    }
}

impl MemoryLedger {
    /// Lets `other` write right after the next claim read: a concurrent submission that
    /// lands between a use case's check and its commit.
    pub fn after_claim_read(&self, other: impl FnOnce(&MemoryLedger) + Send + 'static) {
        *self.after_claim_read.lock().expect("lock") = Some(Box::new(other));
    }

    pub fn record(&self, id: &str) -> Option<AccessRequest> {
        self.state.lock().expect("lock").records.get(id).cloned()
    }

    /// Writes a record as someone with `dynamodb:PutItem` on the table would: no condition, no
    /// event, no hash chain. The attacker the integrity checks are for.
    pub fn overwrite(&self, record: AccessRequest) {
        self.state
            .lock()
            .expect("lock")
            .records
            .insert(record.id.clone(), record);
    }
    /// Edits a stored event as a table writer would: no condition, no new hash.
    pub fn tamper_event(&self, id: &str, seq: u64, edit: impl FnOnce(&mut Event)) {
        let mut state = self.state.lock().expect("lock");
        if let Some(event) = state
            .events
            .get_mut(id)
            .and_then(|events| events.iter_mut().find(|event| event.seq == seq))
        {
            edit(event);
        }
    }

    pub fn event_actions(&self, id: &str) -> Vec<String> {
        self.state
            .lock()
            .expect("lock")
            .events
            .get(id)
            .map(|e| e.iter().map(|e| e.action.clone()).collect())
            .unwrap_or_default()
    }
}

impl Ledger for MemoryLedger {
    async fn get(&self, id: &str) -> Result<Option<AccessRequest>> {
        Ok(self.record(id))
    }

    fn chain_key(&self) -> &ChainKey {
        &self.key
    }

    async fn commit(&self, change: &Change) -> Result<()> {
        if !change.is_sealed() {
            return Err(Error::internal("an unsealed change reached the ledger"));
        }
        let mut state = self.state.lock().expect("lock");
        let current_seq = state.records.get(&change.record.id).map(|r| r.event_seq);
        if current_seq != change.expected_seq {
            return Err(Error::conflict(STALE));
        }
        if let Some(claim) = &change.claim {
            let holder = state.claims.get(&claim.key);
            let holds = match &claim.expect {
                ClaimExpect::Any => true,
                ClaimExpect::Vacant => holder.is_none(),
                ClaimExpect::HeldBy(id) => holder == Some(id),
            };
            if !holds {
                return Err(Error::conflict(STALE));
            }
            state
                .claims
                .insert(claim.key.clone(), change.record.id.clone());
        }
        state
            .records
            .insert(change.record.id.clone(), change.record.clone());
        state
            .events
            .entry(change.record.id.clone())
            .or_default()
            .push(change.event.clone());
        Ok(())
    }

    async fn open_claim(&self, key: &str) -> Result<Option<String>> {
        let holder = self.state.lock().expect("lock").claims.get(key).cloned();
        let other = self.after_claim_read.lock().expect("lock").take();
        if let Some(other) = other {
            other(self);
        }
        Ok(holder)
    }

    async fn events(&self, id: &str) -> Result<Vec<Event>> {
        Ok(self
            .state
            .lock()
            .expect("lock")
            .events
            .get(id)
            .cloned()
            .unwrap_or_default())
    }

    async fn active_expiring_before(&self, before: &str) -> Result<Vec<AccessRequest>> {
        let state = self.state.lock().expect("lock");
        Ok(state
            .records
            .values()
            .filter(|r| {
                r.status == crate::request::Status::Active
                    && r.expires_at.as_deref().is_some_and(|e| e < before)
            })
            .cloned()
            .collect())
    }

    async fn expiring_after(
        &self,
        status: crate::request::Status,
        after: &str,
    ) -> Result<Vec<AccessRequest>> {
        let state = self.state.lock().expect("lock");
        Ok(state
            .records
            .values()
            .filter(|r| r.status == status && r.expires_at.as_deref().is_some_and(|e| e > after))
            .cloned()
            .collect())
    }

    async fn by_requester(
        &self,
        requester: &str,
        limit: usize,
        next: Option<&str>,
    ) -> Result<RequestPage> {
        // The token is `created_at|id` of the last request shown: opaque to callers, like
        // the DynamoDB adapter's.
        let after = match next {
            None => None,
            Some(token) => Some(
                token
                    .split_once('|')
                    .map(|(at, id)| (at.to_owned(), id.to_owned()))
                    .ok_or_else(|| Error::invalid("next", "`next` is not a page token"))?,
            ),
        };
        let state = self.state.lock().expect("lock");
        let mut mine: Vec<&AccessRequest> = state
            .records
            .values()
            .filter(|r| r.requester == requester)
            .filter(|r| {
                after
                    .as_ref()
                    .is_none_or(|(at, id)| (&r.created_at, &r.id) < (at, id))
            })
            .collect();
        mine.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
        let more = mine.len() > limit;
        let requests: Vec<AccessRequest> = mine.into_iter().take(limit).cloned().collect();
        let next = if more {
            requests
                .last()
                .map(|r| format!("{}|{}", r.created_at, r.id))
        } else {
            None
        };
        Ok(RequestPage { requests, next })
    }

    async fn closed_on(&self, day: &str) -> Result<Vec<AccessRequest>> {
        Ok(self
            .state
            .lock()
            .expect("lock")
            .records
            .values()
            .filter(|r| crate::service::is_closed(r.status) && r.updated_at.starts_with(day))
            .cloned()
            .collect())
    }

    async fn count_call(
        &self,
        requester: &str,
        window: &str,
        limit: u32,
        _purge_at: i64,
    ) -> Result<bool> {
        let mut state = self.state.lock().expect("lock");
        let count = state
            .counters
            .entry((requester.to_owned(), window.to_owned()))
            .or_default();
        if *count >= limit {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }

    async fn idempotency(&self, scope: &str) -> Result<Option<IdempotencyRecord>> {
        Ok(self
            .state
            .lock()
            .expect("lock")
            .idempotency
            .get(scope)
            .cloned())
    }

    async fn remember(&self, record: &IdempotencyRecord, _purge_at: i64) -> Result<bool> {
        let mut state = self.state.lock().expect("lock");
        if state.idempotency.contains_key(&record.scope) {
            return Ok(false);
        }
        state
            .idempotency
            .insert(record.scope.clone(), record.clone());
        Ok(true)
    }

    async fn hold_assignment(&self, key: &str, request_id: &str) -> Result<()> {
        let mut state = self.state.lock().expect("lock");
        let (holders, fence) = state.holders.entry(key.to_owned()).or_default();
        if fence.is_some() {
            return Err(Error::retryable(
                "another request's revoke is removing this account assignment",
            ));
        }
        holders.insert(request_id.to_owned());
        Ok(())
    }

    async fn release_assignment(&self, key: &str, request_id: &str) -> Result<bool> {
        let mut state = self.state.lock().expect("lock");
        let (holders, fence) = state.holders.entry(key.to_owned()).or_default();
        holders.remove(request_id);
        if !holders.is_empty() {
            return Ok(false);
        }
        match fence {
            Some(other) if other != request_id => Err(Error::retryable(
                "another request's revoke is removing this account assignment",
            )),
            _ => {
                *fence = Some(request_id.to_owned());
                Ok(true)
            }
        }
    }

    async fn unfence_assignment(&self, key: &str, request_id: &str) -> Result<()> {
        let mut state = self.state.lock().expect("lock");
        if let Some((_, fence)) = state.holders.get_mut(key)
            && fence.as_deref() == Some(request_id)
        {
            *fence = None;
        }
        Ok(())
    }

    async fn take_slot(
        &self,
        key: &str,
        slot: u32,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<bool> {
        let mut state = self.state.lock().expect("lock");
        let entry = state.slots.entry((key.to_owned(), slot));
        match entry {
            std::collections::btree_map::Entry::Occupied(mut taken) => {
                let (by, until) = taken.get();
                if by != holder && *until >= now {
                    return Ok(false);
                }
                taken.insert((holder.to_owned(), lease_until));
            }
            std::collections::btree_map::Entry::Vacant(free) => {
                free.insert((holder.to_owned(), lease_until));
            }
        }
        Ok(true)
    }

    async fn free_slot(&self, key: &str, slot: u32, holder: &str) -> Result<()> {
        let mut state = self.state.lock().expect("lock");
        let slot_key = (key.to_owned(), slot);
        if state
            .slots
            .get(&slot_key)
            .is_some_and(|(by, _)| by == holder)
        {
            state.slots.remove(&slot_key);
        }
        Ok(())
    }
}

impl MemoryLedger {
    /// The holders of the slots of semaphore `key` whose lease runs at `now`.
    pub fn slot_holders(&self, key: &str, now: i64) -> Vec<String> {
        self.state
            .lock()
            .expect("lock")
            .slots
            .iter()
            .filter(|((k, _), (_, until))| k == key && *until >= now)
            .map(|(_, (holder, _))| holder.clone())
            .collect()
    }

    /// The holders and fence of an account assignment.
    pub fn holders(&self, key: &str) -> (Vec<String>, Option<String>) {
        self.state
            .lock()
            .expect("lock")
            .holders
            .get(key)
            .map(|(holders, fence)| (holders.iter().cloned().collect(), fence.clone()))
            .unwrap_or_default()
    }
}

/// Step Functions, in memory: records starts and completions; tokens can be made invalid.
#[derive(Default)]
pub struct MemoryWorkflow {
    pub started: Mutex<Vec<(String, serde_json::Value)>>,
    pub completed: Mutex<Vec<(String, serde_json::Value)>>,
    pub fail_start: bool,
}

impl Workflow for MemoryWorkflow {
    async fn start(&self, name: &str, input: &serde_json::Value) -> Result<()> {
        if self.fail_start {
            return Err(Error::retryable("StartExecution failed"));
        }
        self.started
            .lock()
            .expect("lock")
            .push((name.to_owned(), input.clone()));
        Ok(())
    }

    async fn complete(&self, task_token: &str, output: &serde_json::Value) -> Result<()> {
        let mut completed = self.completed.lock().expect("lock");
        if completed.iter().any(|(token, _)| token == task_token) {
            return Err(Error::conflict("the task token was already used"));
        }
        completed.push((task_token.to_owned(), output.clone()));
        Ok(())
    }
}

/// SNS, in memory.
#[derive(Default)]
pub struct MemoryNotifier {
    /// (topic, subject, message, approver attribute)
    pub sent: Mutex<Vec<(Topic, String, String, Option<String>)>>,
}

impl Notifier for MemoryNotifier {
    async fn publish(
        &self,
        topic: Topic,
        subject: &str,
        message: &str,
        approver: Option<&str>,
    ) -> Result<()> {
        self.sent.lock().expect("lock").push((
            topic,
            subject.to_owned(),
            message.to_owned(),
            approver.map(str::to_owned),
        ));
        Ok(())
    }
}

/// STS, in memory: hands out numbered fake credentials expiring after the requested duration,
/// counted from `clock` (settable, default `now()`).
#[derive(Default)]
pub struct MemoryIssuer {
    pub calls: Mutex<Vec<AssumeRequest>>,
    pub clock: Mutex<Option<OffsetDateTime>>,
}

impl CredentialIssuer for MemoryIssuer {
    async fn assume(&self, request: &AssumeRequest) -> Result<IssuedCredentials> {
        let mut calls = self.calls.lock().expect("lock");
        calls.push(request.clone());
        Ok(IssuedCredentials {
            access_key_id: format!("ASIA{:016}", calls.len()),
            secret_access_key: "secret".into(),
            session_token: "token".into(),
            expiration: crate::time::format_utc(
                self.clock.lock().expect("lock").unwrap_or_else(now)
                    + ::time::Duration::seconds(i64::from(request.duration_seconds)),
            ),
        })
    }
}

/// The credentials function's role in the fakes: the only principal target roles trust.
pub const BROKER_ROLE: &str = "arn:aws:iam::123456789012:role/trailgate-CredentialsFunctionRole";

/// The stack's `TrailgateProtectionPolicy`, which every grantable role has attached.
pub const PROTECTION_POLICY: &str = "arn:aws:iam::123456789012:policy/trailgate-protection";

/// The role contract of the sample stack: [`BROKER_ROLE`], [`PROTECTION_POLICY`], `trailgate-`.
pub fn contract() -> crate::service::RoleContract<'static> {
    crate::service::RoleContract {
        protected: &PROTECTED,
        broker_role_arn: BROKER_ROLE,
        protection_policy_arn: PROTECTION_POLICY,
    }
}

/// The hub of the fakes: account 123456789012, whose roles are requestable (the sample
/// catalog's role is there), with 999999999999 as the Organization's management account.
pub const HUB_ACCOUNT: &str = "123456789012";
pub const MANAGEMENT_ACCOUNT: &str = "999999999999";
/// Two member accounts of the fake Organization: 111111111111 under OU
/// [`PROD_OU`], 222222222222 under the root.
pub const MEMBER_A: &str = "111111111111";
pub const MEMBER_B: &str = "222222222222";
pub const PROD_OU: &str = "ou-abcd-11111111";

/// What the fakes' hub never grants.
pub static PROTECTED: std::sync::LazyLock<crate::catalog::Protected> =
    std::sync::LazyLock::new(|| crate::catalog::Protected {
        own_role_prefix: "trailgate-".into(),
        agent_role_name: crate::policy::AGENT_ROLE_NAME.into(),
        hub_account: HUB_ACCOUNT.into(),
        accounts: vec![MANAGEMENT_ACCOUNT.into()],
    });

/// The fake Organization: the hub, the management account, [`MEMBER_A`] (in [`PROD_OU`]),
/// [`MEMBER_B`], and a suspended 333333333333.
pub fn organization() -> crate::organization::Organization {
    use crate::organization::{OrgAccount, Organization};
    let account = |id: &str, name: &str, status: &str, ous: &[&str]| OrgAccount {
        id: id.into(),
        name: name.into(),
        status: status.into(),
        ous: ous.iter().map(|ou| (*ou).to_owned()).collect(),
    };
    Organization {
        management_account: MANAGEMENT_ACCOUNT.into(),
        accounts: vec![
            account(MANAGEMENT_ACCOUNT, "management", "ACTIVE", &[]),
            account(HUB_ACCOUNT, "tooling", "ACTIVE", &[]),
            account(MEMBER_A, "prod", "ACTIVE", &[PROD_OU]),
            account(MEMBER_B, "data", "ACTIVE", &[]),
            account("333333333333", "old", "SUSPENDED", &[PROD_OU]),
        ],
    }
}

/// Organizations and the agent roles, in memory.
pub struct MemoryAccounts {
    pub organization: Mutex<Option<std::sync::Arc<crate::organization::Organization>>>,
    /// Accounts whose agent role is missing or does not trust the hub.
    pub unreachable: Mutex<Vec<String>>,
    /// How many times the Organization was read.
    pub reads: Mutex<u32>,
}

impl Default for MemoryAccounts {
    fn default() -> MemoryAccounts {
        MemoryAccounts {
            organization: Mutex::new(Some(std::sync::Arc::new(organization()))),
            unreachable: Mutex::new(Vec::new()),
            reads: Mutex::new(0),
        }
    }
}

impl crate::ports::Accounts for MemoryAccounts {
    async fn organization(
        &self,
    ) -> Result<Option<std::sync::Arc<crate::organization::Organization>>> {
        *self.reads.lock().expect("lock") += 1;
        Ok(self.organization.lock().expect("lock").clone())
    }
    async fn agent_reachable(&self, account: &str) -> Result<bool> {
        Ok(!self
            .unreachable
            .lock()
            .expect("lock")
            .iter()
            .any(|a| a == account))
    }
}

/// The ARN a fake role is kept under: `role` itself when it is an ARN, else the hub's role of
/// that name.
pub fn role_key(role: &str) -> String {
    if role.starts_with("arn:") {
        role.to_owned()
    } else {
        format!("arn:aws:iam::{HUB_ACCOUNT}:role/{role}")
    }
}

/// A trust policy that keeps the grantable-role contract for [`BROKER_ROLE`].
pub fn broker_trust_policy() -> String {
    serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "TrailgateBrokerOnly", "Effect": "Allow", "Principal": {"AWS": BROKER_ROLE},
        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
        "Condition": {"Null": {"sts:SourceIdentity": "false"}}}]})
    .to_string()
}

/// IAM, in memory: roles with tags and inline policies, and the faults the use cases must
/// survive: failing puts and read-backs that do not see the last write yet.
#[derive(Default)]
pub struct MemoryRoles {
    pub roles: Mutex<BTreeMap<String, (RoleInfo, BTreeMap<String, String>)>>,
    pub fail_puts: Mutex<u32>,
    /// How many reads after a put still return the document as it was before the put.
    pub stale_reads: Mutex<u32>,
    stale: Mutex<BTreeMap<(String, String), Option<String>>>,
    /// Every pause asked for, in order.
    pub pauses: Mutex<Vec<std::time::Duration>>,
    /// How many puts and deletes reached the (fake) IAM.
    pub writes: Mutex<u32>,
    /// The IAM users that exist, by ARN.
    pub users: Mutex<Vec<String>>,
    /// Accounts whose IAM fails every call (an agent role gone, an outage).
    pub failing_accounts: Mutex<Vec<String>>,
}

impl Principals for MemoryRoles {
    async fn iam_user_arn(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .users
            .lock()
            .expect("lock")
            .iter()
            .find(|arn| {
                arn.rsplit('/')
                    .next()
                    .is_some_and(|user| user.eq_ignore_ascii_case(name))
            })
            .cloned())
    }
}

impl MemoryRoles {
    /// Has the sample target role, tagged as managed and trusting only [`BROKER_ROLE`].
    pub fn with_sample_role() -> MemoryRoles {
        let roles = MemoryRoles::default();
        roles.add_role("sample-target-trailgate", &[("trailgate:managed", "true")]);
        roles
    }
    /// Adds a role trusting only [`BROKER_ROLE`], with [`PROTECTION_POLICY`] attached; see
    /// [`MemoryRoles::set_trust`] and [`MemoryRoles::detach_all`].
    /// `role` is a name (the hub's role) or an ARN (a member account's role, which has that
    /// account's member protection policy attached).
    pub fn add_role(&self, role: &str, tags: &[(&str, &str)]) {
        let arn = role_key(role);
        let account = crate::catalog::role_account(&arn).unwrap_or_default();
        let protection = if account == HUB_ACCOUNT {
            PROTECTION_POLICY.to_owned()
        } else {
            format!(
                "arn:aws:iam::{account}:policy/{}",
                crate::policy::MEMBER_PROTECTION_POLICY_NAME
            )
        };
        let info = RoleInfo {
            name: crate::catalog::role_name(&arn)
                .unwrap_or_default()
                .to_owned(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            trust_policy: broker_trust_policy(),
            attached_policies: vec![protection],
        };
        self.roles
            .lock()
            .expect("lock")
            .insert(arn, (info, BTreeMap::new()));
    }
    /// Detaches every managed policy from a role.
    pub fn detach_all(&self, role: &str) {
        if let Some((info, _)) = self.roles.lock().expect("lock").get_mut(&role_key(role)) {
            info.attached_policies.clear();
        }
    }
    /// Replaces a role's trust policy.
    pub fn set_trust(&self, role: &str, trust_policy: &str) {
        if let Some((info, _)) = self.roles.lock().expect("lock").get_mut(&role_key(role)) {
            info.trust_policy = trust_policy.to_owned();
        }
    }
    /// Writes an inline policy directly, bypassing faults (test setup).
    pub fn put_policy(&self, role: &str, name: &str, document: &str) {
        if let Some((_, policies)) = self.roles.lock().expect("lock").get_mut(&role_key(role)) {
            policies.insert(name.to_owned(), document.to_owned());
        }
    }
    pub fn policy(&self, role: &str, name: &str) -> Option<String> {
        self.roles
            .lock()
            .expect("lock")
            .get(&role_key(role))
            .and_then(|(_, policies)| policies.get(name).cloned())
    }
}

impl MemoryRoles {
    /// `Retryable` when `role_arn`'s account is one of [`MemoryRoles::failing_accounts`].
    fn reach(&self, role_arn: &str) -> Result<()> {
        let account = crate::catalog::role_account(role_arn).unwrap_or_default();
        if self
            .failing_accounts
            .lock()
            .expect("lock")
            .iter()
            .any(|a| a == account)
        {
            return Err(Error::retryable(format!(
                "could not reach account {account}'s IAM"
            )));
        }
        Ok(())
    }
}

impl Roles for MemoryRoles {
    async fn describe(&self, role_arn: &str) -> Result<Option<RoleInfo>> {
        self.reach(role_arn)?;
        Ok(self
            .roles
            .lock()
            .expect("lock")
            .get(role_arn)
            .map(|(info, _)| info.clone()))
    }
    async fn inline_policy(&self, role_arn: &str, policy_name: &str) -> Result<Option<String>> {
        self.reach(role_arn)?;
        let mut stale_reads = self.stale_reads.lock().expect("lock");
        let key = (role_arn.to_owned(), policy_name.to_owned());
        if *stale_reads > 0
            && let Some(before) = self.stale.lock().expect("lock").get(&key)
        {
            *stale_reads -= 1;
            return Ok(before.clone());
        }
        Ok(self.policy(role_arn, policy_name))
    }
    async fn inline_policy_names(&self, role_arn: &str) -> Result<Vec<String>> {
        self.reach(role_arn)?;
        Ok(self
            .roles
            .lock()
            .expect("lock")
            .get(role_arn)
            .map(|(_, policies)| policies.keys().cloned().collect())
            .unwrap_or_default())
    }
    async fn put_inline_policy(
        &self,
        role_arn: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()> {
        self.reach(role_arn)?;
        let mut fail = self.fail_puts.lock().expect("lock");
        if *fail > 0 {
            *fail -= 1;
            return Err(Error::retryable("IAM throttled the call"));
        }
        let mut roles = self.roles.lock().expect("lock");
        let (_, policies) = roles
            .get_mut(role_arn)
            .ok_or_else(|| Error::not_found(format!("no role {role_arn}")))?;
        let before = policies.insert(policy_name.to_owned(), document.to_owned());
        self.stale
            .lock()
            .expect("lock")
            .insert((role_arn.to_owned(), policy_name.to_owned()), before);
        *self.writes.lock().expect("lock") += 1;
        Ok(())
    }
    async fn delete_inline_policy(&self, role_arn: &str, policy_name: &str) -> Result<()> {
        self.reach(role_arn)?;
        if let Some((_, policies)) = self.roles.lock().expect("lock").get_mut(role_arn) {
            policies.remove(policy_name);
        }
        *self.writes.lock().expect("lock") += 1;
        Ok(())
    }
    async fn pause(&self, delay: std::time::Duration) {
        self.pauses.lock().expect("lock").push(delay);
    }
}

/// The archive bucket, in memory: key → body.
#[derive(Default)]
pub struct MemoryArchive {
    pub objects: Mutex<BTreeMap<String, String>>,
}

impl Archive for MemoryArchive {
    async fn put(&self, key: &str, body: &str) -> Result<()> {
        self.objects
            .lock()
            .expect("lock")
            .insert(key.to_owned(), body.to_owned());
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.objects.lock().expect("lock").contains_key(key))
    }
}

/// The event bus, in memory: every entry it took, the size of each put, and an entry it
/// refuses once (counted over all puts, from 0), as EventBridge refuses a throttled entry.
#[derive(Default)]
pub struct MemoryBus {
    state: Mutex<BusState>,
}

#[derive(Default)]
struct BusState {
    taken: Vec<crate::lifecycle::LifecycleEvent>,
    calls: Vec<usize>,
    seen: usize,
    refuse: Option<(usize, String)>,
}

impl MemoryBus {
    /// Refuses the `index`th entry offered (0-based, over all puts) once, with `reason`.
    pub fn refuse_at(&self, index: usize, reason: &str) {
        self.state.lock().expect("lock").refuse = Some((index, reason.to_owned()));
    }

    pub fn entries(&self) -> Vec<crate::lifecycle::LifecycleEvent> {
        self.state.lock().expect("lock").taken.clone()
    }

    pub fn calls(&self) -> Vec<usize> {
        self.state.lock().expect("lock").calls.clone()
    }
}

impl crate::ports::EventBus for MemoryBus {
    async fn put(
        &self,
        entries: &[crate::lifecycle::LifecycleEvent],
    ) -> Result<Vec<Option<String>>> {
        let mut state = self.state.lock().expect("lock");
        state.calls.push(entries.len());
        let mut outcome = Vec::with_capacity(entries.len());
        for entry in entries {
            let index = state.seen;
            state.seen += 1;
            match state.refuse.clone() {
                Some((at, reason)) if at == index => {
                    state.refuse = None;
                    outcome.push(Some(reason));
                }
                _ => {
                    state.taken.push(entry.clone());
                    outcome.push(None);
                }
            }
        }
        Ok(outcome)
    }
}

/// The identity-store user id of alice in [`identity_center_catalog`].
pub const ALICE_USER_ID: &str = "94482488-3041-7026-18f3-be45837cd0e4";
/// Identity Center's instance and a permission set of it, as in [`identity_center_catalog`].
pub const INSTANCE_ARN: &str = "arn:aws:sso:::instance/ssoins-722344d1a1b2c3d4";
pub const PERMISSION_SET_ARN: &str =
    "arn:aws:sso:::permissionSet/ssoins-722344d1a1b2c3d4/ps-0123456789abcdef";
/// The account the permission-set entry covers.
pub const PS_ACCOUNT: &str = "111111111111";

/// alice as Identity Center signs her in: a session of an `AWSReservedSSO_*` role named after
/// her Identity Center user name.
pub fn alice_sso() -> Caller {
    Caller::from_arn(
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ReadOnly_0a1b2c3d4e5f6a7b/alice@example.com",
    )
}

/// A catalog with one permission-set entry, `prod-admin-ps` (in [`PS_ACCOUNT`], approvers bob
/// and carol, quorum 1), where bob is also an Identity Center user.
pub fn identity_center_catalog() -> crate::catalog::Catalog {
    let json = serde_json::json!({
        "people": [{"id": "bob", "principals": ["arn:aws:identitystore:::user/b0b00000-0000-4000-8000-000000000001"]}],
        "entries": [{
            "id": "prod-admin-ps",
            "permission_set": {"instance_arn": INSTANCE_ARN, "permission_set_arn": PERMISSION_SET_ARN},
            "accounts": [PS_ACCOUNT],
            "max_duration": "PT4H",
            "approvers": [
                {"id": "bob", "email": "bob@example.com", "arn": "arn:aws:iam::123456789012:user/bob"},
                {"id": "carol", "email": "carol@example.com", "arn": "arn:aws:iam::123456789012:user/carol"}
            ],
            "requesters": ["arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_*"]
        }]
    });
    crate::catalog::Catalog::load(&json.to_string(), "trailgate-").expect("valid catalog")
}

/// IAM Identity Center, in memory: users by name, permission sets with tags, session
/// duration and inline policy, assignments, and operations that stay in progress for
/// `in_progress_polls` polls and may be scripted to fail.
pub struct MemoryIdentityCenter {
    /// user name → user id.
    pub users: Mutex<BTreeMap<String, String>>,
    /// permission set ARN → (info, inline policy).
    pub permission_sets: Mutex<BTreeMap<String, (crate::ports::PermissionSetInfo, Option<String>)>>,
    /// (permission set, account, user id) assigned now.
    pub assignments: Mutex<std::collections::BTreeSet<(String, String, String)>>,
    /// request id → (operation, polls left before it ends, its end).
    operations:
        Mutex<BTreeMap<String, (crate::ports::Operation, u32, crate::ports::OperationStatus)>>,
    pub in_progress_polls: Mutex<u32>,
    /// The next creations end FAILED with this reason (and assign nothing).
    pub fail_creations: Mutex<Vec<String>>,
    /// Every call, by name, in order.
    pub calls: Mutex<Vec<String>>,
    /// The clock `now()` answers; each pause moves it on.
    pub clock: Mutex<OffsetDateTime>,
    /// group id → member user ids.
    pub groups: Mutex<BTreeMap<String, Vec<String>>>,
    /// (permission set, account, group id) assigned now.
    pub group_assignments: Mutex<std::collections::BTreeSet<(String, String, String)>>,
}

impl Default for MemoryIdentityCenter {
    fn default() -> Self {
        let mut users = BTreeMap::new();
        users.insert("alice@example.com".to_owned(), ALICE_USER_ID.to_owned());
        let mut permission_sets = BTreeMap::new();
        permission_sets.insert(
            PERMISSION_SET_ARN.to_owned(),
            (
                crate::ports::PermissionSetInfo {
                    name: "ProdAdmin".into(),
                    session_duration_seconds: 3600,
                    tags: vec![(crate::policy::MANAGED_TAG.into(), "true".into())],
                },
                None,
            ),
        );
        MemoryIdentityCenter {
            users: Mutex::new(users),
            permission_sets: Mutex::new(permission_sets),
            assignments: Mutex::default(),
            operations: Mutex::default(),
            in_progress_polls: Mutex::new(1),
            fail_creations: Mutex::default(),
            calls: Mutex::default(),
            clock: Mutex::new(now()),
            groups: Mutex::default(),
            group_assignments: Mutex::default(),
        }
    }
}

impl MemoryIdentityCenter {
    fn call(&self, name: &str) {
        self.calls.lock().expect("lock").push(name.to_owned());
    }

    fn start(
        &self,
        operation: crate::ports::Operation,
        end: crate::ports::OperationStatus,
    ) -> String {
        let mut operations = self.operations.lock().expect("lock");
        let id = format!("op-{}", operations.len() + 1);
        let polls = *self.in_progress_polls.lock().expect("lock");
        operations.insert(id.clone(), (operation, polls, end));
        id
    }

    fn key(assignment: &crate::request::Assignment) -> (String, String, String) {
        (
            assignment.permission_set_arn.clone(),
            assignment.account.clone(),
            assignment.user_id.clone(),
        )
    }

    /// The permission set's inline policy now.
    pub fn inline(&self, permission_set_arn: &str) -> Option<String> {
        self.permission_sets
            .lock()
            .expect("lock")
            .get(permission_set_arn)
            .and_then(|(_, policy)| policy.clone())
    }

    pub fn assigned(&self, assignment: &crate::request::Assignment) -> bool {
        self.assignments
            .lock()
            .expect("lock")
            .contains(&Self::key(assignment))
    }
}

impl crate::ports::IdentityCenter for MemoryIdentityCenter {
    async fn user_id(&self, _instance_arn: &str, user_name: &str) -> Result<Option<String>> {
        self.call("GetUserId");
        Ok(self.users.lock().expect("lock").get(user_name).cloned())
    }
    async fn permission_set(
        &self,
        _instance_arn: &str,
        permission_set_arn: &str,
    ) -> Result<Option<crate::ports::PermissionSetInfo>> {
        self.call("DescribePermissionSet");
        Ok(self
            .permission_sets
            .lock()
            .expect("lock")
            .get(permission_set_arn)
            .map(|(info, _)| info.clone()))
    }
    async fn create_assignment(&self, assignment: &crate::request::Assignment) -> Result<String> {
        self.call("CreateAccountAssignment");
        let failure = {
            let mut failures = self.fail_creations.lock().expect("lock");
            (!failures.is_empty()).then(|| failures.remove(0))
        };
        let end = match failure {
            Some(reason) => crate::ports::OperationStatus::Failed(reason),
            None => {
                self.assignments
                    .lock()
                    .expect("lock")
                    .insert(Self::key(assignment));
                crate::ports::OperationStatus::Succeeded
            }
        };
        Ok(self.start(crate::ports::Operation::CreateAssignment, end))
    }
    async fn delete_assignment(
        &self,
        assignment: &crate::request::Assignment,
    ) -> Result<Option<String>> {
        self.call("DeleteAccountAssignment");
        if !self
            .assignments
            .lock()
            .expect("lock")
            .remove(&Self::key(assignment))
        {
            return Ok(None);
        }
        Ok(Some(self.start(
            crate::ports::Operation::DeleteAssignment,
            crate::ports::OperationStatus::Succeeded,
        )))
    }
    async fn is_assigned(&self, assignment: &crate::request::Assignment) -> Result<bool> {
        self.call("ListAccountAssignments");
        Ok(self.assigned(assignment))
    }
    async fn assigned_users(
        &self,
        _instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> Result<Vec<String>> {
        self.call("ListAccountAssignments");
        Ok(self
            .assignments
            .lock()
            .expect("lock")
            .iter()
            .filter(|(ps, acct, _)| ps == permission_set_arn && acct == account)
            .map(|(_, _, user)| user.clone())
            .collect())
    }
    async fn assigned_groups(
        &self,
        _instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> Result<Vec<String>> {
        self.call("ListAccountAssignments");
        Ok(self
            .group_assignments
            .lock()
            .expect("lock")
            .iter()
            .filter(|(ps, acct, _)| ps == permission_set_arn && acct == account)
            .map(|(_, _, group)| group.clone())
            .collect())
    }
    async fn group_members(&self, _instance_arn: &str, group_id: &str) -> Result<Vec<String>> {
        self.call("ListGroupMemberships");
        Ok(self
            .groups
            .lock()
            .expect("lock")
            .get(group_id)
            .cloned()
            .unwrap_or_default())
    }
    async fn delete_group_assignment(
        &self,
        _instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
        group_id: &str,
    ) -> Result<Option<String>> {
        self.call("DeleteAccountAssignment");
        let key = (
            permission_set_arn.to_owned(),
            account.to_owned(),
            group_id.to_owned(),
        );
        if !self.group_assignments.lock().expect("lock").remove(&key) {
            return Ok(None);
        }
        Ok(Some(self.start(
            crate::ports::Operation::DeleteAssignment,
            crate::ports::OperationStatus::Succeeded,
        )))
    }
    async fn status(
        &self,
        operation: crate::ports::Operation,
        _instance_arn: &str,
        request_id: &str,
    ) -> Result<crate::ports::OperationStatus> {
        self.call("Describe*Status");
        let mut operations = self.operations.lock().expect("lock");
        let Some((kind, polls, end)) = operations.get_mut(request_id) else {
            return Err(Error::internal(format!("no operation {request_id}")));
        };
        if *kind != operation {
            return Err(Error::internal(format!(
                "{request_id} is not a {operation:?}"
            )));
        }
        if *polls > 0 {
            *polls -= 1;
            return Ok(crate::ports::OperationStatus::InProgress);
        }
        Ok(end.clone())
    }
    async fn inline_policy(
        &self,
        _instance_arn: &str,
        permission_set_arn: &str,
    ) -> Result<Option<String>> {
        self.call("GetInlinePolicyForPermissionSet");
        Ok(self.inline(permission_set_arn))
    }
    async fn put_inline_policy(
        &self,
        _instance_arn: &str,
        permission_set_arn: &str,
        document: &str,
    ) -> Result<()> {
        self.call("PutInlinePolicyToPermissionSet");
        match self
            .permission_sets
            .lock()
            .expect("lock")
            .get_mut(permission_set_arn)
        {
            Some((_, policy)) => {
                *policy = Some(document.to_owned());
                Ok(())
            }
            None => Err(Error::internal("no such permission set")),
        }
    }
    async fn provision(
        &self,
        _instance_arn: &str,
        _permission_set_arn: &str,
        _account: &str,
    ) -> Result<String> {
        self.call("ProvisionPermissionSet");
        Ok(self.start(
            crate::ports::Operation::Provision,
            crate::ports::OperationStatus::Succeeded,
        ))
    }
    async fn pause(&self, delay: std::time::Duration) {
        let mut clock = self.clock.lock().expect("lock");
        *clock += delay;
    }
    fn now(&self) -> OffsetDateTime {
        *self.clock.lock().expect("lock")
    }
}

/// The catalog store in memory, with `CatalogTable`'s conditional write: a version is stored
/// only if the one before it is current.
#[derive(Default)]
pub struct InMemoryCatalogStore {
    versions: Mutex<Vec<(crate::catalog_version::CatalogVersion, Vec<u8>)>>,
    /// A push to land just before the next `publish`, as a concurrent pusher's would.
    race: Mutex<Option<(Vec<u8>, ChainKey)>>,
}

impl InMemoryCatalogStore {
    /// The document stored as `version`.
    pub fn document(&self, version: u64) -> Option<Vec<u8>> {
        self.versions
            .lock()
            .unwrap()
            .iter()
            .find(|(v, _)| v.version == version)
            .map(|(_, doc)| doc.clone())
    }

    /// Makes another push of `document` land before the next `publish`.
    pub fn race_once(&self, document: Vec<u8>, key: ChainKey) {
        *self.race.lock().unwrap() = Some((document, key));
    }
}

impl crate::ports::CatalogStore for InMemoryCatalogStore {
    async fn latest(&self) -> Result<Option<crate::catalog_version::CatalogVersion>> {
        Ok(self.versions.lock().unwrap().last().map(|(v, _)| v.clone()))
    }

    async fn publish(
        &self,
        version: &crate::catalog_version::CatalogVersion,
        document: &[u8],
    ) -> Result<()> {
        if let Some((raced, key)) = self.race.lock().unwrap().take() {
            let mut versions = self.versions.lock().unwrap();
            let latest = versions.last().map(|(v, _)| v.clone());
            let catalog =
                crate::catalog::Catalog::load(std::str::from_utf8(&raced).unwrap(), "trailgate-")
                    .unwrap();
            let next = crate::catalog_version::next_version(
                latest.as_ref(),
                &catalog,
                &raced,
                &Caller::from_arn("arn:aws:iam::123456789012:user/other"),
                "2026-12-06T09:59:59Z".into(),
                &key,
            );
            versions.push((next, raced));
        }
        let mut versions = self.versions.lock().unwrap();
        let current = versions.last().map_or(0, |(v, _)| v.version);
        if current + 1 != version.version {
            return Err(Error::conflict(STALE));
        }
        versions.push((version.clone(), document.to_vec()));
        Ok(())
    }

    async fn history(&self, limit: usize) -> Result<Vec<crate::catalog_version::CatalogVersion>> {
        Ok(self
            .versions
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(limit)
            .map(|(v, _)| v.clone())
            .collect())
    }
}

/// A request record and its events from `events/ledger/<name>` (a real run on the local stack:
/// `{"record": …, "events": […]}`).
pub fn ledger_fixture(name: &str) -> (AccessRequest, Vec<Event>) {
    let path = format!("{}/../../events/ledger/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("a ledger fixture");
    let record = serde_json::from_value(doc["record"].take()).expect("the fixture's record");
    let events = serde_json::from_value(doc["events"].take()).expect("the fixture's events");
    (record, events)
}
