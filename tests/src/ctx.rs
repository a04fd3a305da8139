//! The context scenarios share: the stack's state, a SigV4-signed API client per local user,
//! plain HTTP for the public link routes and the outbox, and AWS SDK clients for what the API
//! does not show (IAM deny policies, execution histories, the ledger table).

use anyhow::{Context, Result, anyhow, bail, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::HistoryEvent;
use jitctl::api::Client;
use jitctl::endpoint::Target;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use trailgate_local::StackState;

/// How long the outbox is polled for an approval e-mail; the approval step runs after intake
/// and context gathering, which on a loaded machine take tens of seconds.
const MAIL_LIMIT: Duration = Duration::from_secs(60);

/// The local stack as a test drives it.
pub struct Ctx {
    /// Endpoints, outputs and directories of the running stack.
    pub state: StackState,
    /// The requester.
    pub alice: Client,
    /// An approver.
    pub bob: Client,
    /// An approver.
    pub carol: Client,
    /// Unsigned HTTP: decision links, the outbox, the router's local endpoints.
    pub http: reqwest::Client,
    /// IAM, for the deny policies revoke writes and for target roles.
    pub iam: aws_sdk_iam::Client,
    /// Step Functions, for execution status and history.
    pub sfn: aws_sdk_sfn::Client,
    /// DynamoDB, for the ledger as stored.
    pub dynamodb: aws_sdk_dynamodb::Client,
}

/// One approval e-mail from the outbox.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The approver's e-mail address (the message's `approver` attribute).
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The whole message text.
    pub body: String,
    /// The signed decision link in the body.
    pub link: String,
}

/// The answer to a decision-link request: its status, content type and page.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `content-type` header, empty when absent.
    pub content_type: String,
    /// The body.
    pub text: String,
}

/// A request's Step Functions execution as described, with its history.
#[derive(Debug)]
pub struct Execution {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, ...
    pub status: String,
    /// The error a failed execution ended with, empty otherwise.
    pub error: String,
    /// The names of the states entered, in order.
    pub entered: Vec<String>,
    /// Every history event type, in order.
    pub kinds: Vec<String>,
}

/// A signed API client for the local user `user`, through the stack's AWS config file.
pub async fn connect(state: &StackState, user: &str) -> Result<Client> {
    Client::connect(&Target {
        endpoint: Some(state.api_url.clone()),
        profile: Some(user.into()),
        region: Some(state.region.clone()),
        aws_config_file: Some(state.aws_config_file.clone()),
    })
    .await
}

/// POSTs a decision link as its confirm form would: the link's query plus `extra` (e.g.
/// `decision=approve`) as the form body. A free function so concurrent clicks can run it on
/// spawned tasks with a cloned client.
pub async fn post_link(http: &reqwest::Client, link: &str, extra: &str) -> Result<Answer> {
    let (action, query) = link.split_once('?').context("link without query")?;
    let response = http
        .post(action)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("{query}&{extra}"))
        .send()
        .await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(Answer {
        status,
        content_type,
        text: response.text().await?,
    })
}

impl Ctx {
    /// Connects alice, bob and carol to the stack and builds the SDK clients for its endpoint.
    pub async fn connect(state: StackState) -> Result<Self> {
        let sdk = trailgate_local::cloudformation::sdk_config(&state.aws_endpoint);
        Ok(Self {
            alice: connect(&state, "alice").await?,
            bob: connect(&state, "bob").await?,
            carol: connect(&state, "carol").await?,
            http: reqwest::Client::new(),
            iam: aws_sdk_iam::Client::new(&sdk),
            sfn: aws_sdk_sfn::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            state,
        })
    }

