//! Translates the request API: `POST /requests` (submit under the request policy),
//! `GET /requests` (the caller's own), `GET /requests/{id}` (show),
//! `POST /requests/{id}/cancel`, `POST /requests/{id}/revoke` (early revoke) and
//! `GET /catalog` (what the caller may request). `openapi.yaml` is the contract.
//! The requester is whoever API Gateway's SigV4 check says signed the call.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use trailgate_aws::apigw;
use trailgate_domain::catalog::Protected;
use trailgate_domain::error::{Error, ErrorKind, Result};
use trailgate_domain::ports::{Accounts, IdentityCenter, Ledger, Roles, Workflow};
use trailgate_domain::request::{NewRequest, is_request_id, request_id_from_bytes};
use trailgate_domain::service::{self, IntakeSettings, RequestPolicy};

/// The header that makes `POST /requests` safe to retry.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

pub struct Deps<L, W, R, A, I> {
    pub ledger: L,
    pub workflow: W,
    /// IAM on target roles, for early revoke.
    pub roles: R,
    /// IAM Identity Center: which user a permission-set requester is, and early revoke.
    pub identity_center: I,
    pub settings: IntakeSettings,
    pub policy: RequestPolicy,
    pub catalog: trailgate_aws::catalog::CatalogSource,
    /// Organizations and the agent roles: which accounts a request may name.
    pub accounts: A,
    /// What is never requestable (`config::protected`).
    pub protected: Protected,
}

pub async fn handle<L: Ledger, W: Workflow, R: Roles, A: Accounts, I: IdentityCenter>(
    request: ApiGatewayProxyRequest,
    deps: &Deps<L, W, R, A, I>,
) -> ApiGatewayProxyResponse {
    let now = time::OffsetDateTime::now_utc();
    match route(&request, deps, now).await {
        Ok(response) => response,
        Err(err) => {
            let mut response = apigw::error(&err);
            if err.kind == ErrorKind::RateLimited {
                let wait = service::retry_after(now).to_string();
                if let Ok(value) = wait.parse() {
                    response.headers.insert("retry-after", value);
                }
            }
            response
        }
    }
}

/// A request id from the path, or the same 404 an unknown id gets (nothing else is looked up).
fn request_id(request: &ApiGatewayProxyRequest) -> Result<&str> {
    let id = apigw::path_param(request, "id")?;
    if !is_request_id(id) {
        return Err(Error::not_found(format!(
            "no request `{}`",
            id.chars().take(40).collect::<String>()
        )));
    }
    Ok(id)
}

/// The `Idempotency-Key` header, if sent. A header that is not text is a 400, not ignored:
/// silently dropping it would make the retry unsafe.
fn idempotency_key(request: &ApiGatewayProxyRequest) -> Result<Option<&str>> {
    match request.headers.get(IDEMPOTENCY_HEADER) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| {
            Error::invalid(
                "Idempotency-Key",
                "`Idempotency-Key` must be printable ASCII",
            )
        }),
    }
}

/// `GET /requests`' query: `limit` and `next`; anything else is refused rather than ignored.
fn list_query(request: &ApiGatewayProxyRequest) -> Result<(usize, Option<&str>)> {
    let query = &request.query_string_parameters;
    for (name, _) in query.iter() {
        if name != "limit" && name != "next" {
            return Err(Error::invalid(
                name,
                format!(
                    "unknown query parameter `{}`",
                    name.chars().take(40).collect::<String>()
                ),
            ));
        }
    }
    Ok((
        service::parse_limit(query.first("limit"))?,
        query.first("next"),
    ))
}

/// `POST /requests/{id}/ack`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    comment: Option<String>,
}

