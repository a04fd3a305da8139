//! The reconciler's entry point: runs on a schedule, revokes grants the state machine missed
//! and sweeps Identity Center assignments no request holds.

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::identity_center::IdentityCenterClient;
use trailgate_aws::{config, ledger::DynamoLedger, notifier::SnsNotifier, roles::IamRoles, sdk};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let (catalog, _) = config::catalog()?;
    let sdk = sdk::load().await;
    let deps = handler::Deps {
        ledger: DynamoLedger::from_env(&sdk).await?,
        // Writes and deletes revocations in member accounts: the tagged agent session.
        roles: IamRoles::writer_from_env(&sdk, "reconcile"),
        identity_center: IdentityCenterClient::from_env(&sdk, "reconcile"),
        catalog,
        notifier: SnsNotifier::from_sdk(&sdk, None, Some(config::required("ALERTS_TOPIC_ARN")?)),
    };
    run(service_fn(|_: LambdaEvent<serde_json::Value>| {
        handler::handle(&deps)
    }))
    .await
}
