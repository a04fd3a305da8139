//! Every runbook of the library on the real CloudTrail logs in ../shared/data/cloudtrail.
//!
//! The expected counts were established by reading the files independently (jq and Python) and
//! are explained next to each assertion. The folder holds 2,928 readable records: aws_dataset
//! (2,900, one attack simulation), cloud-snitch (21), trailscraper (7; its two-record file is
//! there both as .json and .json.gz). The Security-Datasets zip is not read (no zip support).

mod common;

use common::{all_time, column, distinct, group, real_data, run_on};
use trailgate_runbooks::Params;

macro_rules! real {
    () => {
        match real_data() {
            Some(folder) => folder,
            None => return,
        }
    };
}

#[test]
fn the_whole_folder_is_read_without_skips() {
    let folder = real!();
    let result = run_on("root-usage", all_time(), folder);
    assert_eq!(result.coverage.events_scanned, 2928);
    assert_eq!(result.coverage.files_read, 60);
    assert_eq!(
        result.coverage.records_skipped, 0,
        "{:?}",
        result.coverage.skip_reasons
    );
}

#[test]
fn requester_activity_summarises_benjamin() {
    let folder = real!();
    let result = run_on(
        "requester-activity",
        all_time().set("requester", "benjamin"),
        folder,
    );
    // 105 records by IAM user benjamin, all in us-east-1, 11:42:18 to 12:37:50.
    assert_eq!(result.coverage.events_matched, 105);
    assert_eq!(
        group(
            &result,
            &["health.amazonaws.com", "DescribeEventAggregates"]
        ),
        Some(23)
    );
    assert_eq!(
        group(&result, &["s3.amazonaws.com", "GetBucketAcl"]),
        Some(16)
    );
    assert_eq!(distinct(&result, "awsRegion"), vec!["us-east-1"]);
    assert_eq!(
        distinct(&result, "errorCode"),
        vec!["NoSuchBucketPolicy", "NoSuchPublicAccessBlockConfiguration"]
    );
    let seen = result.first_last_seen.as_ref().expect("first_last_seen");
    assert_eq!(seen.entries.len(), 1);
    assert_eq!(
        seen.entries[0].key,
        vec!["arn:aws:iam::123837392027:user/benjamin"]
    );
    assert_eq!(
        (
            seen.entries[0].first.as_str(),
            seen.entries[0].last.as_str()
        ),
        ("2023-07-10T11:42:18Z", "2023-07-10T12:37:50Z")
    );
    // Rows are newest first and capped at the runbook's limit of 25.
    let times = column(&result, "eventTime");
    assert_eq!(times.len(), 25);
    assert_eq!(times[0], "2023-07-10T12:37:50Z");
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]));
}

#[test]
fn requester_activity_is_quiet_for_an_unknown_requester() {
    let folder = real!();
    let result = run_on(
        "requester-activity",
        all_time().set("requester", "mallory"),
        folder,
    );
    assert_eq!(result.coverage.events_matched, 0);
    assert!(!result.has_findings());
}

#[test]
fn access_denied_finds_the_probing_roles() {
    let folder = real!();
    let result = run_on("access-denied", all_time(), folder);
    // AccessDenied 16 + Client.UnauthorizedOperation 44.
    assert_eq!(result.coverage.events_matched, 60);
    let top = result.top.as_ref().expect("top");
    assert_eq!(
        top.values[0].value,
        "arn:aws:sts::123837392027:assumed-role/stratus-red-team-ec2-get-password-data-role/aws-go-sdk-1688990082523310002"
    );
    assert_eq!(top.values[0].count, 29);
    assert_eq!(
        group(
            &result,
            &[
                "arn:aws:iam::123837392027:user/bert-jan",
                "sts.amazonaws.com",
                "AssumeRole",
                "AccessDenied"
            ]
        ),
        Some(13)
    );
}

