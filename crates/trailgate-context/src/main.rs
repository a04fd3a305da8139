//! The context function's entry point: serves the state machine's `Gather Context` step.

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::{config, ledger::DynamoLedger, sdk};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    let ledger = DynamoLedger::from_sdk(&sdk, config::required("LEDGER_TABLE")?);
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler::handle(event.payload, &ledger)
    }))
    .await
}
