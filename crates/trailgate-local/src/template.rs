//! template.yaml as data: loading the SAM template (short and long intrinsic forms), parameters
//! with defaults and overrides, conditions, `Fn::ForEach` expansion, `Globals` merging, and the
//! intrinsic-function resolver the local deployer uses once resources have physical ids.
//!
//! The template is converted to `serde_json::Value` on load, with every short tag (`!Ref x`)
//! rewritten to its long form (`{"Ref": "x"}`), so the rest of the crate deals with one shape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The stack name the local deployer uses, as `sam deploy --stack-name trailgate` would.
pub const STACK_NAME: &str = "trailgate";
/// The account moto answers for.
pub const ACCOUNT_ID: &str = "123456789012";
/// The only region the local stack runs in.
pub const REGION: &str = "us-east-1";

/// A loaded template.yaml.
#[derive(Debug, Clone)]
pub struct Template {
    /// The template file.
    pub path: PathBuf,
    /// Its folder: `DefinitionUri` and `CodeUri` are relative to it.
    pub dir: PathBuf,
    root: Map<String, Value>,
}

/// One resource after `Fn::ForEach` expansion and `Globals` merging, before intrinsic resolution.
#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    /// Raw properties (an object; empty when the template has none).
    pub properties: Value,
    pub metadata: Value,
    pub depends_on: Vec<String>,
    pub condition: Option<String>,
}

/// What a deployed resource answers to `Ref` and `Fn::GetAtt`.
#[derive(Debug, Clone, Default)]
pub struct Physical {
    pub ref_value: String,
    pub attributes: BTreeMap<String, String>,
}

/// A route of the REST API, read from a function's `Type: Api` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// Path with `{param}` and `{proxy+}` placeholders, as in the template.
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

/// A schedule read from a function's `Type: Schedule`/`ScheduleV2` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub function: String,
    pub binary: String,
    pub expression: String,
    /// The event's `Input`, if it sets one (a JSON string).
    pub input: Option<String>,
}

impl Template {
    /// Reads and parses template.yaml.
    pub fn load(path: &Path) -> Result<Template> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut template = Template::parse(&text, &dir)?;
        template.path = path.to_path_buf();
        Ok(template)
    }

    /// Parses template text; `dir` is where relative file references point.
    pub fn parse(text: &str, dir: &Path) -> Result<Template> {
        let yaml: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|err| Error::Template(format!("not valid YAML: {err}")))?;
        let Value::Object(root) = yaml_to_json(yaml)? else {
            return Err(Error::Template("the top level is not a mapping".into()));
        };
        Ok(Template {
            path: dir.join("template.yaml"),
            dir: dir.to_path_buf(),
            root,
        })
    }

    fn section(&self, name: &str) -> Map<String, Value> {
        match self.root.get(name) {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        }
    }

    /// The `Parameters` declarations.
    pub fn parameter_declarations(&self) -> Map<String, Value> {
        self.section("Parameters")
    }

    /// The resources, with `Fn::ForEach` expanded, conditions applied (resources whose condition
    /// is false are left out) and `Globals` merged into serverless functions and APIs.
    pub fn resources(&self, resolver: &Resolver) -> Result<BTreeMap<String, Resource>> {
        let expanded = expand_for_each(&self.section("Resources"), resolver)?;
        let globals = self.section("Globals");
        let mut resources = BTreeMap::new();
        for (logical_id, body) in expanded {
            let Value::Object(body) = body else {
                return Err(Error::Template(format!(
                    "resource `{logical_id}` is not a mapping"
                )));
            };
            let kind = body
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Template(format!("resource `{logical_id}` has no Type")))?
                .to_owned();
            let condition = body
                .get("Condition")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(condition) = &condition
                && !resolver.condition(condition)?
            {
                continue;
            }
            let mut properties = body
                .get("Properties")
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new()));
            let global_key = match kind.as_str() {
                "AWS::Serverless::Function" => Some("Function"),
                "AWS::Serverless::Api" => Some("Api"),
                "AWS::Serverless::StateMachine" => Some("StateMachine"),
                "AWS::Serverless::SimpleTable" => Some("SimpleTable"),
                _ => None,
            };
            if let Some(global) = global_key.and_then(|key| globals.get(key)) {
                properties = merge_globals(global, &properties);
            }
            let depends_on = match body.get("DependsOn") {
                Some(Value::String(one)) => vec![one.clone()],
                Some(Value::Array(many)) => many
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            };
            resources.insert(
                logical_id.clone(),
                Resource {
                    logical_id,
                    kind,
                    properties,
                    metadata: body.get("Metadata").cloned().unwrap_or(Value::Null),
                    depends_on,
                    condition,
                },
            );
        }
        Ok(resources)
    }

    /// The `Outputs` section, with `Fn::ForEach` expanded.
    pub fn outputs(&self, resolver: &Resolver) -> Result<Map<String, Value>> {
        expand_for_each(&self.section("Outputs"), resolver)
    }
}