#[test]
fn console_login_failures_and_spraying_are_absent_from_the_real_data() {
    let folder = real!();
    // Both real ConsoleLogin events succeeded: the data set has no failed sign-ins.
    assert_eq!(
        run_on("console-login-failures", all_time(), folder.clone())
            .coverage
            .events_matched,
        0
    );
    let spray = run_on("console-password-spray", all_time(), folder);
    assert!(!spray.has_findings());
}

#[test]
fn console_login_without_mfa_finds_the_stratus_user() {
    let folder = real!();
    let result = run_on("console-login-without-mfa", all_time(), folder);
    // Two successful ConsoleLogins; only the one with MFAUsed "No" matches ("NO"/"no" case-insensitively).
    assert_eq!(result.coverage.events_matched, 1);
    assert_eq!(
        distinct(&result, "userIdentity.arn"),
        vec!["arn:aws:iam::123837392027:user/stratus-red-team-nmfalu-gfjyeaypjt"]
    );
    assert_eq!(column(&result, "eventTime"), vec!["2023-07-10T12:23:15Z"]);
}

#[test]
fn root_usage_finds_the_single_root_record() {
    let folder = real!();
    let result = run_on("root-usage", all_time(), folder);
    // trailscraper's smoke-test file: GetResource on API Gateway, eventVersion 1.03.
    assert_eq!(result.coverage.events_matched, 1);
    assert_eq!(column(&result, "eventName"), vec!["GetResource"]);
}

#[test]
fn logging_tampering_finds_trail_and_flow_log_attacks() {
    let folder = real!();
    let result = run_on("logging-tampering", all_time(), folder);
    // StopLogging 3 (all TrailNotFoundException), DeleteTrail 3 (one failed), PutEventSelectors 1
    // of 2, DeleteFlowLogs 1, DeleteLogGroup 1. The attack (12:00:08) sets ReadOnly without
    // management events; the cleanup (12:07:49) restores All with management events, which
    // turns logging back on and is not tampering.
    assert_eq!(result.coverage.events_matched, 9);
    assert_eq!(
        group(&result, &["StopLogging", "TrailNotFoundException"]),
        Some(3)
    );
    assert_eq!(group(&result, &["DeleteTrail", ""]), Some(2));
    assert_eq!(
        group(&result, &["DeleteTrail", "TrailNotFoundException"]),
        Some(1)
    );
    assert_eq!(group(&result, &["PutEventSelectors", ""]), Some(1));
    let times = column(&result, "eventTime");
    assert!(times.contains(&"2023-07-10T12:00:08Z".to_owned()));
    assert!(!times.contains(&"2023-07-10T12:07:49Z".to_owned()));
    assert_eq!(group(&result, &["DeleteFlowLogs", ""]), Some(1));
}

#[test]
fn iam_credential_persistence_finds_users_passwords_and_keys() {
    let folder = real!();
    let result = run_on("iam-credential-persistence", all_time(), folder);
    assert_eq!(result.coverage.events_matched, 8);
    assert_eq!(group(&result, &["CreateUser"]), Some(4));
    assert_eq!(group(&result, &["CreateLoginProfile"]), Some(2));
    assert_eq!(group(&result, &["CreateAccessKey"]), Some(2));
}

#[test]
fn iam_backdoor_other_user_finds_bert_jan_creating_credentials_for_others() {
    let folder = real!();
    let result = run_on("iam-backdoor-other-user", all_time(), folder);
    assert_eq!(result.coverage.events_matched, 4);
    let mut targets = column(&result, "requestParameters.userName");
    targets.sort();
    assert_eq!(
        targets,
        vec![
            "malicious-iam-user",
            "stratus-red-team-backdoor-u-user",
            "stratus-red-team-login-profile-user",
            "stratus-red-team-nmfalu-gfjyeaypjt"
        ]
    );
}

