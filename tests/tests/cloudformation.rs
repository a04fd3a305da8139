//! The deploy path is AWS's own: template.yaml goes through the SAM transform and moto's
//! CloudFormation (`local/sam_deploy.py`), and nothing of the transformed template is left
//! uncreated. moto skips resource types it has no model for and still reports CREATE_COMPLETE,
//! so this test is what catches a type missing from `local/moto_server.py`'s shim: every
//! resource has a physical id, in the hub and (across its accounts) in the member stack; the
//! state machine is the ASL file with CloudFormation's substitutions, nothing else; the routes,
//! schedule and outputs are what API Gateway, EventBridge and DescribeStacks hold.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use trailgate_local::{LocalStack, UpOptions};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_of_the_transformed_templates_is_created() -> Result<()> {
    let mut options = UpOptions::new(repo_root());
    options.state_dir = repo_root()
        .join("target/system-tests")
        .join(format!("cloudformation-{}", std::process::id()));
    options.aws_port = 0;
    options.api_port = 0;
    options.lambda = false;
    // The conditional resources of the hub template: with an alert address and a trail bucket
    // with its key, every resource of the template is in the stack.
    for (name, value) in [
        ("AlertEmail", "ops@example.com"),
        ("TrailBucket", "org-trail"),
        ("TrailPrefix", "logs/"),
        (
            "TrailKmsKeyArn",
            "arn:aws:kms:us-east-1:222222222222:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        ),
    ] {
        options.parameters.insert(name.into(), value.into());
    }
    let stack = LocalStack::up(options)
        .await
        .context("bringing the stack up")?;
    let outcome = check(&stack).await;
    stack.shutdown().await?;
    outcome
}

async fn check(stack: &LocalStack) -> Result<()> {
    let deployment = stack.deployment();
    let state = stack.state();
    ensure!(
        deployment
            .stack_id
            .starts_with("arn:aws:cloudformation:us-east-1:123456789012:stack/trailgate/"),
        "a real stack: {}",
        deployment.stack_id
    );
    // The transform ran: no serverless type is left, and SAM's generated resources are there.
    let types: BTreeMap<&str, usize> =
        deployment
            .template_resources
            .values()
            .fold(BTreeMap::new(), |mut acc, t| {
                *acc.entry(t.as_str()).or_default() += 1;
                acc
            });
    ensure!(
        !types.keys().any(|t| t.starts_with("AWS::Serverless::")),
        "{types:?}"
    );
    for (kind, at_least) in [
        ("AWS::Lambda::Function", 10),
        ("AWS::IAM::Role", 12),
        ("AWS::ApiGateway::Stage", 1),
        ("AWS::ApiGateway::Deployment", 1),
        ("AWS::Lambda::Permission", 13),
        ("AWS::SecretsManager::Secret", 2),
        ("AWS::SNS::Subscription", 3),
        ("AWS::StepFunctions::StateMachine", 1),
    ] {
        let n = types.get(kind).copied().unwrap_or(0);
        ensure!(n >= at_least, "{kind}: {n} < {at_least}");
    }
    let missing: Vec<String> = deployment
        .template_resources
        .iter()
        .filter(|(id, _)| {
            deployment
                .resources
                .get(*id)
                .is_none_or(|r| r.physical_id.is_empty())
        })
        .map(|(id, kind)| format!("{id} ({kind})"))
        .collect();
    ensure!(
        missing.is_empty(),
        "created without a physical id (a type moto skips; shim it in local/moto_server.py): {missing:?}"
    );

    // The member stack: each resource is created in at least one account (the sample role in
    // members, the Organization reader in the management account).
    let organization = &state.organization;
    let mut stacks = vec![&organization.management_resources];
    stacks.extend(organization.members.iter().map(|m| &m.resources));
    let ids: Vec<&String> = stacks.iter().flat_map(|s| s.keys()).collect();
    ensure!(
        ids.len() > 3,
        "the member stacks list their resources: {ids:?}"
    );
    for id in ids {
        ensure!(
            stacks
                .iter()
                .any(|s| s.get(id).is_some_and(|p| !p.is_empty())),
            "member resource {id} was created in no account"
        );
    }

    // Routes and schedule as API Gateway and EventBridge hold them.
    ensure!(deployment.routes.len() == 13, "{:?}", deployment.routes);
    for route in &deployment.routes {
        let open = route.path == "/decisions/{id}";
        ensure!(
            route.iam_auth != open,
            "auth of {} {}",
            route.method,
            route.path
        );
    }
    let schedule = deployment
        .schedules
        .first()
        .context("the reconciler's schedule")?;
    ensure!(schedule.binary == "trailgate-reconcile" && schedule.expression == "rate(5 minutes)");

    let config = trailgate_local::cloudformation::sdk_config(&state.aws_endpoint);
    // A role's ManagedPolicyArns are attached, AWS managed ones included.
    let iam = aws_sdk_iam::Client::new(&config);
    let attached = iam
        .list_attached_role_policies()
        .role_name("sample-target-trailgate")
        .send()
        .await?;
    let mut names: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    names.sort_unstable();
    ensure!(
        names == ["ViewOnlyAccess", "trailgate-protection"],
        "{names:?}"
    );

    // The state machine is the ASL file with DefinitionSubstitutions applied, nothing else.
    let sfn = aws_sdk_sfn::Client::new(&config);
    let machine = sfn
        .describe_state_machine()
        .state_machine_arn(&state.outputs["StateMachineArn"])
        .send()
        .await?;
    let deployed: Value = serde_json::from_str(machine.definition())?;
    let file: Value = serde_json::from_str(&std::fs::read_to_string(
        repo_root().join("statemachine/access-request.asl.json"),
    )?)?;
    let mut substitutions = BTreeMap::new();
    same_but_substituted(&file, &deployed, "$", &mut substitutions)?;
    let function_arns: Vec<&str> = deployment
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    let mut lambda_substitutions = 0;
    for (name, value) in &substitutions {
        if let Some(function) =
            value.strip_prefix("arn:aws:lambda:us-east-1:123456789012:function:")
        {
            ensure!(
                function_arns.contains(&function),
                "${{{name}}} = {value}: no function of the stack"
            );
            lambda_substitutions += 1;
        }
    }
    ensure!(lambda_substitutions >= 5, "{substitutions:?}");
    Ok(())
}

