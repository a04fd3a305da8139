//! The catalog function's entry point: reads the chain key and the catalog in force at cold
//! start, then serves `PUT /catalog` (push a version) and `GET /catalog/history`.

mod handler;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::catalog::{CatalogSource, DynamoCatalog};
use trailgate_aws::{config, sdk, secrets};
use trailgate_domain::catalog_version::Publishers;
use trailgate_domain::service::CatalogAdmin;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let publishers =
        Publishers::parse(&config::optional("CATALOG_PUBLISHERS", "")).map_err(|err| {
            config::ConfigError::Invalid {
                name: "CATALOG_PUBLISHERS",
                reason: err.message,
            }
        })?;
    let sdk = sdk::load().await;
    let chain_secret = config::required("CHAIN_KEY_SECRET_ARN")?;
    // The catalog in force and the chain key at once: each is a round trip during init.
    let (catalog, key) = tokio::join!(
        CatalogSource::from_env(&sdk),
        secrets::chain_key_from_sdk(&sdk, &chain_secret)
    );
    let (catalog, protected) = catalog?;
    let key = key?;
    catalog.sealed_by(&key)?;
    let deps = handler::Deps {
        store: DynamoCatalog::from_sdk(&sdk, config::required("CATALOG_TABLE")?),
        admin: CatalogAdmin {
            publishers,
            protected,
            key,
        },
        catalog,
        refresh_seconds: config::seconds("CATALOG_REFRESH_SECONDS", 60)?
            .whole_seconds()
            .unsigned_abs(),
    };
    run(service_fn(
        |event: LambdaEvent<ApiGatewayProxyRequest>| async {
            Ok::<_, Error>(handler::handle(event.payload, &deps).await)
        },
    ))
    .await
}
