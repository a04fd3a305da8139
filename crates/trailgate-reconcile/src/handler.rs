//! Translates a scheduled run into `service::reconcile_with` and `service::sweep_exports`. The
//! event's content is irrelevant: every run looks at the whole ledger.

use serde_json::{Value, json};
use trailgate_aws::LambdaError;
use trailgate_domain::ports::{Accounts, Archive, IdentityCenter, Ledger, Notifier, Roles};
use trailgate_domain::service::{self, SweepScope};

pub struct Deps<L, R, I, N, A, X> {
    pub ledger: L,
    pub roles: R,
    pub identity_center: I,
    /// The permission sets and accounts of the drift sweep.
    pub catalog: trailgate_aws::catalog::CatalogSource,
    pub notifier: N,
    /// The Organization, for the accounts an entry covers through an OU.
    pub accounts: A,
    /// The ledger archive, for the export sweep.
    pub archive: X,
}

pub async fn handle<
    L: Ledger,
    R: Roles,
    I: IdentityCenter,
    N: Notifier,
    A: Accounts,
    X: Archive,
>(
    deps: &Deps<L, R, I, N, A, X>,
) -> Result<Value, LambdaError> {
    // Without the Organization the sweep still covers the accounts entries list by id; the
    // run says what it could not read, and the next run tries again.
    let (organization, organization_unread) = match deps.accounts.organization().await {
        Ok(organization) => (organization, None),
        Err(err) => {
            tracing::warn!(error = %err.message, "the Organization could not be read; OU accounts are not swept this run");
            (None, Some(err.message))
        }
    };
    let scope = SweepScope {
        catalog: &*deps.catalog.current().await,
        organization: organization.as_deref(),
    };
    // One instant for the whole run, so both sweeps judge the same moment.
    let now = time::OffsetDateTime::now_utc();
    let report = service::reconcile_with(
        &deps.ledger,
        &deps.roles,
        &deps.identity_center,
        Some(scope),
        &deps.notifier,
        now,
    )
    .await?;
    let (exported, export_failed) =
        service::sweep_exports(&deps.ledger, &deps.archive, &deps.notifier, now).await?;
    if report.found_anything() {
        tracing::warn!(revoked = ?report.revoked, reapplied = ?report.reapplied, failed = ?report.failed, near_capacity = ?report.near_capacity, fallbacks = ?report.fallbacks, swept = report.swept.len(), "reconciler found grants the state machine did not end, or roles running out of room");
    }
    Ok(json!({
        "revoked": report.revoked,
        "reapplied": report.reapplied,
        "collected": report.collected,
        "failed": report.failed.iter().map(|(id, why)| json!({"id": id, "error": why})).collect::<Vec<_>>(),
        "near_capacity": report.near_capacity.iter().map(|(role, used)| json!({"role": role, "characters": used})).collect::<Vec<_>>(),
        "swept": report.swept.iter().map(|s| json!({"permission_set_arn": s.permission_set_arn, "account": s.account, "user_id": s.user_id, "group_id": s.group_id, "members_denied": s.members})).collect::<Vec<_>>(),
        "fallbacks": report.fallbacks.iter().map(|(role, before)| json!({"role": role, "issued_before": before})).collect::<Vec<_>>(),
        "organization_unread": organization_unread,
        "exported": exported,
        "export_failed": export_failed.iter().map(|(id, why)| json!({"id": id, "error": why})).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailgate_domain::catalog::Catalog;
    use trailgate_domain::request::Status;
    use trailgate_domain::testing::*;

    #[tokio::test]
    async fn an_overdue_grant_is_revoked_and_alerted() {
        let ledger = MemoryLedger::default();
        let mut request = pending_request();
        request.status = Status::Active;
        request.expires_at = Some("2020-01-01T00:00:00Z".into());
        let id = seed(&ledger, request).id;
        let deps = Deps {
            ledger,
            roles: MemoryRoles::with_sample_role(),
            identity_center: MemoryIdentityCenter::default(),
            catalog: trailgate_aws::catalog::CatalogSource::fixed(
                Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
            ),
            notifier: MemoryNotifier::default(),
            accounts: MemoryAccounts::default(),
            archive: MemoryArchive::default(),
        };
        let out = handle(&deps).await.unwrap();
        assert_eq!(out["revoked"], json!([id]));
        assert_eq!(deps.notifier.sent.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_revoked_grant_whose_deny_went_missing_gets_it_back() {
        let ledger = MemoryLedger::default();
        let mut request = pending_request();
        request.status = Status::Revoked;
        request.expires_at = Some("2099-01-01T00:00:00Z".into());
        let id = seed(&ledger, request).id;
        let deps = Deps {
            ledger,
            roles: MemoryRoles::with_sample_role(),
            identity_center: MemoryIdentityCenter::default(),
            catalog: trailgate_aws::catalog::CatalogSource::fixed(
                Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
            ),
            notifier: MemoryNotifier::default(),
            accounts: MemoryAccounts::default(),
            archive: MemoryArchive::default(),
        };
        let out = handle(&deps).await.unwrap();
        assert_eq!(out["reapplied"], json!([id]));
        assert!(
            deps.roles
                .policy("sample-target-trailgate", "trailgate-revocations")
                .unwrap()
                .contains(&id)
        );
        assert_eq!(handle(&deps).await.unwrap()["reapplied"], json!([]));
    }
}