/// The binary `cargo lambda watch` serves for a serverless function: `Metadata.BuildProperties.
/// Binary` when set, else the last folder of `CodeUri` (folder = package = binary here).
pub fn function_binary(resource: &Resource) -> Result<String> {
    if let Some(binary) = resource
        .metadata
        .pointer("/BuildProperties/Binary")
        .and_then(Value::as_str)
    {
        return Ok(binary.to_owned());
    }
    let code_uri = resource
        .properties
        .get("CodeUri")
        .and_then(Value::as_str)
        .unwrap_or("");
    let last = code_uri
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    if last.is_empty() || last == "." || last.ends_with(".toml") {
        if let Some(parent) = code_uri.strip_suffix("/Cargo.toml")
            && let Some(folder) = parent.trim_end_matches('/').rsplit('/').next()
            && !folder.is_empty()
            && folder != "."
        {
            return Ok(folder.to_owned());
        }
        return Err(Error::Template(format!(
            "function `{}` names no binary: set Metadata.BuildProperties.Binary or a CodeUri \
             ending in the crate folder",
            resource.logical_id
        )));
    }
    Ok(last.to_owned())
}

/// The REST API routes of every serverless function's `Type: Api` events.
pub fn api_routes(resources: &BTreeMap<String, Resource>) -> Result<Vec<ApiRoute>> {
    let mut routes = Vec::new();
    for resource in resources.values() {
        if resource.kind != "AWS::Serverless::Function" {
            continue;
        }
        let Some(Value::Object(events)) = resource.properties.get("Events") else {
            continue;
        };
        for (event_name, event) in events {
            if event.get("Type").and_then(Value::as_str) != Some("Api") {
                continue;
            }
            let properties = event.get("Properties").cloned().unwrap_or(Value::Null);
            let path = properties
                .get("Path")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::Template(format!(
                        "{}.Events.{event_name} has no Path",
                        resource.logical_id
                    ))
                })?;
            let method = properties
                .get("Method")
                .and_then(Value::as_str)
                .unwrap_or("ANY");
            let api_logical_id = match properties.get("RestApiId") {
                Some(Value::Object(reference)) => reference
                    .get("Ref")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                Some(Value::String(id)) => Some(id.clone()),
                _ => None,
            };
            let default_authorizer = api_logical_id
                .as_deref()
                .and_then(|id| resources.get(id))
                .and_then(|api| api.properties.pointer("/Auth/DefaultAuthorizer"))
                .and_then(Value::as_str)
                .unwrap_or("NONE");
            let authorizer = properties
                .pointer("/Auth/Authorizer")
                .and_then(Value::as_str)
                .unwrap_or(default_authorizer);
            let iam_auth = match authorizer {
                "AWS_IAM" => true,
                "NONE" => false,
                other => {
                    return Err(Error::Template(format!(
                        "{}.Events.{event_name} uses authorizer `{other}`; the local API \
                         emulation knows only AWS_IAM and NONE",
                        resource.logical_id
                    )));
                }
            };
            routes.push(ApiRoute {
                path: path.to_owned(),
                method: method.to_ascii_uppercase(),
                function: resource.logical_id.clone(),
                binary: function_binary(resource)?,
                iam_auth,
            });
        }
    }
    Ok(routes)
}

/// The schedules of every serverless function's `Type: Schedule`/`ScheduleV2` events.
pub fn schedules(resources: &BTreeMap<String, Resource>) -> Result<Vec<Schedule>> {
    let mut schedules = Vec::new();
    for resource in resources.values() {
        if resource.kind != "AWS::Serverless::Function" {
            continue;
        }
        let Some(Value::Object(events)) = resource.properties.get("Events") else {
            continue;
        };
        for event in events.values() {
            let kind = event.get("Type").and_then(Value::as_str).unwrap_or("");
            if kind != "Schedule" && kind != "ScheduleV2" {
                continue;
            }
            let properties = event.get("Properties").cloned().unwrap_or(Value::Null);
            let expression = properties
                .get("Schedule")
                .or_else(|| properties.get("ScheduleExpression"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            schedules.push(Schedule {
                function: resource.logical_id.clone(),
                binary: function_binary(resource)?,
                expression,
                input: properties
                    .get("Input")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
    }
    Ok(schedules)
}

/// Converts YAML to JSON, rewriting CloudFormation short tags to their long forms.
pub fn yaml_to_json(yaml: serde_yaml::Value) -> Result<Value> {
    Ok(match yaml {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(items) => {
            Value::Array(items.into_iter().map(yaml_to_json).collect::<Result<_>>()?)
        }
        serde_yaml::Value::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    serde_yaml::Value::String(s) => s,
                    serde_yaml::Value::Number(n) => n.to_string(),
                    serde_yaml::Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(Error::Template(format!(
                            "unsupported mapping key {other:?}"
                        )));
                    }
                };
                map.insert(key, yaml_to_json(value)?);
            }
            Value::Object(map)
        }
        serde_yaml::Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!').to_owned();
            let value = yaml_to_json(tagged.value)?;
            let (key, value) = match tag.as_str() {
                "Ref" => ("Ref".to_owned(), value),
                "Condition" => ("Condition".to_owned(), value),
                "GetAtt" => {
                    let value = match value {
                        // `!GetAtt A.B.C` means resource A, attribute `B.C`.
                        Value::String(s) => match s.split_once('.') {
                            Some((resource, attribute)) => {
                                Value::Array(vec![resource.into(), attribute.into()])
                            }
                            None => Value::String(s),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), value)
                }
                other => (format!("Fn::{other}"), value),
            };
            let mut map = Map::new();
            map.insert(key, value);
            Value::Object(map)
        }
    })
}

