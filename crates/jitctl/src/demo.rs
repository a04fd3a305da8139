//! `jitctl local demo`: the main job, end to end, on the local stack.
//!
//! alice asks for access; the context step runs; bob opens the link from his e-mail in the
//! outbox and approves it (a POST, as his browser would); alice's AWS CLI gets credentials
//! through `credential_process`; the grant expires, the revoke writes the per-request deny and
//! vending stops; the audit is recorded. Each step is checked, and timed.

use crate::api::{Client, segment};
use crate::endpoint::Target;
use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use trailgate_local::StackState;

struct Timeline {
    started: Instant,
    last: Instant,
}

impl Timeline {
    fn step(&mut self, what: &str) {
        let now = Instant::now();
        println!(
            "  +{:>6.1}s  ({:>5.1}s)  {what}",
            now.duration_since(self.started).as_secs_f64(),
            now.duration_since(self.last).as_secs_f64()
        );
        self.last = now;
    }
}

/// What the demo asks for: the hub's sample role, or the sample role of a member account of
/// the local Organization (`--member prod`).
struct Grant {
    catalog_id: &'static str,
    /// The member account, for an entry over several accounts.
    account: Option<String>,
    role_name: &'static str,
}

impl Grant {
    fn for_member(state: &StackState, member: Option<&str>) -> Result<Grant> {
        let Some(name) = member else {
            return Ok(Grant {
                catalog_id: "sandbox-admin",
                account: None,
                role_name: "sample-target-trailgate",
            });
        };
        let member = state.organization.member(name).with_context(|| {
            format!(
                "the local Organization has no member `{name}` (it has {:?})",
                state
                    .organization
                    .members
                    .iter()
                    .map(|m| &m.name)
                    .collect::<Vec<_>>()
            )
        })?;
        Ok(Grant {
            catalog_id: "member-readonly",
            account: Some(member.account_id.clone()),
            role_name: "sample-target-member",
        })
    }
}

pub async fn run(
    state_dir: &Path,
    target: &Target,
    duration: &str,
    member: Option<&str>,
) -> Result<ExitCode> {
    let mut timeline = Timeline {
        started: Instant::now(),
        last: Instant::now(),
    };
    println!("trailgate demo: one request through its whole life on the local stack\n");
    let state = crate::local::up(state_dir, 4566, 4567, &[])?;
    timeline.step(&format!("local stack ready (API {})", state.api_url));
    let grant = Grant::for_member(&state, member)?;

    // The local users' profiles live in the stack's own AWS config file.
    let as_user = |name: &str| Target {
        endpoint: Some(state.api_url.clone()),
        profile: Some(name.into()),
        region: target.region.clone(),
        aws_config_file: Some(state.aws_config_file.clone()),
    };
    let alice = Client::connect(&as_user("alice")).await?;

    let seeded = seed_history(&state, grant.account.as_deref()).await?;
    timeline.step(&format!(
        "seeded {seeded} CloudTrail records of alice's week into the local LookupEvents (demo data)"
    ));

    let id = request_access(&mut timeline, &alice, &grant, duration).await?;
    let link = show_context_and_link(&mut timeline, &state, &alice, &id).await?;
    approve_from_the_link(&mut timeline, &alice, &id, &link).await?;
    let aws_config = use_the_grant(&mut timeline, &state, &alice, &grant, &id).await?;
    check_revoked(&mut timeline, &state, &alice, &grant, &id, &aws_config).await?;
    check_audited(&mut timeline, &alice, &id).await?;
    println!("\ndone: {id} went PENDING -> APPROVED -> ACTIVE -> REVOKED -> AUDITED");
    println!("the stack is still running: `jitctl local down` stops it");
    Ok(ExitCode::SUCCESS)
}

