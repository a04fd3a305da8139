//! The revoke function's entry point: builds its adapters once per cold start, then serves
//! the state machine's `Revoke` step.

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::identity_center::IdentityCenterClient;
use trailgate_aws::{ledger::DynamoLedger, roles::IamRoles, sdk};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    let deps = handler::Deps {
        ledger: DynamoLedger::from_env(&sdk).await?,
        // Writes and deletes revocations in member accounts: the tagged agent session.
        roles: IamRoles::writer_from_env(&sdk, "revoke"),
        identity_center: IdentityCenterClient::from_env(&sdk, "revoke"),
    };
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler::handle(event.payload, &deps)
    }))
    .await
}
