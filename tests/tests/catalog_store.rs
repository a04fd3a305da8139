//! System test of the pushed catalog on the local stack: `jitctl catalog push` refuses a broken
//! file before sending it; only a publisher may push; a 500-entry catalog over 300 accounts is
//! stored as version 1 and every function runs it (intake lists it, approval mails the new
//! approver only, decision and grant accept her); a repeat push stores nothing; the history
//! names who pushed and when, and shows an edited record; a forged current version without the
//! chain key's seal is never run.

use anyhow::{Context, Result, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use std::time::Duration;
use trailgate_system_tests::catalog::{ACCOUNT, role_arn, user};
use trailgate_system_tests::ctx::request_body;
use trailgate_system_tests::{Ctx, run_on_stack};

const ROLE: &str = "sample-target-trailgate";

/// 499 entries over 300 made-up accounts, and `sandbox-admin` on the stack's sample role,
/// now approved by carol alone (the template's catalog has bob and carol).
fn big_catalog() -> String {
    let mut entries: Vec<Value> = (0..499)
        .map(|i| {
            let account = format!("{:012}", 200_000_000_000u64 + (i % 300));
            json!({"id": format!("team-{i:03}"),
                   "role_arn": format!("arn:aws:iam::{account}:role/team-{i:03}-operator"),
                   "description": format!("operator role of team {i}"),
                   "max_duration": "PT2H", "approval_window": "PT30M",
                   "approvers": [user("bob"), user("carol")], "quorum": 1,
                   "requesters": [format!("arn:aws:iam::{ACCOUNT}:user/*")]})
        })
        .collect();
    entries.push(json!({"id": "sandbox-admin", "role_arn": role_arn(ROLE),
        "description": "the sample role, approved by carol only", "max_duration": "PT1H",
        "approval_window": "PT5M", "approvers": [user("carol")], "quorum": 1,
        "requesters": [format!("arn:aws:iam::{ACCOUNT}:user/alice")]}));
    serde_json::to_string_pretty(&json!({"entries": entries})).unwrap_or_default()
}

/// The template's catalog: `sandbox-admin`, bob and carol approving.
fn template_catalog() -> String {
    json!({"entries": [{"id": "sandbox-admin", "role_arn": role_arn(ROLE),
        "description": "the sample role", "max_duration": "PT1H", "approval_window": "PT5M",
        "approvers": [user("bob"), user("carol")], "quorum": 1,
        "requesters": [format!("arn:aws:iam::{ACCOUNT}:user/alice")]}]})
    .to_string()
}

async fn put(client: &jitctl::api::Client, document: &str) -> Result<(u16, Value)> {
    let reply = client
        .send("PUT", "/catalog", document.as_bytes().to_vec(), &[])
        .await?;
    Ok((reply.status, reply.body))
}

/// `jitctl catalog push` itself, as carol, through the stack's AWS config file.
async fn cli_push(ctx: &Ctx, file: &std::path::Path) -> Result<std::process::ExitCode> {
    let target = jitctl::endpoint::Target {
        endpoint: Some(ctx.state.api_url.clone()),
        profile: Some("carol".into()),
        region: Some(ctx.state.region.clone()),
        aws_config_file: Some(ctx.state.aws_config_file.clone()),
    };
    jitctl::requests::catalog(
        &target,
        jitctl::requests::CatalogArgs {
            command: Some(jitctl::requests::CatalogCommand::Push {
                file: file.to_owned(),
                role_prefix: "trailgate-".into(),
                json: false,
            }),
            json: false,
        },
    )
    .await
}

async fn scenario(ctx: &Ctx) -> Result<()> {
    // Before any push: the template's catalog, and an empty history.
    let history = ctx.carol.get("/catalog/history").await?;
    ensure!(history["current_version"] == 0, "{history}");
    ensure!(history["versions"] == json!([]), "{history}");
    ensure!(
        ctx.alice.get("/catalog/history").await.is_err(),
        "alice (neither publisher nor approver) read the history"
    );

    // A broken file never leaves jitctl: an entry on trailgate's own role.
    let dir = ctx.state.state_dir.join("catalogs");
    std::fs::create_dir_all(&dir)?;
    let broken = dir.join("broken.json");
    std::fs::write(
        &broken,
        big_catalog().replace(&role_arn(ROLE), &role_arn("trailgate-GrantFunctionRole-x")),
    )?;
    ensure!(
        cli_push(ctx, &broken).await? == std::process::ExitCode::FAILURE,
        "jitctl pushed a broken catalog"
    );
    // The server refuses it as well (a client that skipped the check), naming the entry.
    let (status, body) = put(&ctx.carol, &std::fs::read_to_string(&broken)?).await?;
    ensure!(status == 400, "broken catalog: {status} {body}");
    ensure!(body["error"]["field"] == "catalog", "{body}");
    ensure!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("sandbox-admin")),
        "{body}"
    );
    // Requesters and approvers who are not publishers cannot push.
    for client in [&ctx.alice, &ctx.bob] {
        let (status, body) = put(client, &big_catalog()).await?;
        ensure!(status == 403, "a non-publisher pushed: {status} {body}");
    }
    ensure!(
        ctx.carol.get("/catalog/history").await?["current_version"] == 0,
        "a refused push stored something"
    );

    // The 500-entry catalog, through jitctl.
    let big = dir.join("catalog.json");
    std::fs::write(&big, big_catalog())?;
    ensure!(
        cli_push(ctx, &big).await? == std::process::ExitCode::SUCCESS,
        "jitctl catalog push failed"
    );
    let (status, body) = put(&ctx.carol, &big_catalog()).await?;
    ensure!(
        status == 200 && body["created"] == false,
        "a repeat push: {status} {body}"
    );
    let history = ctx.carol.get("/catalog/history").await?;
    let v1 = &history["versions"][0];
    ensure!(history["current_version"] == 1, "{history}");
    ensure!(
        history["versions"].as_array().map(Vec::len) == Some(1),
        "{history}"
    );
    ensure!(
        v1["pushed_by"] == format!("arn:aws:iam::{ACCOUNT}:user/carol"),
        "{v1}"
    );
    ensure!(
        v1["entries"] == 500 && v1["accounts"] == 301 && v1["bytes"] == big_catalog().len(),
        "entries, accounts and size: {v1}"
    );
    ensure!(
        v1["sha256"]
            == trailgate_domain::catalog_version::document_sha256(big_catalog().as_bytes()),
        "{v1}"
    );
    ensure!(history["chain"]["intact"] == true, "{history}");
    // bob approves entries of the pushed catalog: he may read the history too.
    ensure!(ctx.bob.get("/catalog/history").await?["current_version"] == 1);

    // Every function picks it up within CatalogRefreshSeconds (1 s on the local stack).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listed = ctx.alice.get("/catalog").await?;
    ensure!(
        listed["entries"].as_array().map(Vec::len) == Some(500),
        "alice sees {} entries",
        listed["entries"].as_array().map_or(0, Vec::len)
    );
    let id = ctx
        .new_request(request_body("sandbox-admin", "PT30M", "pushed catalog"))
        .await?;
    let mail = ctx.mail_to(&id, "carol@example.com").await?;
    // Give a stray mail to bob (the template's approver) time to show, then check there is none.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let to: Vec<String> = ctx.mails(&id, 1).await?.into_iter().map(|m| m.to).collect();
    ensure!(
        to == ["carol@example.com"],
        "approval mailed {to:?}; the pushed catalog names carol only"
    );
    let answer = ctx.post_decision(&mail.link, "decision=approve").await?;
    ensure!(answer.status == 200, "carol's approval: {}", answer.text);
    let active = ctx.wait_for(&id, "ACTIVE", Duration::from_secs(60)).await?;
    ensure!(active["outcome"] == "approved by carol", "{active}");

    // An edited record: the history says so.
    let table = ctx.output("CatalogTableName")?;
    let item = ctx
        .dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("CATALOG".into()))
        .key("sk", AttributeValue::S("V#00000000000000000001".into()))
        .send()
        .await?
        .item
        .context("no version 1 item")?;
    let record = item
        .get("record")
        .and_then(|v| v.as_s().ok())
        .context("no record")?
        .replace("user/carol", "user/mallory");
    ctx.dynamodb
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S("CATALOG".into()))
        .key("sk", AttributeValue::S("V#00000000000000000001".into()))
        .update_expression("SET #r = :r")
        .expression_attribute_names("#r", "record")
        .expression_attribute_values(":r", AttributeValue::S(record))
        .send()
        .await?;
    let history = ctx.carol.get("/catalog/history").await?;
    ensure!(history["chain"]["intact"] == false, "{history}");
    ensure!(
        history["chain"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("version 1")),
        "{history}"
    );

    // A forged current version, as someone who could write the table would store it: a
    // consistent document and SHA-256, the template's approvers back, but no chain-key seal.
    // The functions keep running version 1: the next request is still mailed to carol only.
    let forged = template_catalog();
    let mut record: Value = serde_json::from_str(
        item.get("record")
            .and_then(|v| v.as_s().ok())
            .context("no record")?,
    )?;
    record["version"] = json!(2);
    record["sha256"] = json!(trailgate_domain::catalog_version::document_sha256(
        forged.as_bytes()
    ));
    record["bytes"] = json!(forged.len());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, forged.as_bytes())?;
    ctx.dynamodb
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S("CATALOG".into()))
        .item("sk", AttributeValue::S("HEAD".into()))
        .item("version", AttributeValue::N("2".into()))
        .item("record", AttributeValue::S(record.to_string()))
        .item("doc", AttributeValue::B(gz.finish()?.into()))
        .send()
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let id = ctx
        .new_request(request_body("sandbox-admin", "PT30M", "forged catalog"))
        .await?;
    ctx.mail_to(&id, "carol@example.com").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let to: Vec<String> = ctx.mails(&id, 1).await?.into_iter().map(|m| m.to).collect();
    ensure!(
        to == ["carol@example.com"],
        "approval mailed {to:?}: a function took the unsealed version"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_catalog_of_500_entries_runs_everywhere() -> Result<()> {
    let parameters = [("Catalog", template_catalog())];
    run_on_stack("catalog-store", &parameters, |ctx| async move {
        scenario(&ctx).await
    })
    .await
}