/// SAM's Globals rule: maps merge, lists append (globals first), scalars are overridden.
fn merge_globals(global: &Value, local: &Value) -> Value {
    match (global, local) {
        (Value::Object(global), Value::Object(local)) => {
            // Intrinsic functions are values, not maps to merge.
            if local.keys().any(|k| k == "Ref" || k.starts_with("Fn::")) {
                return Value::Object(local.clone());
            }
            let mut merged = global.clone();
            for (key, value) in local {
                let value = match global.get(key) {
                    Some(global_value) => merge_globals(global_value, value),
                    None => value.clone(),
                };
                merged.insert(key.clone(), value);
            }
            Value::Object(merged)
        }
        (Value::Array(global), Value::Array(local)) => {
            Value::Array(global.iter().chain(local).cloned().collect())
        }
        (_, local) => local.clone(),
    }
}

/// Expands `Fn::ForEach::Name: [Identifier, Collection, {KeyTemplate: Body}]` entries of a
/// section (AWS::LanguageExtensions), recursively.
fn expand_for_each(
    section: &Map<String, Value>,
    resolver: &Resolver,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for (key, value) in section {
        if !key.starts_with("Fn::ForEach::") {
            out.insert(key.clone(), value.clone());
            continue;
        }
        let parts = value
            .as_array()
            .filter(|parts| parts.len() == 3)
            .ok_or_else(|| {
                Error::Template(format!(
                    "`{key}` must be [Identifier, Collection, Template]"
                ))
            })?;
        let identifier = parts[0]
            .as_str()
            .ok_or_else(|| Error::Template(format!("`{key}`: the identifier is not a string")))?;
        let collection = match resolver.resolve(&parts[1])? {
            Value::Array(items) => items,
            other => {
                return Err(Error::Template(format!(
                    "`{key}`: the collection resolved to {other}, not a list"
                )));
            }
        };
        let Value::Object(output) = &parts[2] else {
            return Err(Error::Template(format!(
                "`{key}`: the template is not a mapping"
            )));
        };
        for item in collection {
            let item = scalar_string(&item).ok_or_else(|| {
                Error::Template(format!("`{key}`: collection item {item} is not a string"))
            })?;
            let alphanumeric: String = item.chars().filter(char::is_ascii_alphanumeric).collect();
            let mut substituted = Map::new();
            for (out_key, body) in output {
                let out_key = out_key
                    .replace(&format!("${{{identifier}}}"), &item)
                    .replace(&format!("&{{{identifier}}}"), &alphanumeric);
                substituted.insert(out_key, substitute_identifier(body, identifier, &item));
            }
            for (expanded_key, expanded_value) in expand_for_each(&substituted, resolver)? {
                out.insert(expanded_key, expanded_value);
            }
        }
    }
    Ok(out)
}

