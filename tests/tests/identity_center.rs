//! System test of permission-set grants through IAM Identity Center on the local stack: moto's
//! sso-admin and identitystore in the hub (Identity Center's delegated administrator), the
//! router's asynchrony and scripted failures (`/_local/sso`), the real binaries and state
//! machine. alice calls through her Identity Center session (profile `alice-sso`, the local
//! stand-in for the access portal's sign-in) and asks for `prod-access` (local/catalog.json)
//! in the prod member account.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use trailgate_domain::user_deny::denies_user;
use trailgate_system_tests::ctx::{connect, request_body};
use trailgate_system_tests::{Ctx, run_on_stack};

const ENTRY: &str = "prod-access";

/// Identity Center as the hub sees it.
struct Center {
    sso: aws_sdk_ssoadmin::Client,
    instance: String,
    permission_set: String,
    account: String,
}

impl Center {
    fn new(ctx: &Ctx) -> Center {
        let sdk = trailgate_local::cloudformation::sdk_config(&ctx.state.aws_endpoint);
        let center = &ctx.state.identity_center;
        Center {
            sso: aws_sdk_ssoadmin::Client::new(&sdk),
            instance: center.instance_arn.clone(),
            permission_set: center.permission_set_arn.clone(),
            account: ctx.state.organization.members[0].account_id.clone(),
        }
    }

    /// The users the permission set is assigned to in prod now.
    async fn assigned(&self) -> Result<Vec<String>> {
        let listed = self
            .sso
            .list_account_assignments()
            .instance_arn(&self.instance)
            .account_id(&self.account)
            .permission_set_arn(&self.permission_set)
            .send()
            .await?;
        Ok(listed
            .account_assignments()
            .iter()
            .filter_map(|a| a.principal_id().map(str::to_owned))
            .collect())
    }

    async fn inline_policy(&self) -> Result<String> {
        Ok(self
            .sso
            .get_inline_policy_for_permission_set()
            .instance_arn(&self.instance)
            .permission_set_arn(&self.permission_set)
            .send()
            .await?
            .inline_policy()
            .unwrap_or_default()
            .to_owned())
    }
}

fn body(duration: &str, account: &str) -> Value {
    let mut body = request_body(ENTRY, duration, "identity center test");
    body["account"] = Value::String(account.to_owned());
    body
}

/// Submits as `requester`, has carol approve by her link, and waits for one of `statuses`.
async fn approved(
    ctx: &Ctx,
    requester: &jitctl::api::Client,
    body: Value,
    statuses: &[&str],
) -> Result<(String, Value)> {
    let created = requester.post_json("/requests", &body).await?;
    let id = created["id"].as_str().context("no id")?.to_owned();
    let link = ctx.mail_to(&id, "carol@example.com").await?.link;
    let answer = ctx.post_decision(&link, "decision=approve").await?;
    ensure!(answer.status == 200, "approve answered {}", answer.status);
    let seen = requester
        .wait_while(&id, &["PENDING", "APPROVED"], Duration::from_secs(60))
        .await?;
    ensure!(
        statuses.contains(&seen["status"].as_str().unwrap_or_default()),
        "{id} is {}: {seen}",
        seen["status"]
    );
    Ok((id, seen))
}

/// A CloudTrail record of a call by `user`'s Identity Center session of `role` in `account`,
/// made now (the grant's window is now).
fn sso_call(n: u32, account: &str, role: &str, user: &str, name: &str) -> Value {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats");
    json!({
        "eventVersion": "1.09",
        "eventID": format!("ic-audit-{n}"),
        "eventTime": now,
        "eventSource": "s3.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "readOnly": !name.starts_with("Put") && !name.starts_with("Delete"),
        "recipientAccountId": account,
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLESSO000001:{user}"),
            "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{user}"),
            "accountId": account,
            "sessionContext": {"sessionIssuer": {
                "type": "Role",
                "arn": format!("arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/{role}"),
                "accountId": account,
                "userName": role,
            }},
        },
    })
}

