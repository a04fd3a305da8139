//! `jitctl catalog check --roles` through the real binary against moto's IAM: the roles a
//! catalog names are checked with the grant step's own contract, and each problem is reported
//! at its entry. moto comes from `.venv` (`scripts/bootstrap.sh moto`); without it the test is
//! skipped with a note (a failure when `CI` is set).

mod common;

use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_iam::types::Tag;
use common::{jitctl, moto};
use serde_json::json;

const ACCOUNT: &str = "123456789012";

fn broker() -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/trailgate-CredentialsFunctionRole")
}

fn protection() -> String {
    format!("arn:aws:iam::{ACCOUNT}:policy/trailgate-protection")
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// The trust policy the grant contract asks for: only the broker, with a source identity.
fn broker_trust() -> String {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": broker()},
        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
        "Condition": {"Null": {"sts:SourceIdentity": "false"}}}]})
    .to_string()
}

/// Creates a role and, when `managed`, tags it `trailgate:managed=true` and attaches the
/// protection policy, as a team following the README would.
async fn create_role(iam: &aws_sdk_iam::Client, name: &str, trust: &str, managed: bool) {
    let mut create = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust);
    if managed {
        create = create.tags(
            Tag::builder()
                .key("trailgate:managed")
                .value("true")
                .build()
                .expect("tag"),
        );
    }
    create.send().await.expect("CreateRole");
    if managed {
        iam.attach_role_policy()
            .role_name(name)
            .policy_arn(protection())
            .send()
            .await
            .expect("AttachRolePolicy");
    }
}

fn catalog(entries: &[(&str, &str)]) -> String {
    let entries: Vec<serde_json::Value> = entries
        .iter()
        .map(|(id, role)| {
            json!({"id": id, "role_arn": role_arn(role), "max_duration": "PT1H",
                "approvers": [{"id": "bob", "email": "bob@example.com",
                    "arn": format!("arn:aws:iam::{ACCOUNT}:user/bob")}],
                "quorum": 1, "requesters": [format!("arn:aws:iam::{ACCOUNT}:user/*")]})
        })
        .collect();
    serde_json::to_string_pretty(&json!({ "entries": entries })).expect("json")
}

#[tokio::test]
async fn catalog_roles_are_checked_in_iam_with_the_grant_contract() {
    let Some(moto) = moto() else { return };
    let config = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(Credentials::for_tests())
        .http_client(common::http_client())
        .build();
    let iam = aws_sdk_iam::Client::from_conf(config);
    iam.create_policy()
        .policy_name("trailgate-protection")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
                "Action": "iam:DeleteRolePolicy", "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .expect("CreatePolicy");
    // The catalogs' approver: --roles checks that every IAM user it names exists.
    iam.create_user()
        .user_name("bob")
        .send()
        .await
        .expect("CreateUser");
    create_role(&iam, "good-target", &broker_trust(), true).await;
    create_role(&iam, "unprotected-target", &broker_trust(), true).await;
    iam.detach_role_policy()
        .role_name("unprotected-target")
        .policy_arn(protection())
        .send()
        .await
        .expect("DetachRolePolicy");
    create_role(&iam, "untagged-target", &broker_trust(), false).await;
    let anyone = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
        "Action": "sts:AssumeRole"}]})
    .to_string();
    create_role(&iam, "wide-target", &anyone, true).await;

    let dir = std::env::temp_dir().join(format!("jitctl-catalog-roles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        catalog(&[
            ("good", "good-target"),
            ("untagged", "untagged-target"),
            ("wide", "wide-target"),
            ("missing", "no-such-target"),
            ("unprotected", "unprotected-target"),
        ]),
    )
    .expect("write");
    let good = dir.join("good.json");
    std::fs::write(&good, catalog(&[("good", "good-target")])).expect("write");

    let check = |file: &std::path::Path| {
        jitctl(&[
            "--region",
            "us-east-1",
            "catalog",
            "check",
            file.to_str().expect("utf-8 path"),
            "--roles",
            "--broker-role-arn",
            &broker(),
            "--protection-policy-arn",
            &protection(),
            "--endpoint-url",
            &moto.url,
        ])
    };
    let (ok, stdout, stderr) = check(&bad);
    assert!(!ok, "a bad catalog must fail: {stdout} {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}\n{stderr}");
    let file = bad.display().to_string();
    for (line, (id, problem)) in lines.iter().zip([
        ("untagged", "is not tagged `trailgate:managed=true`"),
        ("wide", "breaks the trust contract"),
        ("missing", "does not exist"),
        ("unprotected", "does not have"),
    ]) {
        assert!(
            line.starts_with(&format!("{file}:"))
                && line.contains(&format!(": entry `{id}`: "))
                && line.contains(problem),
            "{line}"
        );
    }

    let (ok, stdout, stderr) = check(&good);
    assert!(ok, "{stdout} {stderr}");
    assert_eq!(stdout.trim(), "1 catalog file(s) and their roles valid");

    // Without --roles nothing is asked of IAM: the untagged and missing roles pass.
    let (ok, stdout, _) = jitctl(&["catalog", "check", bad.to_str().expect("utf-8 path")]);
    assert!(ok && stdout.trim() == "1 catalog file(s) valid", "{stdout}");
    // --roles needs the broker's and the protection policy's ARNs.
    let (ok, _, stderr) = jitctl(&["catalog", "check", &file, "--roles"]);
    assert!(!ok && stderr.contains("--broker-role-arn"), "{stderr}");
    let (ok, _, stderr) = jitctl(&[
        "catalog",
        "check",
        &file,
        "--roles",
        "--broker-role-arn",
        &broker(),
    ]);
    assert!(
        !ok && stderr.contains("--protection-policy-arn"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
