//! System tests of reviewer context and the session audit on the local stack: CloudTrail
//! history seeded into the router's LookupEvents (with its real 2 calls/s limit and 50-event
//! pages), the context function's ranked findings in the approval e-mail and the ledger, their
//! evidence on the confirm page, a Region and IP new to the requester, the previous grant and
//! what it did, the audit report of what a session did, and "context unavailable" when
//! LookupEvents fails.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use trailgate_system_tests::catalog::{ACCOUNT, Entry, catalog, role_arn};
use trailgate_system_tests::ctx::request_body;
use trailgate_system_tests::{Ctx, report, run_on_stack};

const ROLE_NAME: &str = "sample-target-trailgate";
/// The trail bucket the stack's audit reads (`TrailBucket`), under the prefix `org/`.
const TRAIL_BUCKET: &str = "context-trail";

fn at(ago: Duration) -> String {
    (OffsetDateTime::now_utc() - ago)
        .format(&Rfc3339)
        .expect("RFC 3339")
}

/// A CloudTrail record of alice (IAM user) `ago` in the past; `extra` fields are merged in.
fn alice(n: u32, ago_minutes: u64, name: &str, source: &str, extra: Value) -> Value {
    let mut record = json!({
        "eventVersion": "1.08",
        "eventID": format!("ctx-alice-{n}"),
        "eventTime": at(Duration::from_secs(ago_minutes * 60)),
        "eventName": name,
        "eventSource": source,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2.15",
        "readOnly": name.starts_with("List") || name.starts_with("Get") || name.starts_with("Describe"),
        "recipientAccountId": ACCOUNT,
        "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": ACCOUNT,
            "principalId": "AIDAALICE", "arn": format!("arn:aws:iam::{ACCOUNT}:user/alice")},
    });
    if let (Some(target), Some(more)) = (record.as_object_mut(), extra.as_object()) {
        target.extend(more.clone());
    }
    record
}

/// alice's week: routine reads, then a StopLogging, an admin policy attached to a role, failed
/// console sign-ins, a burst of denied calls and, ten minutes ago, a call from a Region and an
/// IP she had not used before.
fn alice_history() -> Vec<Value> {
    let mut records: Vec<Value> = (0..30)
        .map(|i| {
            alice(
                i,
                60 + u64::from(i) * 90,
                "ListBuckets",
                "s3.amazonaws.com",
                Value::Null,
            )
        })
        .collect();
    records.push(alice(
        100,
        50,
        "StopLogging",
        "cloudtrail.amazonaws.com",
        json!({"requestParameters": {"name": "org-trail"}}),
    ));
    records.push(alice(101, 40, "AttachRolePolicy", "iam.amazonaws.com",
        json!({"requestParameters": {"roleName": "ops", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}})));
    for i in 0..3 {
        records.push(alice(110 + i, 30 + u64::from(i), "ConsoleLogin", "signin.amazonaws.com",
            json!({"readOnly": false, "responseElements": {"ConsoleLogin": "Failure"},
                   "errorMessage": "Failed authentication", "additionalEventData": {"MFAUsed": "No"}})));
    }
    for (i, action) in [
        "GetSecretValue",
        "ListUsers",
        "DescribeInstances",
        "GetObject",
        "ListRoles",
        "CreateAccessKey",
    ]
    .iter()
    .enumerate()
    {
        records.push(alice(
            120 + i as u32,
            20,
            action,
            "iam.amazonaws.com",
            json!({"errorCode": "AccessDenied", "errorMessage": "not authorized"}),
        ));
    }
    records.push(alice(
        130,
        10,
        "GetCallerIdentity",
        "sts.amazonaws.com",
        json!({"awsRegion": "eu-north-1", "sourceIPAddress": "198.51.100.77"}),
    ));
    records
}

