//! template.yaml and member/template.yaml as plain JSON, for the checks that read their IAM
//! documents (the parliament lint, the IAM evaluator): `!Sub`, `!Ref` and `!GetAtt` resolved to
//! values of the shape AWS would give (parameters at their defaults unless given), for the stack
//! `trailgate` in account 123456789012, us-east-1, and its member stack in 111111111111.

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value as Json, json};
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The account the resolved documents name.
pub const ACCOUNT: &str = "123456789012";
/// The Region the resolved documents name.
pub const REGION: &str = "us-east-1";
/// The stack name the resolved documents name.
pub const STACK: &str = "trailgate";

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The parsed template with each resource's type, including the role SAM creates for each
/// function and state machine (`<LogicalId>Role`).
pub struct Template {
    /// The parsed YAML.
    pub yaml: Yaml,
    names: Names,
}

/// What the template's references resolve to: resource types, parameter values, and the
/// stack's account and name.
struct Names {
    types: BTreeMap<String, String>,
    parameters: BTreeMap<String, Json>,
    account: String,
    stack: String,
}

/// The hub's function roles (logical ids) that member stacks trust: the stack output
/// `AgentTrustedRoleArns`.
pub const AGENT_TRUSTED_ROLES: [&str; 6] = [
    "IntakeFunctionRole",
    "GrantFunctionRole",
    "RevokeFunctionRole",
    "ReconcileFunctionRole",
    "ContextFunctionRole",
    "AuditFunctionRole",
];

/// The hub's function roles (logical ids) whose agent sessions may write revocations in a
/// member account: the stack output `AgentWriterRoleArns` (intake for early revokes, revoke,
/// reconcile).
pub const AGENT_WRITER_ROLES: [&str; 3] = [
    "IntakeFunctionRole",
    "RevokeFunctionRole",
    "ReconcileFunctionRole",
];

/// The member account the member template is resolved for.
pub const MEMBER_ACCOUNT: &str = "111111111111";
/// The Organization id the resolved documents name.
pub const ORGANIZATION: &str = "o-exampleorg1";

impl Template {
    /// Reads template.yaml from the repository, its parameters at their defaults.
    pub fn load() -> Result<Template> {
        Template::load_file("template.yaml", ACCOUNT, STACK, &[])
    }

    /// Reads member/template.yaml as deployed in [`MEMBER_ACCOUNT`] for the hub of
    /// [`Template::load`]: its `HubRoleArns` are the hub's function roles.
    pub fn load_member() -> Result<Template> {
        let hub = Template::load()?;
        let hub_roles: Vec<Json> = AGENT_TRUSTED_ROLES
            .iter()
            .map(|role| Json::String(hub.reference(role)))
            .collect();
        Template::load_file(
            "member/template.yaml",
            MEMBER_ACCOUNT,
            "trailgate-member",
            &[
                ("HubRoleArns", Json::Array(hub_roles)),
                (
                    "HubWriterRoleArns",
                    Json::Array(
                        AGENT_WRITER_ROLES
                            .iter()
                            .map(|role| Json::String(hub.reference(role)))
                            .collect(),
                    ),
                ),
                (
                    "CredentialsRoleArn",
                    Json::String(hub.reference("CredentialsFunctionRole")),
                ),
                ("OrganizationId", Json::String(ORGANIZATION.to_owned())),
                ("CreateSampleRole", Json::String("true".to_owned())),
            ],
        )
    }

