//! The audit function's entry point: serves the state machine's `Audit Session` step.

mod handler;
mod session;

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::cloudtrail::CloudTrailLookup;
use trailgate_aws::{config, ledger::DynamoLedger, sdk};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    let ledger = DynamoLedger::from_sdk(&sdk, config::required("LEDGER_TABLE")?);
    let settings = session::Settings {
        regions: config::optional("CONTEXT_REGIONS", "us-east-1")
            .split(',')
            .map(str::trim)
            .filter(|region| !region.is_empty())
            .map(str::to_owned)
            .collect(),
        // Not on anyone's critical path, but well inside the function's 30 s timeout.
        budget: Duration::from_secs(20),
    };
    let api = CloudTrailLookup::new(&sdk);
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler::handle(event.payload, &ledger, &api, &settings)
    }))
    .await
}