/// Replaces a `Fn::ForEach` identifier inside a body: `{"Ref": id}` and `${id}` in `Fn::Sub`.
fn substitute_identifier(value: &Value, identifier: &str, item: &str) -> Value {
    match value {
        Value::Object(map) => {
            if map.len() == 1
                && let Some(Value::String(name)) = map.get("Ref")
                && name == identifier
            {
                return Value::String(item.to_owned());
            }
            let pattern = format!("${{{identifier}}}");
            let mut out = Map::new();
            for (key, inner) in map {
                let inner = match (key.as_str(), inner) {
                    ("Fn::Sub", Value::String(text)) => Value::String(text.replace(&pattern, item)),
                    ("Fn::Sub", Value::Array(parts)) if !parts.is_empty() => {
                        let mut parts = parts.clone();
                        if let Value::String(text) = &parts[0] {
                            parts[0] = Value::String(text.replace(&pattern, item));
                        }
                        for part in parts.iter_mut().skip(1) {
                            *part = substitute_identifier(part, identifier, item);
                        }
                        Value::Array(parts)
                    }
                    _ => substitute_identifier(inner, identifier, item),
                };
                out.insert(key.replace(&pattern, item), inner);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute_identifier(v, identifier, item))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An intrinsic's argument list, which must have `n` items.
fn arguments<'a>(name: &str, argument: &'a Value, n: usize) -> Result<&'a Vec<Value>> {
    argument
        .as_array()
        .filter(|a| a.len() == n)
        .ok_or_else(|| Error::Template(format!("`{name}` takes a list of {n}, got {argument}")))
}

/// A string for a scalar JSON value (CloudFormation turns numbers and booleans into strings).
pub fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A CloudFormation-style physical name `trailgate-<LogicalId>-<SUFFIX>`, stable across runs
/// (the suffix is derived from the logical id) and at most `max_len` characters long.
pub fn physical_name(logical_id: &str, max_len: usize) -> String {
    let suffix = stable_token(logical_id, 12, true);
    let budget = max_len.saturating_sub(STACK_NAME.len() + suffix.len() + 2);
    let middle: String = logical_id.chars().take(budget).collect();
    format!("{STACK_NAME}-{middle}-{suffix}")
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

/// Resolves intrinsic functions against parameters, conditions and the resources deployed so
/// far, and rewrites execute-api URLs of emulated APIs to the local API port.
#[derive(Debug, Clone)]
pub struct Resolver {
    parameters: BTreeMap<String, Value>,
    conditions: BTreeMap<String, bool>,
    mappings: Map<String, Value>,
    resources: BTreeMap<String, Physical>,
    /// API id → local base (`127.0.0.1:<port>`), for rewriting execute-api hosts.
    apis: BTreeMap<String, String>,
    /// `AWS::AccountId` and `AWS::StackName`: the hub's, or a member stack's.
    account_id: String,
    stack_name: String,
}

impl Resolver {
    /// Builds a resolver from the template's parameter declarations and the overrides, and
    /// evaluates the `Conditions` section.
    pub fn new(template: &Template, overrides: &BTreeMap<String, String>) -> Result<Resolver> {
        let mut parameters = BTreeMap::new();
        for (name, declaration) in template.parameter_declarations() {
            let kind = declaration
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or("String");
            let raw = match overrides.get(&name) {
                Some(value) => value.clone(),
                None => match declaration.get("Default").and_then(scalar_string) {
                    Some(default) => default,
                    None => {
                        return Err(Error::Template(format!(
                            "parameter `{name}` has no default and no value: set it in \
                             local/parameters.json"
                        )));
                    }
                },
            };
            if let Some(Value::Array(allowed)) = declaration.get("AllowedValues") {
                let allowed: Vec<String> = allowed.iter().filter_map(scalar_string).collect();
                if !allowed.contains(&raw) {
                    return Err(Error::Template(format!(
                        "parameter `{name}` is `{raw}`, not one of {allowed:?}"
                    )));
                }
            }
            let value = if kind == "CommaDelimitedList" || kind.starts_with("List<") {
                Value::Array(
                    raw.split(',')
                        .map(|s| Value::String(s.trim().to_owned()))
                        .collect(),
                )
            } else {
                Value::String(raw)
            };
            parameters.insert(name, value);
        }
        let mut resolver = Resolver {
            parameters,
            conditions: BTreeMap::new(),
            mappings: template.section("Mappings"),
            resources: BTreeMap::new(),
            apis: BTreeMap::new(),
            account_id: ACCOUNT_ID.to_owned(),
            stack_name: STACK_NAME.to_owned(),
        };
        let declared = template.section("Conditions");
        let mut visiting = BTreeSet::new();
        for name in declared.keys() {
            resolver.evaluate_condition(name, &declared, &mut visiting)?;
        }
        Ok(resolver)
    }

    fn evaluate_condition(
        &mut self,
        name: &str,
        declared: &Map<String, Value>,
        visiting: &mut BTreeSet<String>,
    ) -> Result<bool> {
        if let Some(value) = self.conditions.get(name) {
            return Ok(*value);
        }
        let body = declared
            .get(name)
            .ok_or_else(|| Error::Template(format!("condition `{name}` is not declared")))?;
        if !visiting.insert(name.to_owned()) {
            return Err(Error::Template(format!(
                "condition `{name}` refers to itself"
            )));
        }
        // Conditions may name other conditions; evaluate those first.
        let mut referenced = BTreeSet::new();
        collect_condition_names(body, &mut referenced);
        for other in referenced {
            self.evaluate_condition(&other, declared, visiting)?;
        }
        let value = match self.resolve(body)? {
            Value::Bool(b) => b,
            other => {
                return Err(Error::Template(format!(
                    "condition `{name}` resolved to {other}, not a boolean"
                )));
            }
        };
        self.conditions.insert(name.to_owned(), value);
        Ok(value)
    }

    /// The value of a declared condition.
    pub fn condition(&self, name: &str) -> Result<bool> {
        self.conditions
            .get(name)
            .copied()
            .ok_or_else(|| Error::Template(format!("condition `{name}` is not declared")))
    }

    /// A parameter's resolved value (a string, or a list for list types).
    pub fn parameter(&self, name: &str) -> Option<&Value> {
        self.parameters.get(name)
    }

    /// Records what a deployed resource answers to `Ref` and `Fn::GetAtt`.
    pub fn register(&mut self, logical_id: &str, physical: Physical) {
        self.resources.insert(logical_id.to_owned(), physical);
    }

    /// What a deployed resource answers to `Ref` and `Fn::GetAtt`.
    pub fn physical(&self, logical_id: &str) -> Option<&Physical> {
        self.resources.get(logical_id)
    }

    /// Declares an emulated REST API: URLs of `https://<api_id>.execute-api.<region>.amazonaws.com`
    /// resolve to `http://<local_host>` instead (local_host = `127.0.0.1:<port>`).
    pub fn register_api(&mut self, api_id: &str, local_host: &str) {
        self.apis.insert(api_id.to_owned(), local_host.to_owned());
    }

    /// Resolves every intrinsic function in `value`; `AWS::NoValue` removes keys and list items,
    /// and a top-level `AWS::NoValue` gives `null`.
    pub fn resolve(&self, value: &Value) -> Result<Value> {
        Ok(self.eval(value)?.unwrap_or(Value::Null))
    }

    /// Resolves `value` to a string (numbers and booleans are turned into strings).
    pub fn resolve_string(&self, value: &Value) -> Result<String> {
        let resolved = self.resolve(value)?;
        scalar_string(&resolved)
            .ok_or_else(|| Error::Template(format!("expected a string, got {resolved}")))
    }

    fn eval(&self, value: &Value) -> Result<Option<Value>> {
        match value {
            Value::Object(map) if map.len() == 1 => {
                let (key, argument) = map.iter().next().expect("one entry");
                if key == "Ref" || key == "Condition" || key.starts_with("Fn::") {
                    return self.intrinsic(key, argument);
                }
                self.eval_object(map)
            }
            Value::Object(map) => self.eval_object(map),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(item) = self.eval(item)? {
                        out.push(item);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::String(s) => Ok(Some(Value::String(self.localize(s)))),
            other => Ok(Some(other.clone())),
        }
    }

    fn eval_object(&self, map: &Map<String, Value>) -> Result<Option<Value>> {
        let mut out = Map::new();
        for (key, inner) in map {
            if let Some(inner) = self.eval(inner)? {
                out.insert(key.clone(), inner);
            }
        }
        Ok(Some(Value::Object(out)))
    }

    fn intrinsic(&self, name: &str, argument: &Value) -> Result<Option<Value>> {
        let args = |n: usize| arguments(name, argument, n);
        let value = match name {
            "Ref" => {
                let target = argument
                    .as_str()
                    .ok_or_else(|| Error::Template(format!("`Ref` of {argument}")))?;
                if target == "AWS::NoValue" {
                    return Ok(None);
                }
                self.reference(target)?
            }
            "Condition" => {
                let target = argument
                    .as_str()
                    .ok_or_else(|| Error::Template(format!("`Condition` of {argument}")))?;
                Value::Bool(self.condition(target)?)
            }
            "Fn::GetAtt" => self.get_att(argument)?,
            "Fn::Sub" => self.sub(argument)?,
            "Fn::Join" => self.join(args(2)?)?,
            "Fn::Split" => {
                let parts = args(2)?;
                let delimiter = self.resolve_string(&parts[0])?;
                let text = self.resolve_string(&parts[1])?;
                Value::Array(text.split(delimiter.as_str()).map(Value::from).collect())
            }
            "Fn::Select" => self.select(args(2)?)?,
            "Fn::If" => {
                let parts = args(3)?;
                let condition = parts[0]
                    .as_str()
                    .ok_or_else(|| Error::Template("`Fn::If` condition name".into()))?;
                let branch = if self.condition(condition)? {
                    &parts[1]
                } else {
                    &parts[2]
                };
                return self.eval(branch);
            }
            "Fn::Equals" => self.equals(args(2)?)?,
            "Fn::Not" => {
                let parts = args(1)?;
                Value::Bool(!self.resolve_bool(&parts[0])?)
            }
            "Fn::And" | "Fn::Or" => self.and_or(name, argument)?,
            "Fn::FindInMap" => self.find_in_map(args(3)?)?,
            "Fn::Base64" => {
                use base64::Engine as _;
                let text = self.resolve_string(argument)?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(text))
            }
            "Fn::ToJsonString" => {
                let resolved = self.resolve(argument)?;
                Value::String(resolved.to_string())
            }
            "Fn::Length" => match self.resolve(argument)? {
                Value::Array(items) => Value::from(items.len()),
                other => return Err(Error::Template(format!("`Fn::Length` of {other}"))),
            },
            "Fn::GetAZs" => Value::Array(
                ["us-east-1a", "us-east-1b", "us-east-1c"]
                    .into_iter()
                    .map(Value::from)
                    .collect(),
            ),
            other => {
                return Err(Error::Template(format!(
                    "intrinsic function `{other}` is not supported by the local deployer"
                )));
            }
        };
        Ok(Some(value))
    }

    /// `Fn::GetAtt`, as `Resource.Attribute` or `[Resource, Attribute]`.
    fn get_att(&self, argument: &Value) -> Result<Value> {
        let (target, attribute) = match argument {
            Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())),
            Value::Array(parts) if parts.len() == 2 => {
                let attribute = self.resolve_string(&parts[1])?;
                parts[0].as_str().map(|a| (a.to_owned(), attribute))
            }
            _ => None,
        }
        .ok_or_else(|| Error::Template(format!("`Fn::GetAtt` of {argument}")))?;
        Ok(Value::String(self.attribute(&target, &attribute)?))
    }

    /// `Fn::Sub`, as a string or `[string, variables]`.
    fn sub(&self, argument: &Value) -> Result<Value> {
        let (text, variables) = match argument {
            Value::String(text) => (text.clone(), Map::new()),
            Value::Array(parts) if parts.len() == 2 => {
                let text = parts[0]
                    .as_str()
                    .ok_or_else(|| Error::Template("`Fn::Sub` text".into()))?
                    .to_owned();
                let variables = match self.resolve(&parts[1])? {
                    Value::Object(map) => map,
                    other => {
                        return Err(Error::Template(format!(
                            "`Fn::Sub` variables are {other}, not a mapping"
                        )));
                    }
                };
                (text, variables)
            }
            _ => return Err(Error::Template(format!("`Fn::Sub` of {argument}"))),
        };
        Ok(Value::String(
            self.localize(&self.substitute(&text, &variables)?),
        ))
    }

    fn join(&self, parts: &[Value]) -> Result<Value> {
        let delimiter = parts[0].as_str().unwrap_or_default();
        let items = match self.resolve(&parts[1])? {
            Value::Array(items) => items,
            other => return Err(Error::Template(format!("`Fn::Join` of {other}"))),
        };
        let strings: Vec<String> = items
            .iter()
            .map(|item| {
                scalar_string(item).ok_or_else(|| {
                    Error::Template(format!("`Fn::Join` item {item} is not a string"))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Value::String(self.localize(&strings.join(delimiter))))
    }

    fn select(&self, parts: &[Value]) -> Result<Value> {
        let index: usize = self
            .resolve_string(&parts[0])?
            .parse()
            .map_err(|_| Error::Template(format!("`Fn::Select` index {}", parts[0])))?;
        match self.resolve(&parts[1])? {
            Value::Array(items) => items
                .get(index)
                .cloned()
                .ok_or_else(|| Error::Template(format!("`Fn::Select` index {index} out of range"))),
            other => Err(Error::Template(format!("`Fn::Select` from {other}"))),
        }
    }

    fn equals(&self, parts: &[Value]) -> Result<Value> {
        let left = self.resolve(&parts[0])?;
        let right = self.resolve(&parts[1])?;
        // CloudFormation compares values as strings: `!Equals [!Ref Count, 2]` holds
        // for the string parameter "2".
        let equal = match (scalar_string(&left), scalar_string(&right)) {
            (Some(l), Some(r)) => l == r,
            _ => left == right,
        };
        Ok(Value::Bool(equal))
    }

    /// `Fn::And` and `Fn::Or`: every part is resolved (and must be a boolean) before combining.
    fn and_or(&self, name: &str, argument: &Value) -> Result<Value> {
        let parts = argument
            .as_array()
            .ok_or_else(|| Error::Template(format!("`{name}` of {argument}")))?;
        let mut values = Vec::with_capacity(parts.len());
        for part in parts {
            values.push(self.resolve_bool(part)?);
        }
        let result = if name == "Fn::And" {
            values.iter().all(|v| *v)
        } else {
            values.iter().any(|v| *v)
        };
        Ok(Value::Bool(result))
    }

    fn find_in_map(&self, parts: &[Value]) -> Result<Value> {
        let map_name = self.resolve_string(&parts[0])?;
        let first = self.resolve_string(&parts[1])?;
        let second = self.resolve_string(&parts[2])?;
        self.mappings
            .get(&map_name)
            .and_then(|m| m.get(&first))
            .and_then(|m| m.get(&second))
            .cloned()
            .ok_or_else(|| Error::Template(format!("`Fn::FindInMap` {map_name}/{first}/{second}")))
    }

    fn resolve_bool(&self, value: &Value) -> Result<bool> {
        match self.resolve(value)? {
            Value::Bool(b) => Ok(b),
            Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
            other => Err(Error::Template(format!("expected a boolean, got {other}"))),
        }
    }

    /// Resolves for a stack of another name in another account (a member stack).
    pub fn for_stack(mut self, account_id: &str, stack_name: &str) -> Resolver {
        self.account_id = account_id.to_owned();
        self.stack_name = stack_name.to_owned();
        self
    }

    fn reference(&self, target: &str) -> Result<Value> {
        let pseudo = match target {
            "AWS::Region" => Some(REGION.to_owned()),
            "AWS::AccountId" => Some(self.account_id.clone()),
            "AWS::StackName" => Some(self.stack_name.clone()),
            "AWS::StackId" => Some(format!(
                "arn:aws:cloudformation:{REGION}:{}:stack/{}/{}",
                self.account_id,
                self.stack_name,
                stable_token("stack-id", 32, false)
            )),
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            _ => None,
        };
        if let Some(pseudo) = pseudo {
            return Ok(Value::String(pseudo));
        }
        if let Some(parameter) = self.parameters.get(target) {
            return Ok(parameter.clone());
        }
        if let Some(physical) = self.resources.get(target) {
            return Ok(Value::String(self.localize(&physical.ref_value)));
        }
        Err(Error::Template(format!(
            "`Ref` to `{target}`, which is not a parameter or a known resource"
        )))
    }

    fn attribute(&self, target: &str, attribute: &str) -> Result<String> {
        let physical = self.resources.get(target).ok_or_else(|| {
            Error::Template(format!(
                "`Fn::GetAtt` on `{target}`, which is not a known resource"
            ))
        })?;
        physical
            .attributes
            .get(attribute)
            .map(|value| self.localize(value))
            .ok_or_else(|| {
                Error::Template(format!(
                    "`{target}` has no attribute `{attribute}` in the local stack (known: {:?})",
                    physical.attributes.keys().collect::<Vec<_>>()
                ))
            })
    }

    fn substitute(&self, text: &str, variables: &Map<String, Value>) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| Error::Template(format!("unclosed `${{` in `{text}`")))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                // `${!Literal}` writes `${Literal}` as is.
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&scalar_string(value).ok_or_else(|| {
                    Error::Template(format!("`Fn::Sub` variable `{name}` is not a string"))
                })?);
            } else if let Some((resource, attribute)) =
                name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                out.push_str(&self.attribute(resource, attribute)?);
            } else {
                let value = self.reference(name)?;
                out.push_str(&scalar_string(&value).ok_or_else(|| {
                    Error::Template(format!("`${{{name}}}` is a list, not a string"))
                })?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn localize(&self, text: &str) -> String {
        if !text.contains(".execute-api.") {
            return text.to_owned();
        }
        let mut out = text.to_owned();
        for (api_id, local_host) in &self.apis {
            let host = format!("{api_id}.execute-api.{REGION}.amazonaws.com");
            out = out
                .replace(&format!("https://{host}"), &format!("http://{local_host}"))
                .replace(&host, local_host);
        }
        out
    }
}

fn collect_condition_names(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "Condition"
                    && let Value::String(name) = inner
                {
                    out.insert(name.clone());
                }
                collect_condition_names(inner, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_condition_names(item, out)),
        _ => {}
    }
}

