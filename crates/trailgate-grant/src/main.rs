//! The grant function's entry point: reads its configuration and builds its adapters once per
//! cold start, then serves the state machine's `Activate` step.

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::catalog::CatalogSource;
use trailgate_aws::identity_center::IdentityCenterClient;
use trailgate_aws::{config, ledger::DynamoLedger, roles::IamRoles, sdk};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    // The catalog and the chain key at once: each is a round trip during init.
    let (catalog, ledger) =
        tokio::join!(CatalogSource::from_env(&sdk), DynamoLedger::from_env(&sdk));
    let (catalog, protected) = catalog?;
    let ledger = ledger?;
    // Only a version the catalog function sealed with the chain key is used.
    catalog.sealed_by(trailgate_domain::ports::Ledger::chain_key(&ledger))?;
    let deps = handler::Deps {
        ledger,
        roles: IamRoles::from_env(&sdk, "grant"),
        identity_center: IdentityCenterClient::from_env(&sdk, "grant"),
        catalog,
        protected,
        broker_role_arn: config::required("CREDENTIALS_ROLE_ARN")?,
        protection_policy_arn: config::required("PROTECTION_POLICY_ARN")?,
    };
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler::handle(event.payload, &deps)
    }))
    .await
}
