//! The least-privilege policy a session's calls suggest, like IAM Access Analyzer's policy
//! generation: for each call that succeeded, the IAM actions of AWS's Service Authorization
//! Reference that authorise it ([`crate::iam::actions_for_call`]), scoped to the resources the
//! record names, one statement per service and set of resources. Calls that map to no action are
//! counted as unmapped, never guessed into a policy.
//!
//! Scoping, per action and call, first resource type of the action that works:
//! 1. ARNs the record names (`resources[].ARN`, and the fields of `requestParameters` and
//!    `responseElements` that name the resource: `...Arn`, `functionName`, ...) that match the
//!    type's ARN template;
//! 2. the template filled from the record: partition, `awsRegion`, `recipientAccountId`, and the
//!    request parameters of [`VARIABLE_PARAMETERS`] (`bucketName` → `${BucketName}`).
//!
//! An action that takes no resource type, or a call whose resource cannot be named, gets `*` for
//! that action, and so does an action used on more than [`MAX_SCOPED_RESOURCES`] resources (a
//! managed policy holds 6,144 characters). A value carrying an IAM wildcard or policy variable
//! (`*`, `?`, `$`) is never copied into an ARN: the caller chose it, and it would widen the grant.
//! IAM names are filled without a path (`roleName` gives `role/NAME`): a suggestion for a role
//! with a path is then too narrow, which denies rather than over-grants.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regex::Regex;
use serde_json::{Value, json};

use crate::iam::{self, Action, Scope};

/// Most ARNs one action is scoped to before the suggestion falls back to `*`.
pub const MAX_SCOPED_RESOURCES: usize = 20;

/// The request parameters that fill an ARN template's variables, beyond partition, Region and
/// account (which every record carries). Only names whose meaning is unambiguous: a generic
/// `${Name}` is left unfilled (so `*`) rather than filled from an unrelated `name`.
pub const VARIABLE_PARAMETERS: &[(&str, &[&str])] = &[
    ("BucketName", &["bucketName"]),
    ("ObjectName", &["key"]),
    ("RoleNameWithPath", &["roleName"]),
    ("UserNameWithPath", &["userName"]),
    ("GroupNameWithPath", &["groupName"]),
    ("FunctionName", &["functionName"]),
    ("TableName", &["tableName"]),
    ("TrailName", &["trailName", "name"]),
    ("LogGroupName", &["logGroupName"]),
    ("SecretId", &["secretId"]),
    ("KeyId", &["keyId"]),
    ("InstanceId", &["instanceId"]),
    ("StreamName", &["streamName"]),
    ("RepositoryName", &["repositoryName"]),
    ("ClusterName", &["clusterName"]),
];

/// A least-privilege suggestion: the policy and the calls it could not cover.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The IAM policy document.
    pub policy: Value,
    /// `service:eventName` → calls with no IAM action in the reference (`signin:ConsoleLogin`).
    pub unmapped: BTreeMap<String, u64>,
}

/// The resources one action was used on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Resources {
    Arns(BTreeSet<String>),
    Any,
}

impl Resources {
    fn widen(&mut self, other: Resources) {
        match (&mut *self, other) {
            (Resources::Any, _) => {}
            (_, Resources::Any) => *self = Resources::Any,
            (Resources::Arns(mine), Resources::Arns(theirs)) => {
                mine.extend(theirs);
                if mine.len() > MAX_SCOPED_RESOURCES {
                    *self = Resources::Any;
                }
            }
        }
    }
}

/// The suggestion for `calls`, the records of the calls that succeeded in the session.
pub fn suggest<'a>(calls: impl IntoIterator<Item = &'a Value>) -> Suggestion {
    let mut templates = Templates::default();
    let mut used: BTreeMap<(&'static str, &'static str), Resources> = BTreeMap::new();
    let mut unmapped: BTreeMap<String, u64> = BTreeMap::new();
    for record in calls {
        let source = text(record, "/eventSource").unwrap_or_default();
        let name = text(record, "/eventName").unwrap_or_default();
        if source.is_empty() || name.is_empty() {
            continue;
        }
        let actions = iam::actions_for_call(source, name);
        if actions.is_empty() {
            *unmapped
                .entry(format!("{}:{name}", iam::service_of(source)))
                .or_default() += 1;
            continue;
        }
        for (action, scope) in actions {
            let resources = match scope {
                Scope::Any => Resources::Any,
                Scope::Record => templates.scope(action, record),
            };
            match used.entry((action.service, action.name)) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    let mut first = Resources::Arns(BTreeSet::new());
                    first.widen(resources);
                    slot.insert(first);
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    slot.get_mut().widen(resources);
                }
            }
        }
    }
    Suggestion {
        policy: policy(&used),
        unmapped,
    }
}