    /// Reads `file` (relative to the repository) as the stack `stack` in `account`, with
    /// `parameters` over the template's defaults.
    pub fn load_file(
        file: &str,
        account: &str,
        stack: &str,
        parameters: &[(&str, Json)],
    ) -> Result<Template> {
        let yaml: Yaml = serde_yaml::from_str(&std::fs::read_to_string(root().join(file))?)?;
        let mut values = BTreeMap::new();
        for (name, declaration) in yaml
            .get("Parameters")
            .and_then(Yaml::as_mapping)
            .into_iter()
            .flatten()
        {
            if let (Some(name), Some(default)) = (name.as_str(), declaration.get("Default")) {
                let default = match default {
                    Yaml::String(text) => text.clone(),
                    other => serde_yaml::to_string(other)?.trim().to_owned(),
                };
                values.insert(name.to_owned(), Json::String(default));
            }
        }
        for (name, value) in parameters {
            values.insert((*name).to_owned(), value.clone());
        }
        let names = Names {
            types: resource_types(&yaml),
            parameters: values,
            account: account.to_owned(),
            stack: stack.to_owned(),
        };
        Ok(Template { yaml, names })
    }

    /// The resource `id`'s `Properties`.
    pub fn properties(&self, id: &str) -> Result<&Yaml> {
        self.yaml
            .get("Resources")
            .and_then(|resources| resources.get(id))
            .and_then(|resource| resource.get("Properties"))
            .with_context(|| format!("template.yaml has no resource {id} with Properties"))
    }

    /// What `!Ref`/`!GetAtt` of a resource gives, in the shape AWS would give it.
    pub fn reference(&self, target: &str) -> String {
        reference(&self.names, target)
    }

    /// The template value as plain JSON, with `!Sub`, `!Ref` and `!GetAtt` resolved.
    pub fn resolve(&self, value: &Yaml) -> Json {
        resolve(&self.names, value)
    }

    /// Whether the template's condition `name` holds for the parameters (`!Equals`, `!Not`,
    /// `!And`, `!Or` and `!Condition`, the forms template.yaml uses).
    pub fn condition(&self, name: &str) -> Result<bool> {
        let declared = self
            .yaml
            .get("Conditions")
            .and_then(|conditions| conditions.get(name))
            .with_context(|| format!("template has no condition {name}"))?;
        self.holds(declared)
    }

    fn holds(&self, value: &Yaml) -> Result<bool> {
        let Yaml::Tagged(tagged) = value else {
            bail!("condition {value:?} is not an intrinsic function");
        };
        let items = || tagged.value.as_sequence().cloned().unwrap_or_default();
        match tagged.tag.to_string().trim_start_matches('!') {
            "Equals" => {
                let sides = items();
                ensure!(sides.len() == 2, "!Equals takes two values");
                Ok(self.resolve(&sides[0]) == self.resolve(&sides[1]))
            }
            "Not" => Ok(!self.holds(items().first().context("!Not takes one condition")?)?),
            "And" => items()
                .iter()
                .try_fold(true, |all, c| Ok(all && self.holds(c)?)),
            "Or" => items()
                .iter()
                .try_fold(false, |any, c| Ok(any || self.holds(c)?)),
            "Condition" => self.condition(tagged.value.as_str().unwrap_or_default()),
            other => bail!("condition function !{other} is not supported here"),
        }
    }

    /// Whether resource `id` is created: it has no `Condition`, or its condition holds.
    pub fn created(&self, id: &str) -> Result<bool> {
        match self
            .yaml
            .get("Resources")
            .and_then(|resources| resources.get(id))
            .and_then(|resource| resource.get("Condition"))
            .and_then(Yaml::as_str)
        {
            Some(condition) => self.condition(condition),
            None => Ok(true),
        }
    }

