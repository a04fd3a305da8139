//! System tests of the request lifecycle on the local stack: the real state machine file, the
//! real function binaries under `cargo lambda watch`, moto with its Step Functions interpreter,
//! and the project's router, driven through jitctl's SigV4 client and the AWS SDK.
//!
//! One stack serves every scenario; the approve, deny and approval-timeout paths and the
//! bad-input checks run concurrently on it, so the test costs one stack start and the longest
//! path's waits. Each path asserts on the ledger, the SNS outbox, the IAM deny policy and the
//! execution history.

use anyhow::{Context, Result, anyhow, bail, ensure};
use jitctl::api::Client;
use jitctl::endpoint::Target;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use trailgate_local::{LocalStack, StackState, UpOptions};

const ROLE: &str = "arn:aws:iam::123456789012:role/sample-target-trailgate";
const ROLE_NAME: &str = "sample-target-trailgate";

/// The catalog the tests deploy: a normal entry, and one whose approval window is 3 seconds.
fn catalog() -> String {
    let approvers = json!([
        {"id": "bob", "email": "bob@example.com", "arn": "arn:aws:iam::123456789012:user/bob"},
        {"id": "carol", "email": "carol@example.com", "arn": "arn:aws:iam::123456789012:user/carol"}
    ]);
    let entry = |id: &str, window: &str| {
        json!({"id": id, "role_arn": ROLE, "description": "test entry", "max_duration": "PT1H", "approval_window": window,
               "approvers": approvers, "quorum": 1, "requesters": ["arn:aws:iam::123456789012:user/alice"]})
    };
    json!({"entries": [entry("sandbox-admin", "PT5M"), entry("sandbox-fast-expiry", "PT3S")]})
        .to_string()
}

struct Ctx {
    state: StackState,
    alice: Client,
    bob: Client,
    http: reqwest::Client,
    iam: aws_sdk_iam::Client,
    sfn: aws_sdk_sfn::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl Ctx {
    fn output(&self, name: &str) -> Result<&str> {
        self.state
            .outputs
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("no output {name}"))
    }

    async fn request(&self, catalog_id: &str, duration: &str) -> Result<String> {
        let created = self
            .alice
            .post_json(
                "/requests",
                &json!({"catalog_id": catalog_id, "duration": duration, "reason": "system test"}),
            )
            .await?;
        ensure!(
            created["status"] == "PENDING",
            "new request is {}",
            created["status"]
        );
        Ok(created["id"].as_str().context("no id")?.to_owned())
    }

    async fn status(&self, id: &str) -> Result<Value> {
        self.alice.get(&format!("/requests/{id}")).await
    }

    async fn wait_for(&self, id: &str, status: &str, limit: Duration) -> Result<Value> {
        self.wait_for_any(id, &[status], limit).await
    }

