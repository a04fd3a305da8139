//! The intake function's entry point: reads the catalog at cold start (then as `CatalogSource`
//! refreshes it), and serves the request API (`POST|GET /requests`, `GET /requests/{id}`,
//! `POST /requests/{id}/cancel`, `POST /requests/{id}/revoke`, `GET /catalog`).

mod handler;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use std::sync::Arc;
use trailgate_aws::agents::Agents;
use trailgate_aws::catalog::CatalogSource;
use trailgate_aws::identity_center::IdentityCenterClient;
use trailgate_aws::organizations::OrgAccounts;
use trailgate_aws::{config, ledger::DynamoLedger, roles::IamRoles, sdk, workflow::SfnWorkflow};
use trailgate_domain::service::{IntakeSettings, RequestPolicy};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    // The catalog and the chain key at once: each is a round trip during init.
    let (catalog, ledger) =
        tokio::join!(CatalogSource::from_env(&sdk), DynamoLedger::from_env(&sdk));
    let (catalog, protected) = catalog?;
    let ledger = ledger?;
    // Only a version the catalog function sealed with the chain key is used.
    catalog.sealed_by(trailgate_domain::ports::Ledger::chain_key(&ledger))?;
    // An early revoke writes the deny in a member account: the tagged agent session.
    let agents = Arc::new(Agents::from_env(&sdk, "intake").writing());
    let reader =
        Some(config::optional("ORGANIZATION_READER_ROLE_ARN", "")).filter(|arn| !arn.is_empty());
    let deps = handler::Deps {
        ledger,
        workflow: SfnWorkflow::from_sdk(&sdk, config::required("STATE_MACHINE_ARN")?),
        roles: IamRoles::with_agents(&sdk, agents.clone()),
        identity_center: IdentityCenterClient::from_env(&sdk, "intake"),
        settings: IntakeSettings {
            audit_delay: config::seconds("AUDIT_DELAY_SECONDS", 900)?,
            reaudit_delay: config::seconds("REAUDIT_DELAY_SECONDS", 3600)?,
        },
        policy: RequestPolicy {
            per_minute: config::required("REQUESTS_PER_MINUTE")?
                .parse()
                .map_err(|_| "`REQUESTS_PER_MINUTE` is not a whole number")?,
            one_open_per_role: config::required("ONE_OPEN_REQUEST_PER_ROLE")? == "true",
        },
        catalog,
        accounts: OrgAccounts::new(
            agents,
            reader,
            std::time::Duration::from_secs(
                config::seconds("ORGANIZATION_CACHE_SECONDS", 300)?
                    .whole_seconds()
                    .unsigned_abs(),
            ),
        ),
        protected,
    };
    run(service_fn(
        |event: LambdaEvent<ApiGatewayProxyRequest>| async {
            Ok::<_, Error>(handler::handle(event.payload, &deps).await)
        },
    ))
    .await
}