    /// The policy documents of a function's role as SAM builds it: every `Policies` entry that
    /// is a document, every `!Ref` to a managed policy of the template, and every managed
    /// policy that attaches itself to the role (`Roles: [!Ref <function>Role]`) and is created
    /// for these parameters, as (name, document).
    pub fn function_policies(&self, function: &str) -> Result<Vec<(String, Json)>> {
        let properties = self.properties(function)?;
        let mut found = Vec::new();
        for (n, policy) in properties
            .get("Policies")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if policy.get("Statement").is_some() {
                found.push((format!("{function}.Policies[{n}]"), self.resolve(policy)));
                continue;
            }
            let Yaml::Tagged(tagged) = policy else {
                anyhow::bail!("{function}.Policies[{n}] is neither a document nor a !Ref");
            };
            let target = tagged.value.as_str().unwrap_or_default();
            let document = self
                .properties(target)?
                .get("PolicyDocument")
                .with_context(|| format!("{target} has no PolicyDocument"))?;
            found.push((target.to_owned(), self.resolve(document)));
        }
        let role = format!("{function}Role");
        for (id, resource) in self
            .yaml
            .get("Resources")
            .and_then(Yaml::as_mapping)
            .into_iter()
            .flatten()
        {
            let id = id.as_str().unwrap_or_default();
            let attaches = resource
                .get("Properties")
                .and_then(|properties| properties.get("Roles"))
                .map(|roles| self.resolve(roles))
                .and_then(|roles| roles.as_array().cloned())
                .is_some_and(|roles| roles.contains(&json!(self.reference(&role))));
            if attaches && self.created(id)? {
                let document = self
                    .properties(id)?
                    .get("PolicyDocument")
                    .with_context(|| format!("{id} has no PolicyDocument"))?;
                found.push((id.to_owned(), self.resolve(document)));
            }
        }
        Ok(found)
    }

    /// Every policy document in the template, conditional resources' included: (where,
    /// document). A trust policy gets the role
    /// it is attached to as its `Resource` (implicit in IAM), so a resource-policy lint can read it.
    pub fn policies(&self) -> Result<Vec<(String, Json)>> {
        let resources = self
            .yaml
            .get("Resources")
            .and_then(Yaml::as_mapping)
            .context("no Resources")?;
        let mut found = Vec::new();
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default();
            let Some(properties) = resource.get("Properties") else {
                continue;
            };

            if let Some(document) = properties.get("PolicyDocument") {
                found.push((format!("{id}.PolicyDocument"), self.resolve(document)));
            }
            if let Some(trust) = properties.get("AssumeRolePolicyDocument") {
                let mut trust = self.resolve(trust);
                let role = self.reference(id);
                for statement in trust["Statement"].as_array_mut().into_iter().flatten() {
                    statement["Resource"] = json!(role);
                }
                found.push((format!("{id}.AssumeRolePolicyDocument"), trust));
            }
            for (n, policy) in properties
                .get("Policies")
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
                .enumerate()
            {
                // SAM policy templates and managed-policy references are not documents; an
                // AWS::IAM::Role's inline policies carry theirs under PolicyDocument.
                if policy.get("Statement").is_some() {
                    found.push((format!("{id}.Policies[{n}]"), self.resolve(policy)));
                } else if let Some(document) = policy.get("PolicyDocument") {
                    found.push((format!("{id}.Policies[{n}]"), self.resolve(document)));
                }
            }
        }
        Ok(found)
    }
}

/// Logical id → resource type, including the role SAM creates for each function.
fn resource_types(template: &Yaml) -> BTreeMap<String, String> {
    let mut types = BTreeMap::new();
    if let Some(resources) = template.get("Resources").and_then(Yaml::as_mapping) {
        for (id, resource) in resources {
            let (Some(id), Some(kind)) = (id.as_str(), resource.get("Type").and_then(Yaml::as_str))
            else {
                continue;
            };
            if kind == "AWS::Serverless::Function" || kind == "AWS::Serverless::StateMachine" {
                types.insert(format!("{id}Role"), "AWS::IAM::Role".to_owned());
            }
            types.insert(id.to_owned(), kind.to_owned());
        }
    }
    types
}

