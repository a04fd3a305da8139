//! template.yaml as plain JSON, for the checks that read its IAM documents (the parliament lint,
//! the IAM evaluator): `!Sub`, `!Ref` and `!GetAtt` resolved to values of the shape AWS would
//! give, for the stack `trailgate` in account 123456789012, us-east-1.

use anyhow::{Context, Result};
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
    types: BTreeMap<String, String>,
}

impl Template {
    /// Reads template.yaml from the repository.
    pub fn load() -> Result<Template> {
        let yaml: Yaml =
            serde_yaml::from_str(&std::fs::read_to_string(root().join("template.yaml"))?)?;
        let types = resource_types(&yaml);
        Ok(Template { yaml, types })
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
        reference(&self.types, target)
    }

    /// The template value as plain JSON, with `!Sub`, `!Ref` and `!GetAtt` resolved.
    pub fn resolve(&self, value: &Yaml) -> Json {
        resolve(&self.types, value)
    }

    /// The policy documents of a function's role as SAM builds it: every `Policies` entry that
    /// is a document, and every `!Ref` to a managed policy of the template, as (name, document).
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
        Ok(found)
    }

    /// Every policy document in the template: (where, document). A trust policy gets the role
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
                // SAM policy templates and managed-policy references are not documents.
                if policy.get("Statement").is_some() {
                    found.push((format!("{id}.Policies[{n}]"), self.resolve(policy)));
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

fn reference(types: &BTreeMap<String, String>, target: &str) -> String {
    let (id, attribute) = target.split_once('.').unwrap_or((target, ""));
    let name = format!("{STACK}-{id}");
    match (types.get(id).map(String::as_str), attribute) {
        (Some("AWS::SNS::Topic"), "TopicName") => name,
        (Some("AWS::SNS::Topic"), _) => format!("arn:aws:sns:{REGION}:{ACCOUNT}:{name}"),
        (Some("AWS::DynamoDB::Table"), "Arn") => {
            format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
        }
        (Some("AWS::SecretsManager::Secret"), _) => {
            format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf")
        }
        (Some("AWS::KMS::Key"), "Arn") => {
            format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
        }
        (Some("AWS::IAM::ManagedPolicy"), _) => format!("arn:aws:iam::{ACCOUNT}:policy/{name}"),
        (Some("AWS::IAM::Role"), _) => format!("arn:aws:iam::{ACCOUNT}:role/{name}"),
        (Some("AWS::Serverless::Function"), _) => {
            format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
        }
        (Some("AWS::S3::Bucket"), "Arn") => format!("arn:aws:s3:::{}", name.to_lowercase()),
        (Some("AWS::S3::Bucket"), _) => name.to_lowercase(),
        (Some("AWS::Logs::LogGroup"), "Arn") => {
            format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*")
        }
        _ => name,
    }
}

fn substitute(types: &BTreeMap<String, String>, text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e);
        let name = &rest[start + 2..end];
        out.push_str(&match name {
            "AWS::Partition" => "aws".to_owned(),
            "AWS::Region" => REGION.to_owned(),
            "AWS::AccountId" => ACCOUNT.to_owned(),
            "AWS::StackName" => STACK.to_owned(),
            other => reference(types, other),
        });
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

fn resolve(types: &BTreeMap<String, String>, value: &Yaml) -> Json {
    match value {
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let inner = &tagged.value;
            match tag.trim_start_matches('!') {
                "Sub" => Json::String(substitute(
                    types,
                    inner
                        .as_str()
                        .or_else(|| inner.get(0).and_then(Yaml::as_str))
                        .unwrap_or_default(),
                )),
                "Ref" | "GetAtt" => {
                    Json::String(reference(types, inner.as_str().unwrap_or_default()))
                }
                other => Json::String(format!("unresolved !{other}")),
            }
        }
        Yaml::Mapping(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), resolve(types, v)))
                .collect(),
        ),
        Yaml::Sequence(items) => Json::Array(items.iter().map(|v| resolve(types, v)).collect()),
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => serde_json::to_value(n).unwrap_or(Json::Null),
        Yaml::Null => Json::Null,
    }
}
