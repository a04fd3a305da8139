//! Identity Center's limits as one budget per instance, shared by every function and every
//! concurrent invocation that calls it: at most [`CALLS_PER_SECOND`] sso-admin calls in any
//! second and at most [`OPERATIONS_IN_FLIGHT`] asynchronous operations (assignment creations
//! and deletions, provisionings) started and not yet seen finished.
//!
//! Both live in the ledger, because the callers are separate Lambda invocations: the call
//! budget is a per-second counter (the same conditional counter as the requesters' rate
//! limit), the operations a counted semaphore of leased slots, so an invocation that dies
//! mid-operation frees its slot when the lease runs out. A caller that finds either budget
//! spent waits a little, then fails `Retryable` and the state machine retries the step later:
//! trailgate slows itself down instead of meeting Identity Center's throttling in bulk.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::identity_center::OPERATION_BOUND;
use crate::error::{Error, Result};
use crate::ports::{IdentityCenter, Ledger, Operation, OperationStatus, PermissionSetInfo};
use crate::request::Assignment;

/// sso-admin calls per second and instance (Identity Center's account-assignment APIs allow
/// about 20 transactions per second).
pub const CALLS_PER_SECOND: u32 = 20;
/// Asynchronous operations in flight per instance (Identity Center runs at most 10 account
/// assignment operations at once).
pub const OPERATIONS_IN_FLIGHT: u32 = 10;
/// How long a slot is held when its holder never says the operation finished: the longest a
/// step waits for one operation, and a margin.
const LEASE_SECONDS: i64 = OPERATION_BOUND.as_secs() as i64 + 30;
/// How often a caller looks again for a call or a slot before it gives up `Retryable`.
const ATTEMPTS: u32 = 40;
const SLOT_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// The ledger key of an instance's call counter.
pub fn calls_key(instance_arn: &str) -> String {
    format!("sso-calls:{instance_arn}")
}

/// The ledger key of an instance's operation slots.
pub fn slots_key(instance_arn: &str) -> String {
    format!("sso-operations:{instance_arn}")
}

/// An [`IdentityCenter`] that spends the instance's budget before each call. `holder` names
/// who takes operation slots (a request id, the drift sweep): a retried step takes its own
/// slot again instead of a second one.
pub struct Budgeted<'a, L, I> {
    ledger: &'a L,
    inner: &'a I,
    holder: String,
    /// Operations this caller started and has not seen finish: request id → (instance, slot).
    started: Mutex<BTreeMap<String, (String, u32)>>,
}

impl<'a, L: Ledger, I: IdentityCenter> Budgeted<'a, L, I> {
    pub fn new(ledger: &'a L, inner: &'a I, holder: &str) -> Self {
        Budgeted {
            ledger,
            inner,
            holder: holder.to_owned(),
            started: Mutex::default(),
        }
    }

    /// Counts one call against the instance's current second, waiting for the next second
    /// while this one is spent.
    async fn admit(&self, instance_arn: &str) -> Result<()> {
        let key = calls_key(instance_arn);
        for _ in 0..ATTEMPTS {
            let now = self.inner.now();
            let second = now.unix_timestamp();
            if self
                .ledger
                .count_call(&key, &second.to_string(), CALLS_PER_SECOND, second + 3600)
                .await?
            {
                return Ok(());
            }
            let to_next = 1000 - u64::from(now.millisecond()).min(999);
            self.inner
                .pause(std::time::Duration::from_millis(to_next))
                .await;
        }
        Err(Error::retryable(format!(
            "IAM Identity Center's call budget of {instance_arn} ({CALLS_PER_SECOND} per second) \
             stayed spent; the step is retried later"
        )))
    }

    /// Takes one of the instance's operation slots, waiting while all are taken.
    async fn take_slot(&self, instance_arn: &str) -> Result<u32> {
        let key = slots_key(instance_arn);
        // Callers start at different slots, so they rarely contend for the same item.
        let first = self
            .holder
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % OPERATIONS_IN_FLIGHT;
        for _ in 0..ATTEMPTS {
            let now = self.inner.now().unix_timestamp();
            for offset in 0..OPERATIONS_IN_FLIGHT {
                let slot = (first + offset) % OPERATIONS_IN_FLIGHT;
                if self
                    .ledger
                    .take_slot(&key, slot, &self.holder, now, now + LEASE_SECONDS)
                    .await?
                {
                    return Ok(slot);
                }
            }
            self.inner.pause(SLOT_PAUSE).await;
        }
        Err(Error::retryable(format!(
            "{OPERATIONS_IN_FLIGHT} IAM Identity Center operations stayed in flight on \
             {instance_arn}; the step is retried later"
        )))
    }

