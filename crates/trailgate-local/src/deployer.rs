//! The local deployer: creates template.yaml's resources in moto with the Rust AWS SDK, in
//! dependency order, the way CloudFormation + the SAM transform would (a role per function named
//! `<stack>-<LogicalId>Role-<suffix>`, the state machine from its ASL file with
//! `DefinitionSubstitutions` applied), then the local IAM users and their access keys.
//!
//! Functions are not created in moto (its Lambda needs Docker); they exist as names and ARNs that
//! the router maps to `cargo lambda watch` binaries.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::router::Log;
use crate::router::sigv4::LocalUser;
use crate::state::DeployedResource;
use crate::template::{
    self, ACCOUNT_ID, ApiRoute, Physical, REGION, Resolver, Resource, Schedule, Template,
};

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

/// A function as deployed: its binary and resolved environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedFunction {
    pub logical_id: String,
    pub binary: String,
    /// The deployed function name (the binary name unless `FunctionName` is set).
    pub name: String,
    pub environment: BTreeMap<String, String>,
}

/// Everything the deployer created or learnt.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    pub resources: BTreeMap<String, DeployedResource>,
    pub outputs: BTreeMap<String, String>,
    pub functions: Vec<DeployedFunction>,
    pub routes: Vec<ApiRoute>,
    pub schedules: Vec<Schedule>,
    /// Deployed name → binary, for functions whose name is not their binary.
    pub renames: HashMap<String, String>,
    pub api_id: String,
    pub users: Vec<LocalUser>,
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

/// What the deployer needs to know about its surroundings.
#[derive(Debug)]
pub struct DeployOptions<'a> {
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

/// Resource types that exist in the template but mean nothing locally.
const IGNORED_TYPES: &[&str] = &[
    "AWS::Logs::LogGroup",
    "AWS::Lambda::Permission",
    "AWS::Events::Rule",
    "AWS::Scheduler::Schedule",
    "AWS::Scheduler::ScheduleGroup",
    "AWS::CloudWatch::Alarm",
    "AWS::SNS::TopicPolicy",
    "AWS::ApiGateway::Account",
    "AWS::Lambda::EventInvokeConfig",
    // Resource policies and the link key's customer key: moto enforces no policy, so locally
    // they change nothing (the policy lint and the template tests check them instead).
    "AWS::SecretsManager::ResourcePolicy",
    "AWS::KMS::Key",
    "AWS::S3::BucketPolicy",
];

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

struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    iam: aws_sdk_iam::Client,
    s3: aws_sdk_s3::Client,
    secrets: aws_sdk_secretsmanager::Client,
    sfn: aws_sdk_sfn::Client,
    sns: aws_sdk_sns::Client,
}

/// One node of the deployment graph: a template resource, or a role SAM would create.
#[derive(Debug, Clone)]
enum Node {
    Resource,
    /// The implicit `<LogicalId>Role` of a serverless function or state machine.
    ImplicitRole {
        owner: String,
        trusted_service: &'static str,
    },
}

/// Deploys the template into moto; returns what was created.
pub async fn deploy(template: &Template, options: &DeployOptions<'_>) -> Result<Deployment> {
    let mut resolver = Resolver::new(template, options.parameters)?;
    let config = match options.member {
        Some(member) => {
            resolver = resolver.for_stack(&member.account_id, &member.stack_name);
            sdk_config_as(options.endpoint, member.credentials.clone())
        }
        None => sdk_config(options.endpoint),
    };
    let resources = template.resources(&resolver)?;
    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(&config),
        iam: aws_sdk_iam::Client::new(&config),
        // moto behind the router has no per-bucket host names.
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        ),
        secrets: aws_sdk_secretsmanager::Client::new(&config),
        sfn: aws_sdk_sfn::Client::new(&config),
        sns: aws_sdk_sns::Client::new(&config),
    };
    let mut deployment = Deployment {
        routes: template::api_routes(&resources)?,
        schedules: template::schedules(&resources)?,
        ..Deployment::default()
    };
    for (logical_id, node) in order(&resources)? {
        match node {
            Node::Resource => {
                let resource = &resources[&logical_id];
                deploy_resource(
                    template,
                    resource,
                    &clients,
                    &mut resolver,
                    &mut deployment,
                    options,
                )
                .await?;
            }
            Node::ImplicitRole {
                owner,
                trusted_service,
            } => {
                let owner = &resources[&owner];
                deploy_implicit_role(
                    &logical_id,
                    owner,
                    trusted_service,
                    &clients,
                    &mut resolver,
                    &mut deployment,
                    options,
                )
                .await?;
            }
        }
    }
    for (name, output) in template.outputs(&resolver)? {
        if let Some(condition) = output.get("Condition").and_then(Value::as_str)
            && !resolver.condition(condition)?
        {
            continue;
        }
        let value = resolver.resolve(output.get("Value").unwrap_or(&Value::Null))?;
        let value = match value {
            Value::Array(items) => items
                .iter()
                .filter_map(template::scalar_string)
                .collect::<Vec<_>>()
                .join(","),
            other => template::scalar_string(&other).unwrap_or_else(|| other.to_string()),
        };
        deployment.outputs.insert(name, value);
    }
    for user in options.users {
        deployment
            .users
            .push(create_user(&clients.iam, user).await?);
    }
    options.log.line(format!(
        "deployed {} resources, {} functions, {} routes, {} users",
        deployment.resources.len(),
        deployment.functions.len(),
        deployment.routes.len(),
        deployment.users.len()
    ));
    Ok(deployment)
}

