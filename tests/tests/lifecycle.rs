//! System tests of the request lifecycle on the local stack: the real state machine file, the
//! real function binaries under `cargo lambda watch`, moto with its Step Functions interpreter,
//! and the project's router, driven through jitctl's SigV4 client and the AWS SDK.
//!
//! One stack serves every scenario; the approve, deny and approval-timeout paths and the
//! bad-input checks run concurrently on it, so the test costs one stack start and the longest
//! path's waits. Each path asserts on the ledger, the SNS outbox, the IAM deny policy and the
//! execution history.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use trailgate_system_tests::catalog::{Entry, catalog, role_arn};
use trailgate_system_tests::ctx::request_body;
use trailgate_system_tests::iam::{Expect, Matrix, Request};
use trailgate_system_tests::template::ACCOUNT;
use trailgate_system_tests::{Answer, Ctx, Execution, report, run_on_stack};

const ROLE_NAME: &str = "sample-target-trailgate";
/// How long an execution may take to finish once its request has reached its last status.
const EXECUTION_LIMIT: Duration = Duration::from_secs(60);

/// The catalog the tests deploy: a normal entry, one whose approval window is 3 seconds, and a
/// break-glass entry.
fn lifecycle_catalog() -> String {
    catalog(&[
        Entry::new("sandbox-admin", role_arn(ROLE_NAME)),
        Entry {
            approval_window: "PT3S",
            ..Entry::new("sandbox-fast-expiry", role_arn(ROLE_NAME))
        },
        Entry {
            break_glass: true,
            ..Entry::new("sandbox-break-glass", role_arn(ROLE_NAME))
        },
        Entry {
            notify: vec!["dave"],
            ..Entry::new("sandbox-watched", role_arn(ROLE_NAME))
        },
    ])
}

