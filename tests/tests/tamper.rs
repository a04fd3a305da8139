//! System test of tamper evidence on the local stack (issue 20, item 8): a request runs to
//! AUDITED and another is denied; each execution ends in `Export Ledger`, which writes the
//! closed request's keyed event chain to the Object Lock archive bucket; `jitctl verify`
//! accepts both. Then the ledger is edited in DynamoDB as a table writer would (an event, then
//! a record field), and `jitctl verify` fails naming what changed. The decision events carry
//! the source IP and user agent of the click. `jitctl report` of the audited request passes
//! every check and renders whole in headless Chromium, and fails once the ledger is edited;
//! `jitctl export --format ocsf` of the day's closed requests validates against OCSF's schema,
//! to a file and to S3, and refuses an edited chain. A consumer's rule on the lifecycle bus
//! receives every event of the denied request, from the ledger's stream through the events
//! function, and its `closed` event with the chain's length and last hash.

use anyhow::{Context, Result, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use std::time::Duration;
use trailgate_system_tests::catalog::{Entry, catalog, role_arn};
use trailgate_system_tests::ctx::request_body;
use trailgate_system_tests::{Ctx, report, run_on_stack};

const ROLE_NAME: &str = "sample-target-trailgate";

/// `jitctl ARGS...` (the built binary; `cargo build --workspace --bins` first) against the
/// stack's table, bucket and chain key: (exit success, stdout, stderr).
async fn jitctl_ledger(ctx: &Ctx, args: &[&str]) -> Result<(bool, String, String)> {
    let binary =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/jitctl");
    let output = tokio::process::Command::new(&binary)
        .args(["--profile", "alice", "--region", &ctx.state.region])
        .args(args)
        .args(["--table", ctx.output("LedgerTableName")?])
        .args(["--bucket", ctx.output("LedgerArchiveBucketName")?])
        .args(["--chain-key-secret", ctx.output("ChainKeySecretArn")?])
        .args(["--endpoint-url", &ctx.state.aws_endpoint])
        .env("AWS_CONFIG_FILE", &ctx.state.aws_config_file)
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    Ok((
        output.status.success(),
        String::from_utf8(output.stdout)?,
        String::from_utf8(output.stderr)?,
    ))
}

/// `jitctl verify ID`.
async fn jitctl_verify(ctx: &Ctx, id: &str) -> Result<(bool, String, String)> {
    jitctl_ledger(ctx, &["verify", id]).await
}

/// `jitctl report ID --format json`: (exit success, the report).
async fn jitctl_report_json(ctx: &Ctx, id: &str) -> Result<(bool, Value)> {
    let (ok, out, err) = jitctl_ledger(ctx, &["report", id, "--format", "json"]).await?;
    let report = serde_json::from_str(&out).with_context(|| format!("report JSON: {out}{err}"))?;
    Ok((ok, report))
}

/// The outcome of the report's check named `name` (the revoke's is under `revoke`).
fn check_outcome(report: &Value, name: &str) -> String {
    let checks = report["checks"].as_array().cloned().unwrap_or_default();
    checks
        .iter()
        .chain(std::iter::once(&report["revoke"]["check"]))
        .find(|check| check["name"] == name)
        .map(|check| check["outcome"].as_str().unwrap_or("?").to_owned())
        .unwrap_or_else(|| format!("no check {name}"))
}

/// The auditor's report of an untouched, audited request: every section, every check passed,
/// the revoke checked on the role, and the HTML page whole in headless Chromium (a screenshot
/// in tests/artifacts/report.png).
async fn report_of_audited(ctx: &Ctx, id: &str) -> Result<()> {
    let (ok, report) = jitctl_report_json(ctx, id).await?;
    ensure!(ok, "report of an untouched request failed: {report}");
    ensure!(
        report["format"] == "trailgate-request-report/1" && report["id"] == *id,
        "{report}"
    );
    ensure!(
        check_outcome(&report, "ledger chain and archive") == "passed",
        "{report}"
    );
    ensure!(
        check_outcome(&report, "revoke in effect") == "passed",
        "{}",
        report["revoke"]
    );
    ensure!(
        report["decisions"][0]["approver"] == "bob"
            && report["decisions"][0]["user_agent"] == "tamper-test/1.0 (bob)",
        "decisions: {}",
        report["decisions"]
    );
    ensure!(
        report["credentials"].as_array().is_some_and(Vec::is_empty),
        "{}",
        report["credentials"]
    );
    ensure!(
        report["audit"]["cloudtrail"].is_object(),
        "no audit: {}",
        report["audit"]
    );
    let events = ctx.ledger_actions(id).await?.len();
    ensure!(
        report["timeline"].as_array().map(Vec::len) == Some(events),
        "{}",
        report["timeline"]
    );

    let page = trailgate_system_tests::browser::artifact("report.html")?;
    let screenshot = trailgate_system_tests::browser::artifact("report.png")?;
    let page_arg = page.to_string_lossy().into_owned();
    let (ok, _, err) = jitctl_ledger(ctx, &["report", id, "--out", &page_arg]).await?;
    ensure!(ok, "report --format html: {err}");
    trailgate_system_tests::browser::run(
        "report.mjs",
        &[
            page.as_os_str(),
            screenshot.as_os_str(),
            id.as_ref(),
            "Every check passed.".as_ref(),
        ],
        &screenshot,
    )
    .await?;
    Ok(())
}

/// `jitctl export --format ocsf` of every request closed on the day the denied one closed,
/// to a file and to S3: the denied request's events are all in it, once each, and the whole
/// export validates against OCSF's schema.
async fn ocsf_export(ctx: &Ctx, id: &str) -> Result<()> {
    let day = item_doc(ctx, id, "META").await?["updated_at"]
        .as_str()
        .and_then(|at| at.get(..10))
        .context("no updated_at")?
        .to_owned();
    let file = trailgate_system_tests::browser::artifact("ocsf-export.ndjson")?;
    let file_arg = file.to_string_lossy().into_owned();
    let (ok, _, err) =
        jitctl_ledger(ctx, &["export", "--closed-on", &day, "--out", &file_arg]).await?;
    ensure!(ok, "export: {err}");
    let text = std::fs::read_to_string(&file)?;
    let events: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let mine: Vec<u64> = events
        .iter()
        .filter(|event| event["metadata"]["correlation_uid"] == *id)
        .filter_map(|event| event["metadata"]["sequence"].as_u64())
        .collect();
    let expected: Vec<u64> = (1..=ctx.ledger_actions(id).await?.len() as u64).collect();
    ensure!(
        mine == expected,
        "the export holds events {mine:?} of {id}, not {expected:?}"
    );
    let denied = events
        .iter()
        .find(|event| {
            event["metadata"]["correlation_uid"] == *id
                && event["metadata"]["event_code"] == "Denied"
        })
        .context("no Denied event")?;
    ensure!(
        denied["class_uid"] == 3005
            && denied["actor"]["user"]["name"] == "carol"
            && denied["http_request"]["user_agent"] == "tamper-test/1.0 (carol)",
        "{denied}"
    );
    trailgate_system_tests::ocsf::require_valid(&file)?;

    // The same export to S3, as a SIEM's ingestion bucket would take it.
    let s3 = ctx.s3();
    s3.create_bucket().bucket("siem-ingest").send().await?;
    let target = format!("s3://siem-ingest/trailgate/{day}.ndjson");
    let (ok, _, err) =
        jitctl_ledger(ctx, &["export", "--closed-on", &day, "--out", &target]).await?;
    ensure!(ok, "export to S3: {err}");
    let object = s3
        .get_object()
        .bucket("siem-ingest")
        .key(format!("trailgate/{day}.ndjson"))
        .send()
        .await?;
    let body = String::from_utf8(object.body.collect().await?.into_bytes().to_vec())?;
    ensure!(body == text, "the S3 export differs from the file export");
    Ok(())
}

/// A consumer of the lifecycle bus: a rule matching every trailgate event, delivering to a new
/// queue. Returns the queue's URL.
async fn lifecycle_consumer(ctx: &Ctx) -> Result<String> {
    let sdk = trailgate_local::cloudformation::sdk_config(&ctx.state.aws_endpoint);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name("siem-lifecycle")
        .send()
        .await?;
    let url = queue.queue_url().context("no queue URL")?.to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await?;
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .context("no queue ARN")?
        .clone();
    let bus = ctx.output("LifecycleEventBusName")?;
    events
        .put_rule()
        .name("siem-all-trailgate")
        .event_bus_name(bus)
        .event_pattern(r#"{"source": ["trailgate"]}"#)
        .send()
        .await?;
    events
        .put_targets()
        .rule("siem-all-trailgate")
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()?,
        )
        .send()
        .await?;
    Ok(url)
}

/// Every event of request `id` reaches the consumer's queue through the bus (the ledger's
/// stream, the events function, the rule), each ledger event once or more and `closed` with
/// the chain's length and last hash; every detail validates against the published schema.
async fn lifecycle_events_reached(ctx: &Ctx, queue: &str, id: &str) -> Result<()> {
    let sdk = trailgate_local::cloudformation::sdk_config(&ctx.state.aws_endpoint);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let expected = ctx.ledger_actions(id).await?;
    let last_hash = item_doc(ctx, id, "META").await?["last_event_hash"].clone();
    let mut details: Vec<Value> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await?;
        for message in got.messages() {
            let envelope: Value = serde_json::from_str(message.body().unwrap_or_default())?;
            ensure!(envelope["source"] == "trailgate", "{envelope}");
            let detail = envelope["detail"].clone();
            ensure!(
                envelope["detail-type"]
                    == format!("trailgate.{}", detail["event"].as_str().unwrap_or("?")),
                "{envelope}"
            );
            details.push(detail);
        }
        let mine: Vec<&Value> = details.iter().filter(|d| d["request_id"] == *id).collect();
        let closed = mine.iter().find(|d| d["event"] == "closed");
        let seqs: std::collections::BTreeSet<u64> =
            mine.iter().filter_map(|d| d["seq"].as_u64()).collect();
        if let Some(closed) = closed
            && seqs.len() == expected.len()
        {
            ensure!(closed["events"] == expected.len(), "closed: {closed}");
            ensure!(
                closed["last_event_hash"] == last_hash,
                "closed: {closed}, record: {last_hash}"
            );
            ensure!(
                seqs == (1..=expected.len() as u64).collect(),
                "seqs {seqs:?}"
            );
            for (seq, action) in expected.iter().enumerate() {
                let event = mine
                    .iter()
                    .find(|d| d["seq"] == seq + 1)
                    .context("a seq went missing")?;
                ensure!(event["action"] == *action, "event {}: {event}", seq + 1);
            }
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "after 60 s the queue holds {} events of {id} (seqs {seqs:?}, closed: {}), the ledger {}",
            mine.len(),
            closed.is_some(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let file = trailgate_system_tests::browser::artifact("lifecycle-events.ndjson")?;
    let text: String = details.iter().map(|d| format!("{d}\n")).collect();
    std::fs::write(&file, text)?;
    let schema = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/lifecycle-event.schema.json");
    trailgate_system_tests::ocsf::require_valid_against(&schema, &file)?;
    Ok(())
}

/// The stored JSON `doc` of the ledger item (`REQ#<id>`, `sk`).
async fn item_doc(ctx: &Ctx, id: &str, sk: &str) -> Result<Value> {
    let item = ctx
        .dynamodb
        .get_item()
        .table_name(ctx.output("LedgerTableName")?)
        .key("pk", AttributeValue::S(format!("REQ#{id}")))
        .key("sk", AttributeValue::S(sk.into()))
        .send()
        .await?
        .item
        .with_context(|| format!("no item {sk} of {id}"))?;
    let doc = item
        .get("doc")
        .and_then(|d| d.as_s().ok())
        .context("no doc")?;
    Ok(serde_json::from_str(doc)?)
}

/// Overwrites the `doc` of a ledger item, unconditionally, as anyone with `dynamodb:UpdateItem`
/// on the table could.
async fn write_doc(ctx: &Ctx, id: &str, sk: &str, doc: &Value) -> Result<()> {
    ctx.dynamodb
        .update_item()
        .table_name(ctx.output("LedgerTableName")?)
        .key("pk", AttributeValue::S(format!("REQ#{id}")))
        .key("sk", AttributeValue::S(sk.into()))
        .update_expression("SET #doc = :doc")
        .expression_attribute_names("#doc", "doc")
        .expression_attribute_values(":doc", AttributeValue::S(doc.to_string()))
        .send()
        .await?;
    Ok(())
}

/// Clicks a decision link's form as a browser with `user_agent` would.
async fn decide(ctx: &Ctx, link: &str, decision: &str, user_agent: &str) -> Result<()> {
    let (action, query) = link.split_once('?').context("link without query")?;
    let response = ctx
        .http
        .post(action)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", user_agent)
        .body(format!("{query}&decision={decision}"))
        .send()
        .await?;
    ensure!(
        response.status() == 200,
        "{decision}: {}",
        response.text().await?
    );
    Ok(())
}

/// The event with `action` as stored.
async fn event_with(ctx: &Ctx, id: &str, action: &str) -> Result<(String, Value)> {
    for seq in 1..=20 {
        let sk = format!("EVT#{seq:06}");
        let Ok(doc) = item_doc(ctx, id, &sk).await else {
            break;
        };
        if doc["action"] == action {
            return Ok((sk, doc));
        }
    }
    anyhow::bail!("{id} has no {action} event")
}

/// Waits until the execution has ended and passed `Export Ledger`.
async fn exported(ctx: &Ctx, id: &str) -> Result<()> {
    let execution = ctx.wait_execution_done(id, Duration::from_secs(90)).await?;
    ensure!(
        execution.status == "SUCCEEDED" && execution.entered.iter().any(|s| s == "Export Ledger"),
        "{id}: {} {:?}",
        execution.status,
        execution.entered
    );
    Ok(())
}

/// Approved, granted, revoked, audited and exported; verified; then tampered with.
async fn audited_then_tampered(ctx: &Ctx) -> Result<()> {
    let id = ctx
        .new_request(request_body("sandbox-admin", "PT5S", "tamper test"))
        .await?;
    let link = ctx.mail_to(&id, "bob@example.com").await?.link;
    decide(ctx, &link, "approve", "tamper-test/1.0 (bob)").await?;
    ctx.wait_for(&id, "AUDITED", Duration::from_secs(90))
        .await?;
    exported(ctx, &id).await?;

    // The decision event says where the click came from (the router plays API Gateway).
    let (_, approved) = event_with(ctx, &id, "Approved").await?;
    ensure!(
        approved["source_ip"] == "127.0.0.1" && approved["user_agent"] == "tamper-test/1.0 (bob)",
        "the decision event: {approved}"
    );
    ensure!(approved["version"] == 2, "not a keyed event: {approved}");

    let (ok, out, err) = jitctl_verify(ctx, &id).await?;
    ensure!(ok, "verify of an untouched ledger failed: {out}{err}");
    ensure!(
        out.contains("keyed hashes recomputed")
            && out.contains("identical to the ledger's")
            && out.contains("verified"),
        "{out}"
    );
    report_of_audited(ctx, &id).await?;

    // An event edited in the table: the actor of the approval changed.
    let (sk, original) = event_with(ctx, &id, "Approved").await?;
    let mut forged = original.clone();
    forged["actor"] = "approver:carol".into();
    write_doc(ctx, &id, &sk, &forged).await?;
    let (ok, out, err) = jitctl_verify(ctx, &id).await?;
    ensure!(!ok, "verify passed an edited event: {out}");
    ensure!(
        err.contains("does not match its hash") && err.contains("differs from the export in actor"),
        "{err}"
    );
    // The report says so too, and exits 1; the export refuses to feed the SIEM a changed chain.
    let (ok, report) = jitctl_report_json(ctx, &id).await?;
    ensure!(!ok, "report passed an edited event");
    ensure!(
        check_outcome(&report, "ledger chain and archive") == "failed",
        "{report}"
    );
    let (ok, out, err) = jitctl_ledger(ctx, &["export", &id]).await?;
    ensure!(!ok && out.is_empty(), "export of an edited chain: {out}");
    ensure!(
        err.contains("not exported") && err.contains("does not match its hash"),
        "{err}"
    );
    write_doc(ctx, &id, &sk, &original).await?;
    let (ok, out, err) = jitctl_verify(ctx, &id).await?;
    ensure!(ok, "verify after restoring the event: {out}{err}");

    // A record field edited without an event: the grant made seven days long.
    let record = item_doc(ctx, &id, "META").await?;
    let mut longer = record.clone();
    longer["duration_seconds"] = (7 * 24 * 3600).into();
    write_doc(ctx, &id, "META", &longer).await?;
    let (ok, out, err) = jitctl_verify(ctx, &id).await?;
    ensure!(!ok, "verify passed an edited record: {out}");
    ensure!(err.contains("the record differs from what event"), "{err}");
    write_doc(ctx, &id, "META", &record).await?;
    Ok(())
}

/// The chain key rotated (the secret becomes a ring that keeps the first key): `jitctl
/// verify` still verifies the events the first key keyed; a ring that dropped it refuses them,
/// naming the key. The secret is put back after.
async fn rotated_chain_key(ctx: &Ctx, id: &str) -> Result<()> {
    let secrets = aws_sdk_secretsmanager::Client::new(
        &trailgate_local::cloudformation::sdk_config(&ctx.state.aws_endpoint),
    );
    let secret = ctx.output("ChainKeySecretArn")?;
    let first = secrets
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await?
        .secret_string()
        .context("the chain key secret has no string")?
        .to_owned();
    let put = |value: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .put_secret_value()
                .secret_id(secret)
                .secret_string(value)
                .send()
                .await
        }
    };
    let new_key = "r".repeat(48);
    put(
        serde_json::json!({"current": "2026-12", "keys": {"0": first, "2026-12": new_key}})
            .to_string(),
    )
    .await?;
    let (ok, out, err) = jitctl_verify(ctx, id).await?;
    let kept = ok && out.contains("verified");
    put(json!({"current": "2026-12", "keys": {"2026-12": new_key}}).to_string()).await?;
    let (dropped_ok, _, dropped_err) = jitctl_verify(ctx, id).await?;
    put(first).await?;
    ensure!(kept, "verify with the rotated ring: {out}{err}");
    ensure!(
        !dropped_ok && dropped_err.contains("was keyed with chain key `0`"),
        "verify with a ring that dropped the first key: {dropped_err}"
    );
    Ok(())
}

/// An execution stopped before its `Export Ledger` step, then the request cancelled: nothing
/// archived it, so the reconciler's export sweep does (its chain verified), once.
async fn missed_export_swept(ctx: &Ctx) -> Result<()> {
    let id = ctx
        .new_request(request_body(
            "sandbox-admin",
            "PT1H",
            "tamper test, stopped",
        ))
        .await?;
    ctx.mail_to(&id, "carol@example.com").await?;
    ctx.sfn
        .stop_execution()
        .execution_arn(ctx.execution_arn(&id)?)
        .send()
        .await?;
    ctx.alice
        .post_json(&format!("/requests/{id}/cancel"), &json!({}))
        .await?;
    let (ok, _, err) = jitctl_verify(ctx, &id).await?;
    ensure!(!ok && err.contains("export"), "before the sweep: {err}");
    let report = ctx.reconcile().await?;
    ensure!(
        report["exported"]
            .as_array()
            .is_some_and(|ids| ids.iter().any(|x| x == id.as_str())),
        "reconcile report: {report}"
    );
    let (ok, out, err) = jitctl_verify(ctx, &id).await?;
    ensure!(
        ok && out.contains("status CANCELLED"),
        "after the sweep: {out}{err}"
    );
    let again = ctx.reconcile().await?;
    ensure!(
        !again["exported"]
            .as_array()
            .is_some_and(|ids| ids.iter().any(|x| x == id.as_str())),
        "exported twice: {again}"
    );
    Ok(())
}

/// Denied by carol: the execution ends in `Export Ledger` too, and verifies.
async fn denied_and_exported(ctx: &Ctx) -> Result<String> {
    let id = ctx
        .new_request(request_body("sandbox-admin", "PT1H", "tamper test, denied"))
        .await?;
    let link = ctx.mail_to(&id, "carol@example.com").await?.link;
    decide(ctx, &link, "deny", "tamper-test/1.0 (carol)").await?;
    exported(ctx, &id).await?;
    let execution = ctx.execution(&id).await?;
    ensure!(
        execution.entered.last().map(String::as_str) == Some("Denied"),
        "{:?}",
        execution.entered
    );
    let (ok, out, err) = jitctl_verify(ctx, &id).await?;
    ensure!(ok && out.contains("status DENIED"), "{out}{err}");

    // The export is locked: no version of it can be deleted (compliance mode).
    let s3 = ctx.s3();
    let bucket = ctx.output("LedgerArchiveBucketName")?;
    let key = format!("requests/{id}.ndjson");
    let versions = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(&key)
        .send()
        .await?;
    let version = versions
        .versions()
        .first()
        .and_then(|v| v.version_id())
        .context("the export has no version")?;
    let deleted = s3
        .delete_object()
        .bucket(bucket)
        .key(&key)
        .version_id(version)
        .send()
        .await;
    ensure!(deleted.is_err(), "a locked export version was deleted");
    // Nor hidden behind a delete marker: the bucket policy's NobodyDeletes refuses a plain
    // DeleteObject too, and the export still reads back, unchanged.
    let before = s3.get_object().bucket(bucket).key(&key).send().await?;
    let before = before.body.collect().await?.into_bytes();
    let marked = s3.delete_object().bucket(bucket).key(&key).send().await;
    ensure!(marked.is_err(), "a delete marker hid the export");
    let after = s3.get_object().bucket(bucket).key(&key).send().await?;
    ensure!(
        after.body.collect().await?.into_bytes() == before,
        "the export changed"
    );
    let count = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(&key)
        .send()
        .await?;
    ensure!(
        count.delete_markers().is_empty() && count.versions().len() == versions.versions().len(),
        "versions or markers changed"
    );
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_is_checked_against_its_locked_export() -> Result<()> {
    let parameters = [
        (
            "Catalog",
            catalog(&[Entry::new("sandbox-admin", role_arn(ROLE_NAME))]),
        ),
        ("AuditDelaySeconds", "1".to_owned()),
    ];
    run_on_stack("tamper", &parameters, |ctx| async move {
        // Before any request: a consumer's rule sees everything from the start.
        let consumer = lifecycle_consumer(&ctx).await;
        let (audited, denied) =
            tokio::join!(audited_then_tampered(&ctx), denied_and_exported(&ctx));
        // After both: the other path edits the audited request's ledger while it runs, and an
        // export of a changed chain is refused.
        let exported = match &denied {
            Ok(id) => ocsf_export(&ctx, id).await,
            Err(_) => Ok(()),
        };
        let published = match (&consumer, &denied) {
            (Ok(queue), Ok(id)) => lifecycle_events_reached(&ctx, queue, id).await,
            (Err(err), _) => Err(anyhow::anyhow!("the bus consumer: {err}")),
            (_, Err(_)) => Ok(()),
        };
        // After both: a ring without the first key would fail the other's verifies.
        let rotated = match &denied {
            Ok(id) => rotated_chain_key(&ctx, id).await,
            Err(_) => Ok(()),
        };
        let swept = missed_export_swept(&ctx).await;
        report([
            ("audited, then tampered", audited),
            ("denied", denied.map(|_| ())),
            ("OCSF export", exported),
            ("lifecycle events on the bus", published),
            ("chain key rotated", rotated),
            ("missed export swept", swept),
        ])
    })
    .await
}