#[test]
fn iam_privilege_escalation_finds_policy_and_trust_changes() {
    let folder = real!();
    let result = run_on("iam-privilege-escalation", all_time(), folder);
    // AttachRolePolicy 6, PutRolePolicy 5, UpdateAssumeRolePolicy 2, AttachUserPolicy 1.
    assert_eq!(result.coverage.events_matched, 14);
    assert_eq!(
        group(
            &result,
            &[
                "AttachUserPolicy",
                "arn:aws:iam::aws:policy/AdministratorAccess"
            ]
        ),
        Some(1)
    );
    assert_eq!(
        group(
            &result,
            &[
                "AttachRolePolicy",
                "arn:aws:iam::aws:policy/AdministratorAccess"
            ]
        ),
        Some(1)
    );
    assert_eq!(group(&result, &["UpdateAssumeRolePolicy", ""]), Some(2));
}

#[test]
fn federation_changes_find_roles_anywhere_trust_anchors() {
    let folder = real!();
    let result = run_on("federation-changes", all_time(), folder);
    // CreateTrustAnchor, CreateProfile, DeleteTrustAnchor, DeleteProfile; List* calls excluded.
    assert_eq!(result.coverage.events_matched, 4);
    assert_eq!(
        group(
            &result,
            &["rolesanywhere.amazonaws.com", "CreateTrustAnchor"]
        ),
        Some(1)
    );
    assert_eq!(
        group(&result, &["rolesanywhere.amazonaws.com", "ListProfiles"]),
        None
    );
}

#[test]
fn role_assumptions_count_assume_role_calls() {
    let folder = real!();
    let result = run_on("role-assumptions", all_time(), folder);
    // 54 AssumeRole: 49 in aws_dataset, 2 in cloud-snitch, 3 in trailscraper (one file twice).
    assert_eq!(result.coverage.events_matched, 54);
    assert_eq!(
        group(
            &result,
            &["IAMUser", "arn:aws:iam::123837392027:user/bert-jan", ""]
        ),
        Some(13)
    );
    assert_eq!(
        group(
            &result,
            &[
                "AWSService",
                "",
                "arn:aws:iam::123837392027:role/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS"
            ]
        ),
        Some(10)
    );
}

#[test]
fn instance_credentials_off_host_flags_the_stolen_instance_session_only() {
    let folder = real!();
    let result = run_on("instance-credentials-off-host", all_time(), folder);
    // Three instance-role sessions exist; only i-0dbc91f429e48eeed is used from two IPs.
    assert_eq!(result.coverage.events_matched, 24);
    let counts = result.counts.as_ref().expect("counts");
    assert_eq!(counts.groups.len(), 1);
    assert_eq!(
        counts.groups[0].key,
        vec!["AROATFQR7NSC6Q6YRQ2Q7:i-0dbc91f429e48eeed"]
    );
    assert_eq!(
        (counts.groups[0].count, counts.groups[0].distinct),
        (15, Some(2))
    );
    let seen = result.first_last_seen.as_ref().expect("first_last_seen");
    let attacker = seen
        .entries
        .iter()
        .find(|entry| entry.key[1] == "192.168.10.20")
        .expect("attacker IP seen");
    assert_eq!((attacker.key[2].as_str(), attacker.count), ("1.0", 2));
    let instance = seen
        .entries
        .iter()
        .find(|entry| entry.key[1] == "3.225.16.109")
        .expect("instance IP seen");
    assert_eq!((instance.key[2].as_str(), instance.count), ("2.0", 13));
}

#[test]
fn access_key_activity_profiles_one_key() {
    let folder = real!();
    let result = run_on(
        "access-key-activity",
        all_time().set("access_key_id", "AKIATFQR7NSCUXC3DDDP"),
        folder.clone(),
    );
    assert_eq!(result.coverage.events_matched, 43);
    assert_eq!(
        distinct(&result, "userIdentity.arn"),
        vec!["arn:aws:iam::123837392027:user/benjamin"]
    );
    let seen = result.first_last_seen.as_ref().expect("first_last_seen");
    assert_eq!(seen.entries.len(), 2, "one IP, two user-agent spellings");
    assert!(
        seen.entries
            .iter()
            .all(|entry| entry.key[0] == "10.248.16.43")
    );
    // Access key ids are compared case-sensitively: a lower-cased id is another key.
    let other = run_on(
        "access-key-activity",
        all_time().set("access_key_id", "akiatfqr7nscuxc3dddp"),
        folder,
    );
    assert_eq!(other.coverage.events_matched, 0);
}