/// Walks the file and the deployed definition together: equal everywhere, except that a string
/// of the file with `${Name}` placeholders matches the deployed string with each placeholder
/// replaced, the same value for the same name everywhere.
fn same_but_substituted(
    file: &Value,
    deployed: &Value,
    at: &str,
    substitutions: &mut BTreeMap<String, String>,
) -> Result<()> {
    match (file, deployed) {
        (Value::Object(a), Value::Object(b)) => {
            ensure!(
                a.keys().eq(b.keys()),
                "{at}: keys differ: {:?} vs {:?}",
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>()
            );
            for (key, value) in a {
                same_but_substituted(value, &b[key], &format!("{at}.{key}"), substitutions)?;
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            ensure!(a.len() == b.len(), "{at}: lengths differ");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same_but_substituted(x, y, &format!("{at}[{i}]"), substitutions)?;
            }
        }
        (Value::String(pattern), Value::String(text)) if pattern.contains("${") => {
            let mut regex = String::from("^");
            let mut names = Vec::new();
            let mut rest = pattern.as_str();
            while let Some(start) = rest.find("${") {
                regex.push_str(&regex::escape(&rest[..start]));
                let end = rest[start..].find('}').context("unclosed ${")? + start;
                names.push(rest[start + 2..end].to_owned());
                regex.push_str("(.+?)");
                rest = &rest[end + 1..];
            }
            regex.push_str(&regex::escape(rest));
            regex.push('$');
            let captures = regex::Regex::new(&regex)?
                .captures(text)
                .with_context(|| format!("{at}: {text:?} is not {pattern:?} substituted"))?;
            for (i, name) in names.into_iter().enumerate() {
                let value = captures[i + 1].to_owned();
                ensure!(
                    !value.contains("${"),
                    "{at}: ${{{name}}} left unsubstituted"
                );
                if let Some(previous) = substitutions.insert(name.clone(), value.clone())
                    && previous != value
                {
                    bail!("{at}: ${{{name}}} is {value} here but {previous} elsewhere");
                }
            }
        }
        (a, b) => ensure!(a == b, "{at}: {a} vs {b}"),
    }
    Ok(())
}