/// The messages in the outbox whose subject starts with `prefix` and whose body names `id`,
/// as (topic, approver attribute, subject, body), once `count` of them are there.
async fn messages(
    ctx: &Ctx,
    id: &str,
    prefix: &str,
    count: usize,
) -> Result<Vec<(String, String, String, String)>> {
    let started = std::time::Instant::now();
    loop {
        let found: Vec<_> = ctx
            .outbox()
            .await?
            .iter()
            .filter(|m| m["subject"].as_str().is_some_and(|s| s.starts_with(prefix)))
            .filter(|m| m["message"].as_str().is_some_and(|body| body.contains(id)))
            .map(|m| {
                let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
                (
                    text(&m["topic_arn"]),
                    text(&m["attributes"]["approver"]),
                    text(&m["subject"]),
                    text(&m["message"]),
                )
            })
            .collect();
        if found.len() >= count {
            return Ok(found);
        }
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "{prefix} messages for {id}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Issue 12, judged on what the local stack holds rather than what the domain meant to write:
/// the session policy, session tags and source identity exactly as the credentials function
/// sent them to STS (recorded by the router) and `trailgate-revocations` as moto stores it, on
/// a role that is otherwise an administrator. The revoked session is denied by the revocation,
/// another request's session on the same role is not, every session is denied a second after
/// `expires_at`, and none can chain into another role.
async fn documents_on_the_wire_hold(ctx: &Ctx, id: &str) -> Result<()> {
    let calls = ctx.assume_role_calls().await?;
    let tagged = json!({"key": "trailgate-request", "value": id});
    let call = calls
        .iter()
        .find(|call| {
            call["tags"]
                .as_array()
                .is_some_and(|tags| tags.contains(&tagged))
        })
        .with_context(|| format!("no AssumeRole call for {id} was recorded: {calls:?}"))?;
    let text = |field: &str| call[field].as_str().unwrap_or_default().to_owned();
    let (role_arn, session_name) = (text("role_arn"), text("session_name"));
    // SourceIdentity is the requester's principal id (moto makes its own, not `AIDA…`), which a
    // namesake cannot take over; the readable name stays in the session name.
    let alice = ctx.source_identity("alice")?;
    ensure!(
        text("source_identity") == alice && alice != "alice",
        "SourceIdentity sent: {call}"
    );
    ensure!(session_name.starts_with("tg-alice-"), "{session_name}");
    let session_policy: Value = serde_json::from_str(&text("policy"))
        .with_context(|| format!("the session policy sent is not JSON: {call}"))?;
    let revocations: Value = serde_json::from_str(&ctx.revocations(ROLE_NAME).await?)?;
    let expires_at = ctx.status(id).await?["expires_at"]
        .as_str()
        .context("no expires_at")?
        .to_owned();
    let expiry = OffsetDateTime::parse(&expires_at, &Rfc3339)?;
    let at = |offset: i64| {
        (expiry + time::Duration::seconds(offset))
            .format(&Rfc3339)
            .unwrap_or_default()
    };
    let (during, after) = (at(-1), at(1));
    let session = |request_id: &str, action: &str, resource: &str, when: &str| {
        let mut request = Request::new(
            &format!("arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/{session_name}"),
            action,
            resource,
        )
        .with("aws:PrincipalArn", role_arn.as_str())
        .with("aws:SourceIdentity", text("source_identity").as_str())
        .with("aws:CurrentTime", when)
        .with("aws:PrincipalTag/trailgate-request", request_id);
        request.identity = vec![
            (
                "AdministratorAccess".into(),
                json!({"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
            ),
            ("trailgate-revocations".into(), revocations.clone()),
        ];
        request.session = Some(session_policy.clone());
        request
    };
    let mut matrix = Matrix::default();
    let other = "r-zzzzzzzzzzzzzzzzzzzzzzzzzz";
    for (action, resource) in [
        ("s3:ListAllMyBuckets", "*".to_owned()),
        (
            "iam:CreateUser",
            format!("arn:aws:iam::{ACCOUNT}:user/backdoor"),
        ),
        ("ec2:DescribeInstances", "*".to_owned()),
        (
            "secretsmanager:GetSecretValue",
            format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-AbCdEf"),
        ),
    ] {
        matrix.add(
            "on the wire",
            "the revoked session",
            session(id, action, &resource, &during),
            Expect::deny_by("trailgate-revocations"),
        );
        matrix.add(
            "on the wire",
            "another request's session",
            session(other, action, &resource, &during),
            Expect::Allow,
        );
        matrix.add(
            "on the wire",
            "any session after expires_at",
            session(other, action, &resource, &after),
            Expect::deny_by("DenyAfterGrantExpiry"),
        );
    }
    let mut chain = session(
        other,
        "sts:AssumeRole",
        &format!("arn:aws:iam::{ACCOUNT}:role/ops"),
        &during,
    );
    chain.resource_policy = Some(
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "sts:AssumeRole",
        "Resource": format!("arn:aws:iam::{ACCOUNT}:role/ops")}]}),
    );
    matrix.add(
        "on the wire",
        "a granted session chaining",
        chain,
        Expect::deny_by("DenyRoleChaining"),
    );
    let report = matrix.run()?;
    ensure!(
        report.unexpected.is_empty() && report.per_document["on the wire"].0 == 13,
        "the documents as sent and stored do not hold: {:?}",
        report.unexpected
    );
    Ok(())
}

/// This file's shorthand for requests and approval e-mails, on the shared harness context.
trait LifecycleSteps {
    async fn request(&self, catalog_id: &str, duration: &str) -> Result<String>;

    /// The approval messages for `id` as (approver e-mail, link, body), once both have been
    /// published.
    async fn approval_links(&self, id: &str) -> Result<Vec<(String, String, String)>>;
}

impl LifecycleSteps for Ctx {
    async fn request(&self, catalog_id: &str, duration: &str) -> Result<String> {
        self.new_request(request_body(catalog_id, duration, "system test"))
            .await
    }

    async fn approval_links(&self, id: &str) -> Result<Vec<(String, String, String)>> {
        Ok(self
            .mails(id, 2)
            .await?
            .into_iter()
            .map(|mail| (mail.to, mail.link, mail.body))
            .collect())
    }
}

