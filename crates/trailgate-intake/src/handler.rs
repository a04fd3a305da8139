//! Translates the request API: `POST /requests` (submit), `GET /requests/{id}` (show) and
//! `POST /requests/{id}/revoke` (early revoke).
//! The requester is whoever API Gateway's SigV4 check says signed the call.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use trailgate_aws::apigw;
use trailgate_domain::catalog::Catalog;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ports::{Ledger, Roles, Workflow};
use trailgate_domain::request::{NewRequest, is_request_id, request_id_from_bytes};
use trailgate_domain::service::{self, IntakeSettings};

pub struct Deps<L, W, R> {
    pub ledger: L,
    pub workflow: W,
    /// IAM on target roles, for early revoke.
    pub roles: R,
    pub settings: IntakeSettings,
    pub catalog: Catalog,
}

pub async fn handle<L: Ledger, W: Workflow, R: Roles>(
    request: ApiGatewayProxyRequest,
    deps: &Deps<L, W, R>,
) -> ApiGatewayProxyResponse {
    apigw::respond(route(&request, deps).await)
}

async fn route<L: Ledger, W: Workflow, R: Roles>(
    request: &ApiGatewayProxyRequest,
    deps: &Deps<L, W, R>,
) -> Result<ApiGatewayProxyResponse> {
    let caller = apigw::caller(request)?;
    let now = time::OffsetDateTime::now_utc();
    match (
        request.http_method.as_str(),
        request.resource.as_deref().unwrap_or_default(),
    ) {
        ("POST", "/requests") => {
            let input: NewRequest = apigw::json_body(request)?;
            let id = request_id_from_bytes(rand::random());
            let created = service::submit(
                &deps.ledger,
                &deps.workflow,
                &deps.catalog,
                deps.settings,
                &caller,
                &input,
                id,
                now,
            )
            .await?;
            tracing::info!(request_id = %created.id, requester = %caller.arn, catalog_id = %created.catalog_id, "request submitted");
            Ok(apigw::json(201, &created.view()))
        }
        ("GET", "/requests/{id}") => {
            let id = apigw::path_param(request, "id")?;
            if !is_request_id(id) {
                return Err(Error::not_found(format!(
                    "no request `{}`",
                    id.chars().take(40).collect::<String>()
                )));
            }
            let found = service::show(&deps.ledger, &deps.catalog, &caller, id).await?;
            Ok(apigw::json(200, &found.view()))
        }
        ("POST", "/requests/{id}/revoke") => {
            let id = apigw::path_param(request, "id")?;
            if !is_request_id(id) {
                return Err(Error::not_found("no such request"));
            }
            let revoked =
                service::revoke_early(&deps.ledger, &deps.roles, &deps.catalog, &caller, id, now)
                    .await?;
            tracing::info!(request_id = %id, by = %caller.arn, status = %revoked.status, "revoked early");
            Ok(apigw::json(200, &revoked.view()))
        }
        (method, resource) => Err(Error::not_found(format!("no route {method} {resource}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::encodings::Body;
    use serde_json::Value;
    use trailgate_domain::testing::*;

    fn deps() -> Deps<MemoryLedger, MemoryWorkflow, MemoryRoles> {
        Deps {
            ledger: MemoryLedger::default(),
            workflow: MemoryWorkflow::default(),
            roles: MemoryRoles::with_sample_role(),
            settings: IntakeSettings {
                audit_delay: time::Duration::seconds(900),
            },
            catalog: Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
        }
    }

    fn event(name: &str) -> ApiGatewayProxyRequest {
        let text = std::fs::read_to_string(format!(
            "{}/../../events/intake/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn body(response: &ApiGatewayProxyResponse) -> Value {
        match &response.body {
            Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_signed_request_is_created_and_readable_by_its_requester() {
        let deps = deps();
        let created = handle(event("post_request"), &deps).await;
        assert_eq!(created.status_code, 201, "{:?}", created.body);
        let created = body(&created);
        assert_eq!(created["status"], "PENDING");
        assert_eq!(created["requester"], "arn:aws:iam::123456789012:user/alice");
        assert!(created.get("task_token").is_none());

        let mut get = event("get_request");
        get.path_parameters
            .insert("id".into(), created["id"].as_str().unwrap().into());
        let shown = handle(get, &deps).await;
        assert_eq!(shown.status_code, 200);
        assert_eq!(body(&shown)["id"], created["id"]);
    }

    #[tokio::test]
    async fn mistakes_are_4xx_json_and_write_nothing() {
        let deps = deps();
        let mut unsigned = event("post_request");
        unsigned.request_context.identity.user_arn = None;
        let mut bad_duration = event("post_request");
        bad_duration.body =
            Some(r#"{"catalog_id":"sandbox-admin","duration":"forever","reason":"x"}"#.into());
        let mut unknown_field = event("post_request");
        unknown_field.body = Some(r#"{"catalog_id":"sandbox-admin","duration":"1h","reason":"x","requester":"arn:aws:iam::1:user/root"}"#.into());
        let mut not_json = event("post_request");
        not_json.body = Some("{".into());
        let mut bad_id = event("get_request");
        bad_id
            .path_parameters
            .insert("id".into(), "../../etc/passwd".into());
        for (request, status, field) in [
            (unsigned, 403, Value::Null),
            (bad_duration, 400, Value::from("duration")),
            (unknown_field, 400, Value::from("requester")),
            (not_json, 400, Value::from("body")),
            (bad_id, 404, Value::Null),
        ] {
            let response = handle(request, &deps).await;
            assert_eq!(response.status_code, status);
            assert_eq!(body(&response)["error"]["field"], field);
        }
        assert!(deps.workflow.started.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_requester_or_an_approver_can_revoke_early_and_nobody_else() {
        let deps = deps();
        let mut request = pending_request();
        request.status = trailgate_domain::request::Status::Active;
        request.expires_at = Some("2099-01-01T00:00:00Z".into());
        let id = seed(&deps.ledger, request).id;
        let revoke_as = |arn: &str| {
            let mut event = event("get_request");
            event.http_method = "POST".parse().unwrap();
            event.resource = Some("/requests/{id}/revoke".into());
            event.path_parameters.insert("id".into(), id.clone());
            event.request_context.identity.user_arn = Some(arn.into());
            event
        };
        let other = handle(revoke_as("arn:aws:iam::123456789012:user/mallory"), &deps).await;
        assert_eq!(other.status_code, 404);
        assert!(
            deps.roles
                .policy("sample-target-trailgate", "trailgate-revocations")
                .is_none()
        );
        let revoked = handle(revoke_as("arn:aws:iam::123456789012:user/alice"), &deps).await;
        assert_eq!(revoked.status_code, 200, "{:?}", revoked.body);
        assert_eq!(body(&revoked)["status"], "REVOKED");
        assert!(
            deps.roles
                .policy("sample-target-trailgate", "trailgate-revocations")
                .unwrap()
                .contains(&id)
        );
    }
}
