//! The audit function's entry point: reads the catalog at cold start (refreshed by `CatalogSource`) and serves the state
//! machine's `Audit Session` and `Export Ledger` steps.

mod handler;

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::agents::Agents;
use trailgate_aws::catalog::CatalogSource;
use trailgate_aws::cloudtrail::OrganizationLookups;
use trailgate_aws::{archive::S3Archive, config, ledger::DynamoLedger, notifier::SnsNotifier, sdk};
use trailgate_review::session;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    // The catalog and the chain key at once: each is a round trip during init.
    let (catalog, ledger) =
        tokio::join!(CatalogSource::from_env(&sdk), DynamoLedger::from_env(&sdk));
    let (catalog, _) = catalog?;
    let ledger = ledger?;
    // Only a version the catalog function sealed with the chain key is used.
    catalog.sealed_by(trailgate_domain::ports::Ledger::chain_key(&ledger))?;
    // The report goes to the approvers, through the same filtered topic as approvals.
    let notifier =
        SnsNotifier::from_sdk(&sdk, Some(config::required("APPROVALS_TOPIC_ARN")?), None);
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
    let deps = handler::Deps {
        ledger,
        notifier,
        lookups: OrganizationLookups::new(Arc::new(Agents::from_env(&sdk, "audit"))),
        archive: S3Archive::from_sdk(&sdk, config::required("ARCHIVE_BUCKET")?),
        catalog,
        settings,
    };
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler::handle(event.payload, &deps)
    }))
    .await
}
