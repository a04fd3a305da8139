//! System test of the hub and its member accounts on the local stack: moto holds a management
//! account and two member accounts (`prod`, in OU Prod, and `data`), each with member/template.yaml
//! deployed; the hub grants, vends, expires, revokes and reconciles `sample-target-member` in
//! them through their agent roles, with the real binaries, state machine and router; the
//! reviewer context and the session audit read the target account's CloudTrail history there.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::time::Duration;
use trailgate_local::organization::{LocalOrganization, credentials_in, revocations_in};
use trailgate_system_tests::catalog::user;
use trailgate_system_tests::ctx::request_body;
use trailgate_system_tests::{Ctx, run_on_stack};

const MEMBER_ROLE: &str = "sample-target-member";
const HUB_ROLE: &str = "sample-target-trailgate";

/// `member-readonly`: the member role in both members, by id; `prod-ou-readonly`: the member
/// role in every account under OU Prod. The stack fills in the ids.
fn organization_catalog() -> String {
    let entry = |id: &str, accounts: Value| {
        json!({"id": id, "role_name": MEMBER_ROLE, "accounts": accounts,
               "description": "view-only in a member account", "max_duration": "PT1H",
               "approval_window": "PT5M", "approvers": [user("bob"), user("carol")], "quorum": 1,
               "requesters": ["arn:aws:iam::123456789012:user/alice"]})
    };
    json!({"entries": [
        entry("member-readonly", json!(["${MemberAccount:prod}", "${MemberAccount:data}"])),
        entry("prod-ou-readonly", json!(["${ProdOu}"])),
    ]})
    .to_string()
}

fn in_account(catalog_id: &str, account: &str, duration: &str) -> Value {
    let mut body = request_body(catalog_id, duration, "organization test");
    body["account"] = Value::String(account.to_owned());
    body
}

/// IAM and STS acting in one member account.
struct Member {
    id: String,
    endpoint: String,
    iam: aws_sdk_iam::Client,
}

impl Member {
    async fn new(ctx: &Ctx, id: &str) -> Result<Member> {
        let credentials = credentials_in(&ctx.state.aws_endpoint, id).await?;
        let config =
            trailgate_local::cloudformation::sdk_config_as(&ctx.state.aws_endpoint, credentials);
        Ok(Member {
            id: id.to_owned(),
            endpoint: ctx.state.aws_endpoint.clone(),
            iam: aws_sdk_iam::Client::new(&config),
        })
    }

    /// This account's `trailgate-revocations` on the member role, empty when it has none.
    async fn revocations(&self) -> Result<String> {
        Ok(revocations_in(&self.endpoint, &self.id, MEMBER_ROLE)
            .await?
            .unwrap_or_default())
    }

    async fn denies(&self, request: &str) -> Result<bool> {
        Ok(self
            .revocations()
            .await?
            .contains(&format!("\"{request}\"")))
    }

