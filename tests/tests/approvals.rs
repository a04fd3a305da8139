//! System tests of the approval rules on the local stack: quorum, the first deny, self-approval,
//! a burst of concurrent clicks, expired and tampered links, `jitctl approve|deny` through the
//! signed route, and the confirm page in headless Chromium.
//!
//! Like lifecycle.rs: one stack for the file with its own catalog, scenarios run concurrently
//! with `tokio::join!`, driven through jitctl's signed client, plain HTTP for the public link
//! routes, the outbox (`<outbox_url>.json`) for the e-mails and the AWS SDK for the ledger and
//! the execution history. Every refusal is checked to change nothing: same status, same ledger
//! events, no extra SendTaskSuccess.

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use trailgate_system_tests::catalog::{Entry, catalog};
use trailgate_system_tests::{Answer, Ctx, post_link, report, run_on_stack};

const ROLE: &str = "arn:aws:iam::123456789012:role/sample-target-trailgate";

/// The catalog of this file: quorum 1 and 2, an entry alice both requests and approves (carol
/// is not one of its approvers), and one whose approval window is 4 seconds.
fn approvals_catalog() -> String {
    let entry = |id| Entry {
        description: "approvals test entry",
        max_duration: "PT2H",
        ..Entry::new(id, ROLE)
    };
    catalog(&[
        entry("sandbox-admin"),
        Entry {
            quorum: 2,
            ..entry("two-person")
        },
        Entry {
            approvers: vec!["alice", "bob"],
            ..entry("alice-approves")
        },
        Entry {
            approval_window: "PT4S",
            ..entry("fast-expiry")
        },
    ])
}

/// This file's requests (fixed duration and ticket) and its checks that a refusal changed
/// nothing, on the shared harness context.
trait ApprovalSteps {
    async fn request(&self, catalog_id: &str, reason: &str) -> Result<String>;

    async fn link_of(&self, id: &str, approver: &str) -> Result<String>;

    /// How many TaskSucceeded events the `Await Approval` state got (each is one accepted
    /// SendTaskSuccess), and every event type, for messages.
    async fn approval_task_successes(&self, id: &str) -> Result<(usize, Vec<String>)>;

    /// The status and ledger events, to prove a refusal changed nothing.
    async fn snapshot(&self, id: &str) -> Result<(Value, Vec<String>)>;

    /// Waits until the approval step has run (its event is in the ledger).
    async fn wait_approval_requested(&self, id: &str) -> Result<()>;
}

impl ApprovalSteps for Ctx {
    async fn request(&self, catalog_id: &str, reason: &str) -> Result<String> {
        self.new_request(json!({"catalog_id": catalog_id, "duration": "PT1H", "reason": reason, "ticket": "OPS-7"}))
            .await
    }

    async fn link_of(&self, id: &str, approver: &str) -> Result<String> {
        let to = format!("{approver}@example.com");
        Ok(self
            .mails(id, 2)
            .await?
            .into_iter()
            .find(|m| m.to == to)
            .with_context(|| format!("no mail to {to}"))?
            .link)
    }

    async fn approval_task_successes(&self, id: &str) -> Result<(usize, Vec<String>)> {
        let (mut inside, mut count, mut kinds) = (false, 0, Vec::new());
        for event in self.history_events(id).await? {
            kinds.push(event.r#type().as_str().to_owned());
            if let Some(details) = event.state_entered_event_details() {
                inside = details.name() == "Await Approval";
            }
            if event.state_exited_event_details().is_some() {
                inside = false;
            }
            if inside && event.r#type().as_str() == "TaskSucceeded" {
                count += 1;
            }
        }
        Ok((count, kinds))
    }

    async fn snapshot(&self, id: &str) -> Result<(Value, Vec<String>)> {
        let request = self.status(id).await?;
        Ok((
            json!({"status": request["status"], "decisions": request["decisions"], "outcome": request["outcome"]}),
            self.ledger_actions(id).await?,
        ))
    }

