//! Translates `PUT /catalog` into `service::push_catalog` and `GET /catalog/history` into
//! `service::catalog_history`. `openapi.yaml` is the contract.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use serde_json::json;
use trailgate_aws::apigw;
use trailgate_aws::catalog::CatalogSource;
use trailgate_domain::catalog_version::MAX_DOCUMENT_BYTES;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ports::CatalogStore;
use trailgate_domain::service::{self, CatalogAdmin};

pub struct Deps<S> {
    pub store: S,
    pub admin: CatalogAdmin,
    /// The catalog in force: its approvers may read the history.
    pub catalog: CatalogSource,
    /// `CATALOG_REFRESH_SECONDS`: how soon every function runs a pushed version.
    pub refresh_seconds: u64,
}

pub async fn handle<S: CatalogStore>(
    request: ApiGatewayProxyRequest,
    deps: &Deps<S>,
) -> ApiGatewayProxyResponse {
    apigw::respond(route(&request, deps).await)
}

async fn route<S: CatalogStore>(
    request: &ApiGatewayProxyRequest,
    deps: &Deps<S>,
) -> Result<ApiGatewayProxyResponse> {
    let caller = apigw::caller(request)?;
    match (
        request.http_method.as_str(),
        request.resource.as_deref().unwrap_or_default(),
    ) {
        ("PUT", "/catalog") => {
            let body = apigw::body_bytes_up_to(request, MAX_DOCUMENT_BYTES)?;
            if body.is_empty() {
                return Err(Error::invalid(
                    "body",
                    "the body must be the catalog (JSON)",
                ));
            }
            let pushed = service::push_catalog(
                &deps.store,
                &deps.admin,
                &caller,
                &body,
                time::OffsetDateTime::now_utc(),
            )
            .await?;
            if pushed.created {
                tracing::info!(version = pushed.version.version, sha256 = %pushed.version.sha256, by = %caller.arn, entries = pushed.version.entries, "catalog pushed");
            }
            Ok(apigw::json(
                if pushed.created { 201 } else { 200 },
                &json!({
                    "created": pushed.created,
                    "version": pushed.version,
                    "refresh_seconds": deps.refresh_seconds,
                }),
            ))
        }
        ("GET", "/catalog/history") => {
            let catalog = deps.catalog.current().await;
            let history =
                service::catalog_history(&deps.store, &deps.admin, &catalog, &caller).await?;
            Ok(apigw::json(
                200,
                &json!({
                    "current_version": history.versions.first().map_or(0, |v| v.version),
                    "versions": history.versions,
                    "chain": history.check,
                }),
            ))
        }
        _ => Err(Error::not_found("no such route")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::encodings::Body;
    use trailgate_domain::catalog::{Catalog, Protected};
    use trailgate_domain::catalog_version::Publishers;
    use trailgate_domain::ledger::ChainKey;
    use trailgate_domain::testing::{InMemoryCatalogStore, sample_catalog_json};

    const OPS: &str = "arn:aws:iam::123456789012:user/ops";

    fn deps() -> Deps<InMemoryCatalogStore> {
        Deps {
            store: InMemoryCatalogStore::default(),
            admin: CatalogAdmin {
                publishers: Publishers::parse(OPS).unwrap(),
                protected: Protected::own_roles("trailgate-"),
                key: ChainKey::new(vec![1u8; 32]).unwrap(),
            },
            catalog: CatalogSource::fixed(
                Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
            ),
            refresh_seconds: 60,
        }
    }

    fn event(
        method: &str,
        resource: &str,
        caller: &str,
        body: Option<String>,
    ) -> ApiGatewayProxyRequest {
        let mut request: ApiGatewayProxyRequest = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../events/catalog/push_catalog.json"
            ))
            .unwrap(),
        )
        .unwrap();
        request.http_method = method.parse().unwrap();
        request.resource = Some(resource.to_owned());
        request.path = Some(resource.to_owned());
        request.request_context.identity.user_arn = Some(caller.to_owned());
        request.body = body;
        request
    }

    fn body(response: &ApiGatewayProxyResponse) -> serde_json::Value {
        match &response.body {
            Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[tokio::test]
    async fn push_then_history() {
        let deps = deps();
        let pushed = handle(
            event("PUT", "/catalog", OPS, Some(sample_catalog_json())),
            &deps,
        )
        .await;
        assert_eq!(pushed.status_code, 201, "{:?}", pushed.body);
        let pushed = body(&pushed);
        assert_eq!(pushed["version"]["version"], 1);
        assert_eq!(pushed["version"]["pushed_by"], OPS);
        assert_eq!(pushed["refresh_seconds"], 60);
        let again = handle(
            event("PUT", "/catalog", OPS, Some(sample_catalog_json())),
            &deps,
        )
        .await;
        assert_eq!(again.status_code, 200);
        assert_eq!(body(&again)["created"], false);
        let history = handle(event("GET", "/catalog/history", OPS, None), &deps).await;
        assert_eq!(history.status_code, 200);
        let history = body(&history);
        assert_eq!(history["current_version"], 1);
        assert_eq!(history["chain"]["intact"], true);
        assert_eq!(history["versions"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn mistakes_are_4xx_naming_the_problem_and_store_nothing() {
        let deps = deps();
        let cases = [
            (None, OPS, 400, "body"),
            (Some("{\"entries\": [".to_owned()), OPS, 400, "catalog"),
            (
                Some("{\"entries\": [], \"extra\": 1}".to_owned()),
                OPS,
                400,
                "catalog",
            ),
            (
                Some(sample_catalog_json()),
                "arn:aws:iam::123456789012:user/alice",
                403,
                "",
            ),
            (Some(" ".repeat(MAX_DOCUMENT_BYTES + 1)), OPS, 413, "body"),
        ];
        for (doc, caller, status, field) in cases {
            let response = handle(event("PUT", "/catalog", caller, doc), &deps).await;
            assert_eq!(response.status_code, status, "{:?}", response.body);
            let error = &body(&response)["error"];
            assert!(!error["message"].as_str().unwrap().is_empty());
            if !field.is_empty() {
                assert_eq!(error["field"], field, "{error}");
            }
        }
        assert!(deps.store.latest().await.unwrap().is_none());
        let unknown = handle(event("DELETE", "/catalog", OPS, None), &deps).await;
        assert_eq!(unknown.status_code, 404);
    }
}