    async fn wait_denies(&self, request: &str) -> Result<()> {
        let started = std::time::Instant::now();
        while !self.denies(request).await? {
            ensure!(
                started.elapsed() < Duration::from_secs(20),
                "no deny for {request} in account {}: {}",
                self.id,
                self.revocations().await?
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }
}

/// A CloudTrail record in `account`, `minutes_ago` in the past, by `identity`.
fn record_in(account: &str, id: &str, minutes_ago: i64, name: &str, identity: Value) -> Value {
    let at = time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago);
    json!({"eventVersion": "1.08", "eventID": id, "eventName": name,
           "eventTime": at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
           "eventSource": "cloudtrail.amazonaws.com", "awsRegion": "us-east-1",
           "sourceIPAddress": "203.0.113.9", "readOnly": false,
           "recipientAccountId": account, "userIdentity": identity})
}

/// alice as an Identity Center session in `account` (the session name is her user name).
fn alice_in(account: &str) -> Value {
    json!({"type": "AssumedRole", "principalId": "AROAALICE:alice",
           "arn": format!("arn:aws:sts::{account}:assumed-role/AWSReservedSSO_Ops_0123/alice")})
}

/// The context reads the target account's history through its agent role and the hub's
/// directly, says which account each finding is from, and never shows another account's: alice
/// stopped logging in prod, deleted a trail in data, and listed trails in the hub.
async fn context_per_account(ctx: &Ctx, prod: &str, data: &str) -> Result<()> {
    let hub = "123456789012";
    ctx.seed_cloudtrail(&[
        record_in(prod, "org-prod-stop", 50, "StopLogging", alice_in(prod)),
        record_in(data, "org-data-delete", 40, "DeleteTrail", alice_in(data)),
        record_in(
            hub,
            "org-hub-list",
            30,
            "DescribeTrails",
            json!({"type": "IAMUser", "userName": "alice",
                   "arn": format!("arn:aws:iam::{hub}:user/alice")}),
        ),
    ])
    .await?;
    let id = ctx
        .new_request(in_account("member-readonly", prod, "PT10M"))
        .await?;
    let mail = ctx.mail_to(&id, "bob@example.com").await?;
    let context = &ctx.status(&id).await?["context"];
    let summary = context["summary"].as_str().unwrap_or_default();
    ensure!(
        summary.contains(&format!("account {prod} (target): 1 event"))
            && summary.contains(&format!("account {hub} (hub): 1 event")),
        "the context does not name both accounts: {summary}"
    );
    let lines = context["lines"].to_string();
    ensure!(
        lines.contains(&format!(
            "! HIGH in account {prod} (target): Logging and monitoring tampering: StopLogging"
        )),
        "prod's StopLogging is not shown: {lines}"
    );
    ensure!(
        lines.contains(&format!("in account {hub} (hub): activity")),
        "the hub activity is not shown: {lines}"
    );
    ensure!(
        !lines.contains("DeleteTrail") && !lines.contains(data),
        "another account's history reached the context: {lines}"
    );
    ensure!(
        mail.body.contains(&format!("account {prod} (target)")),
        "{}",
        mail.body
    );
    ctx.alice
        .post_json(&format!("/requests/{id}/cancel"), &json!({}))
        .await?;
    Ok(())
}

/// The agent sessions as the hub's functions asked STS for them (recorded by the router): the
/// revoking functions' carry the write tag the member agent requires for revocations, the
/// reading functions' carry none, so they cannot undo a revocation.
async fn agent_sessions_are_tagged_by_purpose(ctx: &Ctx) -> Result<()> {
    let write = json!([{"key": "trailgate-agent", "value": "write"}]);
    let mut seen = std::collections::BTreeSet::new();
    for call in &ctx.assume_role_calls().await? {
        if !call["role_arn"]
            .as_str()
            .is_some_and(|arn| arn.ends_with(":role/trailgate-agent"))
        {
            continue;
        }
        let function = call["session_name"].as_str().unwrap_or_default().to_owned();
        let probe = call["policy"].is_string();
        let expected = match function.as_str() {
            "trailgate-intake" if probe => json!([]),
            "trailgate-intake" | "trailgate-revoke" | "trailgate-reconcile" => write.clone(),
            _ => json!([]),
        };
        ensure!(
            call["tags"] == expected,
            "{function}'s agent session: {call}"
        );
        seen.insert(function);
    }
    for function in [
        "trailgate-context",
        "trailgate-audit",
        "trailgate-revoke",
        "trailgate-reconcile",
    ] {
        ensure!(
            seen.contains(function),
            "no agent session of {function}: {seen:?}"
        );
    }
    Ok(())
}

/// alice's request, approved by bob; returns its id once ACTIVE.
async fn granted(ctx: &Ctx, body: Value) -> Result<String> {
    let id = ctx.new_request(body).await?;
    let link = ctx.mail_to(&id, "bob@example.com").await?.link;
    let answer = ctx.post_decision(&link, "decision=approve").await?;
    ensure!(answer.status == 200, "approve answered {}", answer.status);
    ctx.wait_for_any_retrying(&id, &["ACTIVE"], Duration::from_secs(40))
        .await?;
    Ok(id)
}

/// The account STS says the request's vended credentials act in, and their ARN.
async fn caller_of(ctx: &Ctx, id: &str) -> Result<(String, String)> {
    let credentials = ctx
        .alice
        .get(&format!("/requests/{id}/credentials"))
        .await?;
    let sts = aws_sdk_sts::Client::new(&trailgate_local::cloudformation::sdk_config_as(
        &ctx.state.aws_endpoint,
        aws_credential_types::Credentials::new(
            credentials["AccessKeyId"].as_str().context("key")?,
            credentials["SecretAccessKey"].as_str().context("secret")?,
            credentials["SessionToken"].as_str().map(str::to_owned),
            None,
            "trailgate",
        ),
    ));
    let caller = sts.get_caller_identity().send().await?;
    Ok((
        caller.account().unwrap_or_default().to_owned(),
        caller.arn().unwrap_or_default().to_owned(),
    ))
}

/// `GET /catalog` lists each entry's accounts, from Organizations; wrong accounts are 400s
/// naming the account, and nothing is recorded for them.
async fn catalog_and_refusals(ctx: &Ctx, org: &LocalOrganization) -> Result<()> {
    let (prod, data) = (&org.members[0].account_id, &org.members[1].account_id);
    let catalog = ctx.alice.get("/catalog").await?;
    let accounts = |id: &str| -> Vec<String> {
        catalog["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["id"] == id)
            .and_then(|e| e["accounts_available"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|a| a["id"].as_str().map(str::to_owned))
            .collect()
    };
    ensure!(
        accounts("member-readonly") == [prod.clone(), data.clone()],
        "member-readonly lists {:?}",
        accounts("member-readonly")
    );
    ensure!(
        accounts("prod-ou-readonly") == [prod.clone()],
        "prod-ou-readonly lists {:?}",
        accounts("prod-ou-readonly")
    );
    let before = ctx.alice.get("/requests").await?["requests"]
        .as_array()
        .map_or(0, Vec::len);
    let cases = [
        (
            request_body("member-readonly", "PT10M", "x"),
            "name one with `account`".to_owned(),
        ),
        (
            in_account("member-readonly", "444444444444", "PT10M"),
            "444444444444 is not in the Organization".to_owned(),
        ),
        (
            in_account("member-readonly", &org.management_account, "PT10M"),
            format!("{} is protected", org.management_account),
        ),
        (
            in_account("prod-ou-readonly", data, "PT10M"),
            format!("does not cover account {data}"),
        ),
    ];
    for (body, expected) in cases {
        let refused = ctx.alice.post_json("/requests", &body).await;
        ensure!(
            refused.as_ref().is_err_and(|e| {
                let text = e.to_string();
                text.contains(&expected) && text.contains("field `account`")
            }),
            "{body}: expected a 400 naming `{expected}`, got {refused:?}"
        );
    }
    let after = ctx.alice.get("/requests").await?["requests"]
        .as_array()
        .map_or(0, Vec::len);
    ensure!(before == after, "a refused request was recorded");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hub_grants_revokes_and_reconciles_roles_in_member_accounts() -> Result<()> {
    run_on_stack(
        "organizations",
        &[("Catalog", organization_catalog())],
        |ctx| async move {
            let org = ctx.state.organization.clone();
            ensure!(org.members.len() == 2, "organization: {org:?}");
            catalog_and_refusals(&ctx, &org).await?;
            context_per_account(&ctx, &org.members[0].account_id, &org.members[1].account_id)
                .await?;
            let (prod, data) = (
                Member::new(&ctx, &org.members[0].account_id).await?,
                Member::new(&ctx, &org.members[1].account_id).await?,
            );

            // A short grant in prod (through the OU entry), long ones in prod and data.
            let short = granted(&ctx, in_account("prod-ou-readonly", &prod.id, "PT8S")).await?;
            let long_prod = granted(&ctx, in_account("member-readonly", &prod.id, "PT30M")).await?;
            let long_data = granted(&ctx, in_account("member-readonly", &data.id, "PT30M")).await?;
            let (account, arn) = caller_of(&ctx, &short).await?;
            ensure!(
                account == prod.id
                    && arn.contains(&format!("assumed-role/{MEMBER_ROLE}/tg-alice-{short}")),
                "credentials act as {arn} in {account}"
            );
            ensure!(caller_of(&ctx, &long_data).await?.0 == data.id);

            // What the short session does in prod is what its audit reads there.
            let session = json!({"type": "AssumedRole",
                "principalId": format!("AROAMEMBER:tg-alice-{short}"),
                "arn": format!("arn:aws:sts::{}:assumed-role/{MEMBER_ROLE}/tg-alice-{short}", prod.id),
                "sessionContext": {"sourceIdentity": ctx.source_identity("alice")?}});
            ctx.seed_cloudtrail(&[record_in(&prod.id, "org-session-call", 0, "GetTrailStatus", session)])
                .await?;

            // Expiry: the Wait state ends the short grant; its deny is in prod, nowhere else.
            ctx.wait_for_any(&short, &["REVOKED", "AUDITED"], Duration::from_secs(60))
                .await?;
            prod.wait_denies(&short).await?;
            ensure!(
                !data.denies(&short).await?,
                "the deny went to the data account"
            );
            ensure!(
                !ctx.denies(HUB_ROLE, &short).await?,
                "the deny went to the hub's role"
            );
            let audited = ctx
                .wait_for_any(&short, &["AUDITED"], Duration::from_secs(60))
                .await?;
            let cloudtrail = &audited["audit"]["cloudtrail"];
            ensure!(
                cloudtrail["account"] == prod.id.as_str()
                    && cloudtrail["analysed"] == true
                    && cloudtrail.to_string().contains("GetTrailStatus"),
                "the audit did not read the session in prod: {cloudtrail}"
            );

            // An early revoke in prod leaves the grant in data untouched.
            ctx.alice
                .post_json(&format!("/requests/{long_prod}/revoke"), &json!({}))
                .await?;
            prod.wait_denies(&long_prod).await?;
            ensure!(
                data.revocations().await?.is_empty(),
                "data's role was written: {}",
                data.revocations().await?
            );
            ensure!(ctx.status(&long_data).await?["status"] == "ACTIVE");
            ensure!(caller_of(&ctx, &long_data).await?.0 == data.id);

            // The reconciler sweeps both members: denies lost in each account come back.
            ctx.alice
                .post_json(&format!("/requests/{long_data}/revoke"), &json!({}))
                .await?;
            data.wait_denies(&long_data).await?;
            for member in [&prod, &data] {
                member
                    .iam
                    .delete_role_policy()
                    .role_name(MEMBER_ROLE)
                    .policy_name("trailgate-revocations")
                    .send()
                    .await?;
            }
            let report = ctx.reconcile().await?;
            let reapplied: Vec<&str> = report["reapplied"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for id in [&short, &long_prod, &long_data] {
                ensure!(
                    reapplied.contains(&id.as_str()),
                    "{id} not reapplied: {report}"
                );
            }
            ensure!(
                report["failed"].as_array().is_some_and(Vec::is_empty),
                "{report}"
            );
            ensure!(prod.denies(&short).await? && prod.denies(&long_prod).await?);
            ensure!(data.denies(&long_data).await? && !data.denies(&long_prod).await?);
            agent_sessions_are_tagged_by_purpose(&ctx).await?;
            Ok(())
        },
    )
    .await
}