/// The deployment order: dependencies (Ref, GetAtt, Sub, DependsOn) first, alphabetical among
/// equals so runs are repeatable. A cycle is an error, as it is for CloudFormation.
fn order(resources: &BTreeMap<String, Resource>) -> Result<Vec<(String, Node)>> {
    let mut nodes: BTreeMap<String, (Node, BTreeSet<String>)> = BTreeMap::new();
    for (logical_id, resource) in resources {
        let serverless = matches!(
            resource.kind.as_str(),
            "AWS::Serverless::Function" | "AWS::Serverless::StateMachine"
        );
        let mut own = resource.properties.clone();
        let mut depends: BTreeSet<String> = resource.depends_on.iter().cloned().collect();
        if serverless && resource.properties.get("Role").is_none() {
            let role_id = format!("{logical_id}Role");
            let trusted_service = if resource.kind == "AWS::Serverless::Function" {
                "lambda.amazonaws.com"
            } else {
                "states.amazonaws.com"
            };
            // The role carries the policies; the function or state machine only needs the role.
            let policies = own
                .as_object_mut()
                .and_then(|p| p.remove("Policies"))
                .unwrap_or(Value::Null);
            nodes.insert(
                role_id.clone(),
                (
                    Node::ImplicitRole {
                        owner: logical_id.clone(),
                        trusted_service,
                    },
                    template::references(&policies),
                ),
            );
            depends.insert(role_id);
        }
        depends.extend(template::references(&own));
        nodes.insert(logical_id.clone(), (Node::Resource, depends));
    }
    let known: BTreeSet<String> = nodes.keys().cloned().collect();
    for (id, (_, depends)) in nodes.iter_mut() {
        depends.retain(|d| known.contains(d) && d != id);
    }
    let mut ordered = Vec::new();
    let mut done = BTreeSet::new();
    while done.len() < nodes.len() {
        let ready: Vec<String> = nodes
            .iter()
            .filter(|(id, (_, depends))| {
                !done.contains(*id) && depends.iter().all(|d| done.contains(d))
            })
            .map(|(id, _)| id.clone())
            .collect();
        if ready.is_empty() {
            let stuck: Vec<&String> = nodes.keys().filter(|id| !done.contains(*id)).collect();
            return Err(Error::Template(format!(
                "circular dependency between {stuck:?}"
            )));
        }
        for id in ready {
            ordered.push((id.clone(), nodes[&id].0.clone()));
            done.insert(id);
        }
    }
    Ok(ordered)
}

/// A resource's `Tags` as key/value pairs (CloudFormation's list of `{Key, Value}`).
fn tags(properties: &Value) -> Vec<(String, String)> {
    properties
        .get("Tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|tag| {
            (
                text(tag, "Key").unwrap_or_default(),
                text(tag, "Value").unwrap_or_default(),
            )
        })
        .collect()
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(template::scalar_string)
}

fn sdk_error<E: std::fmt::Debug>(logical_id: &str, what: &str, err: E) -> Error {
    Error::deploy(logical_id, format!("{what}: {err:?}"))
}

fn arn(service: &str, region: &str, resource: &str) -> String {
    format!("arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}")
}

fn record(
    deployment: &mut Deployment,
    resolver: &mut Resolver,
    logical_id: &str,
    kind: &str,
    physical: Physical,
    arn: Option<String>,
) {
    deployment.resources.insert(
        logical_id.to_owned(),
        DeployedResource {
            resource_type: kind.to_owned(),
            physical_id: physical.ref_value.clone(),
            arn,
        },
    );
    resolver.register(logical_id, physical);
}

async fn deploy_resource(
    template: &Template,
    resource: &Resource,
    clients: &Clients,
    resolver: &mut Resolver,
    deployment: &mut Deployment,
    options: &DeployOptions<'_>,
) -> Result<()> {
    let id = resource.logical_id.as_str();
    let kind = resource.kind.as_str();
    if IGNORED_TYPES.contains(&kind) {
        // Still answer Ref and GetAtt, so that what refers to it resolves.
        let properties = resolver.resolve(&resource.properties)?;
        let name = text(&properties, "LogGroupName")
            .or_else(|| text(&properties, "Name"))
            .unwrap_or_else(|| template::physical_name(id, 255));
        let arn = match kind {
            "AWS::Logs::LogGroup" => arn("logs", REGION, &format!("log-group:{name}:*")),
            "AWS::KMS::Key" => arn(
                "kms",
                REGION,
                &format!("key/{}", template::stable_token(id, 32, false)),
            ),
            _ => arn("local", REGION, &name),
        };
        options
            .log
            .line(format!("{id} ({kind}): no local meaning, not created"));
        let physical = Physical {
            ref_value: name,
            attributes: BTreeMap::from([("Arn".to_owned(), arn.clone())]),
        };
        record(deployment, resolver, id, kind, physical, Some(arn));
        return Ok(());
    }
    let properties =
        if kind == "AWS::Serverless::Function" || kind == "AWS::Serverless::StateMachine" {
            // Policies were resolved with the implicit role; Events are read from the raw template.
            let mut raw = resource.properties.clone();
            if let Some(map) = raw.as_object_mut() {
                map.remove("Policies");
                map.remove("Events");
            }
            resolver.resolve(&raw)?
        } else {
            resolver.resolve(&resource.properties)?
        };
    let (physical, arn) = match kind {
        "AWS::DynamoDB::Table" => create_table(id, &properties, &clients.dynamodb).await?,
        "AWS::SNS::Topic" => create_topic(id, &properties, &clients.sns).await?,
        "AWS::SNS::Subscription" => create_subscription(id, &properties, &clients.sns).await?,
        "AWS::SecretsManager::Secret" => create_secret(id, &properties, &clients.secrets).await?,
        "AWS::S3::Bucket" => create_bucket(id, &properties, &clients.s3).await?,
        "AWS::IAM::Role" => create_role(id, &properties, &clients.iam, options.log).await?,
        "AWS::IAM::ManagedPolicy" => create_managed_policy(id, &properties, &clients.iam).await?,
        "AWS::IAM::Policy" => put_policy(id, &properties, &clients.iam).await?,
        "AWS::Serverless::Api" => {
            let api_id = template::stable_token(id, 10, false);
            let stage = text(&properties, "StageName").unwrap_or_else(|| "v1".into());
            if stage != crate::router::apigw::STAGE {
                options.log.line(format!(
                    "{id}: stage `{stage}` is served locally as `{}`",
                    crate::router::apigw::STAGE
                ));
            }
            resolver.register_api(&api_id, &format!("127.0.0.1:{}", options.api_port));
            deployment.api_id = api_id.clone();
            let physical = Physical {
                ref_value: api_id.clone(),
                attributes: BTreeMap::from([(
                    "RootResourceId".to_owned(),
                    template::stable_token(&api_id, 10, false),
                )]),
            };
            (
                physical,
                Some(format!("arn:aws:apigateway:{REGION}::/restapis/{api_id}")),
            )
        }
        "AWS::Serverless::Function" => {
            let binary = template::function_binary(resource)?;
            let name = text(&properties, "FunctionName").unwrap_or_else(|| binary.clone());
            if name != binary {
                deployment.renames.insert(name.clone(), binary.clone());
            }
            let environment = match properties.pointer("/Environment/Variables") {
                Some(Value::Object(variables)) => variables
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            template::scalar_string(v).unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect(),
                _ => BTreeMap::new(),
            };
            deployment.functions.push(DeployedFunction {
                logical_id: id.to_owned(),
                binary,
                name: name.clone(),
                environment,
            });
            let function_arn = arn("lambda", REGION, &format!("function:{name}"));
            let physical = Physical {
                ref_value: name,
                attributes: BTreeMap::from([("Arn".to_owned(), function_arn.clone())]),
            };
            (physical, Some(function_arn))
        }
        "AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine" => {
            create_state_machine(template, resource, &properties, resolver, &clients.sfn).await?
        }
        _ => {
            return Err(Error::UnknownResourceType {
                logical_id: id.to_owned(),
                resource_type: kind.to_owned(),
            });
        }
    };
    options
        .log
        .line(format!("{id} ({kind}): {}", physical.ref_value));
    record(deployment, resolver, id, kind, physical, arn);
    Ok(())
}