/// alice's request; returns its id.
async fn request_access(
    timeline: &mut Timeline,
    alice: &Client,
    grant: &Grant,
    duration: &str,
) -> Result<String> {
    let mut body = serde_json::json!({"catalog_id": grant.catalog_id, "duration": duration, "reason": "demo: rotate the sandbox database password"});
    if let Some(account) = &grant.account {
        body["account"] = Value::String(account.clone());
    }
    let created = alice.post_json("/requests", &body).await?;
    let id = created["id"].as_str().context("no request id")?.to_owned();
    timeline.step(&format!(
        "alice requested {} for {duration}{}: {id} is {}",
        grant.catalog_id,
        grant
            .account
            .as_deref()
            .map(|a| format!(" in account {a}"))
            .unwrap_or_default(),
        created["status"]
    ));
    Ok(id)
}

/// Waits for bob's approval e-mail, then shows the context it was sent with; returns bob's link.
async fn show_context_and_link(
    timeline: &mut Timeline,
    state: &StackState,
    alice: &Client,
    id: &str,
) -> Result<String> {
    let link = wait_for_link(state, id, "bob@example.com").await?;
    let shown = alice.get(&format!("/requests/{}", segment(id))).await?;
    let context = shown["context"]["summary"]
        .as_str()
        .unwrap_or("context unavailable")
        .to_owned();
    timeline.step(&format!("context gathered: {context}"));
    for line in shown["context"]["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .take(5)
    {
        println!("{:>28}{}", "", line.as_str().unwrap_or_default());
    }
    timeline.step(&format!(
        "approval e-mail in the outbox for bob: {}",
        shorten(&link)
    ));
    Ok(link)
}

/// bob opens the link (a GET that must change nothing) and clicks Approve (a POST), as his
/// browser would.
async fn approve_from_the_link(
    timeline: &mut Timeline,
    alice: &Client,
    id: &str,
    link: &str,
) -> Result<()> {
    let http = reqwest::Client::new();
    let page = http.get(link).send().await?;
    ensure!(
        page.status().as_u16() == 200,
        "the confirm page answered {}",
        page.status()
    );
    let page = page.text().await?;
    ensure!(
        page.contains(id) && page.contains("Approve"),
        "the confirm page does not show the request"
    );
    let still = alice.get(&format!("/requests/{}", segment(id))).await?;
    ensure!(
        still["status"] == "PENDING",
        "opening the link changed the request"
    );
    timeline.step("bob opened the link: confirm page shown, nothing changed (still PENDING)");

    let (action, query) = link.split_once('?').context("the link has no query")?;
    let decided = http
        .post(action)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("{query}&decision=approve&comment=demo"))
        .send()
        .await?;
    ensure!(
        decided.status().as_u16() == 200,
        "approving answered {}: {}",
        decided.status(),
        decided.text().await?
    );
    timeline.step("bob clicked Approve (POST)");
    Ok(())
}

/// Waits for the grant, then uses it from the AWS CLI through `credential_process`; returns the
/// AWS config file with the demo profile.
async fn use_the_grant(
    timeline: &mut Timeline,
    state: &StackState,
    alice: &Client,
    grant: &Grant,
    id: &str,
) -> Result<std::path::PathBuf> {
    let active = alice
        .wait_while(id, &["PENDING", "APPROVED"], Duration::from_secs(60))
        .await?;
    ensure!(
        active["status"] == "ACTIVE",
        "the request became {} instead of ACTIVE",
        active["status"]
    );
    timeline.step(&format!(
        "grant ACTIVE until {}",
        active["expires_at"].as_str().unwrap_or("?")
    ));

    let aws_config = write_demo_profile(state, id)?;
    let identity = aws_cli(
        state,
        &aws_config,
        &[
            "sts",
            "get-caller-identity",
            "--profile",
            "trailgate-demo",
            "--output",
            "json",
        ],
    )?;
    let identity: Value = serde_json::from_str(&identity)?;
    let arn = identity["Arn"].as_str().unwrap_or_default().to_owned();
    ensure!(
        arn.contains(&format!("assumed-role/{}/", grant.role_name)) && arn.contains(id),
        "unexpected identity {arn}"
    );
    if let Some(account) = &grant.account {
        ensure!(
            identity["Account"] == account.as_str(),
            "the credentials act in {} instead of {account}",
            identity["Account"]
        );
    }
    timeline.step(&format!(
        "aws sts get-caller-identity via credential_process: {arn}"
    ));
    Ok(aws_config)
}

