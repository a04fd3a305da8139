//! Keeps `openapi.yaml` honest: its paths and methods are exactly template.yaml's API events,
//! and the intake handler's answers (success and every error class) conform to the schemas
//! the spec gives for that route and status.
//!
//! The validator is a small hand-written subset of JSON Schema (type, nullable, required,
//! properties, additionalProperties, enum, items, minimum/maximum), which is all the spec
//! uses; a full validator crate would be a heavy dependency for one test.

use crate::handler::{Deps, handle};
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use serde_json::Value;
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use trailgate_domain::catalog::Catalog;
use trailgate_domain::service::{IntakeSettings, RequestPolicy};
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

#[test]
fn the_spec_has_exactly_the_templates_routes() {
    let spec = spec();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let template: Yaml = serde_yaml::from_str(&repo_file("template.yaml")).unwrap();
    let mut deployed = BTreeSet::new();
    for resource in template["Resources"].as_mapping().unwrap().values() {
        for event in resource["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flat_map(|events| events.values())
        {
            if event["Type"].as_str() == Some("Api") {
                let properties = &event["Properties"];
                deployed.insert((
                    properties["Method"].as_str().unwrap().to_uppercase(),
                    properties["Path"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    assert_eq!(documented, deployed, "openapi.yaml vs template.yaml");
}

fn deps_with(per_minute: u32) -> Deps<MemoryLedger, MemoryWorkflow, MemoryRoles> {
    Deps {
        ledger: MemoryLedger::default(),
        workflow: MemoryWorkflow::default(),
        roles: MemoryRoles::with_sample_role(),
        settings: IntakeSettings {
            audit_delay: time::Duration::seconds(900),
        },
        policy: RequestPolicy {
            per_minute,
            one_open_per_role: true,
        },
        catalog: Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
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
    unknown_field.body = Some(r#"{"catalog_id":"x","duration":"1h","reason":"x","z":1}"#.into());
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
