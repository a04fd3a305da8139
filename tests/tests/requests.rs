//! System tests of the requester's API on the local stack (issue 3): the catalog view, listing,
//! cancelling, the request policy (one open request per role, also under concurrent
//! submissions, `Idempotency-Key`, the rate limit) and every error class, through the real router, SigV4 and the intake binary.
//!
//! The stack runs with the production policy (`OneOpenRequestPerRole=true`,
//! `RequestsPerMinute=10`), unlike the other system tests. Only alice may request, so the
//! scenarios run one after another and the rate limit is tried last.

use anyhow::{Context, Result, ensure};
use jitctl::api::Reply;
use serde_json::{Value, json};
use trailgate_system_tests::catalog::{Entry, catalog, role_arn};
use trailgate_system_tests::ctx::request_body;
use trailgate_system_tests::{Ctx, run_on_stack_with};

/// Two entries on two roles, so the one-open-request rule can be seen per role.
fn requests_catalog() -> String {
    catalog(&[
        Entry::new("policy-a", role_arn("sample-target-trailgate")),
        Entry::new("policy-b", role_arn("another-target")),
    ])
}

/// `method path` as alice (or `who`), with an optional JSON body and extra headers.
async fn send(
    client: &jitctl::api::Client,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Result<Reply> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    client.send(method, path, bytes, headers).await
}

/// Checks a 4xx answer: its status, the error code and the field named.
fn expect_error(reply: &Reply, status: u16, code: &str, field: Option<&str>) -> Result<()> {
    let error = &reply.body["error"];
    ensure!(
        reply.status == status
            && error["code"] == code
            && error["field"].as_str() == field
            && error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "expected {status} {code} {field:?}, got {} {}",
        reply.status,
        reply.body
    );
    Ok(())
}

async fn catalog_view(ctx: &Ctx) -> Result<()> {
    let mine = send(&ctx.alice, "GET", "/catalog", None, &[]).await?;
    ensure!(mine.status == 200, "catalog: {mine:?}");
    let ids: Vec<&str> = mine.body["entries"]
        .as_array()
        .context("no entries")?
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    ensure!(ids == ["policy-a", "policy-b"], "alice may request {ids:?}");
    let text = mine.body.to_string();
    ensure!(
        !text.contains("example.com") && !text.contains("user/bob"),
        "the catalog view names approvers: {text}"
    );
    let bobs = send(&ctx.bob, "GET", "/catalog", None, &[]).await?;
    ensure!(
        bobs.status == 200 && bobs.body["entries"] == json!([]),
        "bob may request nothing: {bobs:?}"
    );
    Ok(())
}

/// Returns (the open request on policy-a, the one on policy-b).
async fn one_open_request_and_idempotency(ctx: &Ctx) -> Result<(String, String)> {
    let body = request_body("policy-a", "PT30M", "system test");
    let key = [("idempotency-key", "retry-1")];
    let first = send(&ctx.alice, "POST", "/requests", Some(&body), &key).await?;
    ensure!(first.status == 201, "first: {first:?}");
    let id = first.body["id"].as_str().context("no id")?.to_owned();

    let replay = send(&ctx.alice, "POST", "/requests", Some(&body), &key).await?;
    ensure!(
        replay.status == 201 && replay.body["id"] == id.as_str(),
        "replay: {replay:?}"
    );
    let other_body = request_body("policy-a", "PT30M", "a different reason");
    let reused = send(&ctx.alice, "POST", "/requests", Some(&other_body), &key).await?;
    expect_error(&reused, 409, "Conflict", Some("Idempotency-Key"))?;

    let repeat = send(&ctx.alice, "POST", "/requests", Some(&other_body), &[]).await?;
    ensure!(
        repeat.status == 200 && repeat.body["id"] == id.as_str(),
        "a repeat for the same role must return the open request: {repeat:?}"
    );
    let other_role = send(
        &ctx.alice,
        "POST",
        "/requests",
        Some(&request_body("policy-b", "PT30M", "system test")),
        &[],
    )
    .await?;
    ensure!(other_role.status == 201, "other role: {other_role:?}");
    let other_id = other_role.body["id"].as_str().context("no id")?.to_owned();
    ensure!(other_id != id, "two roles, one request");
    Ok((id, other_id))
}