/// One statement per service and resource set, actions sorted, so the same session always gives
/// the same document.
fn policy(used: &BTreeMap<(&'static str, &'static str), Resources>) -> Value {
    let mut grouped: BTreeMap<(&str, &Resources), BTreeSet<String>> = BTreeMap::new();
    for ((service, name), resources) in used {
        grouped
            .entry((service, resources))
            .or_default()
            .insert(format!("{service}:{name}"));
    }
    let mut per_service: HashMap<&str, usize> = HashMap::new();
    let statements: Vec<Value> = grouped
        .into_iter()
        .map(|((service, resources), actions)| {
            let count = per_service.entry(service).or_default();
            *count += 1;
            let sid: String = service
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            let sid = match *count {
                1 => format!("Used{sid}"),
                n => format!("Used{sid}{n}"),
            };
            let resource = match resources {
                Resources::Any => json!("*"),
                Resources::Arns(arns) => json!(arns),
            };
            json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource})
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn text<'a>(record: &'a Value, pointer: &str) -> Option<&'a str> {
    record.pointer(pointer).and_then(Value::as_str)
}

/// The ARN templates of the actions seen so far, compiled once each.
#[derive(Default)]
struct Templates {
    compiled: HashMap<&'static str, Option<Regex>>,
}

impl Templates {
    fn pattern(&mut self, template: &'static str) -> Option<&Regex> {
        self.compiled
            .entry(template)
            .or_insert_with(|| template_pattern(template))
            .as_ref()
    }

    /// The resources `action` was used on in `record` (see the module documentation).
    fn scope(&mut self, action: &Action, record: &Value) -> Resources {
        let candidates = named_arns(record);
        for resource_type in &action.resource_types {
            let Some(pattern) = self.pattern(resource_type.arn) else {
                continue;
            };
            let matched: BTreeSet<String> = candidates
                .iter()
                .filter(|arn| !has_wildcard(arn) && pattern.is_match(arn))
                .map(|arn| (*arn).to_owned())
                .collect();
            if !matched.is_empty() {
                return Resources::Arns(matched);
            }
            if let Some(arn) = fill(resource_type.arn, record).filter(|arn| pattern.is_match(arn)) {
                return Resources::Arns(BTreeSet::from([arn]));
            }
        }
        Resources::Any
    }
}

/// A regex matching the ARNs of a template: a variable matches one ARN segment (no `:` or `/`),
/// except a trailing one, which takes the rest (after a `/`: anything, as object keys and role
/// paths hold `/` and `:`; after a `:`: anything but `:`, as log group names hold `/`). Bucket
/// names are matched by their own alphabet, so a bucket's template never matches an object ARN.
fn template_pattern(template: &str) -> Option<Regex> {
    let mut pattern = String::from("^");
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let end = start + rest[start..].find('}')?;
        let variable = &rest[start + 2..end];
        let before = &rest[..start];
        let after = &rest[end + 1..];
        pattern.push_str(&regex::escape(before));
        pattern.push_str(match variable {
            "BucketName" => "[a-z0-9.-]+",
            _ if !after.is_empty() => "[^:/]+",
            _ if before.ends_with('/') => ".+",
            _ => "[^:]+",
        });
        rest = after;
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    Regex::new(&pattern).ok()
}

/// The template filled from the record, when every variable has a value and one of them names
/// the resource: a template of partition, Region and account alone (API Gateway's `/account`)
/// would match any call, so it scopes none.
fn fill(template: &str, record: &Value) -> Option<String> {
    let specific = template
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(variable, _)| variable))
        .any(|variable| !matches!(variable, "Partition" | "Region" | "Account"));
    if !specific {
        return None;
    }
    let mut arn = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let end = start + rest[start..].find('}')?;
        arn.push_str(&rest[..start]);
        let variable = &rest[start + 2..end];
        let value = value_of(variable, record)?;
        if value.is_empty() || has_wildcard(value) {
            return None;
        }
        arn.push_str(value);
        if variable == "SecretId" {
            // A secret's ARN ends in six random characters the name does not carry; AWS's own
            // guidance for policies naming a secret by name is this suffix.
            arn.push_str("-??????");
        }
        rest = &rest[end + 1..];
    }
    arn.push_str(rest);
    Some(arn)
}

