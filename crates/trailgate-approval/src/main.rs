//! The approval function's entry point: reads the catalog (refreshed by `CatalogSource`) and the link signing key at
//! cold start, then serves the `Await Approval`, `Break Glass` and `Record Expiry` steps.

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::catalog::CatalogSource;
use trailgate_aws::{config, ledger::DynamoLedger, notifier::SnsNotifier, sdk, secrets};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    let link_secret = config::required("LINK_SECRET_ARN")?;
    // The catalog and both secrets at once: each read is a TLS round trip to Secrets Manager during init.
    let (catalog, ledger, key) = tokio::join!(
        CatalogSource::from_env(&sdk),
        DynamoLedger::from_env(&sdk),
        secrets::link_key_from_sdk(&sdk, &link_secret)
    );
    let (catalog, _) = catalog?;
    let ledger = ledger?;
    // Only a version the catalog function sealed with the chain key is used.
    catalog.sealed_by(trailgate_domain::ports::Ledger::chain_key(&ledger))?;
    let deps = handler::Deps {
        ledger,
        // Alerts: break-glass tells the alerts topic as well as every approver.
        notifier: SnsNotifier::from_sdk(
            &sdk,
            Some(config::required("APPROVALS_TOPIC_ARN")?),
            Some(config::required("ALERTS_TOPIC_ARN")?),
        ),
        key: key?,
        decision_base_url: config::required("DECISION_BASE_URL")?
            .trim_end_matches('/')
            .to_owned(),
        catalog,
    };
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler::handle(event.payload, &deps)
    }))
    .await
}
