//! The reconciler's entry point: runs on a schedule, revokes grants the state machine missed
//! and sweeps Identity Center assignments no request holds (in the accounts entries list, and
//! those under their OUs in the Organization).

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use std::sync::Arc;
use trailgate_aws::agents::Agents;
use trailgate_aws::catalog::CatalogSource;
use trailgate_aws::identity_center::IdentityCenterClient;
use trailgate_aws::organizations::OrgAccounts;
use trailgate_aws::{
    archive::S3Archive, config, ledger::DynamoLedger, notifier::SnsNotifier, roles::IamRoles, sdk,
};

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
    let deps = handler::Deps {
        ledger,
        // Writes and deletes revocations in member accounts: the tagged agent session.
        roles: IamRoles::writer_from_env(&sdk, "reconcile"),
        identity_center: IdentityCenterClient::from_env(&sdk, "reconcile"),
        catalog,
        notifier: SnsNotifier::from_sdk(&sdk, None, Some(config::required("ALERTS_TOPIC_ARN")?)),
        // As intake reads it (directly as a delegated administrator, or through the management
        // account's reader role); a run every five minutes needs no longer cache.
        accounts: OrgAccounts::new(
            Arc::new(Agents::from_env(&sdk, "reconcile")),
            Some(config::optional("ORGANIZATION_READER_ROLE_ARN", ""))
                .filter(|arn| !arn.is_empty()),
            std::time::Duration::from_secs(60),
        ),
        // Closed requests the state machine did not archive.
        archive: S3Archive::from_sdk(&sdk, config::required("ARCHIVE_BUCKET")?),
    };
    run(service_fn(|_: LambdaEvent<serde_json::Value>| {
        handler::handle(&deps)
    }))
    .await
}