async fn create_table(
    id: &str,
    p: &Value,
    client: &aws_sdk_dynamodb::Client,
) -> Result<(Physical, Option<String>)> {
    let name = text(p, "TableName").unwrap_or_else(|| template::physical_name(id, 255));
    let table = TableSpec {
        id,
        provisioned: text(p, "BillingMode").as_deref() != Some("PAY_PER_REQUEST"),
    };
    let created = table
        .request(client, &name, p)?
        .send()
        .await
        .map_err(|e| sdk_error(id, "CreateTable", e))?;
    if let Some(ttl) = p.get("TimeToLiveSpecification")
        && ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(false)
    {
        table.enable_time_to_live(client, &name, ttl).await?;
    }
    let description = created.table_description();
    let table_arn = description
        .and_then(|d| d.table_arn())
        .map(str::to_owned)
        .unwrap_or_else(|| arn("dynamodb", REGION, &format!("table/{name}")));
    let mut attributes = BTreeMap::from([("Arn".to_owned(), table_arn.clone())]);
    if let Some(stream_arn) = description.and_then(|d| d.latest_stream_arn()) {
        attributes.insert("StreamArn".to_owned(), stream_arn.to_owned());
    }
    Ok((
        Physical {
            ref_value: name,
            attributes,
        },
        Some(table_arn),
    ))
}

/// An `AWS::DynamoDB::Table`'s properties as CreateTable's parts.
struct TableSpec<'a> {
    id: &'a str,
    /// Not `PAY_PER_REQUEST`: the table and its global indexes get throughput.
    provisioned: bool,
}

