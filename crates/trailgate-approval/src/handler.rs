//! Translates the approval steps: `request_approval` (with the task token), `break_glass`
//! (approval skipped, everyone alerted) and `expire`.

use serde::Deserialize;
use serde_json::{Value, json};
use trailgate_aws::LambdaError;
use trailgate_domain::error::Error;
use trailgate_domain::link::LinkKey;
use trailgate_domain::ports::{Ledger, Notifier};
use trailgate_domain::service::{self, ApprovalSettings};

pub struct Deps<L, N> {
    pub ledger: L,
    pub notifier: N,
    pub key: LinkKey,
    pub decision_base_url: String,
    pub catalog: trailgate_aws::catalog::CatalogSource,
}

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Input {
    RequestApproval {
        request_id: String,
        task_token: String,
    },
    BreakGlass {
        request_id: String,
    },
    Expire {
        request_id: String,
    },
}

pub async fn handle<L: Ledger, N: Notifier>(
    payload: Value,
    deps: &Deps<L, N>,
) -> Result<Value, LambdaError> {
    let input: Input = serde_json::from_value(payload)
        .map_err(|err| Error::internal(format!("bad approval input: {err}")))?;
    let now = time::OffsetDateTime::now_utc();
    match input {
        Input::RequestApproval {
            request_id,
            task_token,
        } => {
            let settings = ApprovalSettings {
                key: &deps.key,
                decision_base_url: &deps.decision_base_url,
            };
            let notified = service::request_approval(
                &deps.ledger,
                &deps.notifier,
                &*deps.catalog.current().await,
                &settings,
                service::ApprovalTask {
                    id: &request_id,
                    task_token: &task_token,
                    now,
                },
            )
            .await?;
            // The token is deliberately not logged.
            tracing::info!(%request_id, ?notified, "approval requested");
            Ok(json!({ "notified": notified }))
        }
        Input::BreakGlass { request_id } => {
            let alerted = service::break_glass(
                &deps.ledger,
                &deps.notifier,
                &*deps.catalog.current().await,
                &request_id,
                now,
            )
            .await?;
            tracing::warn!(%request_id, ?alerted, "break-glass access: approval skipped");
            Ok(json!({ "outcome": "APPROVED", "alerted": alerted }))
        }
        Input::Expire { request_id } => {
            let status = service::expire(&deps.ledger, &request_id, now).await?;
            tracing::info!(%request_id, %status, "approval window closed");
            Ok(json!({ "status": status }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailgate_domain::catalog::Catalog;
    use trailgate_domain::testing::*;

    fn deps() -> Deps<MemoryLedger, MemoryNotifier> {
        Deps {
            ledger: MemoryLedger::default(),
            notifier: MemoryNotifier::default(),
            key: LinkKey::new(vec![3u8; 32]).unwrap(),
            decision_base_url: "http://127.0.0.1:4567/v1".into(),
            catalog: trailgate_aws::catalog::CatalogSource::fixed(
                Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
            ),
        }
    }

    #[tokio::test]
    async fn the_fixture_event_notifies_both_approvers() {
        let deps = deps();
        let id = seed(&deps.ledger, pending_request()).id;
        let mut event: Value = serde_json::from_str(include_str!(
            "../../../events/approval/request_approval.json"
        ))
        .unwrap();
        event["request_id"] = json!(id);
        let out = handle(event, &deps).await.unwrap();
        assert_eq!(out, json!({"notified": ["bob", "carol"]}));
        assert_eq!(deps.notifier.sent.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn expire_records_the_outcome() {
        let deps = deps();
        let id = seed(&deps.ledger, pending_request()).id;
        let out = handle(json!({"action": "expire", "request_id": id}), &deps)
            .await
            .unwrap();
        assert_eq!(out, json!({"status": "EXPIRED"}));
    }

    #[tokio::test]
    async fn the_break_glass_fixture_approves_and_alerts_only_a_break_glass_request() {
        let mut event: Value =
            serde_json::from_str(include_str!("../../../events/approval/break_glass.json"))
                .unwrap();

        // A normal request is refused with a typed error the ASL can catch.
        let normal = deps();
        let id = seed(&normal.ledger, pending_request()).id;
        event["request_id"] = json!(id);
        let err = handle(event.clone(), &normal).await.unwrap_err();
        assert_eq!(err.0.kind.name(), "Forbidden");
        assert!(normal.notifier.sent.lock().unwrap().is_empty());

        let glass = sample_catalog_json()
            .replace("\"break_glass\": false", "\"break_glass\": true")
            .replace("\"PT4H\"", "\"PT1H\"");
        let deps = Deps {
            catalog: trailgate_aws::catalog::CatalogSource::fixed(
                Catalog::load(&glass, "trailgate-").unwrap(),
            ),
            ..deps()
        };
        let mut request = pending_request();
        request.break_glass = true;
        request.duration_seconds = 1800;
        let id = seed(&deps.ledger, request).id;
        event["request_id"] = json!(id);
        let out = handle(event, &deps).await.unwrap();
        assert_eq!(
            out,
            json!({"outcome": "APPROVED", "alerted": ["bob", "carol"]})
        );
        // The alerts topic plus one message per approver.
        assert_eq!(deps.notifier.sent.lock().unwrap().len(), 3);
    }
}