#[test]
fn recon_burst_flags_the_two_operators() {
    let folder = real!();
    let result = run_on("recon-burst", all_time(), folder);
    let counts = result.counts.as_ref().expect("counts");
    // bert-jan called 137 distinct read-only List/Describe/Get actions, benjamin 20; the
    // stolen instance session only 4, below the threshold of 20.
    let keys: Vec<(&str, Option<u64>)> = counts
        .groups
        .iter()
        .map(|group| (group.key[0].as_str(), group.distinct))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("arn:aws:iam::123837392027:user/bert-jan", Some(137)),
            ("arn:aws:iam::123837392027:user/benjamin", Some(20))
        ]
    );
}

#[test]
fn secrets_access_counts_secret_parameter_and_password_reads() {
    let folder = real!();
    let result = run_on("secrets-access", all_time(), folder);
    // GetParameter 82 and GetParameters 5 with decryption, GetSecretValue 60, GetPasswordData 29 (denied).
    assert_eq!(result.coverage.events_matched, 176);
    assert_eq!(
        group(
            &result,
            &[
                "arn:aws:iam::123837392027:user/bert-jan",
                "GetSecretValue",
                ""
            ]
        ),
        Some(60)
    );
    assert_eq!(distinct(&result, "requestParameters.secretId").len(), 20);
}

#[test]
fn s3_data_access_finds_nothing_without_data_events() {
    let folder = real!();
    // aws_dataset holds management events only; the data events are in the unread zip.
    let result = run_on("s3-data-access", all_time(), folder);
    assert_eq!(result.coverage.events_matched, 0);
}

#[test]
fn sharing_exfiltration_finds_shares_but_not_unshares() {
    let folder = real!();
    let result = run_on("sharing-exfiltration", all_time(), folder);
    // Each resource was shared once and unshared once; only the three "add" calls match.
    assert_eq!(result.coverage.events_matched, 3);
    let mut names = column(&result, "eventName");
    names.sort();
    assert_eq!(
        names,
        vec![
            "ModifyDBSnapshotAttribute",
            "ModifyImageAttribute",
            "ModifySnapshotAttribute"
        ]
    );
    assert!(
        column(
            &result,
            "requestParameters.createVolumePermission.add.items.userId"
        )
        .contains(&"012345678912".to_owned())
    );
}

#[test]
fn bucket_policy_exposure_finds_the_cross_account_grant() {
    let folder = real!();
    let result = run_on("bucket-policy-exposure", all_time(), folder);
    // Three PutBucketPolicy calls: two grant cloudtrail.amazonaws.com, one grants account 193672423079.
    assert_eq!(result.coverage.events_matched, 1);
    assert_eq!(
        column(&result, "requestParameters.bucketName"),
        vec!["stratus-red-team-bdbp-lhfzvgcamn"]
    );
}

#[test]
fn network_exposure_finds_both_open_ingress_shapes() {
    let folder = real!();
    let result = run_on("network-exposure", all_time(), folder);
    // 443 via ipPermissions, 22 via the flat cidrIp form; egress and routes are not matched.
    assert_eq!(result.coverage.events_matched, 2);
    let ports: Vec<String> = column(&result, "requestParameters.ipPermissions.items.fromPort")
        .into_iter()
        .zip(column(&result, "requestParameters.fromPort"))
        .map(|(nested, flat)| if nested.is_empty() { flat } else { nested })
        .collect();
    assert_eq!(ports, vec!["443", "22"]);
}