impl TableSpec<'_> {
    fn build(&self, what: &str, err: aws_sdk_dynamodb::error::BuildError) -> Error {
        sdk_error(self.id, what, err)
    }

    /// The CreateTable call: keys, billing, attributes, indexes, stream and tags.
    fn request(
        &self,
        client: &aws_sdk_dynamodb::Client,
        name: &str,
        p: &Value,
    ) -> Result<aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, LocalSecondaryIndex,
            ScalarAttributeType, StreamSpecification, StreamViewType, Tag,
        };
        let mut request = client
            .create_table()
            .table_name(name)
            .set_key_schema(Some(self.key_schema(p.get("KeySchema"))?))
            .billing_mode(if self.provisioned {
                BillingMode::Provisioned
            } else {
                BillingMode::PayPerRequest
            })
            .set_provisioned_throughput(self.throughput(p.get("ProvisionedThroughput"))?);
        for definition in list(p, "AttributeDefinitions") {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(text(definition, "AttributeName").unwrap_or_default())
                    .attribute_type(ScalarAttributeType::from(
                        text(definition, "AttributeType")
                            .unwrap_or_default()
                            .as_str(),
                    ))
                    .build()
                    .map_err(|e| self.build("AttributeDefinitions", e))?,
            );
        }
        for index in list(p, "GlobalSecondaryIndexes") {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(text(index, "IndexName").unwrap_or_default())
                    .set_key_schema(Some(self.key_schema(index.get("KeySchema"))?))
                    .projection(projection(index.get("Projection")))
                    .set_provisioned_throughput(
                        self.throughput(index.get("ProvisionedThroughput"))?,
                    )
                    .build()
                    .map_err(|e| self.build("GlobalSecondaryIndexes", e))?,
            );
        }
        for index in list(p, "LocalSecondaryIndexes") {
            request = request.local_secondary_indexes(
                LocalSecondaryIndex::builder()
                    .index_name(text(index, "IndexName").unwrap_or_default())
                    .set_key_schema(Some(self.key_schema(index.get("KeySchema"))?))
                    .projection(projection(index.get("Projection")))
                    .build()
                    .map_err(|e| self.build("LocalSecondaryIndexes", e))?,
            );
        }
        if let Some(stream) = p.get("StreamSpecification") {
            request = request.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(
                        text(stream, "StreamViewType").unwrap_or_default().as_str(),
                    ))
                    .build()
                    .map_err(|e| self.build("StreamSpecification", e))?,
            );
        }
        for (key, value) in tags(p) {
            request = request.tags(
                Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(|e| self.build("Tags", e))?,
            );
        }
        Ok(request)
    }

    fn key_schema(
        &self,
        value: Option<&Value>,
    ) -> Result<Vec<aws_sdk_dynamodb::types::KeySchemaElement>> {
        use aws_sdk_dynamodb::types::{KeySchemaElement, KeyType};
        let mut out = Vec::new();
        for element in value.and_then(Value::as_array).into_iter().flatten() {
            out.push(
                KeySchemaElement::builder()
                    .attribute_name(text(element, "AttributeName").unwrap_or_default())
                    .key_type(KeyType::from(
                        text(element, "KeyType").unwrap_or_default().as_str(),
                    ))
                    .build()
                    .map_err(|e| self.build("KeySchema", e))?,
            );
        }
        Ok(out)
    }

    /// Throughput of a provisioned table or index (5 units unless given); none on demand.
    fn throughput(
        &self,
        value: Option<&Value>,
    ) -> Result<Option<aws_sdk_dynamodb::types::ProvisionedThroughput>> {
        if !self.provisioned {
            return Ok(None);
        }
        let value = value.cloned().unwrap_or(Value::Null);
        let units = |key: &str| text(&value, key).and_then(|s| s.parse().ok()).unwrap_or(5);
        Ok(Some(
            aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
                .read_capacity_units(units("ReadCapacityUnits"))
                .write_capacity_units(units("WriteCapacityUnits"))
                .build()
                .map_err(|e| self.build("ProvisionedThroughput", e))?,
        ))
    }

    /// TTL is not part of CreateTable: UpdateTimeToLive once the table exists.
    async fn enable_time_to_live(
        &self,
        client: &aws_sdk_dynamodb::Client,
        name: &str,
        ttl: &Value,
    ) -> Result<()> {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(text(ttl, "AttributeName").unwrap_or_default())
                    .build()
                    .map_err(|e| self.build("TimeToLiveSpecification", e))?,
            )
            .send()
            .await
            .map_err(|e| sdk_error(self.id, "UpdateTimeToLive", e))?;
        Ok(())
    }
}

/// An index's projection: `ALL` unless given.
fn projection(value: Option<&Value>) -> aws_sdk_dynamodb::types::Projection {
    use aws_sdk_dynamodb::types::{Projection, ProjectionType};
    let value = value.cloned().unwrap_or(Value::Null);
    Projection::builder()
        .projection_type(ProjectionType::from(
            text(&value, "ProjectionType")
                .unwrap_or_else(|| "ALL".into())
                .as_str(),
        ))
        .set_non_key_attributes(
            value
                .get("NonKeyAttributes")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(template::scalar_string).collect()),
        )
        .build()
}

/// The items of a list property; none when it is absent or not a list.
fn list<'a>(p: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    p.get(key).and_then(Value::as_array).into_iter().flatten()
}

async fn create_topic(
    id: &str,
    p: &Value,
    client: &aws_sdk_sns::Client,
) -> Result<(Physical, Option<String>)> {
    let fifo = text(p, "FifoTopic").as_deref() == Some("true");
    let name = text(p, "TopicName").unwrap_or_else(|| {
        let base = template::physical_name(id, 251);
        if fifo { format!("{base}.fifo") } else { base }
    });
    let mut request = client.create_topic().name(&name);
    for (key, attribute) in [
        ("DisplayName", "DisplayName"),
        ("KmsMasterKeyId", "KmsMasterKeyId"),
        ("FifoTopic", "FifoTopic"),
        ("ContentBasedDeduplication", "ContentBasedDeduplication"),
    ] {
        if let Some(value) = text(p, key) {
            request = request.attributes(attribute, value);
        }
    }
    for (key, value) in tags(p) {
        request = request.tags(
            aws_sdk_sns::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| sdk_error(id, "Tags", e))?,
        );
    }
    let created = request
        .send()
        .await
        .map_err(|e| sdk_error(id, "CreateTopic", e))?;
    let topic_arn = created
        .topic_arn()
        .map(str::to_owned)
        .unwrap_or_else(|| arn("sns", REGION, &name));
    for subscription in p
        .get("Subscription")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        client
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol(text(subscription, "Protocol").unwrap_or_default())
            .endpoint(text(subscription, "Endpoint").unwrap_or_default())
            .send()
            .await
            .map_err(|e| sdk_error(id, "Subscribe", e))?;
    }
    let physical = Physical {
        ref_value: topic_arn.clone(),
        attributes: BTreeMap::from([
            ("TopicArn".to_owned(), topic_arn.clone()),
            ("TopicName".to_owned(), name),
        ]),
    };
    Ok((physical, Some(topic_arn)))
}

async fn create_subscription(
    id: &str,
    p: &Value,
    client: &aws_sdk_sns::Client,
) -> Result<(Physical, Option<String>)> {
    let mut request = client
        .subscribe()
        .topic_arn(text(p, "TopicArn").unwrap_or_default())
        .protocol(text(p, "Protocol").unwrap_or_default())
        .set_endpoint(text(p, "Endpoint"))
        .return_subscription_arn(true);
    for key in ["FilterPolicy", "RedrivePolicy", "DeliveryPolicy"] {
        match p.get(key) {
            // CloudFormation takes these as objects; the API wants JSON strings.
            Some(Value::Object(_)) => request = request.attributes(key, p[key].to_string()),
            Some(Value::String(s)) => request = request.attributes(key, s.clone()),
            _ => {}
        }
    }
    for key in ["FilterPolicyScope", "RawMessageDelivery"] {
        if let Some(value) = text(p, key) {
            request = request.attributes(key, value);
        }
    }
    let created = request
        .send()
        .await
        .map_err(|e| sdk_error(id, "Subscribe", e))?;
    let subscription_arn = created.subscription_arn().unwrap_or_default().to_owned();
    Ok((
        Physical {
            ref_value: subscription_arn.clone(),
            attributes: BTreeMap::new(),
        },
        Some(subscription_arn),
    ))
}

