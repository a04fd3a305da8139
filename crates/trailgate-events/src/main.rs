//! The events function's entry point: builds its adapters once per cold start, then publishes
//! the ledger's stream to the lifecycle bus.

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::eventbridge::EventBridgeBus;
use trailgate_aws::ledger::LedgerReader;
use trailgate_aws::sdk;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    let deps = handler::Deps {
        // Reads records only: the function writes nothing, so it holds no chain key.
        records: LedgerReader::from_env(&sdk)?,
        bus: EventBridgeBus::from_env(&sdk)?,
    };
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler::handle(event.payload, &deps)
    }))
    .await
}
