//! Issue 16, item 4: the runbook-scan state machine (`statemachine/runbook-scan.asl.json`) on
//! the local stack, run by moto's Step Functions interpreter: `Plan` lists a trail bucket's
//! window, the Distributed Map reads the batch manifest through its S3 ItemReader and runs the
//! scan function once per batch, `Merge` merges the parts. The result must equal the engine's
//! one S3 scan of the same bucket and window, and the run's objects must be gone. One scan is
//! started and followed by jitctl's own code (`runbook run --on aws`), whose result is read
//! back into the engine's `RunbookResult`.
//!
//! On moto's interpreter (5.2.5) the Map's `ItemReader` (`s3:getObject`, JSON), its
//! `ItemSelector` with `$$.Map.Item.Value`, the Lambda steps and their payloads, and
//! `DescribeMapRun`'s item counts (jitctl's progress line) are exercised for real. Not covered
//! here: the child executions' Lambda concurrency and throttling at AWS's scale, `MaxConcurrency`
//! as a limit, and IAM (moto enforces none; iam_eval.rs judges the scan roles' policies). The
//! design needs neither `ItemBatcher` (the plan writes its batches as the items) nor
//! `ResultWriter` (each batch writes its own part), which moto 5.2.5 lacks and writes empty.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use trailgate_system_tests::{Ctx, run_on_stack};

const TRAIL: &str = "scan-trail";
const ACCOUNTS: [&str; 2] = ["111122223333", "444455556666"];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

/// Records of three kinds over 2026-12-01: writes to the trail (StopLogging), denied calls,
/// and reads; `n` makes each distinct, and every fourth shares its time with the one before.
fn record(n: usize, account: &str, region: &str) -> Value {
    let minute = (n - n / 4) % (24 * 60);
    let (name, source, error) = match n % 3 {
        0 => ("StopLogging", "cloudtrail.amazonaws.com", None),
        1 => (
            "GetSecretValue",
            "secretsmanager.amazonaws.com",
            Some("AccessDenied"),
        ),
        _ => ("ListBuckets", "s3.amazonaws.com", None),
    };
    json!({
        "eventVersion": "1.11",
        "eventID": format!("scan-{n}"),
        "eventTime": format!("2026-12-01T{:02}:{:02}:00Z", minute / 60, minute % 60),
        "eventName": name,
        "eventSource": source,
        "awsRegion": region,
        "recipientAccountId": account,
        "sourceIPAddress": "203.0.113.7",
        "errorCode": error,
        "readOnly": name != "StopLogging",
        "userIdentity": {"type": "IAMUser", "userName": format!("user{}", n % 5),
            "arn": format!("arn:aws:iam::{account}:user/user{}", n % 5), "accountId": account},
    })
}

/// Delivers 24 objects (6 per account and Region) of 10 records each into the trail bucket,
/// as an Organization trail lays them out, gzipped.
async fn deliver(ctx: &Ctx) -> Result<usize> {
    let s3 = ctx.s3();
    s3.create_bucket().bucket(TRAIL).send().await?;
    let mut n = 0;
    let mut objects = 0;
    for account in ACCOUNTS {
        for region in REGIONS {
            for object in 0..6 {
                let records: Vec<Value> = (0..10)
                    .map(|_| {
                        n += 1;
                        record(n, account, region)
                    })
                    .collect();
                let hour = 4 * object;
                let key = format!(
                    "org/AWSLogs/o-exampleorg1/{account}/CloudTrail/{region}/2026/12/01/{account}_CloudTrail_{region}_20261201T{hour:02}05Z_{object}.json.gz"
                );
                let mut gzip =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gzip.write_all(json!({ "Records": records }).to_string().as_bytes())?;
                s3.put_object()
                    .bucket(TRAIL)
                    .key(key)
                    .body(gzip.finish()?.into())
                    .send()
                    .await?;
                objects += 1;
            }
        }
    }
    Ok(objects)
}