/// An `AWS::S3::Bucket` with what the ledger archive uses of it: Object Lock with a default
/// retention, versioning and the public access block (moto keeps and enforces the lock;
/// encryption and ownership controls mean nothing locally).
async fn create_bucket(
    id: &str,
    p: &Value,
    client: &aws_sdk_s3::Client,
) -> Result<(Physical, Option<String>)> {
    use aws_sdk_s3::types::{
        BucketVersioningStatus, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled,
        ObjectLockRetentionMode, ObjectLockRule, PublicAccessBlockConfiguration,
        VersioningConfiguration,
    };
    // Bucket names are lower case, unlike CloudFormation's other generated names.
    let name =
        text(p, "BucketName").unwrap_or_else(|| template::physical_name(id, 63).to_lowercase());
    let locked = text(p, "ObjectLockEnabled").as_deref() == Some("true");
    client
        .create_bucket()
        .bucket(&name)
        .object_lock_enabled_for_bucket(locked)
        .send()
        .await
        .map_err(|e| sdk_error(id, "CreateBucket", e))?;
    if p.pointer("/VersioningConfiguration/Status")
        .and_then(Value::as_str)
        == Some("Enabled")
    {
        client
            .put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error(id, "PutBucketVersioning", e))?;
    }
    if let Some(retention) = p.pointer("/ObjectLockConfiguration/Rule/DefaultRetention") {
        let days = text(retention, "Days")
            .map(|days| {
                days.parse::<i32>()
                    .map_err(|_| Error::deploy(id, format!("DefaultRetention Days `{days}`")))
            })
            .transpose()?;
        let mode = ObjectLockRetentionMode::from(
            text(retention, "Mode")
                .unwrap_or_else(|| "COMPLIANCE".into())
                .as_str(),
        );
        client
            .put_object_lock_configuration()
            .bucket(&name)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(
                        ObjectLockRule::builder()
                            .default_retention(
                                DefaultRetention::builder()
                                    .mode(mode)
                                    .set_days(days)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error(id, "PutObjectLockConfiguration", e))?;
    }
    if let Some(block) = p.get("PublicAccessBlockConfiguration") {
        let flag = |key: &str| text(block, key).as_deref() == Some("true");
        client
            .put_public_access_block()
            .bucket(&name)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(flag("BlockPublicAcls"))
                    .block_public_policy(flag("BlockPublicPolicy"))
                    .ignore_public_acls(flag("IgnorePublicAcls"))
                    .restrict_public_buckets(flag("RestrictPublicBuckets"))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error(id, "PutPublicAccessBlock", e))?;
    }
    let bucket_arn = format!("arn:aws:s3:::{name}");
    let physical = Physical {
        ref_value: name.clone(),
        attributes: BTreeMap::from([
            ("Arn".to_owned(), bucket_arn.clone()),
            ("DomainName".to_owned(), format!("{name}.s3.amazonaws.com")),
        ]),
    };
    Ok((physical, Some(bucket_arn)))
}

/// A random alphanumeric secret: what GenerateSecretString gives with `ExcludePunctuation`,
/// generated locally since moto's CloudFormation is not involved.
fn generate_secret(length: usize) -> String {
    use rand::Rng as _;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

async fn create_secret(
    id: &str,
    p: &Value,
    client: &aws_sdk_secretsmanager::Client,
) -> Result<(Physical, Option<String>)> {
    let name = text(p, "Name")
        .unwrap_or_else(|| format!("{id}-{}", template::stable_token(id, 12, false)));
    let value = match (text(p, "SecretString"), p.get("GenerateSecretString")) {
        (Some(value), _) => value,
        (None, Some(generate)) => {
            let length = text(generate, "PasswordLength")
                .and_then(|s| s.parse().ok())
                .unwrap_or(32);
            let secret = generate_secret(length);
            match (
                text(generate, "SecretStringTemplate"),
                text(generate, "GenerateStringKey"),
            ) {
                (Some(template_text), Some(key)) => {
                    let mut document: Map<String, Value> = serde_json::from_str(&template_text)
                        .map_err(|e| Error::deploy(id, format!("SecretStringTemplate: {e}")))?;
                    document.insert(key, Value::String(secret));
                    Value::Object(document).to_string()
                }
                _ => secret,
            }
        }
        (None, None) => generate_secret(32),
    };
    let created = client
        .create_secret()
        .name(&name)
        .set_description(text(p, "Description"))
        .secret_string(value)
        .send()
        .await
        .map_err(|e| sdk_error(id, "CreateSecret", e))?;
    let secret_arn = created.arn().unwrap_or_default().to_owned();
    let physical = Physical {
        ref_value: secret_arn.clone(),
        attributes: BTreeMap::from([("Id".to_owned(), secret_arn.clone())]),
    };
    Ok((physical, Some(secret_arn)))
}

fn policy_document(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn create_role_with(
    id: &str,
    name: &str,
    p: &Value,
    trust: String,
    client: &aws_sdk_iam::Client,
) -> Result<(Physical, Option<String>)> {
    let mut request = client
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .set_path(text(p, "Path"))
        .set_description(text(p, "Description"))
        .set_permissions_boundary(text(p, "PermissionsBoundary"))
        .set_max_session_duration(text(p, "MaxSessionDuration").and_then(|s| s.parse().ok()));
    for (key, value) in tags(p) {
        request = request.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| sdk_error(id, "Tags", e))?,
        );
    }
    let created = request
        .send()
        .await
        .map_err(|e| sdk_error(id, "CreateRole", e))?;
    let role = created.role();
    let role_arn = role
        .map(|r| r.arn().to_owned())
        .unwrap_or_else(|| format!("arn:aws:iam::{ACCOUNT_ID}:role/{name}"));
    let mut attributes = BTreeMap::from([("Arn".to_owned(), role_arn.clone())]);
    if let Some(role) = role {
        attributes.insert("RoleId".to_owned(), role.role_id().to_owned());
    }
    Ok((
        Physical {
            ref_value: name.to_owned(),
            attributes,
        },
        Some(role_arn),
    ))
}

