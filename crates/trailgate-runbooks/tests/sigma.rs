//! SigmaHQ aws/cloudtrail rules (runbooks/sigma/) run as runbooks: every rule loads through the
//! ordinary `Runbook::parse` / `Library` path, named rules find what they should on the real logs
//! in ../shared/data/cloudtrail and stay quiet on the benign fixture, and every rule's SQL equals
//! the engine on DuckDB (as tests/sql_duckdb.rs does for the runbook library).
//!
//! Expected counts were established by reading the files independently (Python), as explained
//! next to each assertion.

mod common;

use std::path::{Path, PathBuf};

use common::{all_time, column, duckdb, duckdb_python, fixture, real_data, table};
use serde_json::json;
use trailgate_runbooks::source::files::FileSource;
use trailgate_runbooks::sql::{self, Dialect, FileLayout, Section, SqlError};
use trailgate_runbooks::{Library, LoadError, Runbook, RunbookResult, Severity, run};

/// Rule files in runbooks/sigma/ (SigmaHQ rules/cloud/aws/cloudtrail).
const RULES: usize = 57;

fn sigma_folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../runbooks/sigma")
}

fn sigma_library() -> Library {
    match Library::load_dir(sigma_folder()) {
        Ok(library) => library,
        Err(error) => panic!("Sigma rules do not load: {error}"),
    }
}

fn run_rule(id: &str, path: PathBuf) -> RunbookResult {
    let library = sigma_library();
    let Some(runbook) = library.get(id) else {
        panic!("no Sigma rule `{id}`");
    };
    let mut source = FileSource::new(path);
    match run(runbook, &all_time(), &mut source) {
        Ok(result) => result,
        Err(error) => panic!("Sigma rule `{id}` failed: {error}"),
    }
}

macro_rules! real {
    () => {
        match real_data() {
            Some(folder) => folder,
            None => return,
        }
    };
}

#[test]
fn every_sigma_rule_loads_as_a_runbook() {
    let (library, errors) = Library::check_dir(sigma_folder());
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(library.len(), RULES);
    for runbook in library.iter() {
        let spec = runbook.spec();
        // The id is the file stem; the rule's UUID and licence are in the references.
        let stem = Path::new(runbook.file())
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("file stem");
        assert_eq!(runbook.id(), stem.replace('_', "-"));
        assert!(
            spec.references
                .iter()
                .any(|reference| reference.contains("Detection Rule License 1.1")),
            "{}",
            runbook.id()
        );
        assert_eq!(spec.window.lookback, "P7D");
        let rows = spec.output.rows.as_ref().expect("default rows");
        assert_eq!(
            &rows.columns[..7],
            [
                "eventTime",
                "eventName",
                "eventSource",
                "userIdentity.arn",
                "sourceIPAddress",
                "awsRegion",
                "errorCode"
            ]
        );
    }
}

#[test]
fn rule_metadata_becomes_severity_attack_and_next_steps() {
    let library = sigma_library();
    let rule = library
        .get("aws-cloudtrail-disable-logging")
        .expect("rule exists");
    // The Detection Rule License asks that output showing matches names the author.
    assert_eq!(
        rule.title(),
        "AWS CloudTrail Important Change (Sigma rule by vitaliy0x1)"
    );
    assert_eq!(rule.severity(), Severity::Medium);
    assert_eq!(rule.spec().attack, vec!["T1562.001"]);
    assert_eq!(
        rule.spec().next_steps,
        vec!["Rule out a known false positive: Valid change in a Trail"]
    );
    assert!(
        rule.spec()
            .description
            .contains("Sigma rule `4db60cc0-36fb-42b7-9b58-a5b53019fb74`")
    );
    let lookup = rule.spec().lookup.as_ref().expect("lookup hint");
    assert_eq!(lookup.values, ["StopLogging", "UpdateTrail", "DeleteTrail"]);
    // `level: high` and the rule's own `fields` as extra columns.
    let evasion = library
        .get("aws-securityhub-finding-evasion")
        .expect("rule exists");
    assert_eq!(evasion.severity(), Severity::High);
    let backdoor = library
        .get("aws-iam-backdoor-users-keys")
        .expect("rule exists");
    let columns = &backdoor.spec().output.rows.as_ref().expect("rows").columns;
    assert!(columns.contains(&"responseElements.accessKey.userName".to_owned()));
    assert!(columns.contains(&"errorMessage".to_owned()));
}

