//! The library on fixtures this crate wrote: every runbook stays quiet on benign activity, and
//! the runbooks whose scenario is missing from the real data (failed sign-ins, spraying, root
//! console use, JIT sessions, S3 data events, public buckets, open network ACLs) find it here.

mod common;

use common::{all_time, column, distinct, fixture, group, identity_center_params, library, run_on};
use trailgate_runbooks::source::files::FileSource;
use trailgate_runbooks::{Params, run};

/// Values for the required parameters, chosen so that nothing in the fixtures is named.
fn quiet_params(id: &str) -> Params {
    match id {
        "requester-activity" => all_time().set("requester", "mallory"),
        "access-key-activity" => all_time().set("access_key_id", "AKIANOTPRESENT000000"),
        "resource-history" => all_time().set("resource", "i-0doesnotexist"),
        "jit-session-audit" => all_time()
            .set("requester", "alice")
            .set("request_id", "r-none")
            .set("session_name", "tg-alice-r-none"),
        "identity-center-session-audit" => identity_center_params(all_time()),
        _ => all_time(),
    }
}

#[test]
fn the_library_has_at_least_twenty_runbooks() {
    let library = library();
    assert!(library.len() >= 20, "{} runbooks", library.len());
    for runbook in library.iter() {
        let spec = runbook.spec();
        assert!(
            !spec.description.trim().is_empty(),
            "{} has no description",
            runbook.id()
        );
        assert!(
            !spec.next_steps.is_empty(),
            "{} has no next steps",
            runbook.id()
        );
    }
}

#[test]
fn every_runbook_is_quiet_on_benign_activity() {
    let library = library();
    for runbook in library.iter() {
        let mut source = FileSource::new(fixture("benign.json"));
        let result = match run(runbook, &quiet_params(runbook.id()), &mut source) {
            Ok(result) => result,
            Err(error) => panic!("{}: {error}", runbook.id()),
        };
        assert_eq!(result.coverage.events_scanned, 11, "{}", runbook.id());
        assert!(
            !result.has_findings(),
            "{} fired on benign activity: {}",
            runbook.id(),
            result.to_text()
        );
    }
}

#[test]
fn requester_activity_follows_the_source_identity_into_role_sessions() {
    let result = run_on(
        "requester-activity",
        all_time().set("requester", "alice"),
        fixture("attacks.ndjson"),
    );
    // A failed sign-in as alice, three IAM calls as user alice, and four calls in role sessions
    // whose source identity is alice (two different grants).
    assert_eq!(result.coverage.events_matched, 8);
    assert_eq!(
        result
            .first_last_seen
            .as_ref()
            .map(|seen| seen.entries.len()),
        Some(4)
    );
}

#[test]
fn console_login_failures_are_listed() {
    let result = run_on(
        "console-login-failures",
        all_time(),
        fixture("attacks.ndjson"),
    );
    assert_eq!(result.coverage.events_matched, 7);
    assert_eq!(
        group(
            &result,
            &["IAMUser", "HIDDEN_DUE_TO_SECURITY_REASONS", "198.51.100.7"]
        ),
        Some(1)
    );
}

#[test]
fn password_spray_flags_one_ip_with_six_users() {
    let result = run_on(
        "console-password-spray",
        all_time(),
        fixture("attacks.ndjson"),
    );
    let counts = result.counts.as_ref().expect("counts");
    assert_eq!(
        counts.groups.len(),
        1,
        "the IP with a single failure stays under the threshold"
    );
    assert_eq!(counts.groups[0].key, vec!["203.0.113.50"]);
    assert_eq!(
        (counts.groups[0].count, counts.groups[0].distinct),
        (6, Some(6))
    );
    assert!(result.has_findings());
}

#[test]
fn root_console_login_without_mfa_is_found_twice() {
    let root = run_on("root-usage", all_time(), fixture("attacks.ndjson"));
    assert_eq!(column(&root, "eventName"), vec!["ConsoleLogin"]);
    assert_eq!(column(&root, "additionalEventData.MFAUsed"), vec!["No"]);
    let no_mfa = run_on(
        "console-login-without-mfa",
        all_time(),
        fixture("attacks.ndjson"),
    );
    assert_eq!(
        distinct(&no_mfa, "userIdentity.arn"),
        vec!["arn:aws:iam::111122223333:root"]
    );
}

