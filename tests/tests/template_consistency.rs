//! Offline consistency checks between the state machine, the SAM template, openapi.yaml, the
//! workspace and the contract in ARCHITECTURE.md. They need no tools beyond cargo: they read the files and compare.
//!
//! template.yaml uses CloudFormation short tags (`!Ref`, `!GetAtt`, `!Sub`, `!If`, ...);
//! serde_yaml 0.9 keeps them as `Value::Tagged`, which the walkers below look through.

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use trailgate_system_tests::template::AGENT_TRUSTED_ROLES;

const STATE_MACHINE: &str = "AccessRequestStateMachine";
const ASL_FILE: &str = "statemachine/access-request.asl.json";

/// The retrier every Lambda task carries (except the callback task).
const LAMBDA_SERVICE_ERRORS: [&str; 4] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

/// Step Functions' own error names (Step Functions developer guide, "Error names").
const STATES_ERRORS: [&str; 14] = [
    "States.ALL",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.TaskFailed",
    "States.Timeout",
];

/// Actions without resource-level permissions: the only ones allowed with `Resource: "*"`.
const NO_RESOURCE_LEVEL_ACTIONS: [&str; 13] = [
    "cloudtrail:LookupEvents",
    "sso:ListInstances",
    "organizations:DescribeOrganization",
    "organizations:ListAccounts",
    "organizations:ListRoots",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
];

/// The states of the diagram in ARCHITECTURE.md ("Bird's-eye view").
const DIAGRAM_STATES: [&str; 23] = [
    "Gather Context",
    "Await Approval",
    "Approved?",
    "Scheduled?",
    "Wait For Start",
    "Activate",
    "Granted?",
    "Wait For Expiry",
    "Revoke",
    "Await Trail",
    "Audit Session",
    "Await Late Events",
    "Audit Again",
    "Done",
    "Record Expiry",
    "Expired",
    "Denied",
    "Alert Revoke Failed",
    "Revoke Failed",
    "Export Ledger",
    "Closed?",
    "Alert Export Failed",
    "Export Failed",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(relative: &str) -> Result<String> {
    let path = root().join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn template() -> Result<Yaml> {
    serde_yaml::from_str(&read("template.yaml")?).context("parsing template.yaml")
}

fn asl() -> Result<Json> {
    serde_json::from_str(&read(ASL_FILE)?).with_context(|| format!("parsing {ASL_FILE}"))
}

fn architecture() -> Result<String> {
    read("ARCHITECTURE.md")
}

/// Looks through a CloudFormation tag (`!Ref x` → `x`).
fn untag(value: &Yaml) -> &Yaml {
    match value {
        Yaml::Tagged(tagged) => untag(&tagged.value),
        other => other,
    }
}

fn get<'a>(value: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    untag(value).as_mapping()?.get(key)
}

fn path<'a>(value: &'a Yaml, keys: &[&str]) -> Option<&'a Yaml> {
    keys.iter().try_fold(value, |value, key| get(value, key))
}

