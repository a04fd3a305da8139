//! Deploying a stack the way AWS does: `local/sam_deploy.py` runs the template's transforms
//! offline (SAM CLI's language extensions, then the pinned aws-sam-translator), packages code
//! and state machine definitions into a bucket, and calls CreateStack on moto's CloudFormation;
//! this module runs it, reads the stack back (outputs, resources, and the functions, routes and
//! schedules and stream mappings as Lambda, API Gateway and EventBridge hold them) and creates the local IAM users.
//!
//! Nothing here interprets the template: every name, ARN and environment value is what
//! CloudFormation produced. The one local translation is the API's execute-api URL, in outputs
//! and function environments, which points at the router's API port instead (the host does not
//! exist on this machine).
//!
//! Functions exist in moto as Lambda functions with a placeholder zip (moto's Lambda runs code
//! only in Docker); the router sends their invocations to `cargo lambda watch`, which serves the
//! binaries by name.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::router::Log;
use crate::router::sigv4::LocalUser;
use crate::state::DeployedResource;

/// The stack name the local stack deploys as, as `sam deploy --stack-name trailgate` would.
pub const STACK_NAME: &str = "trailgate";
/// The account moto answers for.
pub const ACCOUNT_ID: &str = "123456789012";
/// The only region the local stack runs in.
pub const REGION: &str = "us-east-1";
/// The deploy script, relative to the repository.
const DEPLOY_SCRIPT: &str = "local/sam_deploy.py";
/// The interpreter with aws-sam-translator and SAM CLI (requirements/sam.txt).
const SAM_PYTHON: &str = ".venv-sam/bin/python";

/// A route of the REST API, as API Gateway holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// Path with `{param}` and `{proxy+}` placeholders.
    pub path: String,
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// Logical id of the function serving the route.
    pub function: String,
    /// Binary name of that function (what `cargo lambda watch` serves).
    pub binary: String,
    /// Whether the route requires SigV4 (`AWS_IAM`).
    pub iam_auth: bool,
}

/// A schedule rule that targets a function, as EventBridge holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub function: String,
    pub binary: String,
    pub expression: String,
    /// The target's `Input`, if it sets one (a JSON string).
    pub input: Option<String>,
}

/// A DynamoDB stream mapped to a function, as Lambda holds the mapping: what the router's
/// poller reads and invokes (`router::streams`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMapping {
    pub function: String,
    pub binary: String,
    pub stream_arn: String,
    pub batch_size: usize,
    /// How often a failing batch is retried before it is given up (-1: until it expires).
    pub maximum_retry_attempts: i64,
    /// Whether the function answers `batchItemFailures` (`ReportBatchItemFailures`).
    pub report_batch_item_failures: bool,
}

/// A local IAM user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub name: String,
    /// `requester` or `approver`.
    pub role: String,
    pub email: String,
}

impl UserSpec {
    /// The default users: alice asks, bob and carol approve.
    pub fn defaults() -> Vec<UserSpec> {
        [
            ("alice", "requester"),
            ("bob", "approver"),
            ("carol", "approver"),
        ]
        .into_iter()
        .map(|(name, role)| UserSpec {
            name: name.to_owned(),
            role: role.to_owned(),
            email: format!("{name}@example.com"),
        })
        .collect()
    }
}

/// A function as deployed: its binary and its environment as Lambda holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedFunction {
    pub logical_id: String,
    pub binary: String,
    /// The function name CloudFormation gave it.
    pub name: String,
    pub environment: BTreeMap<String, String>,
}

/// Everything the deploy created or learnt.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    pub stack_id: String,
    pub resources: BTreeMap<String, DeployedResource>,
    /// The transformed template's resources (logical id → type), created or not.
    pub template_resources: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub functions: Vec<DeployedFunction>,
    pub routes: Vec<ApiRoute>,
    pub schedules: Vec<Schedule>,
    pub streams: Vec<StreamMapping>,
    /// Deployed name → binary.
    pub renames: HashMap<String, String>,
    pub api_id: String,
    pub users: Vec<LocalUser>,
    /// How long CreateStack took until CREATE_COMPLETE, in seconds.
    pub create_seconds: f64,
}