/// Approve path: context, per-approver links, a GET that changes nothing, forged and replayed
/// links refused, approval, credentials used through STS, expiry, verified revoke, audit.
async fn approve_path(ctx: &Ctx) -> Result<()> {
    let id = ctx.request("sandbox-admin", "PT6S").await?;
    let links = ctx.approval_links(&id).await?;
    let mut approvers: Vec<&str> = links.iter().map(|(to, _, _)| to.as_str()).collect();
    approvers.sort();
    ensure!(
        approvers == ["bob@example.com", "carol@example.com"],
        "approval messages went to {approvers:?}"
    );
    let (_, bob_link, body) = links
        .iter()
        .find(|(to, _, _)| to == "bob@example.com")
        .context("no bob")?
        .clone();
    ensure!(
        body.contains("CloudTrail events of the requester"),
        "the e-mail does not carry the context summary: {body}"
    );
    let carol_link = links
        .iter()
        .find(|(to, _, _)| to == "carol@example.com")
        .context("no carol")?
        .1
        .clone();
    ensure!(bob_link != carol_link, "both approvers got the same link");

    // The task token is in the execution history; it must be nowhere a person can see.
    let token = ctx.task_token(&id).await?;
    let request_view = ctx.status(&id).await?.to_string();
    ensure!(token.len() > 20, "implausible task token {token:?}");
    for (_, link, body) in &links {
        ensure!(
            !body.contains(&token) && !link.contains(&token),
            "the task token is in an e-mail"
        );
    }
    ensure!(
        !request_view.contains(&token) && !request_view.contains("task_token"),
        "the task token is in the API"
    );

    let page = ctx.http.get(&bob_link).send().await?;
    ensure!(page.status() == 200, "confirm page: {}", page.status());
    ensure!(page.text().await?.contains(&id));
    ensure!(
        ctx.status(&id).await?["status"] == "PENDING",
        "a GET changed the request"
    );

    // Forged and tampered links change nothing.
    let forged = bob_link
        .replace("&s=", "&s=0")
        .chars()
        .take(bob_link.len())
        .collect::<String>();
    let tampered = bob_link.replace("a=bob", "a=carol");
    for bad in [forged, tampered] {
        let Answer { status, .. } = ctx.post_decision(&bad, "decision=approve").await?;
        ensure!(status == 403, "a bad link answered {status}");
    }
    ensure!(
        ctx.status(&id).await?["status"] == "PENDING",
        "a bad link changed the request"
    );

    let Answer { status, text, .. } = ctx
        .post_decision(&bob_link, "decision=approve&comment=ok")
        .await?;
    ensure!(status == 200, "approve answered {status}: {text}");
    let Answer { status, .. } = ctx.post_decision(&bob_link, "decision=approve").await?;
    ensure!(status == 409, "a replayed approval answered {status}");
    let Answer { status, .. } = ctx.post_decision(&carol_link, "decision=deny").await?;
    ensure!(status == 409, "a late deny answered {status}");

    let active = ctx.wait_for(&id, "ACTIVE", Duration::from_secs(30)).await?;
    ensure!(
        active["expires_at"]
            .as_str()
            .is_some_and(|e| e.ends_with('Z'))
    );

    // Credentials work through STS and name the requester and the request.
    let credentials = ctx
        .alice
        .get(&format!("/requests/{id}/credentials"))
        .await?;
    ensure!(credentials["Version"] == 1);
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&trailgate_local::cloudformation::sdk_config(
            &ctx.state.aws_endpoint,
        ))
        .credentials_provider(aws_credential_types::Credentials::new(
            credentials["AccessKeyId"].as_str().context("key")?,
            credentials["SecretAccessKey"].as_str().context("secret")?,
            credentials["SessionToken"].as_str().map(str::to_owned),
            None,
            "trailgate",
        ))
        .build(),
    );
    let caller = sts.get_caller_identity().send().await?;
    let arn = caller.arn().unwrap_or_default();
    ensure!(
        arn.contains(&format!("assumed-role/{ROLE_NAME}/tg-alice-{id}")),
        "assumed identity {arn}"
    );
    // Only the requester gets credentials.
    let bob_try = ctx.bob.get(&format!("/requests/{id}/credentials")).await;
    ensure!(
        bob_try
            .as_ref()
            .is_err_and(|e| e.to_string().contains("NotFound")),
        "bob got {bob_try:?}"
    );

    // The audit follows the revoke within a second: either status proves the revoke happened.
    ctx.wait_for_any(&id, &["REVOKED", "AUDITED"], Duration::from_secs(40))
        .await?;
    // REVOKED stops vending first; the deny on the role follows within the step.
    ctx.wait_denies(ROLE_NAME, &id, Duration::from_secs(15))
        .await?;
    documents_on_the_wire_hold(ctx, &id).await?;
    let refused = ctx.alice.get(&format!("/requests/{id}/credentials")).await;
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("Conflict")),
        "credentials after revoke: {refused:?}"
    );

    let audited = ctx
        .wait_for(&id, "AUDITED", Duration::from_secs(30))
        .await?;
    ensure!(
        audited["audit"]["credentials_issued"] == 1,
        "audit: {}",
        audited["audit"]
    );
    ensure!(audited["audit"]["ledger_chain_verified"] == true);
    // The report goes to both approvers (and not to the requester), without a review flag.
    let reports = messages(ctx, &id, "trailgate audit", 2).await?;
    let mut to: Vec<_> = reports.iter().map(|m| m.1.clone()).collect();
    to.sort();
    ensure!(
        to == ["bob@example.com", "carol@example.com"],
        "audit mails {reports:?}"
    );
    ensure!(
        reports
            .iter()
            .all(|m| !m.2.contains("NEEDS REVIEW") && m.3.contains("credential set(s) issued")),
        "audit mail {reports:?}"
    );

    let Execution {
        status, entered, ..
    } = ctx.wait_execution_done(&id, EXECUTION_LIMIT).await?;
    ensure!(status == "SUCCEEDED", "execution {status}");
    for state in [
        "Gather Context",
        "Await Approval",
        "Approved?",
        "Activate",
        "Wait For Expiry",
        "Revoke",
        "Await Trail",
        "Audit Session",
        "Await Late Events",
        "Audit Again",
        "Done",
    ] {
        ensure!(
            entered.iter().any(|s| s == state),
            "the execution never entered {state}: {entered:?}"
        );
    }
    let actions = ctx.ledger_actions(&id).await?;
    ensure!(
        actions
            == [
                "Requested",
                "ContextGathered",
                "ApprovalRequested",
                "Approved",
                "Activated",
                "CredentialsIssued",
                "Revoked",
                "Audited",
                "AuditUpdated"
            ],
        "ledger events {actions:?}"
    );
    Ok(())
}