/// Waits for the expiry's revoke, then checks its deny is on the role and vending has stopped.
async fn check_revoked(
    timeline: &mut Timeline,
    state: &StackState,
    alice: &Client,
    grant: &Grant,
    id: &str,
    aws_config: &Path,
) -> Result<()> {
    let revoked = alice
        .wait_while(id, &["ACTIVE"], Duration::from_secs(600))
        .await?;
    ensure!(
        revoked["status"] == "REVOKED" || revoked["status"] == "AUDITED",
        "unexpected status {}",
        revoked["status"]
    );
    timeline.step(&format!(
        "expired and revoked at {}",
        revoked["revoked_at"].as_str().unwrap_or("?")
    ));

    // REVOKED is committed first (vending stops at once); the deny follows within the step,
    // whose bound on IAM visibility is 10 s.
    let started = std::time::Instant::now();
    loop {
        let read = read_revocations(state, aws_config, grant).await;
        if read.as_ref().is_ok_and(|policy| policy.contains(id)) {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(15),
            "the revocation deny does not name the request: {}",
            match read {
                Ok(policy) => policy,
                Err(err) => format!("{err:#}"),
            }
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    timeline.step(&format!(
        "the target role's trailgate-revocations policy denies sessions tagged with the request{}",
        grant
            .account
            .as_deref()
            .map(|a| format!(" (in account {a}, written through its trailgate-agent role)"))
            .unwrap_or_default()
    ));

    match alice
        .get(&format!("/requests/{}/credentials", segment(id)))
        .await
    {
        Ok(_) => bail!("credentials were still vended after the revoke"),
        Err(err) => timeline.step(&format!("credentials refused after revoke: {err}")),
    }
    Ok(())
}

/// The target role's `trailgate-revocations`: the hub's read with alice's AWS CLI profile, a
/// member account's with a session in that account (alice has none there).
async fn read_revocations(state: &StackState, aws_config: &Path, grant: &Grant) -> Result<String> {
    let Some(account) = &grant.account else {
        // Until the first deny lands the role may have no such policy: the CLI then fails.
        return aws_cli(
            state,
            aws_config,
            &[
                "iam",
                "get-role-policy",
                "--role-name",
                grant.role_name,
                "--policy-name",
                "trailgate-revocations",
                "--profile",
                "alice",
                "--output",
                "json",
            ],
        );
    };
    Ok(
        trailgate_local::organization::revocations_in(
            &state.aws_endpoint,
            account,
            grant.role_name,
        )
        .await?
        .unwrap_or_default(),
    )
}

async fn check_audited(timeline: &mut Timeline, alice: &Client, id: &str) -> Result<()> {
    let audited = alice
        .wait_while(id, &["REVOKED"], Duration::from_secs(120))
        .await?;
    ensure!(
        audited["status"] == "AUDITED",
        "the request ended {} instead of AUDITED",
        audited["status"]
    );
    timeline.step(&format!(
        "audit recorded: {} credential issue(s), ledger chain verified: {}",
        audited["audit"]["credentials_issued"], audited["audit"]["ledger_chain_verified"]
    ));
    Ok(())
}

/// Seeds the local LookupEvents with a week of alice's activity, so that the context step has
/// something to find: routine reads, a StopLogging, an administrator policy attached to a role,
/// and failed console sign-ins. Clearly demo data; the router serves it like CloudTrail. For a
/// member account's role the StopLogging and the policy change happen in that account (alice
/// through an Identity Center session there), so the context shows both accounts.
async fn seed_history(state: &StackState, member: Option<&str>) -> Result<u64> {
    let account = &state.account_id;
    let record = |n: u32, minutes_ago: i64, name: &str, source: &str, extra: Value| {
        let at = time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago);
        let mut record = serde_json::json!({
            "eventVersion": "1.08", "eventID": format!("demo-alice-{n}"),
            "eventTime": at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "eventName": name, "eventSource": source, "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli/2.15",
            "readOnly": name.starts_with("List") || name.starts_with("Describe"),
            "recipientAccountId": account,
            "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": account,
                             "principalId": "AIDAALICE", "arn": format!("arn:aws:iam::{account}:user/alice")},
        });
        if let (Some(target), Some(more)) = (record.as_object_mut(), extra.as_object()) {
            target.extend(more.clone());
        }
        record
    };
    let mut records: Vec<Value> = (0..20)
        .map(|n| {
            record(
                n,
                600 + i64::from(n) * 30,
                "ListBuckets",
                "s3.amazonaws.com",
                Value::Null,
            )
        })
        .collect();
    records.push(record(
        100,
        300,
        "StopLogging",
        "cloudtrail.amazonaws.com",
        serde_json::json!({"requestParameters": {"name": "org-trail"}}),
    ));
    records.push(record(
        101,
        240,
        "AttachRolePolicy",
        "iam.amazonaws.com",
        serde_json::json!({"requestParameters": {"roleName": "ops", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}}),
    ));
    if let Some(member) = member {
        for record in records.iter_mut().rev().take(2) {
            record["recipientAccountId"] = Value::String(member.to_owned());
            record["userIdentity"] = serde_json::json!({"type": "AssumedRole",
                "principalId": "AROAALICE:alice", "accountId": member,
                "arn": format!("arn:aws:sts::{member}:assumed-role/AWSReservedSSO_Ops_0123/alice")});
        }
    }
    for n in 0..3 {
        records.push(record(
            110 + n,
            120 + i64::from(n),
            "ConsoleLogin",
            "signin.amazonaws.com",
            serde_json::json!({"responseElements": {"ConsoleLogin": "Failure"}, "errorMessage": "Failed authentication",
                               "additionalEventData": {"MFAUsed": "No"}}),
        ));
    }
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/_local/cloudtrail", state.aws_endpoint))
        .json(&serde_json::json!({"Records": records}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["added"]
        .as_u64()
        .context("the router did not say how many records it added")
}

/// Polls the outbox for the approval message addressed to `approver` and returns its link.
async fn wait_for_link(state: &StackState, id: &str, approver: &str) -> Result<String> {
    let started = Instant::now();
    loop {
        let messages: Value = reqwest::get(format!("{}.json", state.outbox_url))
            .await?
            .json()
            .await?;
        for message in messages.as_array().into_iter().flatten() {
            let to = message["attributes"]["approver"]
                .as_str()
                .unwrap_or_default();
            let body = message["message"].as_str().unwrap_or_default();
            if to == approver && body.contains(id) {
                let link = body
                    .lines()
                    .find(|line| line.starts_with("http") && line.contains("/decisions/"))
                    .map(str::to_owned);
                return link.ok_or_else(|| anyhow!("the approval message has no link"));
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "no approval message for {approver} after 120s; see {}",
                state.logs_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// An AWS config file with the local users plus a `trailgate-demo` profile whose credentials
/// come from `jitctl credential-process`.
fn write_demo_profile(state: &StackState, id: &str) -> Result<std::path::PathBuf> {
    let base = std::fs::read_to_string(&state.aws_config_file)?;
    let jitctl = std::env::current_exe()?;
    let profile = format!(
        "\n[profile trailgate-demo]\nregion = {}\nendpoint_url = {}\ncredential_process = {} --endpoint {} --profile alice credential-process --request {}\n",
        state.region,
        state.aws_endpoint,
        jitctl.display(),
        state.api_url,
        id
    );
    let path = state.state_dir.join("aws-config-demo");
    std::fs::write(&path, base + &profile)?;
    Ok(path)
}

fn aws_cli(state: &StackState, config_file: &Path, args: &[&str]) -> Result<String> {
    let aws = state.repo_root.join(".venv-awscli/bin/aws");
    ensure!(
        aws.is_file(),
        "{} not found: run `make bootstrap`",
        aws.display()
    );
    let output = Command::new(&aws)
        .args(args)
        .env("AWS_CONFIG_FILE", config_file)
        .env_remove("AWS_PROFILE")
        .output()?;
    if !output.status.success() {
        bail!(
            "aws {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn shorten(link: &str) -> String {
    match link.split_once("&s=") {
        Some((head, _)) => format!("{head}&s=…"),
        None => link.to_owned(),
    }
}