impl Deployment {
    /// The union of every function's environment; the local stack runs all functions under one
    /// `cargo lambda watch` process environment, so two different values for one name is an
    /// error rather than a silent pick.
    pub fn function_environment(&self) -> Result<BTreeMap<String, String>> {
        let mut union: BTreeMap<String, (String, String)> = BTreeMap::new();
        for function in &self.functions {
            for (name, value) in &function.environment {
                match union.get(name) {
                    Some((existing, owner)) if existing != value => {
                        return Err(Error::EnvConflict {
                            name: name.clone(),
                            first: existing.clone(),
                            first_function: owner.clone(),
                            second: value.clone(),
                            second_function: function.logical_id.clone(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        union.insert(name.clone(), (value.clone(), function.logical_id.clone()));
                    }
                }
            }
        }
        Ok(union
            .into_iter()
            .map(|(name, (value, _))| (name, value))
            .collect())
    }
}

/// What a deploy needs to know about its surroundings.
#[derive(Debug)]
pub struct DeployOptions<'a> {
    /// The repository (template, `local/sam_deploy.py`, `.venv-sam`).
    pub repo: &'a Path,
    /// The template to deploy, relative to `repo`.
    pub template: &'a str,
    /// Where the parameter file for the script goes.
    pub work_dir: &'a Path,
    /// The router's AWS endpoint.
    pub endpoint: &'a str,
    /// The router's API port, for execute-api URLs.
    pub api_port: u16,
    pub parameters: &'a BTreeMap<String, String>,
    pub users: &'a [UserSpec],
    pub log: &'a Log,
    /// Deploy as another account's stack (a member stack), with that account's credentials.
    pub member: Option<&'a MemberTarget>,
}

/// Where a member stack goes: its account, stack name and the credentials that act there.
#[derive(Debug, Clone)]
pub struct MemberTarget {
    pub account_id: String,
    pub stack_name: String,
    pub credentials: Credentials,
}

/// An SDK configuration for moto behind the router: fixed region, dummy credentials, plain HTTP.
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config_as(
        endpoint,
        Credentials::new("test", "test", None, None, "trailgate-local"),
    )
}

/// [`sdk_config`] acting with `credentials` (moto maps an assumed role's keys to its account).
pub fn sdk_config_as(endpoint: &str, credentials: Credentials) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build()
}

/// A stable pseudo-random token from `[A-Z0-9]` (or `[a-z0-9]`) of `len` characters.
pub fn stable_token(seed: &str, len: usize, upper: bool) -> String {
    let alphabet: &[u8] = if upper {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    } else {
        b"abcdefghijklmnopqrstuvwxyz0123456789"
    };
    let digest = Sha256::digest(format!("{STACK_NAME}/{seed}").as_bytes());
    digest
        .iter()
        .take(len)
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect()
}

/// What `local/sam_deploy.py` prints.
#[derive(Debug, Deserialize)]
struct Manifest {
    stack_id: String,
    create_seconds: f64,
    outputs: BTreeMap<String, String>,
    resources: Vec<ManifestResource>,
    template_resources: BTreeMap<String, String>,
    functions: Vec<ManifestFunction>,
    routes: Vec<ManifestRoute>,
    api_id: String,
    schedules: Vec<ManifestSchedule>,
    #[serde(default)]
    streams: Vec<ManifestStream>,
}

#[derive(Debug, Deserialize)]
struct ManifestStream {
    function_arn: String,
    stream_arn: String,
    batch_size: usize,
    maximum_retry_attempts: i64,
    report_batch_item_failures: bool,
}

#[derive(Debug, Deserialize)]
struct ManifestResource {
    logical_id: String,
    #[serde(rename = "type")]
    resource_type: String,
    physical_id: String,
}