#[test]
fn jit_session_audit_reports_one_grant_and_not_the_other() {
    let params = all_time()
        .set("requester", "alice")
        .set("request_id", "r-7f3a9c")
        .set("session_name", "tg-alice-r-7f3a9c");
    let result = run_on("jit-session-audit", params, fixture("attacks.ndjson"));
    // The AssumeRole that created the session (tagged trailgate-request=r-7f3a9c) and its three
    // calls; the ListBuckets of grant r-other1 is not attributed to this request.
    assert_eq!(result.coverage.events_matched, 4);
    assert_eq!(
        group(&result, &["ec2.amazonaws.com", "StopInstances", "false"]),
        Some(1)
    );
    assert_eq!(
        group(&result, &["s3.amazonaws.com", "ListBuckets", "true"]),
        None
    );
    assert_eq!(distinct(&result, "errorCode"), vec!["AccessDenied"]);
    let other = run_on(
        "jit-session-audit",
        all_time()
            .set("requester", "bob")
            .set("request_id", "r-7f3a9c")
            .set("session_name", "tg-bob-r-7f3a9c"),
        fixture("attacks.ndjson"),
    );
    assert_eq!(
        other.coverage.events_matched, 0,
        "the request id alone is not enough"
    );
}

#[test]
fn requester_activity_counts_records_made_on_behalf_of_the_identity_center_user() {
    // Only the breadth record whose userIdentity.onBehalfOf names alice's user id; its session
    // name is not hers, so without the id nothing matches.
    let with_id = run_on(
        "requester-activity",
        all_time().set("requester", "nobody-by-that-name").set(
            "identity_center_user_ids",
            "94482488-3041-7026-18f3-be45837cd0e4",
        ),
        fixture("breadth.ndjson"),
    );
    assert_eq!(with_id.coverage.events_matched, 1);
    let seen = with_id.first_last_seen.as_ref().expect("first_last_seen");
    assert_eq!(
        seen.entries[0].key,
        vec![
            "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_ProdAccess_0a1b2c3d4e5f6a7b/alice"
        ]
    );
    let without = run_on(
        "requester-activity",
        all_time().set("requester", "nobody-by-that-name"),
        fixture("breadth.ndjson"),
    );
    assert_eq!(without.coverage.events_matched, 0);
}

#[test]
fn s3_data_access_shows_reads_from_outside() {
    let result = run_on("s3-data-access", all_time(), fixture("attacks.ndjson"));
    assert_eq!(result.coverage.events_matched, 2);
    assert_eq!(
        distinct(&result, "requestParameters.key"),
        vec!["customers.csv", "payroll.csv"]
    );
    let seen = result.first_last_seen.as_ref().expect("first_last_seen");
    assert_eq!(seen.entries[0].key, vec!["1.2.3.4"]);
    assert_eq!(
        (
            seen.entries[0].first.as_str(),
            seen.entries[0].last.as_str()
        ),
        ("2024-05-02T11:00:00Z", "2024-05-02T11:01:00Z")
    );
}

#[test]
fn public_bucket_policy_and_open_network_acl_are_found() {
    let bucket = run_on(
        "bucket-policy-exposure",
        all_time(),
        fixture("attacks.ndjson"),
    );
    assert_eq!(
        column(&bucket, "requestParameters.bucketName"),
        vec!["public-site"]
    );
    let network = run_on("network-exposure", all_time(), fixture("attacks.ndjson"));
    assert_eq!(column(&network, "eventName"), vec!["CreateNetworkAclEntry"]);
}

#[test]
fn a_user_creating_its_own_key_is_persistence_but_not_a_backdoor() {
    let persistence = run_on(
        "iam-credential-persistence",
        all_time(),
        fixture("attacks.ndjson"),
    );
    assert_eq!(persistence.coverage.events_matched, 1);
    let backdoor = run_on(
        "iam-backdoor-other-user",
        all_time(),
        fixture("attacks.ndjson"),
    );
    assert_eq!(backdoor.coverage.events_matched, 0);
}

#[test]
fn instance_session_from_a_single_ip_is_not_flagged() {
    let result = run_on(
        "instance-credentials-off-host",
        all_time(),
        fixture("attacks.ndjson"),
    );
    assert_eq!(result.coverage.events_matched, 2);
    assert!(!result.has_findings());
}