/// Break-glass: no approval, every approver and the alerts topic told at once, the grant
/// capped, the audit flagged until an approver (never the requester) acknowledges it.
async fn break_glass_path(ctx: &Ctx) -> Result<()> {
    // Over the one-hour cap: refused before anything starts.
    let long = ctx
        .alice
        .post_json(
            "/requests",
            &request_body("sandbox-break-glass", "PT2H", "incident"),
        )
        .await
        .err()
        .context("a break-glass request longer than its cap was accepted")?;
    ensure!(long.to_string().contains("field `duration`"), "{long}");

    let id = ctx.request("sandbox-break-glass", "PT5S").await?;
    let active = ctx
        .wait_for_any(
            &id,
            &["ACTIVE", "REVOKED", "AUDITED"],
            Duration::from_secs(30),
        )
        .await?;
    ensure!(
        active["break_glass"] == true && active["review"]["required"] == true,
        "{active}"
    );
    let alerts = messages(ctx, &id, "trailgate BREAK-GLASS", 3).await?;
    let alerts_topic = ctx.output("AlertsTopicArn")?;
    ensure!(
        alerts.iter().filter(|m| m.0 == alerts_topic).count() == 1,
        "alerts {alerts:?}"
    );
    let mut approvers: Vec<_> = alerts
        .iter()
        .filter(|m| !m.1.is_empty())
        .map(|m| m.1.clone())
        .collect();
    approvers.sort();
    ensure!(
        approvers == ["bob@example.com", "carol@example.com"],
        "alerts {alerts:?}"
    );
    ensure!(
        alerts
            .iter()
            .all(|m| !m.3.contains("/decisions/") && m.3.contains(&format!("jitctl ack {id}"))),
        "a break-glass alert carries a decision link or no ack hint: {alerts:?}"
    );
    // The requester can never sign off their own emergency access.
    let own = ctx
        .alice
        .post_json(&format!("/requests/{id}/ack"), &json!({}))
        .await;
    ensure!(
        own.as_ref()
            .is_err_and(|e| e.to_string().contains("Forbidden")),
        "self-ack: {own:?}"
    );

    let audited = ctx
        .wait_for(&id, "AUDITED", Duration::from_secs(60))
        .await?;
    ensure!(audited["review"]["required"] == true, "{audited}");
    let reports = messages(ctx, &id, "trailgate audit [NEEDS REVIEW]", 2).await?;
    ensure!(
        reports
            .iter()
            .all(|m| m.3.contains(&format!("jitctl ack {id}"))),
        "{reports:?}"
    );

    let bad = ctx
        .bob
        .post_json(&format!("/requests/{id}/ack"), &json!({"comment": 5}))
        .await;
    ensure!(
        bad.as_ref()
            .is_err_and(|e| e.to_string().contains("InvalidRequest")),
        "bad ack body: {bad:?}"
    );
    let acked = ctx
        .bob
        .post_json(
            &format!("/requests/{id}/ack"),
            &json!({"comment": "checked the audit"}),
        )
        .await?;
    ensure!(
        acked["review"]["required"] == false && acked["review"]["acknowledgement"]["by"] == "bob",
        "{acked}"
    );
    let again = ctx
        .carol
        .post_json(&format!("/requests/{id}/ack"), &json!({}))
        .await?;
    ensure!(again["review"]["acknowledgement"]["by"] == "bob", "{again}");

    let Execution {
        status, entered, ..
    } = ctx.wait_execution_done(&id, EXECUTION_LIMIT).await?;
    ensure!(status == "SUCCEEDED", "execution {status}");
    ensure!(
        entered.iter().any(|s| s == "Break Glass")
            && !entered.iter().any(|s| s == "Await Approval"),
        "states {entered:?}"
    );
    let mut actions = ctx.ledger_actions(&id).await?;
    // The sign-off and the audit's second pass may come in either order.
    let mut last_two = actions.split_off(actions.len().saturating_sub(2));
    last_two.sort();
    ensure!(
        actions
            == [
                "Requested",
                "ContextGathered",
                "BreakGlassActivated",
                "Activated",
                "Revoked",
                "Audited",
            ]
            && last_two == ["Acknowledged", "AuditUpdated"],
        "ledger events {actions:?} then {last_two:?}"
    );
    Ok(())
}