#[derive(Debug, Deserialize)]
struct ManifestFunction {
    logical_id: String,
    name: String,
    arn: String,
    binary: String,
    environment: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ManifestRoute {
    method: String,
    path: String,
    function_arn: String,
    iam_auth: bool,
}

#[derive(Debug, Deserialize)]
struct ManifestSchedule {
    expression: String,
    target_arn: String,
    input: Option<String>,
}

/// Deploys the template through the transform and moto's CloudFormation; returns the stack as
/// deployed, with the local users created.
pub async fn deploy(options: &DeployOptions<'_>) -> Result<Deployment> {
    let (stack_name, credentials) = match options.member {
        Some(member) => (member.stack_name.as_str(), member.credentials.clone()),
        None => (
            STACK_NAME,
            Credentials::new("test", "test", None, None, "trailgate-local"),
        ),
    };
    let manifest = run_script(options, stack_name, &credentials).await?;
    let mut deployment = from_manifest(manifest, options.api_port)?;
    if !options.users.is_empty() {
        let iam = aws_sdk_iam::Client::new(&sdk_config_as(options.endpoint, credentials));
        for user in options.users {
            deployment.users.push(create_user(&iam, user).await?);
        }
    }
    options.log.line(format!(
        "CloudFormation created {stack_name} in {:.2} s: {} resources, {} functions, {} routes, {} users",
        deployment.create_seconds,
        deployment.resources.len(),
        deployment.functions.len(),
        deployment.routes.len(),
        deployment.users.len()
    ));
    Ok(deployment)
}

async fn run_script(
    options: &DeployOptions<'_>,
    stack_name: &str,
    credentials: &Credentials,
) -> Result<Manifest> {
    let python = options.repo.join(SAM_PYTHON);
    if !python.exists() {
        return Err(Error::ToolMissing {
            path: SAM_PYTHON.into(),
        });
    }
    std::fs::create_dir_all(options.work_dir)
        .map_err(|err| Error::io(format!("creating {}", options.work_dir.display()), err))?;
    let parameters_file = options.work_dir.join(format!(
        "parameters-{stack_name}-{}.json",
        credentials.access_key_id()
    ));
    let text = serde_json::to_string_pretty(options.parameters).map_err(|err| Error::Json {
        context: "stack parameters".into(),
        source: err,
    })?;
    std::fs::write(&parameters_file, text)
        .map_err(|err| Error::io(format!("writing {}", parameters_file.display()), err))?;
    let mut command = tokio::process::Command::new(&python);
    command
        .current_dir(options.repo)
        .arg(options.repo.join(DEPLOY_SCRIPT))
        .args(["--template", options.template, "--stack-name", stack_name])
        .args(["--endpoint", options.endpoint])
        .arg("--parameters")
        .arg(&parameters_file)
        .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key())
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("SAM_CLI_TELEMETRY", "0")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match credentials.session_token() {
        Some(token) => command.env("AWS_SESSION_TOKEN", token),
        None => command.env_remove("AWS_SESSION_TOKEN"),
    };
    let output = command
        .output()
        .await
        .map_err(|err| Error::io(format!("running {}", python.display()), err))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("no output");
        return Err(Error::deploy(
            stack_name,
            format!("{DEPLOY_SCRIPT} failed ({}): {reason}", output.status),
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|err| Error::Json {
        context: format!("{DEPLOY_SCRIPT}'s manifest"),
        source: err,
    })
}

/// The local side of the manifest: execute-api URLs point at the router, routes and schedules
/// name the binaries that serve them.
fn from_manifest(manifest: Manifest, api_port: u16) -> Result<Deployment> {
    let local_api = |text: &str| -> String {
        if manifest.api_id.is_empty() {
            return text.to_owned();
        }
        let host = format!(
            "https://{}.execute-api.{REGION}.amazonaws.com",
            manifest.api_id
        );
        text.replace(&host, &format!("http://127.0.0.1:{api_port}"))
    };
    let by_arn: HashMap<&str, &ManifestFunction> = manifest
        .functions
        .iter()
        .map(|f| (f.arn.as_str(), f))
        .collect();
    let function_of = |arn: &str, what: &str| -> Result<&ManifestFunction> {
        by_arn.get(arn).copied().ok_or_else(|| {
            Error::deploy(
                what,
                format!("targets {arn}, which is no function of the stack"),
            )
        })
    };
    let mut routes = Vec::new();
    for route in &manifest.routes {
        let what = format!("{} {}", route.method, route.path);
        let function = function_of(&route.function_arn, &what)?;
        routes.push(ApiRoute {
            path: route.path.clone(),
            method: route.method.clone(),
            function: function.logical_id.clone(),
            binary: function.binary.clone(),
            iam_auth: route.iam_auth,
        });
    }
    let mut schedules = Vec::new();
    for schedule in &manifest.schedules {
        let function = function_of(&schedule.target_arn, &schedule.expression)?;
        schedules.push(Schedule {
            function: function.logical_id.clone(),
            binary: function.binary.clone(),
            expression: schedule.expression.clone(),
            input: schedule.input.clone(),
        });
    }
    let mut streams = Vec::new();
    for stream in &manifest.streams {
        let function = function_of(&stream.function_arn, &stream.stream_arn)?;
        streams.push(StreamMapping {
            function: function.logical_id.clone(),
            binary: function.binary.clone(),
            stream_arn: stream.stream_arn.clone(),
            batch_size: stream.batch_size.max(1),
            maximum_retry_attempts: stream.maximum_retry_attempts,
            report_batch_item_failures: stream.report_batch_item_failures,
        });
    }
    let functions = manifest
        .functions
        .iter()
        .map(|f| DeployedFunction {
            logical_id: f.logical_id.clone(),
            binary: f.binary.clone(),
            name: f.name.clone(),
            environment: f
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), local_api(v)))
                .collect(),
        })
        .collect::<Vec<_>>();
    let renames = functions
        .iter()
        .map(|f| (f.name.clone(), f.binary.clone()))
        .collect();
    let resources = manifest
        .resources
        .iter()
        .filter(|r| !r.physical_id.is_empty())
        .map(|r| {
            let arn = r
                .physical_id
                .starts_with("arn:")
                .then(|| r.physical_id.clone());
            (
                r.logical_id.clone(),
                DeployedResource {
                    resource_type: r.resource_type.clone(),
                    physical_id: r.physical_id.clone(),
                    arn,
                },
            )
        })
        .collect();
    Ok(Deployment {
        stack_id: manifest.stack_id,
        resources,
        template_resources: manifest.template_resources,
        outputs: manifest
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), local_api(v)))
            .collect(),
        functions,
        routes,
        schedules,
        streams,
        renames,
        api_id: manifest.api_id,
        users: Vec::new(),
        create_seconds: manifest.create_seconds,
    })
}