fn keys(value: Option<&Yaml>) -> BTreeSet<String> {
    value
        .and_then(|value| untag(value).as_mapping())
        .map(|mapping| {
            mapping
                .keys()
                .filter_map(|key| key.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A string or a list of strings (IAM's `Action`, ASL's `ErrorEquals`).
fn strings(value: &Yaml) -> Vec<String> {
    match untag(value) {
        Yaml::String(text) => vec![text.clone()],
        Yaml::Sequence(items) => items
            .iter()
            .filter_map(|item| untag(item).as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The template's resources of one type, by logical id. `Fn::ForEach::*` entries are skipped.
fn resources_of_type(template: &Yaml, resource_type: &str) -> Result<BTreeMap<String, Yaml>> {
    let resources = get(template, "Resources")
        .and_then(Yaml::as_mapping)
        .ok_or_else(|| anyhow!("no Resources"))?;
    Ok(resources
        .iter()
        .filter(|(_, resource)| get(resource, "Type").and_then(Yaml::as_str) == Some(resource_type))
        .filter_map(|(id, resource)| Some((id.as_str()?.to_owned(), resource.clone())))
        .collect())
}

fn functions(template: &Yaml) -> Result<BTreeMap<String, Yaml>> {
    resources_of_type(template, "AWS::Serverless::Function")
}

/// The lines of the markdown section that starts with `heading` (up to the next heading).
fn section<'a>(markdown: &'a str, heading: &str) -> Result<Vec<&'a str>> {
    let mut lines = markdown
        .lines()
        .skip_while(|line| !line.starts_with(heading));
    ensure!(
        lines.next().is_some(),
        "ARCHITECTURE.md has no section `{heading}`"
    );
    Ok(lines.take_while(|line| !line.starts_with('#')).collect())
}

/// The `code` spans of a line, in order.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// The cells of a markdown table row (`| a | b |` → `["a", "b"]`); a `|` inside a code span
/// (`approve|deny`) does not split.
fn cells(line: &str) -> Vec<&str> {
    let row = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let (mut start, mut in_code) = (0, false);
    for (index, c) in row.char_indices() {
        match c {
            '`' => in_code = !in_code,
            '|' if !in_code => {
                cells.push(row[start..index].trim());
                start = index + 1;
            }
            _ => {}
        }
    }
    cells.push(row[start..].trim());
    cells
}

/// Every `${Name}` placeholder in a text.
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find('}') {
            found.insert(rest[..end].to_owned());
            rest = &rest[end + 1..];
        }
    }
    found
}

/// Every Retry and Catch block of every state, with the state name.
fn retriers_and_catchers(asl: &Json) -> Vec<(String, &'static str, &Json)> {
    let mut found = Vec::new();
    if let Some(states) = asl["States"].as_object() {
        for (name, state) in states {
            for field in ["Retry", "Catch"] {
                for block in state[field].as_array().into_iter().flatten() {
                    found.push((name.clone(), field, block));
                }
            }
        }
    }
    found
}

fn error_equals(block: &Json) -> Vec<String> {
    block["ErrorEquals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_asl_placeholder_has_a_definition_substitution_and_vice_versa() -> Result<()> {
    let template = template()?;
    let state_machine = path(&template, &["Resources", STATE_MACHINE])
        .ok_or_else(|| anyhow!("no {STATE_MACHINE} in template.yaml"))?;
    assert_eq!(
        get(state_machine, "Type").and_then(Yaml::as_str),
        Some("AWS::Serverless::StateMachine"),
        "{STATE_MACHINE} type"
    );
    assert_eq!(
        path(state_machine, &["Properties", "DefinitionUri"]).and_then(Yaml::as_str),
        Some(ASL_FILE),
        "{STATE_MACHINE} must load the ASL file the tests check"
    );
    let substitutions = keys(path(
        state_machine,
        &["Properties", "DefinitionSubstitutions"],
    ));
    let used = placeholders(&read(ASL_FILE)?);
    let missing: Vec<_> = used.difference(&substitutions).collect();
    let unused: Vec<_> = substitutions.difference(&used).collect();
    assert!(
        missing.is_empty(),
        "placeholders in {ASL_FILE} without a DefinitionSubstitutions key: {missing:?}"
    );
    assert!(
        unused.is_empty(),
        "DefinitionSubstitutions keys not used in {ASL_FILE}: {unused:?}"
    );
    Ok(())
}

#[test]
fn every_retried_or_caught_error_is_a_known_name() -> Result<()> {
    let architecture = architecture()?;
    let contract: BTreeSet<String> = section(&architecture, "### Error names")?
        .iter()
        .flat_map(|line| code_spans(line))
        .filter(|name| name.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .map(str::to_owned)
        .collect();
    ensure!(
        contract.contains("Retryable"),
        "could not read the error names from ARCHITECTURE.md: {contract:?}"
    );

    let asl = asl()?;
    let blocks = retriers_and_catchers(&asl);
    ensure!(!blocks.is_empty(), "no Retry or Catch in {ASL_FILE}");
    for (state, field, block) in blocks {
        let names = error_equals(block);
        assert!(!names.is_empty(), "{state}: a {field} without ErrorEquals");
        for name in &names {
            let known = if name.starts_with("States.") {
                STATES_ERRORS.contains(&name.as_str())
            } else if name.starts_with("Lambda.") {
                LAMBDA_SERVICE_ERRORS.contains(&name.as_str())
            } else {
                contract.contains(name)
            };
            assert!(
                known,
                "{state}: {field} matches `{name}`, which is neither a States.*/Lambda.* error nor in the contract {contract:?}"
            );
        }
        if names.iter().any(|name| name == "States.ALL") {
            assert_eq!(
                names.len(),
                1,
                "{state}: States.ALL must stand alone in its ErrorEquals"
            );
        }
    }
    // Only Retryable and Lambda's own errors are retried (ARCHITECTURE.md "Error names").
    for (state, field, block) in retriers_and_catchers(&asl) {
        if field != "Retry" {
            continue;
        }
        for name in error_equals(block) {
            let is_task_failure_of_a_service_integration = name == "States.TaskFailed"
                && asl["States"][&state]["Resource"]
                    .as_str()
                    .is_some_and(|r| !r.contains(":lambda:"));
            assert!(
                name == "Retryable"
                    || name.starts_with("Lambda.")
                    || is_task_failure_of_a_service_integration,
                "{state} retries `{name}`: only Retryable and Lambda service errors may be retried"
            );
        }
    }
    Ok(())
}

#[test]
fn every_lambda_task_has_the_standard_retrier_and_the_callback_task_has_none() -> Result<()> {
    let asl = asl()?;
    let states = asl["States"]
        .as_object()
        .ok_or_else(|| anyhow!("no States"))?;
    let mut callback_tasks = 0;
    for (name, state) in states {
        let resource = state["Resource"].as_str().unwrap_or_default();
        if resource.ends_with(".waitForTaskToken") {
            callback_tasks += 1;
            // local-aws.md §6.4: a retry replays the first attempt's outcome; §6.3: heartbeat race.
            assert!(
                state.get("Retry").is_none(),
                "{name}: a .waitForTaskToken task must have no Retry"
            );
            assert!(
                state.get("HeartbeatSeconds").is_none(),
                "{name}: no HeartbeatSeconds on the callback task"
            );
            assert!(
                state.get("HeartbeatSecondsPath").is_none(),
                "{name}: no HeartbeatSecondsPath on the callback task"
            );
            assert!(
                state.get("TimeoutSeconds").is_some() || state.get("TimeoutSecondsPath").is_some(),
                "{name}: the callback task needs a timeout (the approval window)"
            );
            let catches_timeout = state["Catch"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|block| error_equals(block).iter().any(|e| e == "States.Timeout"));
            assert!(
                catches_timeout,
                "{name}: must catch States.Timeout (moto reports heartbeat expiry as it, §6.6)"
            );
        } else if resource == "arn:aws:states:::lambda:invoke" {
            let retried: BTreeSet<String> = state["Retry"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(error_equals)
                .collect();
            for expected in LAMBDA_SERVICE_ERRORS.iter().chain(&["Retryable"]) {
                assert!(
                    retried.contains(*expected),
                    "{name}: the Lambda task does not retry {expected}"
                );
            }
        }
    }
    assert_eq!(
        callback_tasks, 1,
        "expected exactly one .waitForTaskToken task"
    );
    Ok(())
}

#[test]
fn the_state_machine_has_the_states_of_the_architecture_diagram() -> Result<()> {
    let asl = asl()?;
    let states = asl["States"]
        .as_object()
        .ok_or_else(|| anyhow!("no States"))?;
    for expected in DIAGRAM_STATES {
        assert!(
            states.contains_key(expected),
            "{ASL_FILE} has no state `{expected}`"
        );
    }
    for (name, state) in states {
        if state["Type"] == "Choice" {
            assert!(name.ends_with('?'), "Choice state `{name}` must end in `?`");
        }
    }
    // Every failure after Activate ends in Revoke (DESIGN.md).
    let activate_catches: Vec<&str> = states["Activate"]["Catch"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Next"].as_str())
        .collect();
    assert_eq!(
        activate_catches,
        ["Revoke"],
        "Activate's Catch must lead to Revoke"
    );
    assert_eq!(
        states["Wait For Expiry"]["TimestampPath"],
        "$.grant.expires_at"
    );
    Ok(())
}

#[test]
fn every_function_binary_is_a_workspace_package_with_that_binary() -> Result<()> {
    let template = template()?;
    let functions = functions(&template)?;
    let architecture = architecture()?;
    // ARCHITECTURE.md "Names": `IntakeFunction`→`trailgate-intake`, ...
    let names_row = section(&architecture, "### Names")?
        .into_iter()
        .find(|line| line.contains("SAM functions"))
        .ok_or_else(|| anyhow!("no SAM functions row in ARCHITECTURE.md Names"))?;
    let spans = code_spans(names_row);
    let contract: BTreeMap<String, String> = spans
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect();
    ensure!(
        contract.len() == 12,
        "expected twelve functions in ARCHITECTURE.md, read {contract:?}"
    );

    let mut built = BTreeMap::new();
    for (id, function) in &functions {
        assert_eq!(
            path(function, &["Metadata", "BuildMethod"]).and_then(Yaml::as_str),
            Some("rust-cargolambda"),
            "{id}: BuildMethod"
        );
        let binary = path(function, &["Metadata", "BuildProperties", "Binary"])
            .and_then(Yaml::as_str)
            .ok_or_else(|| anyhow!("{id}: no Metadata.BuildProperties.Binary"))?;
        built.insert(id.clone(), binary.to_owned());

        let package_dir = root().join("crates").join(binary);
        let manifest = std::fs::read_to_string(package_dir.join("Cargo.toml"))
            .with_context(|| format!("{id}: binary `{binary}` has no package crates/{binary}"))?;
        let manifest: toml_like::Manifest = toml_like::parse(&manifest);
        assert_eq!(
            manifest.package_name.as_deref(),
            Some(binary),
            "{id}: crates/{binary} has another package name"
        );
        let has_bin = manifest.bin_names.iter().any(|name| name == binary)
            || (manifest.bin_names.is_empty() && package_dir.join("src/main.rs").is_file());
        assert!(
            has_bin,
            "{id}: crates/{binary} has no binary `{binary}` (src/main.rs or [[bin]])"
        );
    }
    assert_eq!(
        built, contract,
        "template functions and binaries differ from ARCHITECTURE.md Names"
    );
    Ok(())
}

#[test]
fn function_environments_match_the_architecture_table() -> Result<()> {
    let template = template()?;
    let architecture = architecture()?;
    // | `VARIABLE` | intake, grant | meaning |
    let mut table: BTreeMap<String, String> = BTreeMap::new();
    for line in section(&architecture, "### Environment variables")? {
        let row = cells(line);
        if let [variable, used_by, ..] = row.as_slice()
            && let [name] = code_spans(variable).as_slice()
        {
            table.insert((*name).to_owned(), (*used_by).to_owned());
        }
    }
    ensure!(
        table.contains_key("LEDGER_TABLE"),
        "could not read the environment table: {table:?}"
    );

    let global = keys(path(
        &template,
        &["Globals", "Function", "Environment", "Variables"],
    ));
    for (id, function) in functions(&template)? {
        let short = id.strip_suffix("Function").unwrap_or(&id).to_lowercase();
        let own = keys(path(&function, &["Properties", "Environment", "Variables"]));
        let actual: BTreeSet<String> = global.union(&own).cloned().collect();
        for variable in &actual {
            assert!(
                table.contains_key(variable),
                "{id}: `{variable}` is not in ARCHITECTURE.md's environment table"
            );
        }
        let expected: BTreeSet<String> = table
            .iter()
            .filter(|(_, used_by)| {
                used_by.as_str() == "all functions"
                    || used_by.split(',').any(|user| user.trim() == short)
            })
            .map(|(variable, _)| variable.clone())
            .collect();
        assert_eq!(
            actual, expected,
            "{id}: environment differs from ARCHITECTURE.md's table"
        );
    }
    Ok(())
}

/// Every `Statement` list anywhere in the template (inline policies, managed policies, trust policies).
fn statements(value: &Yaml, found: &mut Vec<Yaml>) {
    match untag(value) {
        Yaml::Mapping(mapping) => {
            for (key, child) in mapping {
                if key.as_str() == Some("Statement") {
                    match untag(child) {
                        Yaml::Sequence(items) => found.extend(items.iter().cloned()),
                        other => found.push(other.clone()),
                    }
                } else {
                    statements(child, found);
                }
            }
        }
        Yaml::Sequence(items) => items.iter().for_each(|item| statements(item, found)),
        _ => {}
    }
}

#[test]
fn no_policy_statement_uses_wildcard_actions() -> Result<()> {
    let template = template()?;
    let mut found = Vec::new();
    statements(&template, &mut found);
    ensure!(
        found.len() > 10,
        "found only {} policy statements; is the walker broken?",
        found.len()
    );
    for statement in &found {
        let sid = get(statement, "Sid")
            .and_then(Yaml::as_str)
            .unwrap_or("(no Sid)");
        assert!(
            get(statement, "NotAction").is_none(),
            "{sid}: NotAction grants everything else"
        );
        let actions = get(statement, "Action").map(strings).unwrap_or_default();
        assert!(!actions.is_empty(), "{sid}: a statement without Action");
        for action in &actions {
            assert!(
                !action.contains('*'),
                "{sid}: action `{action}` contains `*`"
            );
        }
        let resources = get(statement, "Resource").map(strings).unwrap_or_default();
        let allows = get(statement, "Effect").and_then(Yaml::as_str) == Some("Allow");
        // In a resource policy (a statement with a Principal: a key or secret policy) `*`
        // means the one resource the policy is attached to.
        let resource_policy = get(statement, "Principal").is_some();
        if allows && !resource_policy && resources.iter().any(|resource| resource == "*") {
            for action in &actions {
                assert!(
                    NO_RESOURCE_LEVEL_ACTIONS.contains(&action.as_str()),
                    "{sid}: `{action}` is allowed on Resource \"*\" but supports resource-level permissions"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn api_routes_match_the_architecture_table() -> Result<()> {
    let template = template()?;
    let architecture = architecture()?;
    // | `POST /requests` `{...}` | AWS_IAM | intake |
    let mut contract = BTreeSet::new();
    for line in section(&architecture, "### HTTP API")? {
        let row = cells(line);
        if let [route, auth, function] = row.as_slice()
            && let Some(route) = code_spans(route).first()
            && let Some((method, path)) = route.split_once(' ')
        {
            let path = path.split('?').next().unwrap_or(path);
            let auth = if auth.starts_with("none") {
                "NONE"
            } else {
                *auth
            };
            contract.insert((
                method.to_owned(),
                path.to_owned(),
                auth.to_owned(),
                (*function).to_owned(),
            ));
        }
    }
    ensure!(
        contract.len() == 13,
        "could not read the HTTP API table: {contract:?}"
    );

    let default_auth = path(
        &template,
        &[
            "Resources",
            "TrailgateApi",
            "Properties",
            "Auth",
            "DefaultAuthorizer",
        ],
    )
    .and_then(Yaml::as_str)
    .unwrap_or("NONE");
    let mut actual = BTreeSet::new();
    for (id, function) in functions(&template)? {
        let short = id.strip_suffix("Function").unwrap_or(&id).to_lowercase();
        let Some(events) = path(&function, &["Properties", "Events"]).and_then(Yaml::as_mapping)
        else {
            continue;
        };
        for event in events.values() {
            if get(event, "Type").and_then(Yaml::as_str) != Some("Api") {
                continue;
            }
            let properties = get(event, "Properties")
                .ok_or_else(|| anyhow!("{id}: Api event without Properties"))?;
            let api = get(properties, "RestApiId").and_then(|v| untag(v).as_str());
            assert_eq!(
                api,
                Some("TrailgateApi"),
                "{id}: every route belongs to TrailgateApi"
            );
            let method = get(properties, "Method")
                .and_then(Yaml::as_str)
                .unwrap_or_default()
                .to_uppercase();
            let route = get(properties, "Path")
                .and_then(Yaml::as_str)
                .unwrap_or_default()
                .to_owned();
            let auth = path(properties, &["Auth", "Authorizer"])
                .and_then(Yaml::as_str)
                .unwrap_or(default_auth);
            actual.insert((method, route, auth.to_owned(), short.clone()));
        }
    }
    assert_eq!(
        actual, contract,
        "template API events differ from ARCHITECTURE.md's HTTP API table"
    );
    Ok(())
}

/// `openapi.yaml` (the API's published contract) documents exactly template.yaml's API events:
/// no route deployed without a contract, none documented that is not deployed. (That the intake
/// handler's answers conform to the spec's schemas is tested beside the handler.)
#[test]
fn the_openapi_spec_has_exactly_the_templates_routes() -> Result<()> {
    let spec: Yaml =
        serde_yaml::from_str(&read("openapi.yaml")?).context("parsing openapi.yaml")?;
    let mut documented = BTreeSet::new();
    let paths = get(&spec, "paths")
        .and_then(Yaml::as_mapping)
        .ok_or_else(|| anyhow!("openapi.yaml has no paths"))?;
    for (route, item) in paths {
        let route = route
            .as_str()
            .ok_or_else(|| anyhow!("openapi.yaml: a path that is not a string"))?;
        for method in keys(Some(item)) {
            documented.insert((method.to_uppercase(), route.to_owned()));
        }
    }
    let template = template()?;
    let resources = get(&template, "Resources")
        .and_then(Yaml::as_mapping)
        .ok_or_else(|| anyhow!("template.yaml has no Resources"))?;
    let mut deployed = BTreeSet::new();
    for resource in resources.values() {
        let events = path(resource, &["Properties", "Events"]).and_then(Yaml::as_mapping);
        for event in events.into_iter().flat_map(|events| events.values()) {
            if get(event, "Type").and_then(Yaml::as_str) != Some("Api") {
                continue;
            }
            let field = |name: &str| {
                path(event, &["Properties", name])
                    .and_then(Yaml::as_str)
                    .ok_or_else(|| anyhow!("an Api event without {name}"))
            };
            deployed.insert((field("Method")?.to_uppercase(), field("Path")?.to_owned()));
        }
    }
    assert_eq!(documented, deployed, "openapi.yaml vs template.yaml");
    Ok(())
}

#[test]
fn execution_data_is_never_logged() -> Result<()> {
    let template = template()?;
    let logging = path(
        &template,
        &["Resources", STATE_MACHINE, "Properties", "Logging"],
    )
    .ok_or_else(|| anyhow!("{STATE_MACHINE} has no Logging"))?;
    // jit-anchors pitfall 14: execution data would put request details into CloudWatch.
    assert_eq!(
        get(logging, "IncludeExecutionData").and_then(Yaml::as_bool),
        Some(false)
    );
    Ok(())
}

#[test]
fn the_sample_target_role_is_grantable_and_trusts_only_the_credentials_function() -> Result<()> {
    let template = template()?;
    let role = path(&template, &["Resources", "SampleTargetRole", "Properties"])
        .ok_or_else(|| anyhow!("no SampleTargetRole"))?;
    let name = get(role, "RoleName")
        .and_then(|v| untag(v).as_str())
        .unwrap_or_default();
    assert!(
        !name.starts_with("${AWS::StackName}"),
        "`{name}`: roles named after the stack are never grantable"
    );
    let managed_tag = get(role, "Tags")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .any(|tag| get(tag, "Key").and_then(Yaml::as_str) == Some("trailgate:managed"));
    assert!(
        managed_tag,
        "SampleTargetRole must be tagged trailgate:managed"
    );

    let mut trust = Vec::new();
    statements(
        get(role, "AssumeRolePolicyDocument").ok_or_else(|| anyhow!("no trust policy"))?,
        &mut trust,
    );
    ensure!(!trust.is_empty(), "empty trust policy");
    for statement in &trust {
        let principal = path(statement, &["Principal", "AWS"]).and_then(|v| untag(v).as_str());
        assert_eq!(
            principal,
            Some("CredentialsFunctionRole.Arn"),
            "trust must name only the credentials function's role"
        );
        let requires_source_identity =
            path(statement, &["Condition", "Null", "sts:SourceIdentity"]).and_then(Yaml::as_str)
                == Some("false");
        assert!(
            requires_source_identity,
            "trust must require a source identity"
        );
    }
    Ok(())
}

#[test]
fn only_the_credentials_function_can_assume_target_roles() -> Result<()> {
    // DESIGN.md decision 8: no other trailgate principal may assume a role (a second broker
    // would bypass the ledger's ACTIVE check), and the broker only roles tagged trailgate:managed.
    let template = template()?;
    let resources = path(&template, &["Resources"])
        .and_then(Yaml::as_mapping)
        .ok_or_else(|| anyhow!("no Resources"))?;
    let mut brokers = BTreeSet::new();
    let mut agents = BTreeSet::new();
    for (id, resource) in resources {
        let id = id.as_str().unwrap_or_default();
        let mut found = Vec::new();
        // Policies of functions and the state machine, and inline/managed policy resources;
        // trust policies (AssumeRolePolicyDocument) say who may assume, not what one may do.
        for key in ["Policies", "PolicyDocument", "Policy"] {
            if let Some(policies) = path(resource, &["Properties", key]) {
                statements(policies, &mut found);
            }
        }
        for statement in &found {
            let allows = get(statement, "Effect").and_then(Yaml::as_str) == Some("Allow");
            let actions = get(statement, "Action").map(strings).unwrap_or_default();
            let assumes = actions
                .iter()
                .any(|a| a.eq_ignore_ascii_case("sts:AssumeRole") || a == "sts:*" || a == "*");
            if allows && assumes && reaches_only_trailgates_member_roles(statement) {
                // The hub's way into member accounts: the agent role (and the management
                // account's Organization reader, shared by intake and the reconciler in
                // OrganizationReadPolicy), never a target role. Those are never tagged
                // trailgate:managed and the grant refuses their names.
                let reader_only = get(statement, "Resource")
                    .map(strings)
                    .unwrap_or_default()
                    .iter()
                    .all(|r| r.ends_with(":role/trailgate-organization-reader"));
                if !reader_only {
                    agents.insert(id.to_owned());
                }
                continue;
            }
            if allows && assumes {
                brokers.insert(id.to_owned());
                let managed_only = path(
                    statement,
                    &[
                        "Condition",
                        "StringEquals",
                        "aws:ResourceTag/trailgate:managed",
                    ],
                )
                .and_then(Yaml::as_str)
                    == Some("true");
                assert!(
                    managed_only,
                    "{id}: sts:AssumeRole is not limited to roles tagged trailgate:managed"
                );
            }
        }
    }
    ensure!(
        brokers == BTreeSet::from(["CredentialsFunction".to_owned()]),
        "principals allowed sts:AssumeRole: {brokers:?}"
    );
    // Exactly the functions whose roles the member stack's agent trusts: a function that may
    // assume the agent but is not trusted fails in member accounts, and a trusted role that does
    // not need the agent is trust to spare.
    let reach: BTreeSet<String> = AGENT_TRUSTED_ROLES
        .iter()
        .map(|role| role.trim_end_matches("Role").to_owned())
        .collect();
    ensure!(
        agents == reach,
        "functions that reach member accounts: {agents:?}"
    );
    Ok(())
}

/// A statement that lets its function assume only the member stack's own roles (the agent
/// role, or the Organization reader), only inside the Organization (`aws:ResourceOrgID`).
fn reaches_only_trailgates_member_roles(statement: &Yaml) -> bool {
    let resources = get(statement, "Resource").map(strings).unwrap_or_default();
    let in_organization = path(
        statement,
        &["Condition", "StringEquals", "aws:ResourceOrgID"],
    )
    .is_some();
    !resources.is_empty()
        && in_organization
        && resources.iter().all(|resource| {
            resource.ends_with(":role/${AgentRoleName}")
                || resource.ends_with(":role/trailgate-organization-reader")
        })
}

/// Just enough of Cargo.toml for the binary check, to keep the test free of a TOML dependency.
mod toml_like {
    pub struct Manifest {
        pub package_name: Option<String>,
        pub bin_names: Vec<String>,
    }

    pub fn parse(text: &str) -> Manifest {
        let mut manifest = Manifest {
            package_name: None,
            bin_names: Vec::new(),
        };
        let mut table = String::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                table = line.to_owned();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.trim() != "name" {
                continue;
            }
            let value = value.trim().trim_matches('"').to_owned();
            match table.as_str() {
                "[package]" => manifest.package_name = Some(value),
                "[[bin]]" => manifest.bin_names.push(value),
                _ => {}
            }
        }
        manifest
    }
}

/// Each workspace package: its manifest folder relative to the root, its workspace crates
/// among its normal dependencies, and its `aws-sdk-*` crates with their kind.
struct Package {
    folder: String,
    workspace_deps: BTreeSet<String>,
    sdk_deps: Vec<(String, String)>,
}

/// The workspace as cargo sees it (`cargo metadata`), so the check reads what builds, not a
/// second parser's idea of the manifests.
fn workspace_packages() -> Result<BTreeMap<String, Package>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root())
        .output()?;
    ensure!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Json = serde_json::from_slice(&output.stdout)?;
    let root = root().canonicalize()?;
    let packages = metadata["packages"]
        .as_array()
        .ok_or_else(|| anyhow!("cargo metadata has no packages"))?;
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut found = BTreeMap::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default().to_owned();
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        let folder = manifest
            .parent()
            .and_then(|dir| dir.strip_prefix(&root).ok())
            .map(|dir| dir.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut workspace_deps = BTreeSet::new();
        let mut sdk_deps = Vec::new();
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let kind = dep["kind"].as_str().unwrap_or("normal");
            if names.contains(dep_name) && kind == "normal" {
                workspace_deps.insert(dep_name.to_owned());
            }
            if dep_name.starts_with("aws-sdk-") {
                sdk_deps.push((dep_name.to_owned(), kind.to_owned()));
            }
        }
        found.insert(
            name,
            Package {
                folder,
                workspace_deps,
                sdk_deps,
            },
        );
    }
    Ok(found)
}

#[test]
fn the_code_map_names_every_crate_with_its_workspace_dependencies() -> Result<()> {
    let architecture = architecture()?;
    let rows: Vec<Vec<&str>> = section(&architecture, "## Code map")?
        .into_iter()
        .filter(|line| line.starts_with("| `"))
        .map(cells)
        .collect();
    let packages = workspace_packages()?;
    let mut problems = Vec::new();
    let mut mapped = BTreeSet::new();
    for row in &rows {
        ensure!(
            row.len() == 3,
            "a code map row has {} cells: {row:?}",
            row.len()
        );
        let folder = code_spans(row[0])
            .first()
            .map(|span| span.trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let Some((name, package)) = packages.iter().find(|(_, p)| p.folder == folder) else {
            problems.push(format!(
                "the code map names `{folder}`, which is no workspace crate"
            ));
            continue;
        };
        mapped.insert(name.clone());
        let listed: BTreeSet<String> = code_spans(row[2]).into_iter().map(str::to_owned).collect();
        if listed != package.workspace_deps {
            problems.push(format!(
                "`{folder}` depends on {:?}, the code map says {:?}",
                package.workspace_deps, listed
            ));
        }
    }
    for (name, package) in &packages {
        if !mapped.contains(name) {
            problems.push(format!("`{}` ({name}) has no code map row", package.folder));
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

#[test]
fn only_the_adapters_the_local_stack_and_tests_use_the_aws_sdk() -> Result<()> {
    // ARCHITECTURE.md "Invariants": the functions reach AWS through trailgate-aws alone.
    let may_use = ["trailgate-aws", "trailgate-local", "trailgate-system-tests"];
    let mut problems = Vec::new();
    for (name, package) in workspace_packages()? {
        for (sdk, kind) in &package.sdk_deps {
            let test_only = kind == "dev" && name == "jitctl";
            if !may_use.contains(&name.as_str()) && !test_only {
                problems.push(format!("{name} depends on {sdk} ({kind})"));
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// A `!Sub` text with the stack's pseudo parameters filled in as the local stack names them.
fn sub_text(value: &Yaml) -> String {
    untag(value)
        .as_str()
        .unwrap_or_default()
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::AccountId}", "123456789012")
        .replace("${AWS::Region}", "us-east-1")
        .replace("${AWS::StackName}", "trailgate")
}

/// `*` matches any run of characters (IAM's `ArnLike`, without `?`).
fn arn_like(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len())
                    .any(|skip| arn_like(tail, &text[head.len() + skip..]))
        }
    }
}

/// The role a SAM function or state machine gets, named as CloudFormation names it.
fn role_name_of(logical_id: &str) -> String {
    format!("arn:aws:iam::123456789012:role/trailgate-{logical_id}Role-1A2B3C4D5E6F")
}

/// The `aws:PrincipalArn` patterns a Deny statement exempts (`ArnNotLike`).
fn exempt_principals(statement: &Yaml) -> Vec<String> {
    let Some(value) = path(statement, &["Condition", "ArnNotLike", "aws:PrincipalArn"]) else {
        return Vec::new();
    };
    match untag(value) {
        Yaml::Sequence(items) => items.iter().map(sub_text).collect(),
        other => vec![sub_text(other)],
    }
}

/// The logical ids of the functions (and the state machine) whose own policies allow `action`
/// on a resource that refers to `target` (`!Ref` or `!GetAtt`).
fn principals_allowed(template: &Yaml, action: &str, target: &str) -> Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    let mut holders = functions(template)?;
    holders.extend(resources_of_type(
        template,
        "AWS::Serverless::StateMachine",
    )?);
    for (id, resource) in holders {
        let policies = path(&resource, &["Properties", "Policies"]).unwrap_or(&Yaml::Null);
        let mut own = Vec::new();
        statements(policies, &mut own);
        let allows = own.iter().any(|statement| {
            get(statement, "Effect").and_then(Yaml::as_str) == Some("Allow")
                && get(statement, "Action")
                    .map(strings)
                    .unwrap_or_default()
                    .iter()
                    .any(|a| a == action)
                && serde_yaml::to_string(get(statement, "Resource").unwrap_or(&Yaml::Null))
                    .is_ok_and(|resource| resource.contains(target))
        });
        // SAM's policy template SNSPublishMessagePolicy names the topic by its TopicName.
        let template_policy = action == "sns:Publish"
            && untag(policies).as_sequence().is_some_and(|items| {
                items.iter().any(|item| {
                    get(item, "SNSPublishMessagePolicy").is_some_and(|p| {
                        serde_yaml::to_string(p).is_ok_and(|text| text.contains(target))
                    })
                })
            });
        if allows || template_policy {
            found.insert(id);
        }
    }
    Ok(found)
}

#[test]
fn resource_policies_let_in_the_roles_that_need_them_and_no_other() -> Result<()> {
    // ARCHITECTURE.md "Invariants": nobody but trailgate's own roles touches its resources.
    // A resource policy that left out a role trailgate needs would break it on AWS, where
    // moto would never notice; one that let in more would not protect anything.
    let template = template()?;
    let resources = get(&template, "Resources").ok_or_else(|| anyhow!("no Resources"))?;
    let deny_statement = |resource: &str, policy: &[&str], action: &str| -> Result<Yaml> {
        let document = path(resources, &[&[resource, "Properties"][..], policy].concat())
            .ok_or_else(|| anyhow!("{resource} has no {policy:?}"))?;
        let mut found = Vec::new();
        statements(document, &mut found);
        found
            .into_iter()
            .find(|statement| {
                get(statement, "Effect").and_then(Yaml::as_str) == Some("Deny")
                    && get(statement, "Action")
                        .map(strings)
                        .unwrap_or_default()
                        .iter()
                        .any(|a| a == action)
            })
            .ok_or_else(|| anyhow!("{resource}: no Deny of {action} in {policy:?}"))
    };
    let all: BTreeSet<String> = functions(&template)?
        .into_keys()
        .chain(resources_of_type(&template, "AWS::Serverless::StateMachine")?.into_keys())
        .collect();
    for (resource, policy, action, target) in [
        (
            "LedgerTable",
            &["ResourcePolicy", "PolicyDocument"][..],
            "dynamodb:PutItem",
            "LedgerTable",
        ),
        (
            "LedgerTable",
            &["ResourcePolicy", "PolicyDocument"][..],
            "dynamodb:GetItem",
            "LedgerTable",
        ),
        (
            "LinkSigningSecretPolicy",
            &["ResourcePolicy"][..],
            "secretsmanager:GetSecretValue",
            "LinkSigningSecret",
        ),
        (
            "LinkSigningKey",
            &["KeyPolicy"][..],
            "kms:Decrypt",
            "LinkSigningKey",
        ),
        (
            "ChainKeySecretPolicy",
            &["ResourcePolicy"][..],
            "secretsmanager:GetSecretValue",
            "ChainKeySecret",
        ),
        (
            "ChainKeyEncryptionKey",
            &["KeyPolicy"][..],
            "kms:Decrypt",
            "ChainKeyEncryptionKey",
        ),
        (
            "LedgerArchiveBucketPolicy",
            &["PolicyDocument"][..],
            "s3:PutObject",
            "LedgerArchiveBucket",
        ),
        (
            "ApprovalsTopicPolicy",
            &["PolicyDocument"][..],
            "sns:Publish",
            "ApprovalsTopic",
        ),
        (
            "AlertsTopicPolicy",
            &["PolicyDocument"][..],
            "sns:Publish",
            "AlertsTopic",
        ),
    ] {
        let statement = deny_statement(resource, policy, action)?;
        let exempt = exempt_principals(&statement);
        ensure!(
            !exempt.is_empty(),
            "{resource}: {action} is denied to everyone"
        );
        let mut needs = principals_allowed(&template, action, target)?;
        if [
            "LedgerTable",
            "ChainKeySecretPolicy",
            "ChainKeyEncryptionKey",
        ]
        .contains(&resource)
        {
            // Every function holds the shared LedgerAccessPolicy, which includes reading the
            // chain key that seals the ledger's events.
            needs = functions(&template)?.into_keys().collect();
        }
        ensure!(
            !needs.is_empty(),
            "{resource}: found no role that uses {action}"
        );
        for id in &all {
            let role = role_name_of(id);
            let let_in = exempt.iter().any(|pattern| arn_like(pattern, &role));
            ensure!(
                let_in == needs.contains(id),
                "{resource}: {action} for {id} ({role}) is {} by the resource policy, and {id} {} it",
                if let_in { "allowed" } else { "denied" },
                if needs.contains(id) {
                    "needs"
                } else {
                    "does not need"
                }
            );
        }
    }
    Ok(())
}