    /// An S3 client of the stack's endpoint (path-style: moto has no per-bucket host names).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&trailgate_local::cloudformation::sdk_config(
                &self.state.aws_endpoint,
            ))
            .force_path_style(true)
            .build(),
        )
    }

    /// The stack output `name` (e.g. `StateMachineArn`, `LedgerTableName`).
    pub fn output(&self, name: &str) -> Result<&str> {
        self.state
            .outputs
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("no output {name}"))
    }

    /// alice's new request with `body`; fails unless it was created PENDING. Returns its id.
    pub async fn new_request(&self, body: Value) -> Result<String> {
        let created = self.alice.post_json("/requests", &body).await?;
        ensure!(created["status"] == "PENDING", "new request: {created}");
        Ok(created["id"].as_str().context("no id")?.to_owned())
    }

    /// The request `id` as alice sees it.
    pub async fn status(&self, id: &str) -> Result<Value> {
        self.alice.get(&format!("/requests/{id}")).await
    }

    /// Waits up to `limit` for request `id` to reach `status`; a failed poll fails.
    pub async fn wait_for(&self, id: &str, status: &str, limit: Duration) -> Result<Value> {
        self.poll_status(id, &[status], limit, false).await
    }

    /// Waits up to `limit` for request `id` to reach one of `statuses`; a failed poll fails.
    pub async fn wait_for_any(
        &self,
        id: &str,
        statuses: &[&str],
        limit: Duration,
    ) -> Result<Value> {
        self.poll_status(id, statuses, limit, false).await
    }

    /// Like [`Ctx::wait_for_any`], but a failed poll is retried until `limit`: for scenarios
    /// that load the stack (injected faults, long retries) where a slow answer is no verdict.
    pub async fn wait_for_any_retrying(
        &self,
        id: &str,
        statuses: &[&str],
        limit: Duration,
    ) -> Result<Value> {
        self.poll_status(id, statuses, limit, true).await
    }

    async fn poll_status(
        &self,
        id: &str,
        statuses: &[&str],
        limit: Duration,
        retry_errors: bool,
    ) -> Result<Value> {
        let started = Instant::now();
        loop {
            let request = match self.status(id).await {
                Ok(request) => request,
                Err(err) if retry_errors && started.elapsed() <= limit => {
                    eprintln!("polling {id}: {err:#}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(err) => return Err(err),
            };
            if statuses.iter().any(|status| request["status"] == *status) {
                return Ok(request);
            }
            if started.elapsed() > limit {
                bail!(
                    "{id} is {} after {limit:?}, expected one of {statuses:?}",
                    request["status"]
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every STS `AssumeRole` call the router recorded, as its caller sent it (oldest first):
    /// `{role_arn, session_name, source_identity, duration_seconds, policy, tags, ...}`.
    pub async fn assume_role_calls(&self) -> Result<Vec<Value>> {
        let recorded: Value = self
            .http
            .get(format!(
                "{}/_local/sts/assume-role",
                self.state.aws_endpoint
            ))
            .send()
            .await?
            .json()
            .await?;
        Ok(recorded["calls"].as_array().cloned().unwrap_or_default())
    }

    /// Every message the SNS outbox holds, oldest first.
    pub async fn outbox(&self) -> Result<Vec<Value>> {
        let messages: Value = self
            .http
            .get(format!("{}.json", self.state.outbox_url))
            .send()
            .await?
            .json()
            .await?;
        Ok(messages.as_array().cloned().unwrap_or_default())
    }

    /// The approval e-mails for `id` (messages naming it that carry a decision link).
    async fn mails_now(&self, id: &str) -> Result<Vec<Mail>> {
        Ok(self
            .outbox()
            .await?
            .iter()
            .filter(|m| m["message"].as_str().is_some_and(|body| body.contains(id)))
            .filter_map(|m| {
                let body = m["message"].as_str()?.to_owned();
                // The link names the request: another request's e-mail may mention this id in
                // its context (the requester's previous requests) but carries its own link.
                let link = body
                    .lines()
                    .find(|l| l.starts_with("http") && l.contains(&format!("/decisions/{id}?")))?
                    .to_owned();
                Some(Mail {
                    to: m["attributes"]["approver"].as_str()?.to_owned(),
                    subject: m["subject"].as_str().unwrap_or_default().to_owned(),
                    body,
                    link,
                })
            })
            .collect())
    }

    /// The approval e-mails for `id`, once at least `count` of them have been published.
    pub async fn mails(&self, id: &str, count: usize) -> Result<Vec<Mail>> {
        let started = Instant::now();
        loop {
            let found = self.mails_now(id).await?;
            if found.len() >= count {
                return Ok(found);
            }
            if started.elapsed() > MAIL_LIMIT {
                bail!("approval messages for {id}: {found:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The approval e-mail for `id` to the address `to`, once it has been published.
    pub async fn mail_to(&self, id: &str, to: &str) -> Result<Mail> {
        let started = Instant::now();
        loop {
            if let Some(mail) = self.mails_now(id).await?.into_iter().find(|m| m.to == to) {
                return Ok(mail);
            }
            if started.elapsed() > MAIL_LIMIT {
                bail!("no approval message for {id} to {to}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// POSTs a decision link with `extra` form fields; see [`post_link`].
    pub async fn post_decision(&self, link: &str, extra: &str) -> Result<Answer> {
        post_link(&self.http, link, extra).await
    }

    /// The ARN of request `id`'s execution (executions are named after their request).
    pub fn execution_arn(&self, id: &str) -> Result<String> {
        Ok(format!(
            "{}:{id}",
            self.output("StateMachineArn")?
                .replace(":stateMachine:", ":execution:")
        ))
    }

    /// The history events of request `id`'s execution, oldest first.
    pub async fn history_events(&self, id: &str) -> Result<Vec<HistoryEvent>> {
        let history = self
            .sfn
            .get_execution_history()
            .execution_arn(self.execution_arn(id)?)
            .max_results(1000)
            .send()
            .await?;
        Ok(history.events().to_vec())
    }

    /// Request `id`'s execution: status, error, states entered and event types.
    pub async fn execution(&self, id: &str) -> Result<Execution> {
        let described = self
            .sfn
            .describe_execution()
            .execution_arn(self.execution_arn(id)?)
            .send()
            .await?;
        let mut entered = Vec::new();
        let mut kinds = Vec::new();
        for event in self.history_events(id).await? {
            kinds.push(event.r#type().as_str().to_owned());
            if let Some(details) = event.state_entered_event_details() {
                entered.push(details.name().to_owned());
            }
        }
        Ok(Execution {
            status: described.status().as_str().to_owned(),
            error: described.error().unwrap_or_default().to_owned(),
            entered,
            kinds,
        })
    }

    /// Waits up to `limit` for request `id`'s execution to stop running.
    pub async fn wait_execution_done(&self, id: &str, limit: Duration) -> Result<Execution> {
        let started = Instant::now();
        loop {
            let execution = self.execution(id).await?;
            if execution.status != "RUNNING" {
                return Ok(execution);
            }
            if started.elapsed() > limit {
                bail!("execution {id} still running: {:?}", execution.entered);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The task token Step Functions handed the approval step, from the execution history.
    pub async fn task_token(&self, id: &str) -> Result<String> {
        for event in self.history_events(id).await? {
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

    /// The decoded `trailgate-revocations` deny policy on `role`, empty when it has none.
    pub async fn revocations(&self, role: &str) -> Result<String> {
        match self
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name("trailgate-revocations")
            .send()
            .await
        {
            // IAM returns policy documents URL-encoded.
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

    /// Whether `role`'s deny policy names request `id` (request ids appear in it only as the
    /// values its statements deny; what the statements do is the IAM evaluator's test).
    pub async fn denies(&self, role: &str, id: &str) -> Result<bool> {
        let document = self.revocations(role).await?;
        Ok(document.contains("\"aws:PrincipalTag/trailgate-request\"")
            && document.contains(&format!("\"{id}\"")))
    }

    /// Waits until `role`'s deny policy names request `id`. The revoke commits REVOKED first
    /// (so nothing is vended) and then writes the deny, so a REVOKED status alone does not yet
    /// mean the deny is in place; the revoke step's bound on IAM visibility is 10 s.
    pub async fn wait_denies(&self, role: &str, id: &str, limit: Duration) -> Result<()> {
        let started = Instant::now();
        while !self.denies(role, id).await? {
            ensure!(
                started.elapsed() <= limit,
                "no deny for {id} on {role} after {}s: {}",
                limit.as_secs(),
                self.revocations(role).await?
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// Runs the scheduled reconciler once, as EventBridge would, and returns its report; fails
    /// when the function fails.
    pub async fn reconcile(&self) -> Result<Value> {
        let response = self
            .http
            .post(format!(
                "{}/2015-03-31/functions/trailgate-reconcile/invocations",
                self.state.aws_endpoint
            ))
            .json(&serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}))
            .send()
            .await?;
        ensure!(
            response.headers().get("x-amz-function-error").is_none(),
            "the reconciler failed: {}",
            response.text().await?
        );
        Ok(response.json().await?)
    }

    /// The ledger's events for `id` as (action, detail), straight from DynamoDB.
    pub async fn ledger_events(&self, id: &str) -> Result<Vec<(String, String)>> {
        let output = self
            .dynamodb
            .query()
            .table_name(self.output("LedgerTableName")?)
            .key_condition_expression("pk = :pk AND begins_with(sk, :evt)")
            .expression_attribute_values(":pk", AttributeValue::S(format!("REQ#{id}")))
            .expression_attribute_values(":evt", AttributeValue::S("EVT#".into()))
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
                Ok((
                    doc["action"].as_str().unwrap_or_default().to_owned(),
                    doc["detail"].as_str().unwrap_or_default().to_owned(),
                ))
            })
            .collect()
    }

    /// Adds CloudTrail records to the router's LookupEvents history (`POST /_local/cloudtrail`);
    /// returns how many it indexed.
    /// The SourceIdentity trailgate gives the sessions of local user `name`'s requests: the
    /// user's principal id (moto's `AIDA…`), as `AccessRequest::source_identity` makes it.
    pub fn source_identity(&self, name: &str) -> Result<String> {
        self.state
            .users
            .iter()
            .find(|user| user.name == name)
            .map(|user| user.user_id.clone())
            .with_context(|| format!("no local user `{name}`"))
    }

    pub async fn seed_cloudtrail(&self, records: &[Value]) -> Result<u64> {
        let response = self
            .http
            .post(format!("{}/_local/cloudtrail", self.state.aws_endpoint))
            .json(&json!({ "Records": records }))
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        ensure!(status.is_success(), "seeding CloudTrail: {status} {answer}");
        answer["added"].as_u64().context("no `added` in the answer")
    }

    /// The ledger's event actions for `id`, in order.
    pub async fn ledger_actions(&self, id: &str) -> Result<Vec<String>> {
        Ok(self
            .ledger_events(id)
            .await?
            .into_iter()
            .map(|(action, _)| action)
            .collect())
    }
}

/// The JSON body of a request from alice; a helper so scenario files state only what varies.
pub fn request_body(catalog_id: &str, duration: &str, reason: &str) -> Value {
    json!({"catalog_id": catalog_id, "duration": duration, "reason": reason})
}