/// A call made in trailgate session `tg-alice-<id>`: what the audit must find.
/// A call of alice's session of grant `id`, whose SourceIdentity is `who` (her principal id).
fn session_call(who: &str, n: u32, id: &str, name: &str, source: &str, extra: Value) -> Value {
    let session = format!("tg-alice-{id}");
    let mut record = json!({
        "eventVersion": "1.08",
        "eventID": format!("ctx-session-{id}-{n}"),
        "eventTime": at(Duration::from_secs(1)),
        "eventName": name,
        "eventSource": source,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "readOnly": name.starts_with("List") || name.starts_with("Get"),
        "recipientAccountId": ACCOUNT,
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROASAMPLE:{session}"),
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/{session}"),
            "accountId": ACCOUNT,
            "sessionContext": {
                "sourceIdentity": who,
                "sessionIssuer": {"type": "Role", "userName": ROLE_NAME, "arn": role_arn(ROLE_NAME)},
            },
        },
    });
    if let (Some(target), Some(more)) = (record.as_object_mut(), extra.as_object()) {
        target.extend(more.clone());
    }
    record
}

/// Puts `records` into the trail bucket as CloudTrail delivers them: one gzipped
/// `{"Records": [...]}` object under `org/AWSLogs/<org>/<account>/CloudTrail/us-east-1/<day>/`,
/// named with the delivery time (now).
async fn deliver_to_trail(ctx: &Ctx, records: &[Value]) -> Result<()> {
    use std::io::Write as _;
    let now = OffsetDateTime::now_utc();
    let (year, month, day) = (now.year(), u8::from(now.month()), now.day());
    let key = format!(
        "org/AWSLogs/o-exampleorg1/{ACCOUNT}/CloudTrail/us-east-1/{year:04}/{month:02}/{day:02}/\
         {ACCOUNT}_CloudTrail_us-east-1_{year:04}{month:02}{day:02}T{:02}{:02}Z_late.json.gz",
        now.hour(),
        now.minute()
    );
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(json!({ "Records": records }).to_string().as_bytes())?;
    ctx.s3()
        .put_object()
        .bucket(TRAIL_BUCKET)
        .key(key)
        .body(gzip.finish()?.into())
        .send()
        .await?;
    Ok(())
}