/// The logical ids a value refers to through `Ref`, `Fn::GetAtt` and `Fn::Sub` (resources and
/// parameters alike; the caller keeps the ones that are resources).
pub fn references(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_references(value, &mut out);
    out
}

fn collect_references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("Ref", Value::String(target)) => {
                        out.insert(target.clone());
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        if let Some(target) = parts.first().and_then(Value::as_str) {
                            out.insert(target.to_owned());
                        }
                    }
                    ("Fn::GetAtt", Value::String(text)) => {
                        out.insert(text.split('.').next().unwrap_or_default().to_owned());
                    }
                    ("Fn::Sub", Value::String(text)) => collect_sub_names(text, out),
                    ("Fn::Sub", Value::Array(parts)) => {
                        if let Some(text) = parts.first().and_then(Value::as_str) {
                            collect_sub_names(text, out);
                        }
                        parts
                            .iter()
                            .skip(1)
                            .for_each(|part| collect_references(part, out));
                    }
                    _ => collect_references(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_references(item, out)),
        _ => {}
    }
}

fn collect_sub_names(text: &str, out: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') && !name.starts_with("AWS::") {
            out.insert(name.split('.').next().unwrap_or_default().to_owned());
        }
        rest = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]
Parameters:
  ApproverEmails:
    Type: CommaDelimitedList
    Default: "a@example.com, b@example.com"
  Stage:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
  Catalog:
    Type: String
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
Globals:
  Function:
    Runtime: provided.al2023
    Environment:
      Variables:
        LEDGER_TABLE: !Ref LedgerTable