fn value_of<'a>(variable: &str, record: &'a Value) -> Option<&'a str> {
    match variable {
        "Partition" => Some(partition(record)),
        "Region" => text(record, "/awsRegion"),
        "Account" => {
            text(record, "/recipientAccountId").or_else(|| text(record, "/userIdentity/accountId"))
        }
        _ => VARIABLE_PARAMETERS
            .iter()
            .find(|(name, _)| *name == variable)
            .and_then(|(_, fields)| {
                fields
                    .iter()
                    .find_map(|field| text(record, &format!("/requestParameters/{field}")))
            }),
    }
}

/// The record's partition: from the caller's ARN, else from its Region.
fn partition(record: &Value) -> &str {
    if let Some(partition) = text(record, "/userIdentity/arn")
        .and_then(|arn| arn.split(':').nth(1))
        .filter(|p| p.starts_with("aws"))
    {
        return partition;
    }
    match text(record, "/awsRegion") {
        Some(region) if region.starts_with("cn-") => "aws-cn",
        Some(region) if region.starts_with("us-gov-") => "aws-us-gov",
        _ => "aws",
    }
}

/// IAM wildcards and policy variables: never copied from a record into a policy.
fn has_wildcard(value: &str) -> bool {
    value.contains(['*', '?', '$'])
}

/// Request and response fields that hold the ARN of the call's resource beyond those named
/// `...Arn` (which all do): the fields whose value may be a name or an ARN.
const ARN_FIELDS: &[&str] = &[
    "functionName",
    "keyId",
    "secretId",
    "name",
    "trailName",
    "logGroupIdentifier",
];