async fn eventually(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    let started = Instant::now();
    while !check().await? {
        ensure!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

#[tokio::test]
async fn permission_sets_are_granted_to_the_identity_center_user_and_revoke_ends_their_sessions()
-> Result<()> {
    run_on_stack("identity-center", &[], |ctx| async move {
        let alice = connect(&ctx.state, "alice-sso").await?;
        let bob = connect(&ctx.state, "bob-sso").await?;
        let center = Center::new(&ctx);
        let alice_id = ctx.state.identity_center.users["alice"].clone();
        // Every call below waits at least two polls, as Identity Center's asynchrony would have it.
        let set = ctx
            .http
            .post(format!("{}/_local/sso", ctx.state.aws_endpoint))
            .json(&json!({"in_progress_polls": 2}))
            .send()
            .await?;
        ensure!(set.status().is_success());

        // Refusals: an IAM user is no Identity Center user.
        let err = ctx
            .alice
            .post_json("/requests", &body("PT10M", &center.account))
            .await
            .unwrap_err();
        ensure!(
            format!("{err:#}").contains("Identity Center session"),
            "an IAM user asked for a permission set: {err:#}"
        );

        // The lifecycle: granted to alice's user id, no STS credentials, the timer's revoke
        // removes the assignment and denies her sessions issued until then.
        let started = Instant::now();
        let (short, seen) = approved(&ctx, &alice, body("PT10S", &center.account), &["ACTIVE"]).await?;
        let granted_in = started.elapsed();
        ensure!(seen["permission_set"]["user_id"] == alice_id.as_str(), "{seen}");
        ensure!(seen["role_arn"] == "", "{seen}");
        ensure!(center.assigned().await? == vec![alice_id.clone()], "assignments");
        let err = alice
            .get(&format!("/requests/{short}/credentials"))
            .await
            .unwrap_err();
        ensure!(format!("{err:#}").contains("access portal"), "{err:#}");
        // What CloudTrail records while the grant lives: alice's session of ProdAccess in prod
        // (the grant's), her session of another permission set and bob's of this one (not).
        let prod = center.account.as_str();
        let role = trailgate_local::identity_center::SSO_ROLE_NAME;
        let seeded = ctx
            .seed_cloudtrail(&[
                sso_call(1, prod, role, "alice@example.com", "ListBuckets"),
                sso_call(2, prod, role, "alice@example.com", "PutObject"),
                sso_call(3, prod, "AWSReservedSSO_ReadOnly_99aa88bb77cc66dd", "alice@example.com", "GetObject"),
                sso_call(4, prod, role, "bob@example.com", "DeleteBucket"),
            ])
            .await?;
        ensure!(seeded == 4, "seeded {seeded}");
        let ended = alice
            .wait_while(&short, &["ACTIVE"], Duration::from_secs(60))
            .await?;
        ensure!(
            ["REVOKED", "AUDITED"].contains(&ended["status"].as_str().unwrap_or_default()),
            "{ended}"
        );
        let expires_at = time::OffsetDateTime::parse(
            ended["expires_at"].as_str().context("expires_at")?,
            &time::format_description::well_known::Rfc3339,
        )?
        .unix_timestamp();
        // REVOKED is committed first; the removal and the deny follow within the step.
        eventually(
            "the assignment's removal and the deny of alice's sessions",
            Duration::from_secs(30),
            async || {
                Ok(center.assigned().await?.is_empty()
                    && denies_user(
                        &center.inline_policy().await?,
                        &alice_id,
                        &center.account,
                        expires_at - 1,
                    ))
            },
        )
        .await
        .with_context(|| format!("assignments and inline policy after {short}'s revoke"))?;
        // The audit keys on alice's user id and the permission set's sessions in prod.
        let audited = alice
            .wait_while(&short, &["REVOKED"], Duration::from_secs(60))
            .await?;
        let cloudtrail = &audited["audit"]["cloudtrail"];
        ensure!(audited["status"] == "AUDITED", "{audited}");
        ensure!(cloudtrail["analysed"] == true, "audit: {cloudtrail}");
        ensure!(cloudtrail["account"] == prod, "audit: {cloudtrail}");
        ensure!(cloudtrail["identity_center"]["user_id"] == alice_id.as_str(), "{cloudtrail}");
        ensure!(cloudtrail["events"] == 2, "audit events: {cloudtrail}");
        ensure!(cloudtrail["actions_by_service"]["s3"]["PutObject"] == 1, "{cloudtrail}");
        ensure!(cloudtrail["actions_by_service"]["s3"]["GetObject"].is_null(), "{cloudtrail}");
        ensure!(cloudtrail["actions_by_service"]["s3"]["DeleteBucket"].is_null(), "{cloudtrail}");
        println!("ok: lifecycle (approved to ACTIVE in {granted_in:?}), audited by user id");

        // Overlap: two grants of the one assignment; the first revoke leaves it to the second.
        let (first, _) = approved(&ctx, &alice, body("PT30M", &center.account), &["ACTIVE"]).await?;
        let (second, _) = approved(&ctx, &alice, body("PT30M", &center.account), &["ACTIVE"]).await?;
        let before = center.inline_policy().await?;
        alice
            .post_json(&format!("/requests/{first}/revoke"), &json!({}))
            .await?;
        ensure!(center.assigned().await? == vec![alice_id.clone()], "the second grant lost its assignment");
        ensure!(center.inline_policy().await? == before, "a deny while the second grant holds it");
        alice
            .post_json(&format!("/requests/{second}/revoke"), &json!({}))
            .await?;
        ensure!(center.assigned().await?.is_empty(), "the last revoke left the assignment");
        let after = center.inline_policy().await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        ensure!(denies_user(&after, &alice_id, &center.account, now - 1), "{after}");
        println!("ok: overlap");

        // A creation Identity Center fails: NotGrantable, revoked, nothing assigned.
        let fail = ctx
            .http
            .post(format!("{}/_local/sso/fail", ctx.state.aws_endpoint))
            .json(&json!({"action": "CreateAccountAssignment", "count": 1,
                          "reason": "Received a 409 status error: the permission set is being deleted"}))
            .send()
            .await?;
        ensure!(fail.status().is_success());
        let (failed, seen) = approved(&ctx, &alice, body("PT30M", &center.account), &["REVOKED", "AUDITED"]).await?;
        ensure!(
            seen["outcome"].as_str().unwrap_or_default().contains("never activated"),
            "{failed}: {seen}"
        );
        ensure!(center.assigned().await?.is_empty());
        println!("ok: failed creation");

        // A conflict (another operation in flight) is retried by the state machine.
        let fault = ctx
            .http
            .post(format!("{}/_local/faults", ctx.state.aws_endpoint))
            .json(&json!({"service": "sso", "action": "CreateAccountAssignment",
                          "error": "ConflictException", "count": 1}))
            .send()
            .await?;
        ensure!(fault.status().is_success());
        let (retried, _) = approved(&ctx, &alice, body("PT30M", &center.account), &["ACTIVE"]).await?;
        let faults: Value = ctx
            .http
            .get(format!("{}/_local/faults", ctx.state.aws_endpoint))
            .send()
            .await?
            .json()
            .await?;
        ensure!(faults["rules"][0]["injected"] == 1, "{faults}");
        alice
            .post_json(&format!("/requests/{retried}/revoke"), &json!({}))
            .await?;
        println!("ok: conflict retried");

        // bob through his Identity Center session is bob (the catalog lists his user id under
        // him): he is not sent a link for his own request and cannot approve it by SigV4.
        let created = bob.post_json("/requests", &body("PT30M", &center.account)).await?;
        let own = created["id"].as_str().context("no id")?.to_owned();
        let carol_mail = ctx.mail_to(&own, "carol@example.com").await?;
        ensure!(!carol_mail.link.is_empty());
        ensure!(
            ctx.mails(&own, 1).await?.iter().all(|m| m.to != "bob@example.com"),
            "bob was sent a link for his own request"
        );
        let err = ctx
            .bob
            .post_json(&format!("/requests/{own}/decision"), &json!({"decision": "approve"}))
            .await
            .unwrap_err();
        ensure!(format!("{err:#}").contains("own request"), "{err:#}");
        ensure!(bob.get(&format!("/requests/{own}")).await?["status"] == "PENDING");
        println!("ok: no self-approval across principals");

        // Drift: an assignment made by hand (carol, outside trailgate) is swept by the
        // reconciler, her sessions denied, while alice's active grant keeps its own.
        let (held, _) = approved(&ctx, &alice, body("PT30M", &center.account), &["ACTIVE"]).await?;
        let carol_id = ctx.state.identity_center.users["carol"].clone();
        center
            .sso
            .create_account_assignment()
            .instance_arn(&center.instance)
            .target_id(&center.account)
            .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
            .permission_set_arn(&center.permission_set)
            .principal_type(aws_sdk_ssoadmin::types::PrincipalType::User)
            .principal_id(&carol_id)
            .send()
            .await?;
        ensure!(center.assigned().await?.contains(&carol_id));
        // And a group (bob and alice in it) given the permission set by hand: trailgate never
        // assigns groups, so it is drift; bob's sessions are denied, alice's grant stands.
        let bob_id = ctx.state.identity_center.users["bob"].clone();
        let store = aws_sdk_identitystore::Client::new(&trailgate_local::cloudformation::sdk_config(
            &ctx.state.aws_endpoint,
        ));
        let store_id = ctx.state.identity_center.identity_store_id.clone();
        let group = store
            .create_group()
            .identity_store_id(&store_id)
            .display_name("oncall")
            .send()
            .await?
            .group_id()
            .to_owned();
        for member in [&bob_id, &alice_id] {
            store
                .create_group_membership()
                .identity_store_id(&store_id)
                .group_id(&group)
                .member_id(aws_sdk_identitystore::types::MemberId::UserId(member.clone()))
                .send()
                .await?;
        }
        center
            .sso
            .create_account_assignment()
            .instance_arn(&center.instance)
            .target_id(&center.account)
            .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
            .permission_set_arn(&center.permission_set)
            .principal_type(aws_sdk_ssoadmin::types::PrincipalType::Group)
            .principal_id(&group)
            .send()
            .await?;
        // Every session issued before the sweep began is denied.
        let before_sweep = time::OffsetDateTime::now_utc().unix_timestamp();
        let report = ctx.reconcile().await?;
        // The export sweep asked the archive (moto's S3) about the audited requests of this
        // run (their executions export them; one still on its way may be exported by both).
        ensure!(report["export_failed"] == json!([]), "reconcile report: {report}");
        let swept = report["swept"].as_array().cloned().unwrap_or_default();
        ensure!(
            swept.len() == 2
                && swept.iter().any(|s| s["user_id"] == carol_id.as_str())
                && swept.iter().any(|s| s["group_id"] == group.as_str()
                    && s["members_denied"] == json!([bob_id.clone()])),
            "reconcile report: {report}"
        );
        ensure!(center.assigned().await? == vec![alice_id.clone()], "after the sweep");
        let inline = center.inline_policy().await?;
        ensure!(denies_user(&inline, &carol_id, &center.account, before_sweep), "{inline}");
        ensure!(denies_user(&inline, &bob_id, &center.account, before_sweep), "{inline}");
        alice
            .post_json(&format!("/requests/{held}/revoke"), &json!({}))
            .await?;
        println!("ok: drift swept");
        measure(&ctx, &alice, &center).await
    })
    .await
}

/// Grant and revoke latency with Identity Center's asynchrony on (two in-progress polls per
/// operation), `IDENTITY_CENTER_BENCH_ROUNDS` rounds (default 1; `make bench-identity-center`
/// runs 10): from the approving click to ACTIVE, and the early revoke's round trip (delete
/// polled, deny written, provisioned, polled, read back). Printed, never asserted: figures for
/// BENCHMARKS.md, not a timed test.
async fn measure(ctx: &Ctx, alice: &jitctl::api::Client, center: &Center) -> Result<()> {
    let rounds: usize = std::env::var("IDENTITY_CENTER_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let (mut grants, mut revokes) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let created = alice
            .post_json("/requests", &body("PT30M", &center.account))
            .await?;
        let id = created["id"].as_str().context("no id")?.to_owned();
        let link = ctx.mail_to(&id, "carol@example.com").await?.link;
        let clicked = Instant::now();
        ensure!(ctx.post_decision(&link, "decision=approve").await?.status == 200);
        eventually("ACTIVE", Duration::from_secs(60), async || {
            Ok(alice.get(&format!("/requests/{id}")).await?["status"] == "ACTIVE")
        })
        .await?;
        grants.push(clicked.elapsed());
        let asked = Instant::now();
        alice
            .post_json(&format!("/requests/{id}/revoke"), &json!({}))
            .await?;
        revokes.push(asked.elapsed());
        ensure!(
            center.assigned().await?.is_empty(),
            "{id}: assignment left after revoke"
        );
    }
    let median = |mut all: Vec<Duration>| {
        all.sort();
        all[all.len() / 2]
    };
    println!(
        "bench: identity center, {rounds} rounds, 2 in-progress polls: grant (click to ACTIVE) median {:?} max {:?}; revoke (early, round trip) median {:?} max {:?}",
        median(grants.clone()),
        grants.iter().max().copied().unwrap_or_default(),
        median(revokes.clone()),
        revokes.iter().max().copied().unwrap_or_default()
    );
    Ok(())
}