/// CloudTrail delivers late (issue 18, item 1): the first pass says the report may be
/// incomplete, since the newest event delivered is from before the session's end; a call the
/// session made before the revoke then arrives, with an unrelated event of now that moves the
/// watermark past the end; the second pass (`Audit Again`) finds the late call, is final and
/// complete, and the approvers are written to about what is new. The trail bucket, empty at
/// the first pass, then holds the same late call and an object read that only it has: the
/// second pass counts the call once and adds the read.
async fn late_delivery(ctx: &Ctx, id: &str, alice: &str, audited: &Value) -> Result<()> {
    let first = &audited["audit"];
    let coverage = &first["cloudtrail"]["coverage"];
    ensure!(
        first["final"] == false && first["passes"] == 1,
        "first pass: {first}"
    );
    ensure!(
        coverage["complete"] == false,
        "first pass coverage: {coverage}"
    );
    ensure!(
        coverage["completeness"]
            .as_str()
            .is_some_and(|why| why.contains("us-east-1 has delivered up to")
                && why.contains("the trail bucket's us-east-1 has delivered nothing")),
        "first pass coverage: {coverage}"
    );
    ensure!(
        coverage["trail"]["location"] == format!("s3://{TRAIL_BUCKET}/org/").as_str()
            && coverage["trail"]["objects_read"] == 0,
        "first pass coverage: {coverage}"
    );
    let revoked_at = audited["revoked_at"].as_str().context("no revoked_at")?;
    let revoked = OffsetDateTime::parse(revoked_at, &Rfc3339)?;
    let before_revoke = (revoked - time::Duration::seconds(2)).format(&Rfc3339)?;
    let mut late = session_call(
        alice,
        5,
        id,
        "DeleteObject",
        "s3.amazonaws.com",
        json!({"requestParameters": {"bucketName": "team-data", "key": "old.csv"}}),
    );
    late["eventTime"] = json!(before_revoke);
    let mut unrelated = session_call(
        "someone-else",
        6,
        "r-someoneelse",
        "ListBuckets",
        "s3.amazonaws.com",
        Value::Null,
    );
    unrelated["eventTime"] = json!(at(Duration::ZERO));
    ensure!(
        ctx.seed_cloudtrail(&[late.clone(), unrelated.clone()])
            .await?
            == 2
    );
    // The trail delivers its file too: the late call again (one event, counted once), a data
    // event LookupEvents never has (an object read), and the unrelated event of now.
    let mut read = session_call(
        alice,
        7,
        id,
        "GetObject",
        "s3.amazonaws.com",
        json!({"eventCategory": "Data", "requestParameters": {"bucketName": "team-data", "key": "payroll.csv"}}),
    );
    read["eventTime"] = json!(before_revoke);
    deliver_to_trail(ctx, &[late, read, unrelated]).await?;

    let started = Instant::now();
    let last = loop {
        let status = ctx.status(id).await?;
        if status["audit"]["final"] == true {
            break status;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(90),
            "no second pass within 90 s: {}",
            status["audit"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let report = &last["audit"];
    let cloudtrail = &report["cloudtrail"];
    ensure!(
        report["passes"] == 2 && report["first_pass"]["events"] == 3,
        "{report}"
    );
    ensure!(cloudtrail["events"] == 5, "second pass: {cloudtrail}");
    ensure!(
        cloudtrail["actions_by_service"]["s3"]["DeleteObject"] == 1
            && cloudtrail["actions_by_service"]["s3"]["GetObject"] == 1,
        "{cloudtrail}"
    );
    let trail = &cloudtrail["coverage"]["trail"];
    ensure!(
        trail["objects_read"] == 1 && trail["events_matched"] == 2 && trail["only_in_trail"] == 1,
        "second pass trail: {trail}"
    );
    ensure!(
        cloudtrail["coverage"]["complete"] == true,
        "{}",
        cloudtrail["coverage"]
    );
    ensure!(
        report["late_findings"][0].as_str().is_some_and(
            |line| line.starts_with("2 CloudTrail event(s) delivered after the first audit")
        ),
        "{}",
        report["late_findings"]
    );
    let started = Instant::now();
    loop {
        let updates: Vec<Value> = ctx
            .outbox()
            .await?
            .into_iter()
            .filter(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("trailgate audit update"))
            })
            .filter(|m| m["message"].as_str().is_some_and(|body| body.contains(id)))
            .collect();
        if updates.len() >= 2 {
            ensure!(
                updates.iter().all(|m| m["message"]
                    .as_str()
                    .is_some_and(|b| b.contains("UPDATE: the audit read CloudTrail again"))),
                "{updates:?}"
            );
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "update mails: {updates:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let actions = ctx.ledger_actions(id).await?;
    ensure!(
        actions.last().map(String::as_str) == Some("AuditUpdated"),
        "{actions:?}"
    );
    Ok(())
}

/// Findings ranked in the e-mail and the ledger with their coverage, and with their evidence on
/// the confirm page; the audit names what the session did and suggests a policy of exactly
/// those actions; the next request's context names that grant and what it did.
async fn findings_and_audit(ctx: &Ctx) -> Result<()> {
    // The trail bucket exists, and nothing has been delivered to it yet.
    ctx.s3().create_bucket().bucket(TRAIL_BUCKET).send().await?;
    let added = ctx.seed_cloudtrail(&alice_history()).await?;
    ensure!(added == 42, "seeded {added} records");

    let started = Instant::now();
    let id = ctx
        .new_request(request_body("sandbox-admin", "PT6S", "context test"))
        .await?;
    let mail = ctx.mail_to(&id, "bob@example.com").await?;
    println!("request to approval e-mail: {:?}", started.elapsed());
    let body = &mail.body;
    for needle in [
        "6 warnings from 42 CloudTrail events of the requester",
        "us-east-1",
        "! HIGH Logging and monitoring tampering: StopLogging (1 event, latest ",
        "AttachRolePolicy",
        "! MEDIUM Failed console sign-ins (3 events, latest ",
        "denied calls on 6 distinct actions",
        "! MEDIUM Regions not seen before in the window: eu-north-1 (compared with ",
        "! LOW source IPs not seen before in the window: 198.51.100.77 (compared with ",
        "- INFO activity",
        "- INFO no previous trailgate requests",
    ] {
        ensure!(
            body.contains(needle),
            "no {needle:?} in the e-mail:\n{body}"
        );
    }
    // Ranked: the high-severity findings come before the medium ones, context comes last.
    let high = body.find("! HIGH").context("no HIGH line")?;
    let medium = body.find("! MEDIUM").context("no MEDIUM line")?;
    let info = body.find("- INFO").context("no INFO line")?;
    ensure!(high < medium && medium < info, "not ranked:\n{body}");

    let request = ctx.status(&id).await?;
    let context = &request["context"];
    ensure!(context["available"] == true, "context: {context}");
    let lines: Vec<&str> = context["lines"]
        .as_array()
        .context("no lines")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(lines.len() <= 19 && lines.len() >= 5, "lines: {lines:?}");
    ensure!(lines[0].starts_with("! HIGH"), "first line {:?}", lines[0]);
    let findings = context["findings"].as_array().context("no findings")?;
    ensure!(findings.len() == lines.len(), "findings: {findings:?}");
    let stored = serde_json::to_vec(context)?.len();
    ensure!(stored <= 32 * 1024, "stored context: {stored} bytes");

    // The confirm page: every finding with its events one click away.
    let page = ctx.http.get(&mail.link).send().await?.text().await?;
    for needle in [
        "<li class=\"warn\"><details><summary>! HIGH Logging and monitoring tampering: StopLogging (1 event, latest ",
        "<td>StopLogging</td><td>cloudtrail.amazonaws.com</td><td>us-east-1</td><td>203.0.113.9</td><td></td><td>ctx-alice-100</td>",
        "<td>ConsoleLogin</td><td>signin.amazonaws.com</td><td>us-east-1</td><td>203.0.113.9</td><td>Failed authentication</td>",
        "<td>AccessDenied: not authorized</td>",
        "<td>GetCallerIdentity</td><td>sts.amazonaws.com</td><td>eu-north-1</td><td>198.51.100.77</td>",
        "<li>- INFO no previous trailgate requests</li>",
    ] {
        ensure!(
            page.contains(needle),
            "no {needle:?} on the confirm page:\n{page}"
        );
    }

    // The grant: approve, then the session's calls land in CloudTrail during the grant.
    let approved = ctx.post_decision(&mail.link, "decision=approve").await?;
    ensure!(approved.status == 200, "approve: {}", approved.text);
    // Retrying polls: `cargo lambda watch` restarts functions when sources change, and a poll
    // caught in a restart is no verdict.
    ctx.wait_for_any_retrying(
        &id,
        &["ACTIVE", "REVOKED", "AUDITED"],
        Duration::from_secs(30),
    )
    .await?;
    let alice = ctx.source_identity("alice")?;
    let session = vec![
        session_call(
            &alice,
            1,
            &id,
            "ListBuckets",
            "s3.amazonaws.com",
            Value::Null,
        ),
        session_call(
            &alice,
            2,
            &id,
            "PutObject",
            "s3.amazonaws.com",
            json!({"requestParameters": {"bucketName": "team-data", "key": "report.csv"}}),
        ),
        session_call(
            &alice,
            3,
            &id,
            "CreateUser",
            "iam.amazonaws.com",
            json!({"errorCode": "AccessDenied", "requestParameters": {"userName": "backdoor"}}),
        ),
        // Another grant's session of alice: not this audit's business.
        session_call(
            &alice,
            4,
            "r-someoneelse",
            "DeleteBucket",
            "s3.amazonaws.com",
            Value::Null,
        ),
    ];
    ensure!(ctx.seed_cloudtrail(&session).await? == 4);

    let audited = ctx
        .wait_for(&id, "AUDITED", Duration::from_secs(60))
        .await?;
    let cloudtrail = &audited["audit"]["cloudtrail"];
    ensure!(cloudtrail["analysed"] == true, "audit: {cloudtrail}");
    ensure!(cloudtrail["events"] == 3, "audit events: {cloudtrail}");
    ensure!(
        cloudtrail["actions_by_service"]["s3"]["PutObject"] == 1,
        "{cloudtrail}"
    );
    ensure!(
        cloudtrail["actions_by_service"]["s3"]["DeleteBucket"].is_null(),
        "{cloudtrail}"
    );
    ensure!(
        cloudtrail["reads"] == 1 && cloudtrail["writes"] == 2,
        "{cloudtrail}"
    );
    ensure!(
        cloudtrail["errors"]
            == json!([{"code": "AccessDenied", "action": "CreateUser", "count": 1}]),
        "{cloudtrail}"
    );
    ensure!(
        cloudtrail["resources"] == json!(["iam:backdoor", "s3:team-data"]),
        "{cloudtrail}"
    );
    // IAM's names for the calls (ListBuckets needs s3:ListAllMyBuckets), scoped to the object
    // the record names; the refused CreateUser is not suggested.
    ensure!(
        cloudtrail["suggested_policy"]["Statement"]
            == json!([
                {"Sid": "Useds3", "Effect": "Allow", "Action": ["s3:PutObject"],
                 "Resource": ["arn:aws:s3:::team-data/report.csv"]},
                {"Sid": "Useds32", "Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": "*"},
            ]),
        "{cloudtrail}"
    );
    ensure!(
        cloudtrail["suggested_policy_unmapped"] == json!({}),
        "{cloudtrail}"
    );
    ensure!(cloudtrail["coverage"]["truncated"] == false, "{cloudtrail}");
    late_delivery(ctx, &id, &alice, &audited).await?;

    // The next request: the reviewers see that grant and what its session did (a refused call
    // makes it worth a look).
    let next = ctx
        .new_request(request_body("sandbox-admin", "PT1H", "second look"))
        .await?;
    ensure!(next != id, "the audited request is closed");
    let mail = ctx.mail_to(&next, "bob@example.com").await?;
    let previous = format!("! LOW previous request {id} for sandbox-admin: AUDITED (asked ");
    for needle in [
        previous.as_str(),
        // The final report: with the call CloudTrail delivered late and the object read only
        // the trail bucket has (`late_delivery`).
        "; its session made 5 calls (3 writes, 1 failed) on s3, iam",
    ] {
        ensure!(
            mail.body.contains(needle),
            "no {needle:?} in the e-mail:\n{}",
            mail.body
        );
    }
    // Deny it, so the next test's request is a new one.
    let denied = ctx.post_decision(&mail.link, "decision=deny").await?;
    ensure!(denied.status == 200, "deny: {}", denied.text);
    Ok(())
}

/// LookupEvents refusing every call with `ThrottlingException` (a fault rule in the router):
/// the approval still goes out, saying the context is unavailable and why.
async fn context_unavailable(ctx: &Ctx) -> Result<()> {
    let faults = format!("{}/_local/faults", ctx.state.aws_endpoint);
    let rule = serde_json::json!({"service": "cloudtrail", "action": "LookupEvents",
                                  "error": "ThrottlingException", "count": 10_000});
    let added = ctx.http.post(&faults).json(&rule).send().await?;
    ensure!(added.status() == 200, "faults endpoint: {}", added.status());
    let result = async {
        let id = ctx
            .new_request(request_body(
                "sandbox-admin",
                "PT1H",
                "context when throttled",
            ))
            .await?;
        let mail = ctx.mail_to(&id, "bob@example.com").await?;
        Ok::<_, anyhow::Error>((id, mail))
    }
    .await;
    let listed: serde_json::Value = ctx.http.get(&faults).send().await?.json().await?;
    ctx.http.delete(&faults).send().await?;
    let (id, mail) = result?;
    ensure!(
        listed["rules"][0]["injected"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "the fault never fired: {listed}"
    );
    for needle in ["context unavailable", "throttled", "NOT checked"] {
        ensure!(
            mail.body.contains(needle),
            "no {needle:?} in the e-mail:\n{}",
            mail.body
        );
    }
    let request = ctx.status(&id).await?;
    ensure!(request["status"] == "PENDING", "{request}");
    ensure!(
        request["context"]["available"] == false,
        "{}",
        request["context"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reviewer_context_and_session_audit_on_the_local_stack() -> Result<()> {
    let parameters = [
        (
            "Catalog",
            catalog(&[Entry::new("sandbox-admin", role_arn(ROLE_NAME))]),
        ),
        ("AuditDelaySeconds", "1".to_owned()),
        // Room between the two passes for the late delivery.
        ("ReauditDelaySeconds", "20".to_owned()),
        // An Organization trail's bucket: the audit reads it besides LookupEvents.
        ("TrailBucket", TRAIL_BUCKET.to_owned()),
        ("TrailPrefix", "org/".to_owned()),
    ];
    run_on_stack("context", &parameters, |ctx| async move {
        // One after the other: the second makes every LookupEvents call fail.
        let findings = findings_and_audit(&ctx).await;
        let unavailable = context_unavailable(&ctx).await;
        report([
            ("findings and audit", findings),
            ("context unavailable", unavailable),
        ])
    })
    .await
}

/// Benchmark for BENCHMARKS.md ("Reviewer context"): time from request to approval e-mail for
/// 100, 1,000 and 10,000 events of requester history, against the router's real limits.
/// Ignored by default (it takes a few minutes); run it with
/// `cargo test -p trailgate-system-tests --test context -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run explicitly"]
async fn bench_reviewer_context_by_history_size() -> Result<()> {
    let parameters = [
        (
            "Catalog",
            catalog(&[Entry::new("sandbox-admin", role_arn(ROLE_NAME))]),
        ),
        ("AuditDelaySeconds", "1".to_owned()),
    ];
    run_on_stack("context-bench", &parameters, |ctx| async move {
        let mut seeded: u32 = 0;
        println!("| events | request → e-mail | events scanned | budget cut | oldest event (StopLogging) found | naive full pagination at 2 req/s |");
        println!("|---:|---:|---:|---|---|---:|");
        for target in [100u32, 1_000, 10_000] {
            // Spread over the week, newest first; every 50th a denied call, so there is something
            // to find at any depth.
            let records: Vec<Value> = (seeded..target)
                .map(|i| {
                    let minutes = 1 + u64::from(i) * (7 * 24 * 60 - 10) / 10_000;
                    let extra = if i % 50 == 0 {
                        json!({"errorCode": "AccessDenied"})
                    } else {
                        Value::Null
                    };
                    // The oldest event of the 10,000 is the one that matters most: the scan
                    // cannot reach it in the budget, the priority lookups must.
                    if i + 1 == 10_000 {
                        return alice(1_000_000 + i, minutes, "StopLogging", "cloudtrail.amazonaws.com", Value::Null);
                    }
                    alice(1_000_000 + i, minutes, "GetObject", "s3.amazonaws.com", extra)
                })
                .collect();
            for chunk in records.chunks(2_000) {
                ctx.seed_cloudtrail(chunk).await?;
            }
            seeded = target;
            // Let the previous request's LookupEvents window drain.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let started = Instant::now();
            let id = ctx
                .new_request(request_body("sandbox-admin", "PT1H", "benchmark"))
                .await?;
            ctx.mail_to(&id, "bob@example.com").await?;
            let elapsed = started.elapsed();
            let context = ctx.status(&id).await?["context"].clone();
            let summary = context["summary"].as_str().unwrap_or_default().to_owned();
            let scanned = summary
                .split(" from ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or("?")
                .to_owned();
            let found = context["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|line| line.starts_with("! HIGH Logging and monitoring tampering: StopLogging"));
            println!(
                "| {target} | {:.1} s | {scanned} | {} | {} | {:.0} s |",
                elapsed.as_secs_f64(),
                if summary.contains("INCOMPLETE") { "yes" } else { "no" },
                if found { "yes" } else { "no" },
                f64::from(target) / 50.0 / 2.0
            );
            ensure!(context["available"] == true, "context: {context}");
            ensure!(
                found == (target == 10_000),
                "StopLogging found: {found} at {target}: {context}"
            );
            // Deny so the next request's e-mail is the only new one.
            let mail = ctx.mail_to(&id, "bob@example.com").await?;
            ctx.post_decision(&mail.link, "decision=deny").await?;
        }
        Ok(())
    })
    .await
}