#[test]
fn compute_abuse_finds_instances_commands_and_lambda_code() {
    let folder = real!();
    let result = run_on("compute-abuse", all_time(), folder);
    // RunInstances 8, CreateFunction20150331 6, UpdateFunctionCode20150331v2 2, SendCommand 2.
    assert_eq!(result.coverage.events_matched, 18);
    let counts = result.counts.as_ref().expect("counts");
    let run_instances: u64 = counts
        .groups
        .iter()
        .filter(|group| group.key[0] == "RunInstances")
        .map(|group| group.count)
        .sum();
    assert_eq!(run_instances, 8);
    let lambda_updates: u64 = counts
        .groups
        .iter()
        .filter(|group| group.key[0] == "UpdateFunctionCode20150331v2")
        .map(|group| group.count)
        .sum();
    assert_eq!(lambda_updates, 2);
}

#[test]
fn destructive_activity_finds_the_cleanup() {
    let folder = real!();
    let result = run_on("destructive-activity", all_time(), folder);
    // DeleteSecret 17, DeleteBucket 8, DeleteSnapshot 2, DeleteVolume 2, DeleteDBInstance 2, DeleteDBSnapshot 1.
    assert_eq!(result.coverage.events_matched, 32);
    let counts = result.counts.as_ref().expect("counts");
    let secrets: u64 = counts
        .groups
        .iter()
        .filter(|group| group.key[1] == "DeleteSecret")
        .map(|group| group.count)
        .sum();
    assert_eq!(secrets, 17);
    assert_eq!(
        group(
            &result,
            &[
                "arn:aws:iam::123837392027:user/bert-jan",
                "DeleteBucket",
                "BucketNotEmpty"
            ]
        ),
        Some(3)
    );
}

#[test]
fn account_changes_find_the_denied_leave_organization() {
    let folder = real!();
    let result = run_on("account-changes", all_time(), folder);
    assert_eq!(result.coverage.events_matched, 1);
    assert_eq!(column(&result, "eventName"), vec!["LeaveOrganization"]);
    assert_eq!(column(&result, "errorCode"), vec!["AccessDenied"]);
}

#[test]
fn resource_history_lists_writes_to_the_backdoored_role() {
    let folder = real!();
    let result = run_on(
        "resource-history",
        all_time().set("resource", "stratus-red-team-backdoor-r-role"),
        folder.clone(),
    );
    // 17 records name the role; 11 are reads. The writes, in time order:
    assert_eq!(
        column(&result, "eventName"),
        vec![
            "CreateRole",
            "AttachRolePolicy",
            "UpdateAssumeRolePolicy",
            "UpdateAssumeRolePolicy",
            "DetachRolePolicy",
            "DeleteRole"
        ]
    );
    let snapshot = run_on(
        "resource-history",
        all_time().set("resource", "snap-083d3b857c13988bc"),
        folder,
    );
    assert_eq!(
        column(&snapshot, "eventName"),
        vec![
            "ModifySnapshotAttribute",
            "ModifySnapshotAttribute",
            "DeleteSnapshot"
        ]
    );
}

#[test]
fn jit_session_audit_finds_nothing_without_source_identities() {
    let folder = real!();
    // No record in the real data carries a sourceIdentity.
    let result = run_on(
        "jit-session-audit",
        all_time()
            .set("requester", "bert-jan")
            .set("request_id", "r-1")
            .set("session_name", "tg-bert-jan-r-1"),
        folder,
    );
    assert_eq!(result.coverage.events_matched, 0);
}

#[test]
fn the_window_limits_what_is_matched() {
    let folder = real!();
    use time::macros::datetime;
    // 12:00 to 12:02 holds PutEventSelectors (12:00:08) and the three StopLogging calls
    // (12:00:42, 12:01:23, 12:01:27); DeleteTrail at 11:59:02 and DeleteFlowLogs at 12:02:26 are outside.
    let params = Params::new().window(
        datetime!(2023-07-10 12:00 UTC),
        datetime!(2023-07-10 12:02 UTC),
    );
    let result = run_on("logging-tampering", params, folder);
    assert_eq!(result.coverage.events_matched, 4);
    assert_eq!(
        group(&result, &["StopLogging", "TrailNotFoundException"]),
        Some(3)
    );
    let inside = result.coverage.events_scanned - result.coverage.events_outside_window;
    assert!(
        inside > 4 && inside < 2928,
        "{inside} records between 12:00 and 12:02"
    );
}