    async fn free_slot(&self, instance_arn: &str, slot: u32) -> Result<()> {
        self.ledger
            .free_slot(&slots_key(instance_arn), slot, &self.holder)
            .await
    }

    /// Starts an asynchronous operation in a slot: the slot is kept while the operation runs
    /// (until [`IdentityCenter::status`] sees it end) and freed at once if nothing started.
    async fn start(
        &self,
        instance_arn: &str,
        operation: impl Future<Output = Result<Option<String>>>,
    ) -> Result<Option<String>> {
        self.admit(instance_arn).await?;
        let slot = self.take_slot(instance_arn).await?;
        match operation.await {
            Ok(Some(request_id)) => {
                self.started
                    .lock()
                    .expect("lock")
                    .insert(request_id.clone(), (instance_arn.to_owned(), slot));
                Ok(Some(request_id))
            }
            Ok(None) => {
                self.free_slot(instance_arn, slot).await?;
                Ok(None)
            }
            Err(err) => {
                self.free_slot(instance_arn, slot).await?;
                Err(err)
            }
        }
    }
}

impl<L: Ledger, I: IdentityCenter> IdentityCenter for Budgeted<'_, L, I> {
    // identitystore is not sso-admin: its own quota, not this budget.
    async fn user_id(&self, instance_arn: &str, user_name: &str) -> Result<Option<String>> {
        self.inner.user_id(instance_arn, user_name).await
    }

    async fn permission_set(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
    ) -> Result<Option<PermissionSetInfo>> {
        self.admit(instance_arn).await?;
        self.inner
            .permission_set(instance_arn, permission_set_arn)
            .await
    }

    async fn create_assignment(&self, assignment: &Assignment) -> Result<String> {
        let started = self
            .start(&assignment.instance_arn, async {
                self.inner.create_assignment(assignment).await.map(Some)
            })
            .await?;
        started.ok_or_else(|| Error::internal("CreateAccountAssignment gave no request id"))
    }

    async fn delete_assignment(&self, assignment: &Assignment) -> Result<Option<String>> {
        self.start(
            &assignment.instance_arn,
            self.inner.delete_assignment(assignment),
        )
        .await
    }

    async fn is_assigned(&self, assignment: &Assignment) -> Result<bool> {
        self.admit(&assignment.instance_arn).await?;
        self.inner.is_assigned(assignment).await
    }

    async fn assigned_users(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> Result<Vec<String>> {
        self.admit(instance_arn).await?;
        self.inner
            .assigned_users(instance_arn, permission_set_arn, account)
            .await
    }

    async fn assigned_groups(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> Result<Vec<String>> {
        self.admit(instance_arn).await?;
        self.inner
            .assigned_groups(instance_arn, permission_set_arn, account)
            .await
    }

    // identitystore, as `user_id`.
    async fn group_members(&self, instance_arn: &str, group_id: &str) -> Result<Vec<String>> {
        self.inner.group_members(instance_arn, group_id).await
    }

    async fn delete_group_assignment(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
        group_id: &str,
    ) -> Result<Option<String>> {
        self.start(
            instance_arn,
            self.inner
                .delete_group_assignment(instance_arn, permission_set_arn, account, group_id),
        )
        .await
    }

    async fn status(
        &self,
        operation: Operation,
        instance_arn: &str,
        request_id: &str,
    ) -> Result<OperationStatus> {
        self.admit(instance_arn).await?;
        let status = self
            .inner
            .status(operation, instance_arn, request_id)
            .await?;
        if status != OperationStatus::InProgress {
            let ended = self.started.lock().expect("lock").remove(request_id);
            if let Some((instance, slot)) = ended {
                self.free_slot(&instance, slot).await?;
            }
        }
        Ok(status)
    }

    async fn inline_policy(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
    ) -> Result<Option<String>> {
        self.admit(instance_arn).await?;
        self.inner
            .inline_policy(instance_arn, permission_set_arn)
            .await
    }

    async fn put_inline_policy(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        document: &str,
    ) -> Result<()> {
        self.admit(instance_arn).await?;
        self.inner
            .put_inline_policy(instance_arn, permission_set_arn, document)
            .await
    }

    async fn provision(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> Result<String> {
        let started = self
            .start(instance_arn, async {
                self.inner
                    .provision(instance_arn, permission_set_arn, account)
                    .await
                    .map(Some)
            })
            .await?;
        started.ok_or_else(|| Error::internal("ProvisionPermissionSet gave no request id"))
    }

    async fn pause(&self, delay: std::time::Duration) {
        self.inner.pause(delay).await;
    }

    fn now(&self) -> ::time::OffsetDateTime {
        self.inner.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::testing::{
        ALICE_USER_ID, INSTANCE_ARN, MemoryIdentityCenter, MemoryLedger, PERMISSION_SET_ARN,
        PS_ACCOUNT,
    };
    use futures_executor::executor::block_on;

    fn assignment(user_id: &str) -> Assignment {
        Assignment {
            instance_arn: INSTANCE_ARN.into(),
            permission_set_arn: PERMISSION_SET_ARN.into(),
            account: PS_ACCOUNT.into(),
            user_id: user_id.into(),
        }
    }

    #[test]
    fn callers_sharing_an_instance_never_make_more_than_twenty_calls_in_a_second() {
        let (ledger, center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
        let start = center.now();
        // Three callers (say, three grant invocations) share the instance's one budget.
        let callers: Vec<_> = ["r-1", "r-2", "r-3"]
            .iter()
            .map(|id| Budgeted::new(&ledger, &center, id))
            .collect();
        let mut seconds = BTreeMap::<i64, u32>::new();
        for _ in 0..15 {
            for caller in &callers {
                block_on(caller.permission_set(INSTANCE_ARN, PERMISSION_SET_ARN)).unwrap();
                *seconds.entry(center.now().unix_timestamp()).or_default() += 1;
            }
        }
        // 45 calls: the clock only moves when a caller waits, so they took three seconds.
        assert_eq!(seconds.values().sum::<u32>(), 45);
        assert!(
            seconds.values().all(|&n| n <= CALLS_PER_SECOND),
            "{seconds:?}"
        );
        assert_eq!(
            center.now().unix_timestamp() - start.unix_timestamp(),
            2,
            "{seconds:?}"
        );
    }

    #[test]
    fn an_eleventh_operation_waits_for_a_slot_and_gives_up_retryable_without_calling() {
        let (ledger, center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
        *center.in_progress_polls.lock().unwrap() = 100;
        // Ten grants each start a creation and are still waiting for it.
        let users: Vec<String> = (0..10).map(|n| format!("user-{n}")).collect();
        let holders: Vec<_> = users
            .iter()
            .map(|user| Budgeted::new(&ledger, &center, user))
            .collect();
        for (holder, user) in holders.iter().zip(&users) {
            block_on(holder.create_assignment(&assignment(user))).unwrap();
        }
        let now = center.now().unix_timestamp();
        assert_eq!(ledger.slot_holders(&slots_key(INSTANCE_ARN), now).len(), 10);

        let eleventh = Budgeted::new(&ledger, &center, "r-eleventh");
        let err = block_on(eleventh.create_assignment(&assignment(ALICE_USER_ID))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Retryable, "{err:?}");
        assert!(err.message.contains("in flight"), "{}", err.message);
        let creations = center
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "CreateAccountAssignment")
            .count();
        assert_eq!(creations, 10, "the eleventh reached Identity Center");
    }

    #[test]
    fn a_finished_operation_frees_its_slot_and_a_dead_holders_lease_runs_out() {
        let (ledger, center) = (MemoryLedger::default(), MemoryIdentityCenter::default());
        *center.in_progress_polls.lock().unwrap() = 1;
        let key = slots_key(INSTANCE_ARN);
        let grant = Budgeted::new(&ledger, &center, "r-1");
        let id = block_on(grant.create_assignment(&assignment(ALICE_USER_ID))).unwrap();
        let now = || center.now().unix_timestamp();
        assert_eq!(ledger.slot_holders(&key, now()), vec!["r-1".to_owned()]);
        let op = Operation::CreateAssignment;
        assert_eq!(
            block_on(grant.status(op, INSTANCE_ARN, &id)).unwrap(),
            OperationStatus::InProgress
        );
        assert_eq!(ledger.slot_holders(&key, now()).len(), 1, "still running");
        assert_eq!(
            block_on(grant.status(op, INSTANCE_ARN, &id)).unwrap(),
            OperationStatus::Succeeded
        );
        assert!(
            ledger.slot_holders(&key, now()).is_empty(),
            "freed when done"
        );

        // Ten holders that died mid-operation: their slots come back when the leases end.
        for n in 0..OPERATIONS_IN_FLIGHT {
            assert!(
                block_on(ledger.take_slot(&key, n, &format!("dead-{n}"), now(), now() + 60))
                    .unwrap()
            );
        }
        let late = Budgeted::new(&ledger, &center, "r-late");
        let err = block_on(late.delete_assignment(&assignment(ALICE_USER_ID))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Retryable);
        block_on(center.pause(std::time::Duration::from_secs(61)));
        let deleted = block_on(late.delete_assignment(&assignment(ALICE_USER_ID))).unwrap();
        assert!(deleted.is_some(), "the assignment made above is deleted");
        assert_eq!(ledger.slot_holders(&key, now()), vec!["r-late".to_owned()]);
    }
}