#[test]
fn a_sigma_file_loads_through_runbook_parse_and_errors_name_the_file_and_line() {
    let text = std::fs::read_to_string(sigma_folder().join("aws_root_account_usage.yml"))
        .expect("rule reads");
    let runbook = Runbook::parse(&text, "runbooks/sigma/aws_root_account_usage.yml")
        .expect("Sigma rule parses");
    assert_eq!(runbook.id(), "aws-root-account-usage");
    let broken = text.replace(
        "condition: selection_usertype and not selection_eventtype",
        "condition: selection_usertype | count() > 5",
    );
    let error = Runbook::parse(&broken, "rules/root.yml").expect_err("aggregation is refused");
    let LoadError::Invalid(invalid) = &error else {
        panic!("unexpected error {error}");
    };
    assert_eq!(invalid.file, "rules/root.yml");
    assert_eq!(invalid.line, Some(21));
    assert_eq!(invalid.path, "detection.condition");
    assert!(
        error
            .to_string()
            .starts_with("rules/root.yml:21:16: detection.condition: aggregation"),
        "{error}"
    );
    assert!(
        error.to_string().contains("aggregation `| count() > 5`"),
        "{error}"
    );
}

#[test]
fn disable_logging_finds_stop_logging_and_delete_trail() {
    let folder = real!();
    let result = run_rule("aws-cloudtrail-disable-logging", folder);
    // 3 StopLogging and 3 DeleteTrail from cloudtrail.amazonaws.com; no UpdateTrail.
    assert_eq!(result.coverage.events_matched, 6);
    let names = column(&result, "eventName");
    assert_eq!(
        names.iter().filter(|name| *name == "StopLogging").count(),
        3
    );
    assert_eq!(
        names.iter().filter(|name| *name == "DeleteTrail").count(),
        3
    );
    let quiet = run_rule("aws-cloudtrail-disable-logging", fixture("benign.json"));
    // The benign fixture has StartLogging only.
    assert_eq!(quiet.coverage.events_matched, 0);
}

#[test]
fn console_login_without_mfa_matches_no_although_the_rule_says_upper_case_no() {
    let folder = real!();
    // The rule says `additionalEventData.MFAUsed: 'NO'`; the record says "No". Sigma compares
    // case-insensitively, so the stratus user's password-only sign-in is found.
    let result = run_rule("aws-cloudtrail-console-login-success-without-mfa", folder);
    assert_eq!(result.coverage.events_matched, 1);
    assert_eq!(
        column(&result, "userIdentity.arn"),
        ["arn:aws:iam::123837392027:user/stratus-red-team-nmfalu-gfjyeaypjt"]
    );
    assert_eq!(column(&result, "eventTime"), ["2023-07-10T12:23:15Z"]);
    // The benign sign-in used MFA.
    let quiet = run_rule(
        "aws-cloudtrail-console-login-success-without-mfa",
        fixture("benign.json"),
    );
    assert_eq!(quiet.coverage.events_matched, 0);
}