/// Starts a scan and waits for it to end: its status and output (or error).
async fn scan(ctx: &Ctx, name: &str, input: Value) -> Result<(String, Value)> {
    let machine = ctx.output("RunbookScanStateMachineArn")?;
    let started = ctx
        .sfn
        .start_execution()
        .state_machine_arn(machine)
        .name(name)
        .input(input.to_string())
        .send()
        .await?;
    let began = Instant::now();
    loop {
        let described = ctx
            .sfn
            .describe_execution()
            .execution_arn(started.execution_arn())
            .send()
            .await?;
        let status = described.status().as_str().to_owned();
        if status != "RUNNING" {
            let output = match described.output() {
                Some(text) => serde_json::from_str(text)?,
                None => json!({"error": described.error(), "cause": described.cause()}),
            };
            return Ok((status, output));
        }
        ensure!(
            began.elapsed() < Duration::from_secs(180),
            "the scan {name} is still running after 3 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The engine's own S3 scan of the same bucket and window, through the stack's S3.
async fn one_scan(ctx: &Ctx, runbook: &str, request: &Value) -> Result<Value> {
    let library = trailgate_runbooks::Library::load_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks"),
    )?;
    let runbook = library.get(runbook).context("runbook")?;
    let request: trailgate_runbooks::source::distributed::ScanRequest =
        serde_json::from_value(request.clone())?;
    let params = request.params()?;
    let store = trailgate_aws::s3::S3Store::from_client(ctx.s3());
    let location = trailgate_runbooks::source::s3::S3Location::parse(&format!("s3://{TRAIL}/org/"))
        .context("location")?;
    let source = trailgate_runbooks::source::s3::S3Source::new(&store, location).options(
        trailgate_runbooks::source::s3::S3Options {
            accounts: request.accounts.clone(),
            regions: request.regions.clone(),
            ..Default::default()
        },
    );
    let result = trailgate_runbooks::source::s3::run_s3(runbook, &params, &source).await?;
    Ok(serde_json::to_value(&result)?)
}

/// Both results without their notes (each says how it read the bucket).
fn comparable(mut result: Value) -> Value {
    result["coverage"]["notes"] = json!([]);
    result
}

async fn scenarios(ctx: Ctx) -> Result<()> {
    let objects = deliver(&ctx).await?;
    let scan_bucket = ctx.output("ScanBucketName")?.to_owned();
    let mut checked = BTreeMap::new();
    for (runbook, accounts, regions) in [
        ("logging-tampering", json!([]), json!([])),
        ("access-denied", json!([ACCOUNTS[1]]), json!(["eu-west-1"])),
    ] {
        let request = json!({"runbook": runbook, "params": {}, "start": "2026-12-01T00:00:00Z",
                             "end": "2026-12-02T00:00:00Z", "accounts": accounts, "regions": regions});
        let name = format!("scan-{runbook}");
        let output = if runbook == "logging-tampering" {
            // As `jitctl runbook run logging-tampering --on aws` runs it.
            let config = trailgate_local::cloudformation::sdk_config(&ctx.state.aws_endpoint);
            let (result, mut summary) = jitctl::runbook::remote::scan_on_aws(
                &config,
                ctx.output("RunbookScanStateMachineArn")?,
                &serde_json::from_value(request.clone())?,
                &name,
            )
            .await?;
            summary["result"] = serde_json::to_value(&result)?;
            summary
        } else {
            let (status, output) = scan(&ctx, &name, request.clone()).await?;
            ensure!(status == "SUCCEEDED", "{name}: {status}: {output}");
            output
        };
        let batches = output["batches"].as_u64().context("batches")?;
        // ScanBatchBytes is small here: several batches even for one account and Region.
        ensure!(batches >= 3, "{name}: {batches} batches: {output}");
        let expected = one_scan(&ctx, runbook, &request).await?;
        ensure!(
            comparable(output["result"].clone()) == comparable(expected.clone()),
            "{name}: the distributed result differs from one scan\n distributed: {}\n one scan: {expected}",
            output["result"]
        );
        let matched = expected["coverage"]["events_matched"].as_u64().unwrap_or(0);
        ensure!(matched > 0, "{name}: matched nothing: {expected}");
        checked.insert(runbook, (batches, output["objects"].clone(), matched));
    }
    ensure!(
        checked["logging-tampering"].1 == json!(objects),
        "the whole window's plan: {checked:?}"
    );
    // Nothing of the runs is left in the scan bucket.
    let left = ctx
        .s3()
        .list_objects_v2()
        .bucket(&scan_bucket)
        .prefix("runs/")
        .send()
        .await?;
    ensure!(
        left.contents().is_empty(),
        "the scan bucket still holds {:?}",
        left.contents().iter().map(|o| o.key()).collect::<Vec<_>>()
    );

    // A request the plan refuses fails the execution with the reason, and changes nothing.
    let (status, output) = scan(
        &ctx,
        "scan-refused",
        json!({"runbook": "no-such-runbook", "start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}),
    )
    .await?;
    ensure!(status == "FAILED", "{status}: {output}");
    let cause = output["cause"].as_str().unwrap_or_default();
    if !(output["error"] == "InvalidRequest" && cause.contains("no runbook `no-such-runbook`")) {
        bail!("refused scan: {output}");
    }
    println!("runbook scans on the local stack: {checked:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_runbook_scan_state_machine_equals_one_scan_on_the_local_stack() -> Result<()> {
    let parameters = [
        ("TrailBucket", TRAIL.to_owned()),
        ("TrailPrefix", "org/".to_owned()),
        // About two objects per batch.
        ("ScanBatchBytes", "1200".to_owned()),
    ];
    run_on_stack("runbook-scan", &parameters, scenarios).await
}