    async fn wait_for_any(&self, id: &str, statuses: &[&str], limit: Duration) -> Result<Value> {
        let started = Instant::now();
        loop {
            let request = self.status(id).await?;
            if statuses.iter().any(|status| request["status"] == *status) {
                return Ok(request);
            }
            if started.elapsed() > limit {
                bail!(
                    "{id} is {} after {:?}, expected one of {statuses:?}",
                    request["status"],
                    limit
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The task token Step Functions handed the approval step, from the execution history.
    async fn task_token(&self, id: &str) -> Result<String> {
        let history = self
            .sfn
            .get_execution_history()
            .execution_arn(self.execution_arn(id)?)
            .max_results(1000)
            .send()
            .await?;
        for event in history.events() {
            if let Some(details) = event.task_scheduled_event_details() {
                let parameters: Value = serde_json::from_str(details.parameters())?;
                if let Some(token) = parameters
                    .pointer("/Payload/task_token")
                    .and_then(Value::as_str)
                {
                    return Ok(token.to_owned());
                }
            }
        }
        bail!("no task token in the history of {id}")
    }

    /// The approval messages for `id`, by approver e-mail, once both have been published.
    async fn approval_links(&self, id: &str) -> Result<Vec<(String, String, String)>> {
        let started = Instant::now();
        loop {
            let messages: Value = self
                .http
                .get(format!("{}.json", self.state.outbox_url))
                .send()
                .await?
                .json()
                .await?;
            let found: Vec<(String, String, String)> = messages
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["message"].as_str().is_some_and(|body| body.contains(id)))
                .filter_map(|m| {
                    let body = m["message"].as_str()?.to_owned();
                    let link = body
                        .lines()
                        .find(|l| l.starts_with("http") && l.contains("/decisions/"))?
                        .to_owned();
                    Some((m["attributes"]["approver"].as_str()?.to_owned(), link, body))
                })
                .collect();
            if found.len() >= 2 {
                return Ok(found);
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("approval messages for {id}: {found:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn post_decision(&self, link: &str, extra: &str) -> Result<(u16, String)> {
        let (action, query) = link.split_once('?').context("link without query")?;
        let response = self
            .http
            .post(action)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("{query}&{extra}"))
            .send()
            .await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    fn execution_arn(&self, id: &str) -> Result<String> {
        Ok(format!(
            "{}:{id}",
            self.output("StateMachineArn")?
                .replace(":stateMachine:", ":execution:")
        ))
    }

    /// The names of the states the execution entered, in order, and its status.
    async fn history(&self, id: &str) -> Result<(String, Vec<String>, Vec<String>)> {
        let arn = self.execution_arn(id)?;
        let described = self
            .sfn
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await?;
        let history = self
            .sfn
            .get_execution_history()
            .execution_arn(&arn)
            .max_results(1000)
            .send()
            .await?;
        let mut entered = Vec::new();
        let mut kinds = Vec::new();
        for event in history.events() {
            kinds.push(event.r#type().as_str().to_owned());
            if let Some(details) = event.state_entered_event_details() {
                entered.push(details.name().to_owned());
            }
        }
        Ok((described.status().as_str().to_owned(), entered, kinds))
    }

    async fn wait_execution_done(&self, id: &str) -> Result<(String, Vec<String>, Vec<String>)> {
        let started = Instant::now();
        loop {
            let history = self.history(id).await?;
            if history.0 != "RUNNING" {
                return Ok(history);
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("execution {id} still running: {:?}", history.1);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn revocations(&self) -> Result<String> {
        match self
            .iam
            .get_role_policy()
            .role_name(ROLE_NAME)
            .policy_name("trailgate-revocations")
            .send()
            .await
        {
            Ok(output) => Ok(
                percent_encoding::percent_decode_str(output.policy_document())
                    .decode_utf8_lossy()
                    .into_owned(),
            ),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                Ok(String::new())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The ledger's event actions for `id`, straight from DynamoDB.
    async fn ledger_actions(&self, id: &str) -> Result<Vec<String>> {
        let output = self
            .dynamodb
            .query()
            .table_name(self.output("LedgerTableName")?)
            .key_condition_expression("pk = :pk AND begins_with(sk, :evt)")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("REQ#{id}")),
            )
            .expression_attribute_values(
                ":evt",
                aws_sdk_dynamodb::types::AttributeValue::S("EVT#".into()),
            )
            .send()
            .await?;
        output
            .items()
            .iter()
            .map(|item| {
                let doc: Value = serde_json::from_str(
                    item.get("doc")
                        .and_then(|d| d.as_s().ok())
                        .context("no doc")?,
                )?;
                Ok(doc["action"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
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
        body.contains("NOT checked"),
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
        let (status, _) = ctx.post_decision(&bad, "decision=approve").await?;
        ensure!(status == 403, "a bad link answered {status}");
    }
    ensure!(
        ctx.status(&id).await?["status"] == "PENDING",
        "a bad link changed the request"
    );

    let (status, text) = ctx
        .post_decision(&bob_link, "decision=approve&comment=ok")
        .await?;
    ensure!(status == 200, "approve answered {status}: {text}");
    let (status, _) = ctx.post_decision(&bob_link, "decision=approve").await?;
    ensure!(status == 409, "a replayed approval answered {status}");
    let (status, _) = ctx.post_decision(&carol_link, "decision=deny").await?;
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
        aws_sdk_sts::config::Builder::from(&trailgate_local::deployer::sdk_config(
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
    let revocations = ctx.revocations().await?;
    ensure!(
        revocations.contains(&format!("\"aws:PrincipalTag/trailgate-request\":\"{id}\"")),
        "no deny for {id}: {revocations}"
    );
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

    let (status, entered, _) = ctx.wait_execution_done(&id).await?;
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
                "Audited"
            ],
        "ledger events {actions:?}"
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
    let (status, text) = ctx
        .post_decision(carol_link, "decision=deny&comment=no")
        .await?;
    ensure!(status == 200, "deny answered {status}: {text}");
    let denied = ctx.wait_for(&id, "DENIED", Duration::from_secs(10)).await?;
    ensure!(
        denied["outcome"] == "denied by carol",
        "outcome {}",
        denied["outcome"]
    );
    let (status, entered, _) = ctx.wait_execution_done(&id).await?;
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
        !ctx.revocations().await?.contains(&id),
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
    let (status, entered, kinds) = ctx.wait_execution_done(&id).await?;
    ensure!(
        status == "SUCCEEDED" && entered.contains(&"Record Expiry".to_owned()),
        "{status} {entered:?}"
    );
    ensure!(
        kinds.iter().any(|k| k == "TaskTimedOut"),
        "no TaskTimedOut in {kinds:?}"
    );
    let (status, _) = ctx.post_decision(&links[0].1, "decision=approve").await?;
    ensure!(
        status == 403 || status == 409,
        "a click after expiry answered {status}"
    );
    ensure!(ctx.status(&id).await?["status"] == "EXPIRED");
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

async fn connect(state: &StackState, user: &str) -> Result<Client> {
    Client::connect(&Target {
        endpoint: Some(state.api_url.clone()),
        profile: Some(user.into()),
        region: Some(state.region.clone()),
        aws_config_file: Some(state.aws_config_file.clone()),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_request_lifecycle_on_the_local_stack() -> Result<()> {
    let repo_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = UpOptions::new(&repo_root);
    options.state_dir = repo_root
        .join("target")
        .join("system-tests")
        .join(format!("lifecycle-{}", std::process::id()));
    options.aws_port = 0;
    options.api_port = 0;
    options.parameters.insert("Catalog".into(), catalog());
    options
        .parameters
        .insert("AuditDelaySeconds".into(), "1".into());
    let stack = LocalStack::up(options)
        .await
        .context("bringing the local stack up")?;
    let state = stack.state().clone();
    let result = async {
        let sdk = trailgate_local::deployer::sdk_config(&state.aws_endpoint);
        let ctx = Ctx {
            alice: connect(&state, "alice").await?,
            bob: connect(&state, "bob").await?,
            http: reqwest::Client::new(),
            iam: aws_sdk_iam::Client::new(&sdk),
            sfn: aws_sdk_sfn::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            state: state.clone(),
        };
        let (approve, deny, timeout, bad) = tokio::join!(
            approve_path(&ctx),
            deny_path(&ctx),
            timeout_path(&ctx),
            bad_input(&ctx)
        );
        let mut failures = Vec::new();
        for (name, result) in [
            ("approve path", approve),
            ("deny path", deny),
            ("approval timeout", timeout),
            ("bad input", bad),
        ] {
            match result {
                Ok(()) => println!("ok: {name}"),
                Err(err) => failures.push(format!("{name}: {err:#}")),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("{}", failures.join("\n")))
        }
    }
    .await;
    let logs = state.logs_dir.clone();
    stack.shutdown().await.context("stopping the local stack")?;
    if result.is_ok() {
        // Keep the state and logs of a failed run for reading; a passing run leaves nothing behind.
        let _ = std::fs::remove_dir_all(&state.state_dir);
    }
    result.with_context(|| format!("local stack logs: {}", logs.display()))
}