async fn route<L: Ledger, W: Workflow, R: Roles, A: Accounts, I: IdentityCenter>(
    request: &ApiGatewayProxyRequest,
    deps: &Deps<L, W, R, A, I>,
    now: time::OffsetDateTime,
) -> Result<ApiGatewayProxyResponse> {
    let caller = apigw::caller(request)?;
    // One catalog for the whole call, even if a push lands during it.
    let catalog = deps.catalog.current().await;
    match (
        request.http_method.as_str(),
        request.resource.as_deref().unwrap_or_default(),
    ) {
        ("POST", "/requests") => {
            let key = idempotency_key(request)?;
            let input: NewRequest = apigw::json_body(request)?;
            let resolved = async {
                let target =
                    service::resolve_target(&deps.accounts, &catalog, &deps.protected, &input)
                        .await?;
                service::resolve_user(&deps.identity_center, &caller, target).await
            };
            let target = match resolved.await {
                Ok(target) => target,
                Err(err) => {
                    // A refused submission counts against the rate limit like any other
                    // (submit_with_policy counts the ones that get that far).
                    service::check_rate(&deps.ledger, deps.policy, &caller, now).await?;
                    return Err(err);
                }
            };
            let id = request_id_from_bytes(rand::random());
            let submitted = service::submit_with_policy(
                &deps.ledger,
                &deps.workflow,
                service::Submission {
                    catalog: &catalog,
                    settings: deps.settings,
                    caller: &caller,
                    input: &input,
                    target: &target,
                    id,
                    now,
                },
                deps.policy,
                key,
            )
            .await?;
            let created = &submitted.request;
            tracing::info!(request_id = %created.id, requester = %caller.arn, catalog_id = %created.catalog_id, new = submitted.created, "request submitted");
            Ok(apigw::json(submitted.http_status(), &created.view()))
        }
        ("GET", "/requests") => {
            let (limit, next) = list_query(request)?;
            let page = service::list_mine(&deps.ledger, &caller, limit, next).await?;
            let requests: Vec<_> = page.requests.iter().map(|r| r.view()).collect();
            Ok(apigw::json(
                200,
                &serde_json::json!({"requests": requests, "next": page.next}),
            ))
        }
        ("GET", "/requests/{id}") => {
            let id = request_id(request)?;
            let found = service::show(&deps.ledger, &catalog, &caller, id).await?;
            Ok(apigw::json(200, &found.view()))
        }
        ("POST", "/requests/{id}/cancel") => {
            let id = request_id(request)?;
            let cancelled = service::cancel(&deps.ledger, &catalog, &caller, id, now).await?;
            tracing::info!(request_id = %id, by = %caller.arn, "cancelled");
            Ok(apigw::json(200, &cancelled.view()))
        }
        ("POST", "/requests/{id}/ack") => {
            let id = request_id(request)?;
            // The body is optional: `{}` or no body at all acknowledges without a comment.
            let body: AckBody = if apigw::body_bytes(request)?
                .iter()
                .all(u8::is_ascii_whitespace)
            {
                AckBody::default()
            } else {
                apigw::json_body(request)?
            };
            let acked = service::acknowledge(
                &deps.ledger,
                &catalog,
                &caller,
                id,
                body.comment.as_deref(),
                now,
            )
            .await?;
            tracing::info!(request_id = %id, by = %caller.arn, "break-glass session acknowledged");
            Ok(apigw::json(200, &acked.view()))
        }
        ("GET", "/catalog") => {
            let entries =
                service::requestable(&deps.accounts, &catalog, &deps.protected, &caller.arn)
                    .await?;
            Ok(apigw::json(200, &serde_json::json!({"entries": entries})))
        }
        ("POST", "/requests/{id}/revoke") => {
            let id = request_id(request)?;
            let revoked = service::revoke_early(
                &deps.ledger,
                &deps.roles,
                &deps.identity_center,
                &catalog,
                &caller,
                id,
                now,
            )
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
    use trailgate_domain::catalog::Catalog;
    use trailgate_domain::testing::*;

    fn deps()
    -> Deps<MemoryLedger, MemoryWorkflow, MemoryRoles, MemoryAccounts, MemoryIdentityCenter> {
        Deps {
            ledger: MemoryLedger::default(),
            workflow: MemoryWorkflow::default(),
            roles: MemoryRoles::with_sample_role(),
            identity_center: MemoryIdentityCenter::default(),
            settings: IntakeSettings {
                audit_delay: time::Duration::seconds(900),
                reaudit_delay: time::Duration::seconds(3600),
            },
            policy: RequestPolicy::default(),
            catalog: trailgate_aws::catalog::CatalogSource::fixed(
                Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
            ),
            accounts: MemoryAccounts::default(),
            protected: PROTECTED.clone(),
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

    fn submit_with_key(reason: &str, key: &str) -> ApiGatewayProxyRequest {
        let mut post = event("post_request");
        post.body = Some(format!(
            r#"{{"catalog_id":"sandbox-admin","duration":"1h","reason":"{reason}"}}"#
        ));
        post.headers
            .insert(IDEMPOTENCY_HEADER, key.parse().unwrap());
        post
    }

    #[tokio::test]
    async fn list_cancel_and_catalog_answer_the_caller() {
        let deps = deps();
        let created = handle(event("post_request"), &deps).await;
        assert_eq!(created.status_code, 201);
        let id = body(&created)["id"].as_str().unwrap().to_owned();
        // A repeat for the same role returns the open request.
        let repeat = handle(event("post_request"), &deps).await;
        assert_eq!(repeat.status_code, 200);
        assert_eq!(body(&repeat)["id"], id.as_str());

        let listed = handle(event("list_requests"), &deps).await;
        assert_eq!(listed.status_code, 200, "{:?}", listed.body);
        let listed = body(&listed);
        assert_eq!(listed["requests"][0]["id"], id.as_str());
        assert_eq!(listed["next"], Value::Null);

        let mut cancel = event("cancel_request");
        cancel.path_parameters.insert("id".into(), id.clone());
        let cancelled = handle(cancel.clone(), &deps).await;
        assert_eq!(cancelled.status_code, 200, "{:?}", cancelled.body);
        assert_eq!(body(&cancelled)["status"], "CANCELLED");
        cancel.request_context.identity.user_arn =
            Some("arn:aws:iam::123456789012:user/bob".into());
        assert_eq!(handle(cancel, &deps).await.status_code, 403);

        let catalog = handle(event("get_catalog"), &deps).await;
        assert_eq!(catalog.status_code, 200);
        let catalog = body(&catalog);
        assert_eq!(catalog["entries"][0]["id"], "sandbox-admin");
        assert!(!catalog.to_string().contains("example.com"));
    }

    #[tokio::test]
    async fn each_error_class_is_its_status_with_a_json_body() {
        let deps = deps();
        let first = handle(submit_with_key("first", "key-1"), &deps).await;
        assert_eq!(first.status_code, 201);
        let replay = handle(submit_with_key("first", "key-1"), &deps).await;
        assert_eq!(replay.status_code, 201);
        assert_eq!(body(&replay)["id"], body(&first)["id"]);
        let mut unknown_query = event("list_requests");
        unknown_query.query_string_parameters =
            std::collections::HashMap::from([("evil".to_owned(), "1".to_owned())]).into();
        let mut bad_limit = event("list_requests");
        bad_limit.query_string_parameters =
            std::collections::HashMap::from([("limit".to_owned(), "51".to_owned())]).into();
        let mut huge = event("post_request");
        huge.body = Some(format!(r#"{{"reason":"{}"}}"#, "x".repeat(20_000)));
        let mut unknown_cancel = event("cancel_request");
        unknown_cancel
            .path_parameters
            .insert("id".into(), "r-bbbbbbbbbbbbbbbbbbbbbbbbbb".into());
        for (request, status, code, field) in [
            (
                submit_with_key("second", "key-1"),
                409,
                "Conflict",
                Value::from("Idempotency-Key"),
            ),
            (unknown_query, 400, "InvalidRequest", Value::from("evil")),
            (bad_limit, 400, "InvalidRequest", Value::from("limit")),
            (huge, 413, "PayloadTooLarge", Value::from("body")),
            (unknown_cancel, 404, "NotFound", Value::Null),
        ] {
            let response = handle(request, &deps).await;
            assert_eq!(response.status_code, status, "{:?}", response.body);
            let error = &body(&response)["error"];
            assert_eq!(
                (&error["code"], &error["field"]),
                (&Value::from(code), &field)
            );
        }
        // Replays and unparseable bodies are not counted; everything else is. The loop
        // allows for the wall clock crossing into a new minute once.
        let mut limited = None;
        for _ in 0..25 {
            let response = handle(event("post_request"), &deps).await;
            if response.status_code == 429 {
                limited = Some(response);
                break;
            }
        }
        let limited = limited.expect("the rate limit never applied");
        assert_eq!(limited.status_code, 429, "{:?}", limited.body);
        assert_eq!(body(&limited)["error"]["code"], "RateLimited");
        let wait: i64 = limited.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait));
    }

    #[tokio::test]
    async fn an_approver_acknowledges_a_break_glass_session_and_mistakes_are_4xx() {
        let deps = deps();
        let mut request = pending_request();
        request.status = trailgate_domain::request::Status::Revoked;
        request.break_glass = true;
        let id = seed(&deps.ledger, request).id;
        let ack = |body: Option<&str>, arn: &str| {
            let mut event = event("ack_request");
            event.path_parameters.insert("id".into(), id.clone());
            event.body = body.map(str::to_owned);
            event.request_context.identity.user_arn = Some(arn.into());
            event
        };
        let bob = "arn:aws:iam::123456789012:user/bob";
        for (event, status, field) in [
            (ack(Some("{\"comment\": 5}"), bob), 400, Value::from("body")),
            (
                ack(Some("{\"by\": \"carol\"}"), bob),
                400,
                Value::from("by"),
            ),
            (
                ack(None, "arn:aws:iam::123456789012:user/alice"),
                403,
                Value::Null,
            ),
            (
                ack(None, "arn:aws:iam::123456789012:user/mallory"),
                404,
                Value::Null,
            ),
        ] {
            let response = handle(event, &deps).await;
            assert_eq!(response.status_code, status, "{:?}", response.body);
            assert_eq!(body(&response)["error"]["field"], field);
        }
        assert!(deps.ledger.record(&id).unwrap().acknowledgement.is_none());

        let mut fixture = event("ack_request");
        fixture.path_parameters.insert("id".into(), id.clone());
        let acked = handle(fixture, &deps).await;
        assert_eq!(acked.status_code, 200, "{:?}", acked.body);
        let acked = body(&acked);
        assert_eq!(acked["review"]["required"], false);
        assert_eq!(acked["review"]["acknowledgement"]["by"], "bob");
        assert_eq!(
            acked["review"]["acknowledgement"]["comment"],
            "checked the audit"
        );
        // No body at all is fine too, and changes nothing the second time.
        let again = handle(ack(None, bob), &deps).await;
        assert_eq!(body(&again)["review"], acked["review"]);
    }
}

/// Keeps `openapi.yaml` honest about this handler: its answers (success and every error class)
/// conform to the schemas the spec gives for that route and status. (That the spec's paths are
/// exactly template.yaml's API events is checked with the other offline consistency checks, in
/// `tests/tests/template_consistency.rs`.)
///
/// The validator is a small hand-written subset of JSON Schema (type, nullable, required,
/// properties, additionalProperties, enum, items, minimum/maximum), which is all the spec
/// uses; a full validator crate would be a heavy dependency for one test.
#[cfg(test)]
mod openapi {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayProxyResponse;
    use aws_lambda_events::encodings::Body;
    use serde_json::Value;
    use serde_yaml::Value as Yaml;
    use trailgate_domain::catalog::Catalog;
    use trailgate_domain::testing::*;

    fn repo_file(name: &str) -> String {
        std::fs::read_to_string(format!("{}/../../{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn spec() -> Value {
        let yaml: Yaml = serde_yaml::from_str(&repo_file("openapi.yaml")).unwrap();
        serde_json::to_value(yaml).unwrap()
    }

    /// Follows a local `$ref` (`#/components/...`).
    fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').expect("only local refs");
                resolve(spec, spec.pointer(pointer).expect("dangling $ref"))
            }
            None => value,
        }
    }

    /// The problems of `value` against `schema`, each with its JSON path.
    fn check(spec: &Value, schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
        let schema = resolve(spec, schema);
        if value.is_null() {
            if schema["nullable"] != true {
                problems.push(format!("{path}: null but not nullable"));
            }
            return;
        }
        let ok = match schema["type"].as_str() {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            _ => true,
        };
        if !ok {
            problems.push(format!("{path}: {value} is not {}", schema["type"]));
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            problems.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
        if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64())
            && n < min
        {
            problems.push(format!("{path}: {n} < {min}"));
        }
        if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), value.as_f64())
            && n > max
        {
            problems.push(format!("{path}: {n} > {max}"));
        }
        if let Some(object) = value.as_object() {
            let properties = schema["properties"].as_object();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                if !object.contains_key(name) {
                    problems.push(format!("{path}: `{name}` is missing"));
                }
            }
            for (name, child) in object {
                match properties.and_then(|p| p.get(name)) {
                    Some(child_schema) => check(
                        spec,
                        child_schema,
                        child,
                        &format!("{path}.{name}"),
                        problems,
                    ),
                    None if schema["additionalProperties"] == false => {
                        problems.push(format!("{path}: `{name}` is not in the schema"))
                    }
                    None => {}
                }
            }
        }
        if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
            for (n, item) in items.iter().enumerate() {
                check(spec, schema, item, &format!("{path}[{n}]"), problems);
            }
        }
    }

    /// Checks one handler answer against the spec's response for `method path` and its status.
    fn conforms(spec: &Value, method: &str, path: &str, response: &ApiGatewayProxyResponse) {
        let status = response.status_code.to_string();
        let operation = &spec["paths"][path][method.to_lowercase()];
        assert!(operation.is_object(), "no {method} {path} in openapi.yaml");
        let declared = resolve(spec, &operation["responses"][&status]);
        assert!(
            declared.is_object(),
            "{method} {path} answered {status}, which openapi.yaml does not declare"
        );
        for (name, header) in declared["headers"].as_object().into_iter().flatten() {
            if header["required"] == true {
                assert!(
                    response.headers.contains_key(name.to_lowercase().as_str()),
                    "{method} {path} {status}: no `{name}` header"
                );
            }
        }
        let schema = &declared["content"]["application/json"]["schema"];
        let Some(Body::Text(text)) = &response.body else {
            panic!("{method} {path} {status}: no body")
        };
        let body: Value = serde_json::from_str(text).unwrap();
        let mut problems = Vec::new();
        check(spec, schema, &body, "$", &mut problems);
        assert!(
            problems.is_empty(),
            "{method} {path} {status} does not conform: {problems:#?}\n{body}"
        );
    }

    fn deps_with(
        per_minute: u32,
    ) -> Deps<MemoryLedger, MemoryWorkflow, MemoryRoles, MemoryAccounts, MemoryIdentityCenter> {
        Deps {
            ledger: MemoryLedger::default(),
            workflow: MemoryWorkflow::default(),
            roles: MemoryRoles::with_sample_role(),
            identity_center: MemoryIdentityCenter::default(),
            settings: IntakeSettings {
                audit_delay: time::Duration::seconds(900),
                reaudit_delay: time::Duration::seconds(3600),
            },
            policy: RequestPolicy {
                per_minute,
                one_open_per_role: true,
            },
            catalog: trailgate_aws::catalog::CatalogSource::fixed(
                Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
            ),
            accounts: MemoryAccounts::default(),
            protected: PROTECTED.clone(),
        }
    }

    fn event(name: &str) -> ApiGatewayProxyRequest {
        serde_json::from_str(&repo_file(&format!("events/intake/{name}.json"))).unwrap()
    }

    fn with_id(mut request: ApiGatewayProxyRequest, id: &str) -> ApiGatewayProxyRequest {
        request.path_parameters.insert("id".into(), id.into());
        request
    }

    #[tokio::test]
    async fn every_intake_answer_conforms_to_the_spec() {
        let spec = spec();
        let deps = deps_with(1000);
        let created = handle(event("post_request"), &deps).await;
        conforms(&spec, "POST", "/requests", &created);
        let Some(Body::Text(text)) = &created.body else {
            panic!()
        };
        let id = serde_json::from_str::<Value>(text).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut unknown_field = event("post_request");
        unknown_field.body =
            Some(r#"{"catalog_id":"x","duration":"1h","reason":"x","z":1}"#.into());
        let mut huge = event("post_request");
        huge.body = Some("x".repeat(17 * 1024));
        let mut unsigned = event("list_requests");
        unsigned.request_context.identity.user_arn = None;
        let mut bad_limit = event("list_requests");
        bad_limit.query_string_parameters =
            std::collections::HashMap::from([("limit".to_owned(), "0".to_owned())]).into();
        let mut active = pending_request();
        active.status = trailgate_domain::request::Status::Active;
        active.expires_at = Some("2099-01-01T00:00:00Z".into());
        active.requester = "arn:aws:iam::123456789012:user/dave".into();
        let active_id = seed(&deps.ledger, active).id;
        let mut dave_cancels = with_id(event("cancel_request"), &active_id);
        dave_cancels.request_context.identity.user_arn =
            Some("arn:aws:iam::123456789012:user/dave".into());

        let cases: Vec<(&str, &str, ApiGatewayProxyRequest)> = vec![
            ("POST", "/requests", event("post_request")), // 200: the open request
            ("POST", "/requests", unknown_field),
            ("POST", "/requests", huge),
            ("GET", "/requests", event("list_requests")),
            ("GET", "/requests", bad_limit),
            ("GET", "/requests", unsigned),
            ("GET", "/requests/{id}", with_id(event("get_request"), &id)),
            (
                "GET",
                "/requests/{id}",
                with_id(event("get_request"), "r-x"),
            ),
            ("GET", "/catalog", event("get_catalog")),
            ("POST", "/requests/{id}/cancel", dave_cancels),
            (
                "POST",
                "/requests/{id}/cancel",
                with_id(event("cancel_request"), &id),
            ),
        ];
        for (method, path, request) in cases {
            let response = handle(request, &deps).await;
            conforms(&spec, method, path, &response);
        }

        let limited = deps_with(1);
        handle(event("post_request"), &limited).await;
        let response = handle(event("post_request"), &limited).await;
        assert_eq!(response.status_code, 429);
        conforms(&spec, "POST", "/requests", &response);
    }

    #[test]
    fn the_validator_notices_what_it_checks() {
        let spec = spec();
        let schema = serde_json::json!({"$ref": "#/components/schemas/Error"});
        let mut problems = Vec::new();
        let bad = serde_json::json!({"error": {"code": "Oops", "message": 1, "extra": true}});
        check(&spec, &schema, &bad, "$", &mut problems);
        assert_eq!(problems.len(), 4, "{problems:#?}"); // enum, type, missing field, unknown
    }
}