async fn listing(ctx: &Ctx, older: &str, newer: &str) -> Result<()> {
    let first = send(&ctx.alice, "GET", "/requests?limit=1", None, &[]).await?;
    ensure!(first.status == 200, "list: {first:?}");
    ensure!(
        first.body["requests"][0]["id"] == newer,
        "newest first: {}",
        first.body
    );
    let next = first.body["next"].as_str().context("no next token")?;
    let second = send(
        &ctx.alice,
        "GET",
        &format!("/requests?limit=1&next={}", jitctl::api::segment(next)),
        None,
        &[],
    )
    .await?;
    ensure!(
        second.body["requests"][0]["id"] == older && second.body["next"].is_null(),
        "second page: {}",
        second.body
    );
    let bobs = send(&ctx.bob, "GET", "/requests", None, &[]).await?;
    ensure!(
        bobs.status == 200 && bobs.body["requests"] == json!([]),
        "bob sees alice's requests: {bobs:?}"
    );
    for (path, field) in [
        ("/requests?limit=51", "limit"),
        ("/requests?limit=zero", "limit"),
        ("/requests?next=not-a-token", "next"),
        ("/requests?owner=bob", "owner"),
    ] {
        let reply = send(&ctx.alice, "GET", path, None, &[]).await?;
        expect_error(&reply, 400, "InvalidRequest", Some(field)).context(path)?;
    }
    Ok(())
}

async fn cancelling(ctx: &Ctx, id: &str) -> Result<()> {
    let path = format!("/requests/{id}/cancel");
    let by_bob = send(&ctx.bob, "POST", &path, None, &[]).await?;
    expect_error(&by_bob, 403, "Forbidden", None)?;
    let cancelled = send(&ctx.alice, "POST", &path, None, &[]).await?;
    ensure!(
        cancelled.status == 200 && cancelled.body["status"] == "CANCELLED",
        "cancel: {cancelled:?}"
    );
    let again = send(&ctx.alice, "POST", &path, None, &[]).await?;
    ensure!(again.status == 200, "a second cancel: {again:?}");
    // The execution still waits; an approver's decision is refused and nothing is granted.
    let decision = send(
        &ctx.bob,
        "POST",
        &format!("/requests/{id}/decision"),
        Some(&json!({"decision": "approve"})),
        &[],
    )
    .await?;
    expect_error(&decision, 409, "Conflict", None)?;
    let actions = ctx.ledger_actions(id).await?;
    // The context step may still record what it gathered after the cancel; no step may
    // decide or grant.
    ensure!(
        actions.iter().any(|a| a == "Cancelled")
            && !actions.iter().any(|a| a == "Approved" || a == "Activated"),
        "ledger after cancel: {actions:?}"
    );
    let unknown = send(
        &ctx.alice,
        "POST",
        "/requests/r-zzzzzzzzzzzzzzzzzzzzzzzzzz/cancel",
        None,
        &[],
    )
    .await?;
    expect_error(&unknown, 404, "NotFound", None)?;
    Ok(())
}