#[test]
fn iam_backdoor_users_keys_finds_keys_created_by_bert_jan() {
    let folder = real!();
    let result = run_rule("aws-iam-backdoor-users-keys", folder);
    // Both CreateAccessKey calls: bert-jan created keys for stratus-red-team-backdoor-u-user and
    // malicious-iam-user. The stored rule's filter `userIdentity.arn|contains:
    // responseElements.accessKey.userName` has no `fieldref`, so Sigma reads the value as the
    // literal text "responseElements.accessKey.userName", which no ARN contains: the filter never
    // excludes anything, here as in every Sigma backend.
    assert_eq!(result.coverage.events_matched, 2);
    assert_eq!(
        column(&result, "userIdentity.arn"),
        [
            "arn:aws:iam::123837392027:user/bert-jan",
            "arn:aws:iam::123837392027:user/bert-jan"
        ]
    );
    let mut users = column(&result, "responseElements.accessKey.userName");
    users.sort();
    assert_eq!(
        users,
        ["malicious-iam-user", "stratus-red-team-backdoor-u-user"]
    );
    let quiet = run_rule("aws-iam-backdoor-users-keys", fixture("benign.json"));
    assert_eq!(quiet.coverage.events_matched, 0);
}

#[test]
fn security_group_ingress_egress_changes_are_found() {
    let folder = real!();
    let result = run_rule(
        "aws-cloudtrail-security-group-change-ingress-egress",
        folder,
    );
    // 2 AuthorizeSecurityGroupIngress, 1 AuthorizeSecurityGroupEgress, 1 RevokeSecurityGroupIngress,
    // 2 RevokeSecurityGroupEgress.
    assert_eq!(result.coverage.events_matched, 6);
    // The Sigma rule flags every rule change, also the benign fixture's ingress from 10.0.0.0/8
    // (the `network-exposure` runbook only flags 0.0.0.0/0).
    let benign = run_rule(
        "aws-cloudtrail-security-group-change-ingress-egress",
        fixture("benign.json"),
    );
    assert_eq!(benign.coverage.events_matched, 1);
    assert_eq!(
        column(&benign, "eventName"),
        ["AuthorizeSecurityGroupIngress"]
    );
}

#[test]
fn other_named_rules_find_the_attack_simulation() {
    let folder = real!();
    let cases: [(&str, u64); 8] = [
        // 6 CreateRoute calls from ec2.amazonaws.com.
        ("aws-cloudtrail-new-route-added", 6),
        // 2 ModifySnapshotAttribute (the share and the unshare).
        ("aws-snapshot-backup-exfiltration", 2),
        // One DeleteFlowLogs without errorCode (`errorCode: null`).
        ("aws-cloudtrail-vpc-flow-logs-deleted", 1),
        // 8 DeleteBucket, 3 of which failed with BucketNotEmpty: `1 of selection_status_*`
        // keeps errorCode null or 'Success'.
        ("aws-cloudtrail-bucket-deleted", 5),
        // The single root record (GetResource), not an AwsServiceEvent.
        ("aws-root-account-usage", 1),
        // 3 ListBuckets by IAM users (`not filter` drops assumed roles).
        ("aws-enum-buckets", 3),
        // 82 records of assumed-role sessions issued by a role.
        ("aws-sts-assumerole-misuse", 82),
        // SendCommand's responseElements.command.status is "Pending", never "Success".
        ("aws-cloudtrail-ssm-malicious-usage", 0),
    ];
    for (id, expected) in cases {
        let result = run_rule(id, folder.clone());
        assert_eq!(result.coverage.events_matched, expected, "{id}");
    }
}

#[test]
fn every_sigma_rule_runs_on_the_fixtures() {
    let library = sigma_library();
    for runbook in library.iter() {
        for file in ["benign.json", "attacks.ndjson"] {
            let mut source = FileSource::new(fixture(file));
            let result = run(runbook, &all_time(), &mut source).expect("runs");
            assert!(result.coverage.events_scanned > 0, "{}", runbook.id());
            assert_eq!(result.coverage.records_skipped, 0, "{}", runbook.id());
        }
    }
}

/// Rules that name a field outside the Athena CloudTrail table, so they have no SQL form; the
/// compiler must refuse them with that field.
const NO_SQL: [(&str, &str); 1] = [
    // `status: 'success'` is not a CloudTrail field.
    ("aws-delete-saml-provider", "status"),
];