async fn attach_managed_policies(
    id: &str,
    role: &str,
    arns: &[String],
    client: &aws_sdk_iam::Client,
    log: &Log,
) -> Result<()> {
    for policy_arn in arns {
        let attached = client
            .attach_role_policy()
            .role_name(role)
            .policy_arn(policy_arn)
            .send()
            .await;
        match attached {
            Ok(_) => {}
            // moto does not load AWS managed policies by default; they carry no local meaning.
            Err(err) if policy_arn.starts_with("arn:aws:iam::aws:policy/") => {
                log.line(format!(
                    "{id}: AWS managed policy {policy_arn} not attached locally ({err})"
                ));
            }
            Err(err) => return Err(sdk_error(id, "AttachRolePolicy", err)),
        }
    }
    Ok(())
}

async fn create_role(
    id: &str,
    p: &Value,
    client: &aws_sdk_iam::Client,
    log: &Log,
) -> Result<(Physical, Option<String>)> {
    let name = text(p, "RoleName").unwrap_or_else(|| template::physical_name(id, 64));
    let trust = policy_document(p.get("AssumeRolePolicyDocument").unwrap_or(&Value::Null));
    let created = create_role_with(id, &name, p, trust, client).await?;
    for policy in p
        .get("Policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        client
            .put_role_policy()
            .role_name(&name)
            .policy_name(text(policy, "PolicyName").unwrap_or_default())
            .policy_document(policy_document(
                policy.get("PolicyDocument").unwrap_or(&Value::Null),
            ))
            .send()
            .await
            .map_err(|e| sdk_error(id, "PutRolePolicy", e))?;
    }
    let managed: Vec<String> = p
        .get("ManagedPolicyArns")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(template::scalar_string).collect())
        .unwrap_or_default();
    attach_managed_policies(id, &name, &managed, client, log).await?;
    Ok(created)
}

async fn create_managed_policy(
    id: &str,
    p: &Value,
    client: &aws_sdk_iam::Client,
) -> Result<(Physical, Option<String>)> {
    let name = text(p, "ManagedPolicyName").unwrap_or_else(|| template::physical_name(id, 128));
    let created = client
        .create_policy()
        .policy_name(&name)
        .policy_document(policy_document(
            p.get("PolicyDocument").unwrap_or(&Value::Null),
        ))
        .set_path(text(p, "Path"))
        .set_description(text(p, "Description"))
        .send()
        .await
        .map_err(|e| sdk_error(id, "CreatePolicy", e))?;
    let policy_arn = created
        .policy()
        .and_then(|policy| policy.arn())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("arn:aws:iam::{ACCOUNT_ID}:policy/{name}"));
    for role in p
        .get("Roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        client
            .attach_role_policy()
            .role_name(role)
            .policy_arn(&policy_arn)
            .send()
            .await
            .map_err(|e| sdk_error(id, "AttachRolePolicy", e))?;
    }
    for user in p
        .get("Users")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        client
            .attach_user_policy()
            .user_name(user)
            .policy_arn(&policy_arn)
            .send()
            .await
            .map_err(|e| sdk_error(id, "AttachUserPolicy", e))?;
    }
    let physical = Physical {
        ref_value: policy_arn.clone(),
        attributes: BTreeMap::from([("PolicyArn".to_owned(), policy_arn.clone())]),
    };
    Ok((physical, Some(policy_arn)))
}

async fn put_policy(
    id: &str,
    p: &Value,
    client: &aws_sdk_iam::Client,
) -> Result<(Physical, Option<String>)> {
    let name = text(p, "PolicyName").unwrap_or_else(|| template::physical_name(id, 128));
    let document = policy_document(p.get("PolicyDocument").unwrap_or(&Value::Null));
    for role in p
        .get("Roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        client
            .put_role_policy()
            .role_name(role)
            .policy_name(&name)
            .policy_document(&document)
            .send()
            .await
            .map_err(|e| sdk_error(id, "PutRolePolicy", e))?;
    }
    for user in p
        .get("Users")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        client
            .put_user_policy()
            .user_name(user)
            .policy_name(&name)
            .policy_document(&document)
            .send()
            .await
            .map_err(|e| sdk_error(id, "PutUserPolicy", e))?;
    }
    Ok((
        Physical {
            ref_value: name,
            attributes: BTreeMap::new(),
        },
        None,
    ))
}

