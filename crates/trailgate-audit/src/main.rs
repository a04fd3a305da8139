//! The audit function's entry point: reads the catalog at cold start (refreshed by `CatalogSource`) and serves the state
//! machine's `Audit Session` and `Export Ledger` steps.

mod handler;

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::agents::Agents;
use trailgate_aws::catalog::CatalogSource;
use trailgate_aws::cloudtrail::OrganizationLookups;
use trailgate_aws::s3::S3Store;
use trailgate_aws::{archive::S3Archive, config, ledger::DynamoLedger, notifier::SnsNotifier, sdk};
use trailgate_review::session;
use trailgate_review::trail::TrailBucket;
use trailgate_runbooks::source::s3::S3Location;

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
        trail: trail(&sdk)?,
        archive: S3Archive::from_sdk(&sdk, config::required("ARCHIVE_BUCKET")?),
        catalog,
        settings,
    };
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler::handle(event.payload, &deps)
    }))
    .await
}

/// The trail bucket the template's `TrailBucket` and `TrailPrefix` name, if any: read with the
/// function's own role (the bucket's policy grants it; see template.yaml `TrailReadPolicy`).
fn trail(sdk: &trailgate_aws::SdkConfig) -> Result<Option<TrailBucket<S3Store>>, Error> {
    let bucket = config::optional("TRAIL_BUCKET", "");
    if bucket.is_empty() {
        return Ok(None);
    }
    let prefix = config::optional("TRAIL_PREFIX", "");
    let url = format!("s3://{bucket}/{prefix}");
    let location = S3Location::parse(&url).ok_or_else(|| {
        format!("TRAIL_BUCKET and TRAIL_PREFIX do not name an S3 location: {url}")
    })?;
    Ok(Some(TrailBucket {
        store: S3Store::for_sdk(sdk),
        location,
    }))
}