/// The ARNs a record names: its `resources` (written by CloudTrail), the request's top-level
/// ARN fields, and the response's ARN fields a few levels down (`role.arn` of a CreateRole). Only
/// fields that name the resource count: a caller can put any ARN into a description or a tag,
/// and that must not become a grant. Bounded, so a hostile record cannot make the audit walk far.
fn named_arns(record: &Value) -> Vec<&str> {
    const MOST: usize = 64;
    fn names_resource(key: &str) -> bool {
        // Bytes, not a str slice: a caller-written key like `xéé` has no char boundary there.
        let bytes = key.as_bytes();
        (bytes.len() >= 3 && bytes[bytes.len() - 3..].eq_ignore_ascii_case(b"arn"))
            || ARN_FIELDS.contains(&key)
    }
    fn walk<'a>(value: &'a Value, depth: usize, out: &mut Vec<&'a str>) {
        if out.len() >= MOST || depth == 0 {
            return;
        }
        match value {
            Value::Array(items) => {
                for item in items {
                    walk(item, depth - 1, out);
                }
            }
            Value::Object(fields) => {
                for (key, field) in fields {
                    match field {
                        Value::String(s) if s.starts_with("arn:") && names_resource(key) => {
                            if out.len() < MOST {
                                out.push(s);
                            }
                        }
                        _ => walk(field, depth - 1, out),
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for resource in record
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(MOST)
    {
        if let Some(arn) = resource.get("ARN").and_then(Value::as_str) {
            out.push(arn);
        }
    }
    if let Some(request) = record.get("requestParameters") {
        walk(request, 1, &mut out);
    }
    if let Some(response) = record.get("responseElements") {
        walk(response, 3, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(source: &str, name: &str, extra: Value) -> Value {
        let mut record = json!({
            "eventSource": format!("{source}.amazonaws.com"), "eventName": name,
            "awsRegion": "eu-west-1", "recipientAccountId": "111122223333",
            "userIdentity": {"arn": "arn:aws:sts::111122223333:assumed-role/jit/alice"},
        });
        if let (Some(record), Value::Object(extra)) = (record.as_object_mut(), extra) {
            record.extend(extra);
        }
        record
    }

    fn statements(calls: &[Value]) -> Value {
        suggest(calls).policy["Statement"].clone()
    }

    #[test]
    fn actions_are_the_references_and_resources_are_the_records() {
        let calls = [
            call("s3", "ListBuckets", json!({})),
            call(
                "s3",
                "GetObject",
                json!({
                "requestParameters": {"bucketName": "data", "key": "reports/2026/q4.csv"},
                "resources": [
                    {"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::data/reports/2026/q4.csv"},
                    {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::data"}]}),
            ),
            call(
                "s3",
                "ListObjectsV2",
                json!({"requestParameters": {"bucketName": "data"}}),
            ),
            call(
                "iam",
                "GetRole",
                json!({"requestParameters": {"roleName": "deploy"}}),
            ),
        ];
        assert_eq!(
            statements(&calls),
            json!([
                {"Sid": "Usediam", "Effect": "Allow", "Action": ["iam:GetRole"],
                 "Resource": ["arn:aws:iam::111122223333:role/deploy"]},
                {"Sid": "Useds3", "Effect": "Allow", "Action": ["s3:ListBucket"],
                 "Resource": ["arn:aws:s3:::data"]},
                {"Sid": "Useds32", "Effect": "Allow", "Action": ["s3:GetObject"],
                 "Resource": ["arn:aws:s3:::data/reports/2026/q4.csv"]},
                {"Sid": "Useds33", "Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": "*"},
            ])
        );
    }

    #[test]
    fn calls_on_the_same_resources_share_a_statement() {
        let bucket = json!({"requestParameters": {"bucketName": "logs"}});
        let calls = [
            call("s3", "GetBucketPolicy", bucket.clone()),
            call("s3", "GetBucketEncryption", bucket.clone()),
            call("s3", "GetBucketPolicy", bucket),
        ];
        assert_eq!(
            statements(&calls),
            json!([{"Sid": "Useds3", "Effect": "Allow",
                    "Action": ["s3:GetBucketPolicy", "s3:GetEncryptionConfiguration"],
                    "Resource": ["arn:aws:s3:::logs"]}])
        );
    }

    #[test]
    fn an_unnamed_resource_widens_the_action_to_any() {
        let calls = [
            call(
                "iam",
                "GetRole",
                json!({"requestParameters": {"roleName": "deploy"}}),
            ),
            call("iam", "GetRole", json!({})),
        ];
        assert_eq!(statements(&calls)[0]["Resource"], "*");
        let many: Vec<Value> = (0..=MAX_SCOPED_RESOURCES)
            .map(|n| {
                call(
                    "iam",
                    "GetRole",
                    json!({"requestParameters": {"roleName": format!("r{n}")}}),
                )
            })
            .collect();
        assert_eq!(statements(&many)[0]["Resource"], "*");
        let few = &many[..MAX_SCOPED_RESOURCES];
        assert_eq!(
            statements(few)[0]["Resource"].as_array().map(Vec::len),
            Some(MAX_SCOPED_RESOURCES)
        );
    }

    #[test]
    fn caller_chosen_wildcards_never_reach_the_policy() {
        for bucket in ["*", "data*", "da?a", "${aws:username}"] {
            let calls = [call(
                "s3",
                "ListObjects",
                json!({"requestParameters": {"bucketName": bucket}}),
            )];
            assert_eq!(statements(&calls)[0]["Resource"], "*", "{bucket}");
        }
        let calls = [call(
            "s3",
            "GetObject",
            json!({
            "requestParameters": {"bucketName": "data", "key": "a*"},
            "resources": [{"ARN": "arn:aws:s3:::data/a*"}]}),
        )];
        assert_eq!(statements(&calls)[0]["Resource"], "*");
    }

    #[test]
    fn only_fields_that_name_the_resource_scope_it() {
        // The caller wrote the description and the tag; only the role's ARN names the resource.
        let calls = [call(
            "iam",
            "CreateRole",
            json!({
            "requestParameters": {"roleName": "app", "description": "arn:aws:iam::999999999999:role/admin",
                                  "tags": [{"key": "k", "value": "arn:aws:iam::999999999999:role/ops"}]},
            "responseElements": {"role": {"arn": "arn:aws:iam::111122223333:role/app",
                                          "description": "arn:aws:iam::999999999999:role/admin"}}}),
        )];
        assert_eq!(
            statements(&calls)[0]["Resource"],
            json!(["arn:aws:iam::111122223333:role/app"])
        );
        // Keys are the caller's too, in any script.
        let calls = [call(
            "iam",
            "GetRole",
            json!({"requestParameters": {
            "roleName": "app", "xéé": "arn:aws:iam::1:role/x", "éarn": "arn:aws:iam::111122223333:role/app"}}),
        )];
        assert_eq!(
            statements(&calls)[0]["Resource"],
            json!(["arn:aws:iam::111122223333:role/app"])
        );
        let calls = [call(
            "sts",
            "AssumeRole",
            json!({
            "requestParameters": {"roleArn": "arn:aws:iam::444455556666:role/audit", "roleSessionName": "arn:aws:iam::1:role/x"}}),
        )];
        assert_eq!(
            statements(&calls)[0]["Resource"],
            json!(["arn:aws:iam::444455556666:role/audit"])
        );
    }

    #[test]
    fn names_that_are_not_names_are_not_filled() {
        // A function named by ARN with a qualifier is no `${FunctionName}`.
        let calls = [call(
            "lambda",
            "GetFunction20150331v2",
            json!({
            "requestParameters": {"functionName": "arn:aws:lambda:eu-west-1:111122223333:function:f:3"}}),
        )];
        assert_eq!(statements(&calls)[0]["Resource"], "*");
        let calls = [call(
            "lambda",
            "GetFunction20150331v2",
            json!({
            "requestParameters": {"functionName": "arn:aws:lambda:eu-west-1:111122223333:function:f"}}),
        )];
        assert_eq!(
            statements(&calls)[0]["Resource"],
            json!(["arn:aws:lambda:eu-west-1:111122223333:function:f"])
        );
        let calls = [call(
            "secretsmanager",
            "GetSecretValue",
            json!({"requestParameters": {"secretId": "db/prod"}}),
        )];
        assert_eq!(
            statements(&calls)[0]["Resource"],
            json!(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/prod-??????"])
        );
    }

    #[test]
    fn a_copy_reads_its_source_unscoped() {
        let calls = [call(
            "s3",
            "CopyObject",
            json!({
            "requestParameters": {"bucketName": "dst", "key": "k", "x-amz-copy-source": "src/k"}}),
        )];
        assert_eq!(
            statements(&calls),
            json!([
                {"Sid": "Useds3", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::dst/k"]},
                {"Sid": "Useds32", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
            ])
        );
    }

    #[test]
    fn the_partition_follows_the_caller() {
        let mut record = call(
            "iam",
            "GetUser",
            json!({"requestParameters": {"userName": "ops"}}),
        );
        record["userIdentity"]["arn"] =
            json!("arn:aws-cn:sts::111122223333:assumed-role/jit/alice");
        assert_eq!(
            statements(&[record])[0]["Resource"],
            json!(["arn:aws-cn:iam::111122223333:user/ops"])
        );
    }

    #[test]
    fn unmapped_calls_are_counted_not_guessed() {
        let calls = [
            call("signin", "ConsoleLogin", json!({})),
            call("signin", "ConsoleLogin", json!({})),
            call("sts", "GetCallerIdentity", json!({})),
        ];
        let suggestion = suggest(&calls);
        assert_eq!(
            suggestion.unmapped,
            BTreeMap::from([("signin:ConsoleLogin".to_owned(), 2)])
        );
        assert_eq!(
            suggestion.policy["Statement"],
            json!([{"Sid": "Usedsts", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"}])
        );
    }

    #[test]
    fn a_template_naming_no_resource_scopes_nothing() {
        let record = call("apigateway", "GetAccount", json!({}));
        assert_eq!(
            fill("arn:${Partition}:apigateway:${Region}::/account", &record),
            None
        );
        assert_eq!(statements(&[record])[0]["Resource"], "*");
    }

    #[test]
    fn templates_match_their_own_resources_only() {
        let bucket = template_pattern("arn:${Partition}:s3:::${BucketName}");
        let object = template_pattern("arn:${Partition}:s3:::${BucketName}/${ObjectName}");
        let (Some(bucket), Some(object)) = (bucket, object) else {
            panic!("templates compile");
        };
        assert!(bucket.is_match("arn:aws:s3:::data"));
        assert!(!bucket.is_match("arn:aws:s3:::data/key"));
        assert!(object.is_match("arn:aws:s3:::data/a/b:c.txt"));
        assert!(!object.is_match("arn:aws:s3:::data"));
    }
}
