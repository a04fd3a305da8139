//! Translates the `Revoke` step's input into `service::revoke_target` (a role or a permission
//! set).

use serde::Deserialize;
use serde_json::{Value, json};
use trailgate_aws::LambdaError;
use trailgate_domain::error::Error;
use trailgate_domain::ports::{IdentityCenter, Ledger, Roles};
use trailgate_domain::service;

pub struct Deps<L, R, I> {
    pub ledger: L,
    pub roles: R,
    pub identity_center: I,
}

#[derive(Deserialize)]
struct Input {
    request_id: String,
    #[serde(default = "default_reason")]
    reason: String,
}

fn default_reason() -> String {
    "expired".into()
}

pub async fn handle<L: Ledger, R: Roles, I: IdentityCenter>(
    payload: Value,
    deps: &Deps<L, R, I>,
) -> Result<Value, LambdaError> {
    let input: Input = serde_json::from_value(payload)
        .map_err(|err| Error::internal(format!("bad Revoke input: {err}")))?;
    let reason: String = input
        .reason
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let status = service::revoke_target(
        &deps.ledger,
        &deps.roles,
        &deps.identity_center,
        &input.request_id,
        &reason,
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    tracing::info!(request_id = %input.request_id, %status, "revoke done");
    Ok(json!({ "status": status }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailgate_domain::request::Status;
    use trailgate_domain::testing::*;

    #[tokio::test]
    async fn revoking_an_active_grant_writes_the_deny() {
        let ledger = MemoryLedger::default();
        let mut request = pending_request();
        request.status = Status::Active;
        request.expires_at = Some("2026-11-21T12:00:00Z".into());
        let id = seed(&ledger, request).id;
        let deps = Deps {
            ledger,
            roles: MemoryRoles::with_sample_role(),
            identity_center: MemoryIdentityCenter::default(),
        };
        let mut event: Value =
            serde_json::from_str(include_str!("../../../events/revoke/expired.json")).unwrap();
        event["request_id"] = json!(id);
        assert_eq!(
            handle(event, &deps).await.unwrap(),
            json!({"status": "REVOKED"})
        );
        assert!(
            deps.roles
                .policy("sample-target-trailgate", "trailgate-revocations")
                .unwrap()
                .contains(&id)
        );
    }
}