/// The statements of a SAM policy template, for the templates trailgate uses and their close
/// relatives; `None` for others (IAM is not enforced by moto, so a missing one changes nothing
/// locally, and the deployer logs it).
fn sam_policy_template(name: &str, args: &Value) -> Option<Vec<Value>> {
    let arg = |key: &str| text(args, key).unwrap_or_default();
    let table = |actions: &[&str]| {
        let table = arg("TableName");
        vec![json!({
            "Effect": "Allow",
            "Action": actions.iter().map(|a| format!("dynamodb:{a}")).collect::<Vec<_>>(),
            "Resource": [
                arn("dynamodb", REGION, &format!("table/{table}")),
                arn("dynamodb", REGION, &format!("table/{table}/index/*")),
            ],
        })]
    };
    Some(match name {
        "DynamoDBCrudPolicy" => table(&[
            "GetItem",
            "DeleteItem",
            "PutItem",
            "Scan",
            "Query",
            "UpdateItem",
            "BatchWriteItem",
            "BatchGetItem",
            "DescribeTable",
            "ConditionCheckItem",
        ]),
        "DynamoDBReadPolicy" => {
            table(&["GetItem", "Scan", "Query", "BatchGetItem", "DescribeTable"])
        }
        "DynamoDBWritePolicy" => table(&["PutItem", "UpdateItem", "BatchWriteItem"]),
        "SNSPublishMessagePolicy" => vec![json!({
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": arn("sns", REGION, &arg("TopicName")),
        })],
        "SNSCrudPolicy" => vec![json!({
            "Effect": "Allow",
            "Action": ["sns:ListSubscriptionsByTopic", "sns:CreateTopic", "sns:SetTopicAttributes", "sns:Subscribe", "sns:Publish"],
            "Resource": arn("sns", REGION, &format!("{}*", arg("TopicName"))),
        })],
        "LambdaInvokePolicy" => vec![json!({
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": [
                arn("lambda", REGION, &format!("function:{}", arg("FunctionName"))),
                arn("lambda", REGION, &format!("function:{}:*", arg("FunctionName"))),
            ],
        })],
        "StepFunctionsExecutionPolicy" => vec![json!({
            "Effect": "Allow",
            "Action": ["states:StartExecution"],
            "Resource": arn("states", REGION, &format!("stateMachine:{}", arg("StateMachineName"))),
        })],
        "AWSSecretsManagerGetSecretValuePolicy" => vec![json!({
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": arg("SecretArn"),
        })],
        "CloudWatchPutMetricPolicy" => vec![json!({
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": "*",
        })],
        _ => return None,
    })
}

/// Creates the role SAM generates for a function or state machine: trust for the service,
/// one inline policy per `Policies` entry, customer managed policies attached.
async fn deploy_implicit_role(
    role_id: &str,
    owner: &Resource,
    trusted_service: &str,
    clients: &Clients,
    resolver: &mut Resolver,
    deployment: &mut Deployment,
    options: &DeployOptions<'_>,
) -> Result<()> {
    let name = template::physical_name(role_id, 64);
    let trust = match owner.properties.get("AssumeRolePolicyDocument") {
        Some(document) => policy_document(&resolver.resolve(document)?),
        None => json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": [trusted_service]}, "Action": ["sts:AssumeRole"]}],
        })
        .to_string(),
    };
    let role_properties = json!({
        "PermissionsBoundary": resolver.resolve(owner.properties.get("PermissionsBoundary").unwrap_or(&Value::Null))?,
        "Tags": [{"Key": "lambda:createdBy", "Value": "SAM"}],
    });
    let (physical, role_arn) =
        create_role_with(role_id, &name, &role_properties, trust, &clients.iam).await?;
    let policies =
        match resolver.resolve(owner.properties.get("Policies").unwrap_or(&Value::Null))? {
            Value::Null => Vec::new(),
            Value::Array(items) => items,
            one => vec![one],
        };
    let mut managed = Vec::new();
    for (index, policy) in policies.iter().enumerate() {
        let statements = match policy {
            Value::String(managed_policy) => {
                // SAM takes a managed policy name or ARN.
                managed.push(if managed_policy.starts_with("arn:") {
                    managed_policy.clone()
                } else {
                    format!("arn:aws:iam::aws:policy/{managed_policy}")
                });
                continue;
            }
            Value::Object(map) if map.contains_key("Statement") => map["Statement"].clone(),
            Value::Object(map) if map.len() == 1 => {
                let (template_name, args) = map.iter().next().expect("one entry");
                match sam_policy_template(template_name, args) {
                    Some(statements) => Value::Array(statements),
                    None => {
                        options.log.line(format!(
                            "{role_id}: SAM policy template {template_name} is not expanded locally"
                        ));
                        continue;
                    }
                }
            }
            other => {
                return Err(Error::deploy(
                    role_id,
                    format!("unsupported Policies entry {other}"),
                ));
            }
        };
        let document = json!({"Version": "2012-10-17", "Statement": statements});
        clients
            .iam
            .put_role_policy()
            .role_name(&name)
            .policy_name(format!("{role_id}Policy{index}"))
            .policy_document(document.to_string())
            .send()
            .await
            .map_err(|e| sdk_error(role_id, "PutRolePolicy", e))?;
    }
    attach_managed_policies(role_id, &name, &managed, &clients.iam, options.log).await?;
    options.log.line(format!(
        "{role_id} (implicit role of {}): {name}",
        owner.logical_id
    ));
    record(
        deployment,
        resolver,
        role_id,
        "AWS::IAM::Role",
        physical,
        role_arn,
    );
    Ok(())
}