Resources:
  LedgerTable:
    Type: AWS::DynamoDB::Table
  Fn::ForEach::Approvers:
    - Email
    - !Ref ApproverEmails
    - "Sub&{Email}":
        Type: AWS::SNS::Subscription
        Properties:
          Endpoint: !Ref Email
          FilterPolicy:
            approver: [!Sub "${Email}"]
  IntakeFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
    Properties:
      CodeUri: crates/trailgate-intake
      Environment:
        Variables:
          CATALOG: !Ref Catalog
          URL: !Sub "https://${TrailgateApi}.execute-api.${AWS::Region}.amazonaws.com/v1"
          MODE: !If [IsProd, "strict", !Ref AWS::NoValue]
      Events:
        Create:
          Type: Api
          Properties: {Path: /requests, Method: post, RestApiId: !Ref TrailgateApi}
        Decide:
          Type: Api
          Properties:
            Path: /decisions/{id}
            Method: get
            RestApiId: !Ref TrailgateApi
            Auth: {Authorizer: NONE}
  ProdOnly:
    Type: AWS::SNS::Topic
    Condition: IsProd
  TrailgateApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      Auth: {DefaultAuthorizer: AWS_IAM}
Outputs:
  TableArn:
    Value: !GetAtt LedgerTable.Arn
  Joined:
    Value: !Join [",", [!Select [1, !Ref ApproverEmails], !Sub "${AWS::AccountId}-${!Literal}"]]