/// Deny path: the first deny ends the request; nothing is granted or written to IAM.
async fn deny_path(ctx: &Ctx) -> Result<()> {
    let id = ctx.request("sandbox-admin", "PT1H").await?;
    let links = ctx.approval_links(&id).await?;
    let carol_link = &links
        .iter()
        .find(|(to, _, _)| to == "carol@example.com")
        .context("no carol")?
        .1;
    let Answer { status, text, .. } = ctx
        .post_decision(carol_link, "decision=deny&comment=no")
        .await?;
    ensure!(status == 200, "deny answered {status}: {text}");
    let denied = ctx.wait_for(&id, "DENIED", Duration::from_secs(10)).await?;
    ensure!(
        denied["outcome"] == "denied by carol",
        "outcome {}",
        denied["outcome"]
    );
    let Execution {
        status, entered, ..
    } = ctx.wait_execution_done(&id, EXECUTION_LIMIT).await?;
    ensure!(
        status == "SUCCEEDED" && entered.last().map(String::as_str) == Some("Denied"),
        "{status} {entered:?}"
    );
    ensure!(
        !entered.iter().any(|s| s == "Activate"),
        "a denied request was activated"
    );
    let refused = ctx.alice.get(&format!("/requests/{id}/credentials")).await;
    ensure!(refused.is_err(), "a denied request vended credentials");
    ensure!(
        !ctx.revocations(ROLE_NAME).await?.contains(&id),
        "a denied request touched IAM"
    );
    ensure!(ctx.ledger_actions(&id).await?.last().map(String::as_str) == Some("Denied"));
    Ok(())
}