async fn create_state_machine(
    template: &Template,
    resource: &Resource,
    p: &Value,
    resolver: &Resolver,
    client: &aws_sdk_sfn::Client,
) -> Result<(Physical, Option<String>)> {
    let id = resource.logical_id.as_str();
    let mut definition = if let Some(definition) = p.get("Definition").filter(|d| d.is_object()) {
        definition.to_string()
    } else if let Some(definition) = text(p, "DefinitionString") {
        definition
    } else if let Some(uri) = p.get("DefinitionUri").and_then(Value::as_str) {
        let path = template.dir.join(uri);
        std::fs::read_to_string(&path)
            .map_err(|err| Error::io(format!("{id}: reading {}", path.display()), err))?
    } else {
        return Err(Error::deploy(
            id,
            "no Definition, DefinitionString or local DefinitionUri",
        ));
    };
    if let Some(Value::Object(substitutions)) = p.get("DefinitionSubstitutions") {
        for (key, value) in substitutions {
            let value = template::scalar_string(value).unwrap_or_else(|| value.to_string());
            definition = definition.replace(&format!("${{{key}}}"), &value);
        }
    }
    let leftover = regex::Regex::new(r"\$\{[A-Za-z0-9_]+\}").expect("valid regex");
    if let Some(found) = leftover.find(&definition) {
        return Err(Error::deploy(
            id,
            format!(
                "`{}` in the definition has no DefinitionSubstitutions entry",
                found.as_str()
            ),
        ));
    }
    let role_arn = match text(p, "Role").or_else(|| text(p, "RoleArn")) {
        Some(role) => role,
        None => resolver
            .physical(&format!("{id}Role"))
            .and_then(|role| role.attributes.get("Arn").cloned())
            .ok_or_else(|| Error::deploy(id, "no role"))?,
    };
    let name = text(p, "Name")
        .or_else(|| text(p, "StateMachineName"))
        .unwrap_or_else(|| format!("{id}-{}", template::stable_token(id, 12, true)));
    let kind = text(p, "Type")
        .or_else(|| text(p, "StateMachineType"))
        .unwrap_or_else(|| "STANDARD".into());
    let created = client
        .create_state_machine()
        .name(&name)
        .definition(definition)
        .role_arn(role_arn)
        .r#type(aws_sdk_sfn::types::StateMachineType::from(kind.as_str()))
        .send()
        .await
        .map_err(|e| sdk_error(id, "CreateStateMachine", e))?;
    let machine_arn = created.state_machine_arn().to_owned();
    let physical = Physical {
        ref_value: machine_arn.clone(),
        attributes: BTreeMap::from([
            ("Arn".to_owned(), machine_arn.clone()),
            ("Name".to_owned(), name),
        ]),
    };
    Ok((physical, Some(machine_arn)))
}

async fn create_user(client: &aws_sdk_iam::Client, spec: &UserSpec) -> Result<LocalUser> {
    let id = format!("user {}", spec.name);
    let created = client
        .create_user()
        .user_name(&spec.name)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("email")
                .value(&spec.email)
                .build()
                .map_err(|e| sdk_error(&id, "Tags", e))?,
        )
        .send()
        .await
        .map_err(|e| sdk_error(&id, "CreateUser", e))?;
    let user = created
        .user()
        .ok_or_else(|| Error::deploy(&id, "CreateUser returned no user"))?;
    let key = client
        .create_access_key()
        .user_name(&spec.name)
        .send()
        .await
        .map_err(|e| sdk_error(&id, "CreateAccessKey", e))?;
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
    use std::path::Path;

    use super::*;

    const FIXTURE: &str = r#"
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: crates/trailgate-fn
      Environment: {Variables: {TABLE: !Ref Table}}
      Policies:
        - DynamoDBCrudPolicy: {TableName: !Ref Table}
  Target:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement: [{Effect: Allow, Principal: {AWS: !GetAtt FnRole.Arn}, Action: sts:AssumeRole}]
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionSubstitutions: {FnArn: !GetAtt Fn.Arn}
      Policies: [{LambdaInvokePolicy: {FunctionName: !Ref Fn}}]
  Logs:
    Type: AWS::Logs::LogGroup
"#;

    #[test]
    fn orders_resources_and_implicit_roles_by_dependency() {
        let template = Template::parse(FIXTURE, Path::new("/repo")).unwrap();
        let resolver = Resolver::new(&template, &BTreeMap::new()).unwrap();
        let resources = template.resources(&resolver).unwrap();
        let ids: Vec<String> = order(&resources)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let position = |id: &str| ids.iter().position(|x| x == id).unwrap();
        assert!(position("Table") < position("FnRole"));
        assert!(position("FnRole") < position("Fn"));
        assert!(position("FnRole") < position("Target"));
        assert!(position("Fn") < position("MachineRole"));
        assert!(position("MachineRole") < position("Machine"));
        assert_eq!(ids.len(), 7);
    }

    #[test]
    fn reports_cycles() {
        let text = "Resources:\n  A:\n    Type: AWS::SNS::Topic\n    Properties: {TopicName: !Ref B}\n  B:\n    Type: AWS::SNS::Topic\n    Properties: {TopicName: !Ref A}\n";
        let template = Template::parse(text, Path::new("/repo")).unwrap();
        let resolver = Resolver::new(&template, &BTreeMap::new()).unwrap();
        let err = order(&template.resources(&resolver).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("circular dependency"), "{err}");
    }

    #[test]
    fn expands_sam_policy_templates() {
        let statements = sam_policy_template(
            "LambdaInvokePolicy",
            &json!({"FunctionName": "trailgate-grant"}),
        )
        .unwrap();
        assert_eq!(
            statements[0]["Resource"][0],
            "arn:aws:lambda:us-east-1:123456789012:function:trailgate-grant"
        );
        let statements =
            sam_policy_template("SNSPublishMessagePolicy", &json!({"TopicName": "alerts"}))
                .unwrap();
        assert_eq!(
            statements[0]["Resource"],
            "arn:aws:sns:us-east-1:123456789012:alerts"
        );
        assert!(sam_policy_template("SomethingElse", &json!({})).is_none());
    }

    #[test]
    fn environment_union_rejects_conflicts() {
        let function = |id: &str, value: &str| DeployedFunction {
            logical_id: id.into(),
            binary: id.into(),
            name: id.into(),
            environment: BTreeMap::from([
                ("LEDGER_TABLE".to_owned(), "t".to_owned()),
                ("X".to_owned(), value.to_owned()),
            ]),
        };
        let mut deployment = Deployment {
            functions: vec![function("A", "1"), function("B", "1")],
            ..Deployment::default()
        };
        assert_eq!(deployment.function_environment().unwrap().len(), 2);
        deployment.functions.push(function("C", "2"));
        let err = deployment.function_environment().unwrap_err().to_string();
        assert!(err.contains("`X` is `1` in A but `2` in C"), "{err}");
    }

    #[test]
    fn generates_alphanumeric_secrets() {
        let secret = generate_secret(64);
        assert_eq!(secret.len(), 64);
        assert!(secret.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
