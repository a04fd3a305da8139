//! Translates `GET /requests/{id}/credentials` into `service::vend`, answering in the AWS
//! `credential_process` format so that `jitctl credential-process` can pass it through.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use serde_json::json;
use trailgate_aws::apigw;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ports::{CredentialIssuer, Ledger};
use trailgate_domain::request::is_request_id;
use trailgate_domain::service;

pub struct Deps<L, C> {
    pub ledger: L,
    pub issuer: C,
    /// Today's catalog: every vend re-checks the record's role and duration against it.
    pub catalog: trailgate_aws::catalog::CatalogSource,
}

pub async fn handle<L: Ledger, C: CredentialIssuer>(
    request: ApiGatewayProxyRequest,
    deps: &Deps<L, C>,
) -> ApiGatewayProxyResponse {
    apigw::respond(vend(&request, deps).await)
}

async fn vend<L: Ledger, C: CredentialIssuer>(
    request: &ApiGatewayProxyRequest,
    deps: &Deps<L, C>,
) -> Result<ApiGatewayProxyResponse> {
    let caller = apigw::caller(request)?;
    let id = apigw::path_param(request, "id")?;
    if !is_request_id(id) {
        return Err(Error::not_found("no such request"));
    }
    let credentials = service::vend(
        &deps.ledger,
        &deps.issuer,
        &*deps.catalog.current().await,
        &caller,
        id,
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    // The key id is logged to correlate with CloudTrail; the secret and token never are.
    tracing::info!(request_id = %id, access_key_id = %credentials.access_key_id, expiration = %credentials.expiration, "credentials vended");
    Ok(apigw::json(
        200,
        &json!({
            "Version": 1,
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key,
            "SessionToken": credentials.session_token,
            "Expiration": credentials.expiration,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::encodings::Body;
    use trailgate_domain::catalog::Catalog;
    use trailgate_domain::request::Status;
    use trailgate_domain::testing::*;

    fn event(id: &str) -> ApiGatewayProxyRequest {
        let text = include_str!("../../../events/credentials/get_credentials.json");
        let mut event: ApiGatewayProxyRequest = serde_json::from_str(text).unwrap();
        event.path_parameters.insert("id".into(), id.into());
        event
    }

    #[tokio::test]
    async fn active_grants_get_credential_process_json_and_others_a_409() {
        let deps = Deps {
            ledger: MemoryLedger::default(),
            issuer: MemoryIssuer::default(),
            catalog: trailgate_aws::catalog::CatalogSource::fixed(
                Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
            ),
        };
        let pending = seed(&deps.ledger, pending_request()).id;
        assert_eq!(handle(event(&pending), &deps).await.status_code, 409);

        let mut request = pending_request();
        request.id = "r-dddddddddddddddddddddddddd".into();
        request.status = Status::Active;
        // Far enough ahead for the test to never race the clock.
        request.expires_at = Some(trailgate_domain::time::format_utc(
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ));
        let active = seed(&deps.ledger, request).id;
        let response = handle(event(&active), &deps).await;
        assert_eq!(response.status_code, 200);
        let Some(Body::Text(text)) = response.body else {
            panic!("no body")
        };
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["Version"], 1);
        assert!(body["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    }
}