#[test]
fn every_sigma_rule_gives_the_same_result_in_duckdb_sql_and_in_the_engine() {
    let Some(python) = duckdb_python() else {
        return;
    };
    let library = sigma_library();
    let mut datasets: Vec<(&str, PathBuf, FileLayout)> = vec![
        ("benign", fixture("benign.json"), FileLayout::Records),
        ("attacks", fixture("attacks.ndjson"), FileLayout::Lines),
    ];
    if let Some(folder) = real_data() {
        datasets.push(("real", folder, FileLayout::Records));
    }
    let mut setup = Vec::new();
    let mut queries = Vec::new();
    let mut expected = Vec::new();
    for (name, root, layout) in &datasets {
        let files = FileSource::new(root).files().expect("files list");
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let view = format!("ct_{name}");
        setup.push(sql::duckdb_view(&format!("{view}_v"), &files, *layout).expect("view"));
        setup.push(format!("CREATE TABLE {view} AS SELECT * FROM {view}_v"));
        for runbook in library.iter() {
            let compiled = runbook.compile(&all_time()).expect("binds");
            let plan = match compiled.to_sql(Dialect::DuckDb, &view) {
                Ok(plan) => plan,
                Err(error) => {
                    let refused = NO_SQL.iter().find(|(id, _)| *id == runbook.id());
                    match (refused, &error) {
                        (Some((_, field)), SqlError::UnsupportedField(found)) if found == field => {
                            continue;
                        }
                        _ => panic!("{} does not compile to SQL: {error}", runbook.id()),
                    }
                }
            };
            assert!(
                NO_SQL.iter().all(|(id, _)| *id != runbook.id()),
                "{} compiles now: update NO_SQL",
                runbook.id()
            );
            let mut source = FileSource::new(root);
            let result = run(runbook, &all_time(), &mut source).expect("engine runs");
            for query in plan.queries {
                let id = format!("{name}/{}/{}", runbook.id(), query.section.name());
                queries.push(json!({"id": id, "sql": query.sql}));
                expected.push((id, query.section, result.clone()));
            }
        }
    }
    let answer = duckdb(&python, &json!({"setup": setup, "queries": queries}));
    let errors = answer["errors"].as_object().expect("errors object");
    assert!(errors.is_empty(), "DuckDB rejected queries: {errors:#?}");
    let results = answer["results"].as_object().expect("results object");
    let mut failures = Vec::new();
    let mut matched_rules = std::collections::BTreeSet::new();
    for (id, section, result) in &expected {
        let rows = table(&results[id.as_str()]);
        let difference = match section {
            Section::Summary => {
                let coverage = &result.coverage;
                let engine = vec![vec![
                    coverage.events_scanned.to_string(),
                    coverage.events_matched.to_string(),
                    coverage.events_outside_window.to_string(),
                ]];
                if coverage.events_matched > 0 {
                    matched_rules.insert(id.split('/').nth(1).unwrap_or_default().to_owned());
                }
                (engine != rows).then(|| format!("engine {engine:?}, sql {rows:?}"))
            }
            Section::Rows => {
                let section = result.rows.as_ref().expect("rows section");
                let mut engine = section.rows.clone();
                let mut sql = rows.clone();
                assert!(
                    section.matched <= section.rows.len() as u64,
                    "{id}: more matches than the row limit; compare boundaries as sql_duckdb.rs does"
                );
                // Records of the same second have no defined order in either engine.
                engine.sort();
                sql.sort();
                (engine != sql).then(|| format!("engine {engine:?}\n    sql {sql:?}"))
            }
            other => Some(format!("unexpected section {}", other.name())),
        };
        if let Some(difference) = difference {
            failures.push(format!("{id}: {difference}"));
        }
    }
    println!(
        "DuckDB {}: {} Sigma section queries compared, {} rules matched something",
        answer["duckdb"],
        expected.len(),
        matched_rules.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The proof means something only if rules match something somewhere.
    assert!(matched_rules.len() >= 10, "{matched_rules:?}");
}
