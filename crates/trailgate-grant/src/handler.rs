//! Translates the `Activate` step's input into `service::activate_target` (a role or a
//! permission set) and its result back.

use serde::Deserialize;
use serde_json::{Value, json};
use trailgate_aws::LambdaError;
use trailgate_domain::catalog::Protected;
use trailgate_domain::error::Error;
use trailgate_domain::ports::{IdentityCenter, Ledger, Roles};
use trailgate_domain::service;

pub struct Deps<L, R, I> {
    pub ledger: L,
    pub roles: R,
    pub identity_center: I,
    pub catalog: trailgate_aws::catalog::CatalogSource,
    /// What is never granted (`config::protected`).
    pub protected: Protected,
    /// `CREDENTIALS_ROLE_ARN`: the only principal a target role's trust policy may name.
    pub broker_role_arn: String,
    /// `PROTECTION_POLICY_ARN`: the stack's `TrailgateProtectionPolicy`, which a target role
    /// must have attached.
    pub protection_policy_arn: String,
}

#[derive(Deserialize)]
struct Input {
    request_id: String,
}

pub async fn handle<L: Ledger, R: Roles, I: IdentityCenter>(
    payload: Value,
    deps: &Deps<L, R, I>,
) -> Result<Value, LambdaError> {
    let input: Input = serde_json::from_value(payload)
        .map_err(|err| Error::internal(format!("bad Activate input: {err}")))?;
    let now = time::OffsetDateTime::now_utc();
    if service::cancelled_before_start(&deps.ledger, &input.request_id).await? {
        tracing::info!(request_id = %input.request_id, "cancelled before its start: nothing granted");
        return Ok(json!({ "status": "CANCELLED", "expires_at": null }));
    }
    let expires_at = service::activate_target(
        &deps.ledger,
        &deps.roles,
        &deps.identity_center,
        &*deps.catalog.current().await,
        service::RoleContract {
            protected: &deps.protected,
            broker_role_arn: &deps.broker_role_arn,
            protection_policy_arn: &deps.protection_policy_arn,
        },
        &input.request_id,
        now,
    )
    .await?;
    tracing::info!(request_id = %input.request_id, %expires_at, "grant active");
    Ok(json!({ "status": "ACTIVE", "expires_at": expires_at }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailgate_domain::catalog::Catalog;
    use trailgate_domain::testing::*;

    /// The handler's dependencies around `ledger` and `roles`, with the sample catalog.
    fn deps(
        ledger: MemoryLedger,
        roles: MemoryRoles,
    ) -> Deps<MemoryLedger, MemoryRoles, MemoryIdentityCenter> {
        Deps {
            ledger,
            roles,
            identity_center: MemoryIdentityCenter::default(),
            catalog: trailgate_aws::catalog::CatalogSource::fixed(
                Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
            ),
            protected: PROTECTED.clone(),
            broker_role_arn: BROKER_ROLE.into(),
            protection_policy_arn: PROTECTION_POLICY.into(),
        }
    }

    #[tokio::test]
    async fn an_approved_request_becomes_active_with_a_z_timestamp() {
        let ledger = MemoryLedger::default();
        let mut request = pending_request();
        request.status = trailgate_domain::request::Status::Approved;
        let id = seed(&ledger, request).id;
        let deps = deps(ledger, MemoryRoles::with_sample_role());
        let event: Value =
            serde_json::from_str(include_str!("../../../events/grant/activate.json")).unwrap();
        let event = json!({"request_id": id, "ignored": event["ignored"]});
        let out = handle(event, &deps).await.unwrap();
        assert_eq!(out["status"], "ACTIVE");
        assert!(out["expires_at"].as_str().unwrap().ends_with('Z'));
    }

    #[tokio::test]
    async fn a_scheduled_request_cancelled_before_its_start_is_granted_nothing() {
        let ledger = MemoryLedger::default();
        let mut request = pending_request();
        request.status = trailgate_domain::request::Status::Cancelled;
        request.start_at = Some("2026-12-08T09:00:00Z".into());
        let id = seed(&ledger, request).id;
        let roles = MemoryRoles::with_sample_role();
        let deps = deps(ledger, roles);
        let out = handle(json!({"request_id": id}), &deps).await.unwrap();
        assert_eq!(out, json!({"status": "CANCELLED", "expires_at": null}));
        let record = deps.ledger.record(&id).unwrap();
        assert_eq!(record.status, trailgate_domain::request::Status::Cancelled);
        assert_eq!(record.expires_at, None);
    }

    #[tokio::test]
    async fn a_pending_request_is_a_conflict() {
        let ledger = MemoryLedger::default();
        let id = seed(&ledger, pending_request()).id;
        let deps = deps(ledger, MemoryRoles::with_sample_role());
        let err = handle(json!({"request_id": id}), &deps).await.unwrap_err();
        assert_eq!(err.0.kind.name(), "Conflict");
    }

    #[tokio::test]
    async fn a_role_trusting_more_than_the_broker_is_not_grantable() {
        let ledger = MemoryLedger::default();
        let mut request = pending_request();
        request.status = trailgate_domain::request::Status::Approved;
        let id = seed(&ledger, request).id;
        let roles = MemoryRoles::with_sample_role();
        roles.set_trust(
            "sample-target-trailgate",
            &broker_trust_policy().replace(
                "\"sts:SourceIdentity\":\"false\"",
                "\"sts:SourceIdentity\":\"true\"",
            ),
        );
        let deps = deps(ledger, roles);
        let err = handle(json!({"request_id": id}), &deps).await.unwrap_err();
        assert_eq!(err.0.kind.name(), "NotGrantable");
        assert!(
            err.0.message.contains("source identity"),
            "{}",
            err.0.message
        );
    }
}