/// Runs the built `jitctl` binary as alice (`cargo build --workspace --bins` first) and
/// returns its stdout; fails with its stderr when it fails.
async fn jitctl(ctx: &Ctx, args: &[&str]) -> Result<String> {
    let binary =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/jitctl");
    let output = tokio::process::Command::new(&binary)
        .args(["--endpoint", &ctx.state.api_url, "--profile", "alice"])
        .args(["--region", &ctx.state.region])
        .args(args)
        .env("AWS_CONFIG_FILE", &ctx.state.aws_config_file)
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    ensure!(
        output.status.success(),
        "jitctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// `jitctl catalog`, `list` and `cancel`: tables by default, the server's JSON with `--json`.
async fn jitctl_commands(ctx: &Ctx, cancelled: &str, open: &str) -> Result<()> {
    let table = jitctl(ctx, &["catalog"]).await?;
    ensure!(
        table.starts_with("ID") && table.contains("policy-a") && table.contains("policy-b"),
        "catalog table: {table}"
    );
    let table = jitctl(ctx, &["list"]).await?;
    let lines: Vec<&str> = table.lines().collect();
    ensure!(
        lines.len() == 3
            && lines[1].starts_with(open)
            && lines[2].starts_with(cancelled)
            && lines[2].contains("CANCELLED"),
        "list table: {table}"
    );
    let listed: Value =
        serde_json::from_str(&jitctl(ctx, &["list", "--json", "--limit", "1", "--all"]).await?)?;
    ensure!(
        listed.as_array().map(Vec::len) == Some(2),
        "list --all --json: {listed}"
    );
    let cancelled_now: Value =
        serde_json::from_str(&jitctl(ctx, &["cancel", open, "--json"]).await?)?;
    ensure!(
        cancelled_now["status"] == "CANCELLED",
        "jitctl cancel: {cancelled_now}"
    );
    Ok(())
}

/// Four submissions for one role at once, after its last request was cancelled: one
/// creates a request, the others get that request back. The stack runs four intake
/// instances, so the submissions overlap, and the claim they contend for is held by the
/// cancelled request, which drives the adapter's take-over condition on DynamoDB. Overlap is
/// likely, not certain; the race itself is proven deterministically in the domain's tests.
async fn concurrent_submissions(ctx: &Ctx) -> Result<()> {
    let body = request_body("policy-a", "PT30M", "concurrent");
    let submit = || send(&ctx.alice, "POST", "/requests", Some(&body), &[]);
    let (one, two, three, four) = tokio::join!(submit(), submit(), submit(), submit());
    let replies = [one, two, three, four];
    let mut created = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for reply in replies {
        let reply = reply?;
        ensure!(matches!(reply.status, 200 | 201), "submission: {reply:?}");
        if reply.status == 201 {
            created.push(reply.body["id"].clone());
        }
        ids.insert(reply.body["id"].as_str().context("no id")?.to_owned());
    }
    ensure!(
        created.len() == 1 && ids.len() == 1,
        "one request must be created and returned to all four: created {created:?}, ids {ids:?}"
    );
    let listed = send(&ctx.alice, "GET", "/requests?limit=50", None, &[]).await?;
    let open: Vec<&Value> = listed.body["requests"]
        .as_array()
        .context("no requests")?
        .iter()
        .filter(|r| r["catalog_id"] == "policy-a" && r["status"] == "PENDING")
        .collect();
    ensure!(open.len() == 1, "open requests on policy-a: {open:?}");
    Ok(())
}

async fn error_classes(ctx: &Ctx) -> Result<()> {
    let before = send(&ctx.alice, "GET", "/requests?limit=50", None, &[]).await?;
    let huge =
        json!({"catalog_id": "policy-a", "duration": "PT1H", "reason": "x".repeat(17 * 1024)});
    let reply = send(&ctx.alice, "POST", "/requests", Some(&huge), &[]).await?;
    expect_error(&reply, 413, "PayloadTooLarge", Some("body"))?;
    let reply = ctx
        .alice
        .send("POST", "/requests", b"{not json".to_vec(), &[])
        .await?;
    expect_error(&reply, 400, "InvalidRequest", Some("body"))?;
    let unknown_field = json!({"catalog_id": "policy-a", "duration": "PT1H", "reason": "x", "requester": "arn:aws:iam::1:root"});
    let reply = send(&ctx.alice, "POST", "/requests", Some(&unknown_field), &[]).await?;
    expect_error(&reply, 400, "InvalidRequest", Some("requester"))?;
    let reply = send(
        &ctx.alice,
        "GET",
        "/requests/r-zzzzzzzzzzzzzzzzzzzzzzzzzz",
        None,
        &[],
    )
    .await?;
    expect_error(&reply, 404, "NotFound", None)?;
    let bad_key = [("idempotency-key", "has space")];
    let reply = send(
        &ctx.alice,
        "POST",
        "/requests",
        Some(&request_body("policy-b", "PT30M", "system test")),
        &bad_key,
    )
    .await?;
    expect_error(&reply, 400, "InvalidRequest", Some("Idempotency-Key"))?;
    let after = send(&ctx.alice, "GET", "/requests?limit=50", None, &[]).await?;
    // Ids only: an open request's context may land in between.
    let ids = |reply: &Reply| -> Vec<Value> {
        reply.body["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["id"].clone())
            .collect()
    };
    ensure!(
        ids(&before) == ids(&after),
        "a refused request left a ledger record: {:?} then {:?}",
        ids(&before),
        ids(&after)
    );
    Ok(())
}

async fn rate_limit(ctx: &Ctx) -> Result<()> {
    // Invalid submissions count too. Up to 25 tries: the wall clock may cross a minute.
    let bad = request_body("no-such-entry", "PT1H", "rate");
    for _ in 0..25 {
        let reply = send(&ctx.alice, "POST", "/requests", Some(&bad), &[]).await?;
        if reply.status == 429 {
            expect_error(&reply, 429, "RateLimited", None)?;
            let wait: u64 = reply
                .header("retry-after")
                .context("429 without Retry-After")?
                .parse()?;
            ensure!((1..=60).contains(&wait), "Retry-After {wait}");
            return Ok(());
        }
        expect_error(&reply, 400, "InvalidRequest", Some("catalog_id"))?;
    }
    anyhow::bail!("25 submissions within a minute were never rate limited")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_requester_api_and_its_policy_on_the_local_stack() -> Result<()> {
    let parameters = [
        ("Catalog", requests_catalog()),
        ("OneOpenRequestPerRole", "true".to_owned()),
        ("RequestsPerMinute", "10".to_owned()),
    ];
    // Four instances per function, so the concurrent submissions really overlap.
    let concurrent = |options: &mut trailgate_local::UpOptions| options.lambda_concurrency = 4;
    run_on_stack_with("requests", &parameters, concurrent, |ctx| async move {
        catalog_view(&ctx).await.context("catalog view")?;
        let (a, b) = one_open_request_and_idempotency(&ctx)
            .await
            .context("one open request and idempotency")?;
        listing(&ctx, &a, &b).await.context("listing")?;
        cancelling(&ctx, &a).await.context("cancelling")?;
        jitctl_commands(&ctx, &a, &b).await.context("jitctl")?;
        concurrent_submissions(&ctx)
            .await
            .context("concurrent submissions")?;
        error_classes(&ctx).await.context("error classes")?;
        rate_limit(&ctx).await.context("rate limit")?;
        Ok(())
    })
    .await
}