/// Approval timeout: nobody decides within the window; the request ends EXPIRED and late
/// clicks change nothing.
async fn timeout_path(ctx: &Ctx) -> Result<()> {
    let id = ctx.request("sandbox-fast-expiry", "PT1H").await?;
    let links = ctx.approval_links(&id).await?;
    let expired = ctx
        .wait_for(&id, "EXPIRED", Duration::from_secs(30))
        .await?;
    ensure!(
        expired["outcome"] == "no decision within the approval window",
        "outcome {}",
        expired["outcome"]
    );
    let Execution {
        status,
        entered,
        kinds,
        ..
    } = ctx.wait_execution_done(&id, EXECUTION_LIMIT).await?;
    ensure!(
        status == "SUCCEEDED" && entered.contains(&"Record Expiry".to_owned()),
        "{status} {entered:?}"
    );
    ensure!(
        kinds.iter().any(|k| k == "TaskTimedOut"),
        "no TaskTimedOut in {kinds:?}"
    );
    let Answer { status, .. } = ctx.post_decision(&links[0].1, "decision=approve").await?;
    ensure!(
        status == 403 || status == 409,
        "a click after expiry answered {status}"
    );
    ensure!(ctx.status(&id).await?["status"] == "EXPIRED");
    Ok(())
}

/// A request body for sandbox-admin whose grant starts `ahead` from now.
fn scheduled_body(ahead: Duration) -> Result<(serde_json::Value, time::OffsetDateTime)> {
    let start = time::OffsetDateTime::now_utc() + ahead;
    let start = start.replace_nanosecond(0)?;
    let mut body = request_body("sandbox-admin", "PT1H", "scheduled maintenance");
    body["start_at"] = json!(start.format(&time::format_description::well_known::Rfc3339)?);
    Ok((body, start))
}

/// Scheduled start (issue 17, item 4): approved at once, APPROVED and no credentials until
/// `start_at`, then ACTIVE with the hour running from the start; and a second request,
/// cancelled while it waits, ends without a grant.
async fn scheduled_path(ctx: &Ctx) -> Result<()> {
    let (body, start) = scheduled_body(Duration::from_secs(35))?;
    let id = ctx.new_request(body).await?;
    let links = ctx.approval_links(&id).await?;
    ensure!(
        links[0].2.contains("Starts:    ") && links[0].2.contains("(scheduled: approve now"),
        "the approval mail does not say when it starts:\n{}",
        links[0].2
    );
    let Answer { status, text, .. } = ctx.post_decision(&links[0].1, "decision=approve").await?;
    ensure!(status == 200, "approve answered {status}: {text}");
    let waiting = ctx
        .wait_for(&id, "APPROVED", Duration::from_secs(10))
        .await?;
    ensure!(
        time::OffsetDateTime::now_utc() < start,
        "the approval took past the start; the test proves nothing"
    );
    ensure!(waiting["start_at"].is_string(), "{waiting}");
    let early = ctx.alice.get(&format!("/requests/{id}/credentials")).await;
    ensure!(early.is_err(), "credentials before the start: {early:?}");
    let active = ctx.wait_for(&id, "ACTIVE", Duration::from_secs(60)).await?;
    let expires = time::OffsetDateTime::parse(
        active["expires_at"].as_str().context("no expires_at")?,
        &time::format_description::well_known::Rfc3339,
    )?;
    ensure!(
        expires >= start + time::Duration::hours(1),
        "the hour ran from before the start: expires {expires}, start {start}"
    );
    let entered = ctx.execution(&id).await?.entered;
    ensure!(entered.iter().any(|s| s == "Wait For Start"), "{entered:?}");
    ctx.alice
        .post_json(&format!("/requests/{id}/revoke"), &json!({}))
        .await?;

    // Cancelled while it waits: nothing is granted, the execution closes.
    let (body, _) = scheduled_body(Duration::from_secs(75))?;
    let cancelled = ctx.new_request(body).await?;
    let links = ctx.approval_links(&cancelled).await?;
    let Answer { status, .. } = ctx.post_decision(&links[0].1, "decision=approve").await?;
    ensure!(status == 200, "approve answered {status}");
    ctx.wait_for(&cancelled, "APPROVED", Duration::from_secs(10))
        .await?;
    let record = ctx
        .alice
        .post_json(&format!("/requests/{cancelled}/cancel"), &json!({}))
        .await?;
    ensure!(record["status"] == "CANCELLED", "{record}");
    let Execution {
        status, entered, ..
    } = ctx
        .wait_execution_done(&cancelled, Duration::from_secs(120))
        .await?;
    ensure!(status == "SUCCEEDED", "{status} {entered:?}");
    for state in ["Wait For Start", "Activate", "Granted?", "Export Ledger"] {
        ensure!(
            entered.iter().any(|s| s == state),
            "no {state}: {entered:?}"
        );
    }
    ensure!(
        !entered
            .iter()
            .any(|s| s == "Wait For Expiry" || s == "Revoke"),
        "a cancelled grant went on: {entered:?}"
    );
    let actions = ctx.ledger_actions(&cancelled).await?;
    ensure!(
        actions.iter().any(|a| a == "Cancelled") && !actions.iter().any(|a| a == "Activated"),
        "{actions:?}"
    );
    ensure!(ctx.status(&cancelled).await?["status"] == "CANCELLED");
    Ok(())
}

