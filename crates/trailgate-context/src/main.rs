//! The context function's entry point: serves the state machine's `Gather Context` step.

mod handler;

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::agents::Agents;
use trailgate_aws::cloudtrail::OrganizationLookups;
use trailgate_aws::{config, ledger::DynamoLedger, sdk};
use trailgate_review::gather;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    let ledger = DynamoLedger::from_env(&sdk).await?;
    let budget = config::seconds("CONTEXT_BUDGET_SECONDS", 10)?;
    let settings = gather::Settings {
        regions: config::optional("CONTEXT_REGIONS", "us-east-1")
            .split(',')
            .map(str::trim)
            .filter(|region| !region.is_empty())
            .map(str::to_owned)
            .collect(),
        budget: Duration::from_secs(u64::try_from(budget.whole_seconds()).unwrap_or(10)),
    };
    // The target account's history is read through its agent role, the hub's directly.
    let lookups = OrganizationLookups::new(Arc::new(Agents::from_env(&sdk, "context")));
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler::handle(event.payload, &ledger, &lookups, &settings)
    }))
    .await
}