    async fn wait_approval_requested(&self, id: &str) -> Result<()> {
        let started = Instant::now();
        while !self
            .ledger_actions(id)
            .await?
            .contains(&"ApprovalRequested".to_owned())
        {
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "no ApprovalRequested for {id}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }
}

/// The error text of a signed call that must fail.
async fn refused(call: impl std::future::Future<Output = Result<Value>>) -> Result<String> {
    match call.await {
        Ok(value) => bail!("accepted: {value}"),
        Err(err) => Ok(err.to_string()),
    }
}

/// Quorum 2 of 2: the first approval leaves the request PENDING and the page says more
/// approvals are needed; the second grants; the e-mail names requester, role and duration.
async fn quorum_two(ctx: &Ctx) -> Result<()> {
    let id = ctx.request("two-person", "quorum test").await?;
    let mails = ctx.mails(&id, 2).await?;
    for mail in &mails {
        ensure!(
            mail.subject == "trailgate: alice requests two-person for PT1H",
            "subject {:?}",
            mail.subject
        );
        for needle in [
            "Reason:    quorum test",
            "Ticket:    OPS-7",
            "CloudTrail events of the requester",
            ROLE,
        ] {
            ensure!(mail.body.contains(needle), "no {needle:?} in {}", mail.body);
        }
    }
    let bob = ctx.link_of(&id, "bob").await?;
    let carol = ctx.link_of(&id, "carol").await?;
    let first = ctx.post_decision(&bob, "decision=approve").await?;
    ensure!(first.status == 200, "first approval: {}", first.text);
    ensure!(
        first.text.contains("more approvals are needed"),
        "the page does not say more approvals are needed: {}",
        first.text
    );
    ensure!(ctx.status(&id).await?["status"] == "PENDING");
    ensure!(ctx.approval_task_successes(&id).await?.0 == 0);
    let second = ctx
        .post_decision(&carol, "decision=approve&comment=second")
        .await?;
    ensure!(second.status == 200, "second approval: {}", second.text);
    ensure!(
        second.text.contains("approved by bob, carol"),
        "{}",
        second.text
    );
    let active = ctx.wait_for(&id, "ACTIVE", Duration::from_secs(30)).await?;
    ensure!(active["outcome"] == "approved by bob, carol", "{active}");
    let (successes, kinds) = ctx.approval_task_successes(&id).await?;
    ensure!(successes == 1, "{successes} task successes: {kinds:?}");
    Ok(())
}

/// The first deny ends the request even after one approval; the links then show the outcome.
async fn deny_after_approval(ctx: &Ctx) -> Result<()> {
    let id = ctx.request("two-person", "deny test").await?;
    let bob = ctx.link_of(&id, "bob").await?;
    let carol = ctx.link_of(&id, "carol").await?;
    let first = ctx.post_decision(&bob, "decision=approve").await?;
    ensure!(first.status == 200, "approval: {}", first.text);
    let deny = ctx
        .post_decision(&carol, "decision=deny&comment=not+today")
        .await?;
    ensure!(deny.status == 200, "deny: {}", deny.text);
    let denied = ctx.wait_for(&id, "DENIED", Duration::from_secs(10)).await?;
    ensure!(denied["outcome"] == "denied by carol", "{denied}");
    // Bob's link now shows the outcome and who decided, with no form.
    let page = ctx.http.get(&bob).send().await?.text().await?;
    ensure!(
        page.contains("Already decided")
            && page.contains("denied by carol")
            && !page.contains("<form"),
        "bob's page after the deny: {page}"
    );
    let (successes, kinds) = ctx.approval_task_successes(&id).await?;
    ensure!(successes == 1, "{successes} task successes: {kinds:?}");
    ensure!(
        ctx.ledger_actions(&id)
            .await?
            .ends_with(&["Approved".into(), "Denied".into()]),
        "ledger {:?}",
        ctx.ledger_actions(&id).await?
    );
    Ok(())
}

/// alice is an approver of the entry she requests: she gets no e-mail and cannot approve
/// through the signed route; carol, no approver of it, is told it does not exist; bob can, with jitctl.
async fn self_approval(ctx: &Ctx) -> Result<()> {
    let id = ctx.request("alice-approves", "self approval test").await?;
    ctx.wait_approval_requested(&id).await?;
    let mails = ctx.mails(&id, 1).await?;
    let to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
    ensure!(to == ["bob@example.com"], "approval mails went to {to:?}");
    let before = ctx.snapshot(&id).await?;
    let own = refused(jitctl::approve::decide(&ctx.alice, &id, true, None)).await?;
    ensure!(
        own.contains("you cannot approve your own request") && own.contains("Forbidden"),
        "alice: {own}"
    );
    let stranger = refused(jitctl::approve::decide(&ctx.carol, &id, true, None)).await?;
    // Someone who may not decide is not told the request exists (as `GET /requests/{id}`).
    ensure!(
        stranger.contains("no request") && stranger.contains("NotFound"),
        "carol: {stranger}"
    );
    ensure!(
        ctx.snapshot(&id).await? == before,
        "a refusal changed the request"
    );
    let approved = jitctl::approve::decide(&ctx.bob, &id, true, Some("via jitctl")).await?;
    ensure!(approved["status"] == "APPROVED", "{approved}");
    ctx.wait_for(&id, "ACTIVE", Duration::from_secs(30)).await?;
    Ok(())
}

/// `jitctl approve|deny` through the signed route: one decision per approver, nothing after
/// the request is decided, and the same JSON errors as the rest of the API.
async fn cli_path(ctx: &Ctx) -> Result<()> {
    let id = ctx.request("sandbox-admin", "cli test").await?;
    ctx.wait_approval_requested(&id).await?;
    let bad = refused(ctx.bob.post_json(
        &format!("/requests/{id}/decision"),
        &json!({"decision": "maybe"}),
    ))
    .await?;
    ensure!(
        bad.contains("InvalidRequest") && bad.contains("field `decision`"),
        "{bad}"
    );
    let missing = refused(jitctl::approve::decide(
        &ctx.bob,
        "r-zzzzzzzzzzzzzzzzzzzzzzzzzz",
        true,
        None,
    ))
    .await?;
    ensure!(missing.contains("NotFound"), "{missing}");
    let unsigned = ctx
        .http
        .post(format!("{}/requests/{id}/decision", ctx.state.api_url))
        .body(r#"{"decision": "approve"}"#)
        .send()
        .await?;
    ensure!(unsigned.status() == 403, "unsigned: {}", unsigned.status());

    let denied = jitctl::approve::summary(
        &jitctl::approve::decide(&ctx.carol, &id, false, Some("not now")).await?,
    );
    ensure!(
        denied == format!("{id}: DENIED (denied by carol)"),
        "{denied}"
    );
    let again = refused(jitctl::approve::decide(&ctx.carol, &id, false, None)).await?;
    ensure!(
        again.contains("you already denied") && again.contains("Conflict"),
        "{again}"
    );
    let late = refused(jitctl::approve::decide(&ctx.bob, &id, true, None)).await?;
    ensure!(
        late.contains("already DENIED") && late.contains("Conflict"),
        "{late}"
    );
    // The link path agrees: bob's link cannot approve either.
    let link = ctx
        .post_decision(&ctx.link_of(&id, "bob").await?, "decision=approve")
        .await?;
    ensure!(
        link.status == 409,
        "bob's link after the deny: {}",
        link.status
    );
    ensure!(ctx.approval_task_successes(&id).await?.0 == 1);
    Ok(())
}

/// Ten concurrent clicks mixing approve and deny from both approvers' links: exactly one wins,
/// the execution gets exactly one SendTaskSuccess, and the ledger has exactly one decision.
async fn burst(ctx: &Ctx) -> Result<()> {
    let id = ctx.request("sandbox-admin", "burst test").await?;
    let links = [
        ctx.link_of(&id, "bob").await?,
        ctx.link_of(&id, "carol").await?,
    ];
    let mut clicks = tokio::task::JoinSet::new();
    for n in 0..10 {
        let http = ctx.http.clone();
        let link = links[n % 2].clone();
        let decision = if n % 4 < 2 { "approve" } else { "deny" };
        clicks.spawn(async move {
            post_link(&http, &link, &format!("decision={decision}"))
                .await
                .map(|answer| (answer.status, decision, n % 2))
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = clicks.join_next().await {
        answers.push(answer??);
    }
    let winners: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|(status, _, _)| *status).collect();
    ensure!(winners.len() == 1, "answers {answers:?}");
    ensure!(
        statuses.iter().filter(|s| **s == 409).count() == 9,
        "the losers answered {statuses:?}"
    );
    let (_, decision, who) = winners[0];
    let expected = if *decision == "approve" {
        "APPROVED"
    } else {
        "DENIED"
    };
    let record = ctx.status(&id).await?;
    ensure!(
        record["status"] == expected || (expected == "APPROVED" && record["status"] == "ACTIVE"),
        "winner {decision} by {who}, record {record}"
    );
    let decisions = record["decisions"].as_array().map_or(0, Vec::len);
    ensure!(decisions == 1, "decisions {}", record["decisions"]);
    let actions = ctx.ledger_actions(&id).await?;
    let decided = actions
        .iter()
        .filter(|a| *a == "Approved" || *a == "Denied")
        .count();
    ensure!(decided == 1, "ledger {actions:?}");
    // Give a second SendTaskSuccess, had there been one, time to show in the history.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (successes, kinds) = ctx.approval_task_successes(&id).await?;
    ensure!(successes == 1, "{successes} task successes: {kinds:?}");
    Ok(())
}

/// After the approval window a link changes nothing (403 expired, or 409 already EXPIRED),
/// and neither does `jitctl approve`.
async fn expired_link(ctx: &Ctx) -> Result<()> {
    let id = ctx.request("fast-expiry", "expiry test").await?;
    let bob = ctx.link_of(&id, "bob").await?;
    let expired = ctx
        .wait_for(&id, "EXPIRED", Duration::from_secs(30))
        .await?;
    ensure!(
        expired["outcome"] == "no decision within the approval window",
        "{expired}"
    );
    let before = ctx.snapshot(&id).await?;
    let late = ctx.post_decision(&bob, "decision=approve").await?;
    ensure!(
        (late.status == 403 && late.text.contains("this link has expired")) || late.status == 409,
        "a click after expiry: {} {}",
        late.status,
        late.text
    );
    ensure!(late.text.contains("Nothing was changed."), "{}", late.text);
    let cli = refused(jitctl::approve::decide(&ctx.bob, &id, true, None)).await?;
    ensure!(
        cli.contains("Conflict"),
        "jitctl approve after expiry: {cli}"
    );
    ensure!(
        ctx.snapshot(&id).await? == before,
        "a late click changed the request"
    );
    Ok(())
}

/// Forged, tampered (other approver, other request, later expiry), malformed, replayed and
/// other-approver links: 403 or 409 with a plain page, and nothing changes. The reason, which
/// holds HTML, is escaped on the confirm page.
async fn bad_links(ctx: &Ctx) -> Result<()> {
    let reason = "<script>alert('x')</script> & <img src=x onerror=alert(1)>";
    let id = ctx.request("sandbox-admin", reason).await?;
    let other = ctx.request("sandbox-admin", "the other request").await?;
    let bob = ctx.link_of(&id, "bob").await?;
    let carol = ctx.link_of(&id, "carol").await?;
    ctx.mails(&other, 2).await?;

    let page = ctx.http.get(&bob).send().await?;
    ensure!(page.status() == 200);
    let page = page.text().await?;
    ensure!(
        !page.contains("<script") && !page.contains("<img"),
        "unescaped reason on the confirm page"
    );
    ensure!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img"));

    let signature = bob.split("&s=").nth(1).context("no signature")?.to_owned();
    let flipped = format!(
        "{}{}",
        if signature.starts_with('0') { "1" } else { "0" },
        &signature[1..]
    );
    let expiry: i64 = bob
        .split("&e=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .context("no expiry")?
        .parse()?;
    let attacks = [
        (
            "forged signature",
            bob.replace(&signature, &"ab".repeat(32)),
        ),
        ("flipped signature bit", bob.replace(&signature, &flipped)),
        (
            "other approver (a=carol, bob's signature)",
            bob.replace("a=bob", "a=carol"),
        ),
        ("other request id", bob.replace(&id, &other)),
        (
            "later expiry",
            bob.replace(&format!("e={expiry}"), &format!("e={}", expiry + 86_400)),
        ),
        ("no signature", bob.replace(&format!("&s={signature}"), "")),
        ("unknown approver", bob.replace("a=bob", "a=mallory")),
    ];
    let before = ctx.snapshot(&id).await?;
    let before_other = ctx.snapshot(&other).await?;
    for (name, link) in &attacks {
        for method in ["GET", "POST"] {
            let answer = if method == "GET" {
                let response = ctx.http.get(link).send().await?;
                Answer {
                    status: response.status().as_u16(),
                    content_type: String::new(),
                    text: response.text().await?,
                }
            } else {
                ctx.post_decision(link, "decision=approve").await?
            };
            ensure!(
                answer.status == 403,
                "{name} ({method}) answered {}",
                answer.status
            );
            ensure!(
                answer.text.contains("Nothing was changed.") && !answer.text.contains("<form"),
                "{name} ({method}): {}",
                answer.text
            );
        }
    }
    ensure!(
        ctx.snapshot(&id).await? == before,
        "an attack changed the request"
    );
    ensure!(
        ctx.snapshot(&other).await? == before_other,
        "an attack changed the other request"
    );

    let approve = ctx.post_decision(&bob, "decision=approve").await?;
    ensure!(approve.status == 200, "bob's own link: {}", approve.text);
    ensure!(approve.content_type.starts_with("text/html"));
    let replay = ctx.post_decision(&bob, "decision=approve").await?;
    ensure!(replay.status == 409, "replay answered {}", replay.status);
    ensure!(
        replay.text.contains("you already approved"),
        "{}",
        replay.text
    );
    let other_approver = ctx.post_decision(&carol, "decision=deny").await?;
    ensure!(
        other_approver.status == 409,
        "carol after bob: {}",
        other_approver.status
    );
    ensure!(
        other_approver.text.contains("already"),
        "{}",
        other_approver.text
    );
    // The grant goes on (Activated may follow), but no second decision is recorded.
    let decisions = ctx
        .ledger_actions(&id)
        .await?
        .into_iter()
        .filter(|a| a == "Approved" || a == "Denied")
        .count();
    ensure!(decisions == 1, "{decisions} decisions in the ledger");
    let record = ctx.status(&id).await?;
    ensure!(
        record["decisions"].as_array().map_or(0, Vec::len) == 1,
        "decisions {}",
        record["decisions"]
    );
    ensure!(ctx.approval_task_successes(&id).await?.0 == 1);
    Ok(())
}

/// The confirm page in headless Chromium, JavaScript off and phone-sized: it shows the request
/// and the context, Approve leads to the outcome page, and the request becomes ACTIVE.
async fn browser(ctx: &Ctx) -> Result<()> {
    // Something for the context step to warn about, so the page has a highlighted finding.
    let at = (time::OffsetDateTime::now_utc() - Duration::from_secs(600))
        .format(&time::format_description::well_known::Rfc3339)?;
    ctx.seed_cloudtrail(&[json!({
        "eventID": "approvals-browser-stoplogging", "eventTime": at, "eventName": "StopLogging",
        "eventSource": "cloudtrail.amazonaws.com", "awsRegion": "us-east-1",
        "userIdentity": {"type": "IAMUser", "userName": "alice",
            "arn": "arn:aws:iam::123456789012:user/alice"},
    })])
    .await?;
    let id = ctx.request("sandbox-admin", "browser test").await?;
    let link = ctx.link_of(&id, "bob").await?;
    let screenshot = trailgate_system_tests::browser::artifact("approve.png")?;
    trailgate_system_tests::browser::run(
        "approve.mjs",
        &[link.as_ref(), screenshot.as_os_str()],
        &screenshot,
    )
    .await?;
    let active = ctx.wait_for(&id, "ACTIVE", Duration::from_secs(30)).await?;
    ensure!(active["outcome"] == "approved by bob", "{active}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_approval_rules_on_the_local_stack() -> Result<()> {
    let parameters = [("Catalog", approvals_catalog())];
    run_on_stack("approvals", &parameters, |ctx| async move {
        let (quorum, deny, own, cli, clicks, expired, links, chromium) = tokio::join!(
            quorum_two(&ctx),
            deny_after_approval(&ctx),
            self_approval(&ctx),
            cli_path(&ctx),
            burst(&ctx),
            expired_link(&ctx),
            bad_links(&ctx),
            browser(&ctx),
        );
        report([
            ("quorum 2 of 2", quorum),
            ("deny after one approval", deny),
            ("self-approval", own),
            ("jitctl approve|deny", cli),
            ("burst of concurrent clicks", clicks),
            ("expired link", expired),
            ("bad links", links),
            ("browser", chromium),
        ])
    })
    .await
}