/// An entry's `notify` people (issue 17, item 2): dave is told of the request, with its
/// context and no link, beside the approvers' linked e-mails.
async fn watched_path(ctx: &Ctx) -> Result<()> {
    let id = ctx.request("sandbox-watched", "PT1H").await?;
    let told = messages(ctx, &id, "trailgate (for your information)", 1).await?;
    let (_, to, _, body) = &told[0];
    ensure!(to == "dave@example.com", "told {to:?}");
    ensure!(
        body.contains("you cannot approve them")
            && body.contains("What the requester has been doing"),
        "{body}"
    );
    ensure!(!body.contains("/decisions/"), "dave got a link: {body}");
    let links = ctx.approval_links(&id).await?;
    ensure!(
        links
            .iter()
            .all(|(to, link, _)| to != "dave@example.com" && link.contains("/decisions/")),
        "{links:?}"
    );
    let Answer { status, .. } = ctx.post_decision(&links[0].1, "decision=deny").await?;
    ensure!(status == 200, "deny answered {status}");
    Ok(())
}

/// Client mistakes are 4xx JSON naming the problem, never 5xx.
async fn bad_input(ctx: &Ctx) -> Result<()> {
    let unsigned = ctx
        .http
        .post(format!("{}/requests", ctx.state.api_url))
        .body("{}")
        .send()
        .await?;
    ensure!(unsigned.status() == 403, "unsigned: {}", unsigned.status());
    let cases = [
        (
            json!({"catalog_id": "sandbox-admin", "duration": "P3D", "reason": "x"}),
            "duration",
        ),
        (
            json!({"catalog_id": "nope", "duration": "1h", "reason": "x"}),
            "catalog_id",
        ),
        (
            json!({"catalog_id": "sandbox-admin", "duration": "1h", "reason": ""}),
            "reason",
        ),
        (
            json!({"catalog_id": "sandbox-admin", "duration": "1h", "reason": "x", "requester": "arn:aws:iam::1:root"}),
            "requester",
        ),
        (
            json!({"catalog_id": "sandbox-admin", "duration": "1h", "reason": "x", "start_at": "2020-01-01T00:00:00Z"}),
            "start_at",
        ),
        (
            json!({"catalog_id": "sandbox-admin", "duration": "1h", "reason": "x", "start_at": "next tuesday"}),
            "start_at",
        ),
    ];
    for (body, field) in cases {
        let err = ctx
            .alice
            .post_json("/requests", &body)
            .await
            .err()
            .context("accepted a bad request")?
            .to_string();
        ensure!(
            err.contains("InvalidRequest") && err.contains(&format!("field `{field}`")),
            "{body}: {err}"
        );
    }
    let missing = ctx
        .alice
        .get("/requests/r-zzzzzzzzzzzzzzzzzzzzzzzzzz")
        .await
        .err()
        .context("found a missing request")?;
    ensure!(missing.to_string().contains("NotFound"), "{missing}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_request_lifecycle_on_the_local_stack() -> Result<()> {
    let parameters = [
        ("Catalog", lifecycle_catalog()),
        ("AuditDelaySeconds", "1".to_owned()),
    ];
    run_on_stack("lifecycle", &parameters, |ctx| async move {
        let (approve, deny, timeout, bad, glass, scheduled, watched) = tokio::join!(
            approve_path(&ctx),
            deny_path(&ctx),
            timeout_path(&ctx),
            bad_input(&ctx),
            break_glass_path(&ctx),
            scheduled_path(&ctx),
            watched_path(&ctx)
        );
        report([
            ("approve path", approve),
            ("scheduled start", scheduled),
            ("notify", watched),
            ("break-glass path", glass),
            ("deny path", deny),
            ("approval timeout", timeout),
            ("bad input", bad),
        ])
    })
    .await
}
