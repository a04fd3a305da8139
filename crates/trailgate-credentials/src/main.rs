//! The credentials function's entry point: serves `GET /requests/{id}/credentials`.
//! Its role is the only one target roles trust.

mod handler;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::catalog::CatalogSource;
use trailgate_aws::{credentials::StsIssuer, ledger::DynamoLedger, sdk};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    // The catalog and the chain key at once: each is a round trip during init.
    let (catalog, ledger) =
        tokio::join!(CatalogSource::from_env(&sdk), DynamoLedger::from_env(&sdk));
    let (catalog, _own_role_prefix) = catalog?;
    let ledger = ledger?;
    // Only a version the catalog function sealed with the chain key is used.
    catalog.sealed_by(trailgate_domain::ports::Ledger::chain_key(&ledger))?;
    let deps = handler::Deps {
        ledger,
        issuer: StsIssuer::from_sdk(&sdk),
        catalog,
    };
    run(service_fn(
        |event: LambdaEvent<ApiGatewayProxyRequest>| async {
            Ok::<_, Error>(handler::handle(event.payload, &deps).await)
        },
    ))
    .await
}