async fn create_user(client: &aws_sdk_iam::Client, spec: &UserSpec) -> Result<LocalUser> {
    let id = format!("user {}", spec.name);
    let sdk_error =
        |what: &str, err: &dyn std::fmt::Debug| Error::deploy(&id, format!("{what}: {err:?}"));
    let tag = aws_sdk_iam::types::Tag::builder()
        .key("email")
        .value(&spec.email)
        .build()
        .map_err(|e| sdk_error("Tags", &e))?;
    let created = client
        .create_user()
        .user_name(&spec.name)
        .tags(tag)
        .send()
        .await
        .map_err(|e| sdk_error("CreateUser", &e))?;
    let user = created
        .user()
        .ok_or_else(|| Error::deploy(&id, "CreateUser returned no user"))?;
    let key = client
        .create_access_key()
        .user_name(&spec.name)
        .send()
        .await
        .map_err(|e| sdk_error("CreateAccessKey", &e))?;
    let key = key
        .access_key()
        .ok_or_else(|| Error::deploy(&id, "CreateAccessKey returned no key"))?;
    Ok(LocalUser {
        name: spec.name.clone(),
        role: spec.role.clone(),
        email: spec.email.clone(),
        user_id: user.user_id().to_owned(),
        arn: user.arn().to_owned(),
        access_key_id: key.access_key_id().to_owned(),
        secret_access_key: key.secret_access_key().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        serde_json::from_value(serde_json::json!({
            "stack_id": "arn:aws:cloudformation:us-east-1:123456789012:stack/trailgate/x",
            "create_seconds": 0.5,
            "outputs": {"ApiUrl": "https://abc123.execute-api.us-east-1.amazonaws.com/v1"},
            "resources": [
                {"logical_id": "Fn", "type": "AWS::Lambda::Function", "physical_id": "trailgate-Fn-X1"},
                {"logical_id": "Skipped", "type": "AWS::SNS::Subscription", "physical_id": ""}
            ],
            "template_resources": {"Fn": "AWS::Lambda::Function", "Skipped": "AWS::SNS::Subscription"},
            "functions": [{
                "logical_id": "Fn", "name": "trailgate-Fn-X1", "binary": "trailgate-fn",
                "arn": "arn:aws:lambda:us-east-1:123456789012:function:trailgate-Fn-X1",
                "environment": {"BASE": "https://abc123.execute-api.us-east-1.amazonaws.com/v1/x"}
            }],
            "routes": [{"method": "GET", "path": "/x/{id}", "iam_auth": true,
                "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:trailgate-Fn-X1"}],
            "api_id": "abc123",
            "schedules": [{"expression": "rate(5 minutes)", "input": null,
                "target_arn": "arn:aws:lambda:us-east-1:123456789012:function:trailgate-Fn-X1"}],
            "streams": [{"stream_arn": "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026",
                "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:trailgate-Fn-X1",
                "batch_size": 100, "maximum_retry_attempts": 100, "report_batch_item_failures": true}]
        }))
        .unwrap()
    }

    #[test]
    fn routes_and_schedules_name_the_binary_and_urls_point_at_the_router() {
        let deployment = from_manifest(manifest(), 4567).unwrap();
        assert_eq!(deployment.routes[0].binary, "trailgate-fn");
        assert_eq!(deployment.routes[0].function, "Fn");
        assert!(deployment.routes[0].iam_auth);
        assert_eq!(deployment.schedules[0].binary, "trailgate-fn");
        assert_eq!(deployment.streams[0].binary, "trailgate-fn");
        assert!(deployment.streams[0].report_batch_item_failures);
        assert_eq!(
            deployment.functions[0].environment["BASE"],
            "http://127.0.0.1:4567/v1/x"
        );
        assert_eq!(deployment.outputs["ApiUrl"], "http://127.0.0.1:4567/v1");
        assert_eq!(deployment.renames["trailgate-Fn-X1"], "trailgate-fn");
        // What CloudFormation did not create is not a resource of the stack.
        assert!(!deployment.resources.contains_key("Skipped"));
        assert_eq!(deployment.template_resources.len(), 2);
    }

    #[test]
    fn a_route_to_a_function_outside_the_stack_is_an_error() {
        let mut m = manifest();
        m.routes[0].function_arn = "arn:aws:lambda:us-east-1:123456789012:function:other".into();
        let err = from_manifest(m, 4567).unwrap_err().to_string();
        assert!(err.contains("no function of the stack"), "{err}");
    }
}