fn reference(names: &Names, target: &str) -> String {
    if let Some(value) = names.parameters.get(target) {
        return match value {
            Json::String(text) => text.clone(),
            Json::Array(items) => items
                .iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
    }
    let (id, attribute) = target.split_once('.').unwrap_or((target, ""));
    let (types, stack) = (&names.types, names.stack.as_str());
    let name = format!("{stack}-{id}");
    let account = names.account.as_str();
    match (types.get(id).map(String::as_str), attribute) {
        (Some("AWS::SNS::Topic"), "TopicName") => name,
        (Some("AWS::SNS::Topic"), _) => format!("arn:aws:sns:{REGION}:{account}:{name}"),
        // CloudFormation names a table `<stack>-<LogicalId>-<suffix>`, which the ledger's
        // resource policy matches.
        (Some("AWS::DynamoDB::Table"), "Arn") => {
            format!("arn:aws:dynamodb:{REGION}:{account}:table/{name}-1A2B3C4D5E6F")
        }
        (Some("AWS::DynamoDB::Table"), "StreamArn") => format!(
            "arn:aws:dynamodb:{REGION}:{account}:table/{name}-1A2B3C4D5E6F/stream/2026-12-07T00:00:00.000"
        ),
        (Some("AWS::Events::EventBus"), "Arn") => {
            format!("arn:aws:events:{REGION}:{account}:event-bus/{name}")
        }
        (Some("AWS::SQS::Queue"), "Arn") => format!("arn:aws:sqs:{REGION}:{account}:{name}"),
        (Some("AWS::SecretsManager::Secret"), _) => {
            format!("arn:aws:secretsmanager:{REGION}:{account}:secret:{name}-AbCdEf")
        }
        (Some("AWS::KMS::Key"), "Arn") => {
            format!("arn:aws:kms:{REGION}:{account}:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
        }
        (Some("AWS::IAM::ManagedPolicy"), _) => format!("arn:aws:iam::{account}:policy/{name}"),
        (Some("AWS::IAM::Role"), _) => format!("arn:aws:iam::{account}:role/{name}"),
        (Some("AWS::Serverless::Function"), _) => {
            format!("arn:aws:lambda:{REGION}:{account}:function:{name}")
        }
        (Some("AWS::S3::Bucket"), "Arn") => format!("arn:aws:s3:::{}", name.to_lowercase()),
        (Some("AWS::S3::Bucket"), _) => name.to_lowercase(),
        (Some("AWS::Logs::LogGroup"), "Arn") => {
            format!("arn:aws:logs:{REGION}:{account}:log-group:{name}:*")
        }
        _ => name,
    }
}

fn substitute(names: &Names, text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e);
        let name = &rest[start + 2..end];
        out.push_str(&match name {
            "AWS::Partition" => "aws".to_owned(),
            "AWS::Region" => REGION.to_owned(),
            "AWS::AccountId" => names.account.clone(),
            "AWS::StackName" => names.stack.clone(),
            other => reference(names, other),
        });
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

fn resolve(names: &Names, value: &Yaml) -> Json {
    match value {
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let inner = &tagged.value;
            match tag.trim_start_matches('!') {
                "Sub" => Json::String(substitute(
                    names,
                    inner
                        .as_str()
                        .or_else(|| inner.get(0).and_then(Yaml::as_str))
                        .unwrap_or_default(),
                )),
                "Ref" | "GetAtt" => {
                    let target = inner.as_str().unwrap_or_default();
                    match names.parameters.get(target) {
                        // A list parameter stays a list (`Principal: {AWS: !Ref HubRoleArns}`).
                        Some(Json::Array(items)) => Json::Array(items.clone()),
                        _ => Json::String(reference(names, target)),
                    }
                }
                other => Json::String(format!("unresolved !{other}")),
            }
        }
        Yaml::Mapping(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), resolve(names, v)))
                .collect(),
        ),
        Yaml::Sequence(items) => Json::Array(items.iter().map(|v| resolve(names, v)).collect()),
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => serde_json::to_value(n).unwrap_or(Json::Null),
        Yaml::Null => Json::Null,
    }
}