"#;

    fn fixture() -> (Template, Resolver) {
        let template = Template::parse(FIXTURE, Path::new("/repo")).unwrap();
        let overrides = BTreeMap::from([("Catalog".to_owned(), r#"{"entries":[]}"#.to_owned())]);
        let resolver = Resolver::new(&template, &overrides).unwrap();
        (template, resolver)
    }

    #[test]
    fn short_tags_become_long_forms() {
        let (template, _) = fixture();
        let resources = &template.root["Resources"];
        assert_eq!(
            resources["IntakeFunction"]["Properties"]["Environment"]["Variables"]["CATALOG"],
            json!({"Ref": "Catalog"})
        );
        assert_eq!(
            template.root["Outputs"]["TableArn"]["Value"],
            json!({"Fn::GetAtt": ["LedgerTable", "Arn"]})
        );
    }

    #[test]
    fn parameters_conditions_and_for_each() {
        let (template, resolver) = fixture();
        assert_eq!(
            resolver.parameter("ApproverEmails"),
            Some(&json!(["a@example.com", "b@example.com"]))
        );
        assert!(!resolver.condition("IsProd").unwrap());
        assert!(resolver.condition("NotProd").unwrap());
        let resources = template.resources(&resolver).unwrap();
        assert!(
            !resources.contains_key("ProdOnly"),
            "a false condition drops the resource"
        );
        let sub = &resources["Subbexamplecom"];
        assert_eq!(sub.kind, "AWS::SNS::Subscription");
        assert_eq!(sub.properties["Endpoint"], json!("b@example.com"));
        assert_eq!(
            resolver.resolve(&sub.properties["FilterPolicy"]).unwrap(),
            json!({"approver": ["b@example.com"]})
        );
        // Globals merge into functions; the function's own variables win.
        let intake = &resources["IntakeFunction"];
        assert_eq!(intake.properties["Runtime"], json!("provided.al2023"));
        assert_eq!(
            intake.properties["Environment"]["Variables"]["LEDGER_TABLE"],
            json!({"Ref": "LedgerTable"})
        );
        assert_eq!(function_binary(intake).unwrap(), "trailgate-intake");
    }

    #[test]
    fn resolves_intrinsics_after_resources_are_registered() {
        let (template, mut resolver) = fixture();
        let resources = template.resources(&resolver).unwrap();
        resolver.register(
            "LedgerTable",
            Physical {
                ref_value: "trailgate-LedgerTable-X".into(),
                attributes: BTreeMap::from([(
                    "Arn".to_owned(),
                    "arn:aws:dynamodb:us-east-1:123456789012:table/trailgate-LedgerTable-X"
                        .to_owned(),
                )]),
            },
        );
        resolver.register(
            "TrailgateApi",
            Physical {
                ref_value: "abcdefghij".into(),
                ..Physical::default()
            },
        );
        resolver.register_api("abcdefghij", "127.0.0.1:4567");
        let variables = resolver
            .resolve(&resources["IntakeFunction"].properties["Environment"]["Variables"])
            .unwrap();
        assert_eq!(
            variables,
            json!({
                "CATALOG": "{\"entries\":[]}",
                "LEDGER_TABLE": "trailgate-LedgerTable-X",
                "URL": "http://127.0.0.1:4567/v1",
            }),
            "AWS::NoValue removes MODE; the execute-api URL points at the local API"
        );
        let outputs = template.outputs(&resolver).unwrap();
        assert_eq!(
            resolver.resolve(&outputs["TableArn"]["Value"]).unwrap(),
            json!("arn:aws:dynamodb:us-east-1:123456789012:table/trailgate-LedgerTable-X")
        );
        assert_eq!(
            resolver.resolve(&outputs["Joined"]["Value"]).unwrap(),
            json!("b@example.com,123456789012-${Literal}")
        );
    }

    #[test]
    fn unknown_references_and_bad_parameters_fail_clearly() {
        let (_, resolver) = fixture();
        let err = resolver
            .resolve(&json!({"Ref": "Nope"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`Ref` to `Nope`"), "{err}");
        let template = Template::parse(FIXTURE, Path::new("/repo")).unwrap();
        let err = Resolver::new(&template, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("parameter `Catalog` has no default"), "{err}");
        let overrides = BTreeMap::from([
            ("Catalog".to_owned(), "{}".to_owned()),
            ("Stage".to_owned(), "qa".to_owned()),
        ]);
        let err = Resolver::new(&template, &overrides)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not one of"), "{err}");
    }

    #[test]
    fn routes_and_references() {
        let (template, resolver) = fixture();
        let resources = template.resources(&resolver).unwrap();
        let routes = api_routes(&resources).unwrap();
        assert_eq!(routes.len(), 2);
        let create = routes.iter().find(|r| r.path == "/requests").unwrap();
        assert_eq!((create.method.as_str(), create.iam_auth), ("POST", true));
        let decide = routes.iter().find(|r| r.path == "/decisions/{id}").unwrap();
        assert_eq!(
            (
                decide.method.as_str(),
                decide.iam_auth,
                decide.binary.as_str()
            ),
            ("GET", false, "trailgate-intake")
        );
        let refs = references(&resources["IntakeFunction"].properties);
        assert!(
            refs.contains("TrailgateApi")
                && refs.contains("LedgerTable")
                && refs.contains("Catalog")
        );
        assert!(!refs.contains("AWS::Region"));
    }

    #[test]
    fn physical_names_are_stable_and_bounded() {
        let name = physical_name("CredentialsFunctionRole", 64);
        assert!(name.starts_with("trailgate-CredentialsFunctionRole-"));
        assert_eq!(name, physical_name("CredentialsFunctionRole", 64));
        assert!(physical_name(&"X".repeat(100), 64).len() <= 64);
    }
}
