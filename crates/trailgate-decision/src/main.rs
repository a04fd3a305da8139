//! The decision function's entry point: reads the catalog (refreshed by `CatalogSource`) and the link signing key at
//! cold start, then serves the public `GET|POST /decisions/{id}` routes.

mod handler;
mod page;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::catalog::CatalogSource;
use trailgate_aws::{config, ledger::DynamoLedger, sdk, secrets, workflow::SfnWorkflow};

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
        // Only the task-completion calls are used; the state machine ARN is not needed for them.
        workflow: SfnWorkflow::from_sdk(&sdk, String::new()),
        key: key?,
        catalog,
    };
    run(service_fn(
        |event: LambdaEvent<ApiGatewayProxyRequest>| async {
            Ok::<_, Error>(handler::handle(event.payload, &deps).await)
        },
    ))
    .await
}
