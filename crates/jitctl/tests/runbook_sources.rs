//! `jitctl runbook run|explain` on its AWS sources, through the real binary:
//! - `s3://`: moto S3 holding the real logs of ../shared/data/cloudtrail at trail keys (standard
//!   and organization trails); the result must equal the same run on the local files.
//! - `lookup`: trailgate-local's LookupEvents router (moto has no LookupEvents) serving the same
//!   real logs with the real 2 calls/s limit; the findings must equal the local run's, and a tiny
//!   `--budget` must be reported as truncated.
//! - `athena`: moto's Athena, which does not execute SQL: it is given, as configured results,
//!   the section rows the engine computes on the real logs, so what is tested is the plumbing
//!   (the plan's statements reach Athena, polling, paging, the label row, the assembly). The SQL
//!   itself is proven on DuckDB by trailgate-runbooks' tests/sql_duckdb.rs.
//!
//! moto comes from `.venv` (`scripts/bootstrap.sh moto`); without it, or without the data, the
//! tests are skipped with a note (a failure when `CI` is set).

mod common;

use common::{cloudtrail_data, jitctl, moto, repository, s3_client, trail_bucket};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trailgate_runbooks::sql::{Dialect, Section};
use trailgate_runbooks::{Library, Params, RunbookResult};

const WINDOW: [&str; 2] = ["2023-07-10T11:00:00Z", "2023-07-10T13:00:00Z"];

/// `jitctl runbook run ... --format json`, parsed.
fn run_json(runbook: &str, extra: &[&str]) -> Value {
    let runbooks = repository().join("runbooks");
    let mut args = vec![
        "runbook",
        "run",
        runbook,
        "--dir",
        runbooks.to_str().expect("utf-8 path"),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = jitctl(&args);
    assert!(ok, "jitctl {args:?} failed:\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// The result without what only says where it came from.
fn findings(mut result: Value) -> Value {
    result["coverage"]
        .as_object_mut()
        .expect("coverage")
        .remove("notes");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_source_on_moto_equals_the_local_files() {
    let Some(data) = cloudtrail_data() else {
        return;
    };
    let Some(moto) = moto() else { return };
    let client = s3_client(&moto.url);
    let bucket = "trail-bucket";
    // The real aws_dataset files at the keys their names give (account, Region, delivery day),
    // and cloud-snitch's real gzip objects at their real keys: a standard and an organization trail.
    let logs = trail_bucket(&client, bucket, "trail/", "218007301253", &data).await;
    let (folder, snitch) = (logs.aws_dataset, logs.cloud_snitch);

    let s3 = format!("s3://{bucket}/trail/");
    let local = folder.to_str().expect("utf-8 path").to_owned();
    let window = ["--from", WINDOW[0], "--to", WINDOW[1]];
    let aws = ["--endpoint-url", moto.url.as_str(), "--region", "us-east-1"];
    let mut on_s3 = vec!["--source", s3.as_str(), "-p", "requester=benjamin"];
    on_s3.extend(window);
    on_s3.extend(aws);
    let mut on_files = vec!["--source", local.as_str(), "-p", "requester=benjamin"];
    on_files.extend(window);
    let from_s3 = run_json("requester-activity", &on_s3);
    let from_files = run_json("requester-activity", &on_files);
    assert_eq!(from_s3["coverage"]["files_read"], 55);
    assert_eq!(from_s3["coverage"]["events_matched"], 105);
    assert_eq!(findings(from_s3.clone()), findings(from_files));
    let note = from_s3["coverage"]["notes"][0].as_str().expect("a note");
    assert!(
        note.starts_with("s3://trail-bucket/trail/: 55 objects"),
        "{note}"
    );

    // The 2025 day: both trail layouts found and gunzipped; equal to the two local files.
    let mut on_s3 = vec![
        "--source",
        s3.as_str(),
        "--from",
        "2025-03-06T00:00:00Z",
        "--to",
        "2025-03-06T12:00:00Z",
    ];
    on_s3.extend(aws);
    let from_s3 = run_json("root-usage", &on_s3);
    let snitch_logs = snitch.to_str().expect("utf-8 path");
    let from_files = run_json(
        "root-usage",
        &[
            "--source",
            snitch_logs,
            "--from",
            "2025-03-06T00:00:00Z",
            "--to",
            "2025-03-06T12:00:00Z",
        ],
    );
    assert_eq!(from_s3["coverage"]["files_read"], 2);
    assert_eq!(from_s3["coverage"]["events_scanned"], 21);
    assert_eq!(findings(from_s3), findings(from_files));

    // explain lists the day prefixes the window and the delivery slack give.
    let runbooks = repository().join("runbooks");
    let mut args = vec![
        "runbook",
        "explain",
        "root-usage",
        "--dir",
        runbooks.to_str().expect("utf-8 path"),
        "--source",
        s3.as_str(),
        "--from",
        "2025-03-06T00:00:00Z",
        "--to",
        "2025-03-06T12:00:00Z",
    ];
    args.extend(aws);
    let (ok, stdout, stderr) = jitctl(&args);
    assert!(ok, "{stderr}");
    for prefix in [
        "trail/AWSLogs/333333333333/CloudTrail/us-east-1/2025/03/06/",
        "trail/AWSLogs/o-1234abcde/222222222222/CloudTrail/us-east-1/2025/03/06/",
    ] {
        assert!(stdout.contains(prefix), "{prefix} missing from:\n{stdout}");
    }
    // One day for each of the three accounts (the 2023 trail's account has no object that day).
    assert!(stdout.contains("3 day prefixes"), "{stdout}");
    assert!(stdout.contains("2 log objects"), "{stdout}");
}

/// Rows of two sources: the same columns, count and time order; records of one second have no
/// defined order (files are read oldest first, LookupEvents answers newest first), so they are
/// compared as multisets, leaving out the last second when the row limit cut through it.
fn same_rows(left: &Value, right: &Value) {
    assert_eq!(left["columns"], right["columns"]);
    assert_eq!(left["matched"], right["matched"]);
    let rows = |value: &Value| -> Vec<Vec<String>> {
        serde_json::from_value(value["rows"].clone()).expect("rows of text")
    };
    let (mut left_rows, mut right_rows) = (rows(left), rows(right));
    assert_eq!(left_rows.len(), right_rows.len());
    let time = left["columns"]
        .as_array()
        .and_then(|columns| columns.iter().position(|column| column == "eventTime"))
        .expect("rows carry eventTime");
    let times = |rows: &[Vec<String>]| rows.iter().map(|row| row[time].clone()).collect::<Vec<_>>();
    assert_eq!(times(&left_rows), times(&right_rows));
    let cut = left["matched"].as_u64() > Some(left_rows.len() as u64);
    if cut && let Some(last) = left_rows.last().map(|row| row[time].clone()) {
        left_rows.retain(|row| row[time] != last);
        right_rows.retain(|row| row[time] != last);
    }
    left_rows.sort();
    right_rows.sort();
    assert_eq!(left_rows, right_rows);
}

/// The local stack's router with only its LookupEvents side in use (no moto behind it).
fn router(data: &Path) -> trailgate_local::router::Router {
    install_crypto();
    let trail = trailgate_local::router::cloudtrail::CloudTrail::load(&[
        data.join("aws_dataset/CloudTrail")
    ])
    .expect("logs index");
    let aws = TcpListener::bind("127.0.0.1:0").expect("bind");
    let api = TcpListener::bind("127.0.0.1:0").expect("bind");
    trailgate_local::router::Router::start(
        aws,
        api,
        "http://127.0.0.1:9".to_owned(),
        trail,
        trailgate_local::router::Log::discard(),
    )
    .expect("router starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_source_on_the_local_router_finds_what_the_files_hold() {
    let Some(data) = cloudtrail_data() else {
        return;
    };
    let router = router(&data);
    let url = format!("http://127.0.0.1:{}", router.aws_port);
    let local = data.join("aws_dataset/CloudTrail");
    let local = local.to_str().expect("utf-8 path").to_owned();
    let window = ["--from", WINDOW[0], "--to", WINDOW[1]];
    let run = |extra: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut args: Vec<&str> = vec![
                "--source",
                "lookup",
                "--regions",
                "us-east-1,eu-west-1",
                "--endpoint-url",
                url.as_str(),
                "-p",
                "requester=benjamin",
            ];
            args.extend(window);
            args.extend(extra.iter().map(String::as_str));
            run_json("requester-activity", &args)
        })
    };
    let started = Instant::now();
    let from_lookup = run(Vec::new()).await.expect("joins");
    let elapsed = started.elapsed();
    let mut on_files = vec!["--source", local.as_str(), "-p", "requester=benjamin"];
    on_files.extend(window);
    let from_files = run_json("requester-activity", &on_files);

    // LookupEvents returns only Username=benjamin's events: fewer scanned, the same findings.
    let coverage = &from_lookup["coverage"];
    assert_eq!(coverage["truncated"], false, "{coverage}");
    assert_eq!(coverage["events_matched"], 105, "{coverage}");
    assert!(
        coverage["events_scanned"].as_u64() < from_files["coverage"]["events_scanned"].as_u64()
    );
    for section in ["counts", "top", "distinct", "first_last_seen"] {
        assert_eq!(
            from_lookup[section], from_files[section],
            "section {section}"
        );
    }
    same_rows(&from_lookup["rows"], &from_files["rows"]);
    let notes = coverage["notes"].to_string();
    assert!(
        notes.contains("LookupEvents: Username = benjamin in us-east-1, eu-west-1"),
        "{notes}"
    );
    // Two Regions at 2 calls/s each: the pacing is real (500 ms between calls).
    let pages = coverage["files_read"].as_u64().expect("pages");
    assert!(pages >= 4, "{coverage}");
    assert!(
        elapsed >= Duration::from_millis(500 * (pages - 1)),
        "{pages} pages in {elapsed:?}"
    );

    // A budget shorter than the scan: partial, and said so in the text output too.
    let tiny = run(vec!["--budget".into(), "0.7".into()])
        .await
        .expect("joins");
    assert_eq!(tiny["coverage"]["truncated"], true, "{}", tiny["coverage"]);
    assert!(tiny["coverage"]["files_read"].as_u64() < Some(pages));
    assert!(
        tiny["coverage"]["notes"]
            .to_string()
            .contains("deadline reached"),
        "{}",
        tiny["coverage"]
    );
    let runbooks = repository().join("runbooks");
    let text = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            jitctl(&[
                "runbook",
                "run",
                "requester-activity",
                "--dir",
                runbooks.to_str().expect("utf-8 path"),
                "--source",
                "lookup",
                "--endpoint-url",
                url.as_str(),
                "--budget",
                "0.7",
                "-p",
                "requester=benjamin",
                "--from",
                WINDOW[0],
                "--to",
                WINDOW[1],
            ])
        })
        .await
        .expect("joins")
    };
    assert!(text.0, "{}", text.2);
    assert!(text.1.contains("| TRUNCATED"), "{}", text.1);
    assert!(text.1.contains("note: deadline reached"), "{}", text.1);

    // explain names the attribute, its value and the Regions (us-east-1 added).
    let runbooks = repository().join("runbooks");
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        jitctl(&[
            "runbook",
            "explain",
            "requester-activity",
            "--dir",
            runbooks.to_str().expect("utf-8 path"),
            "--source",
            "lookup",
            "--regions",
            "eu-west-1",
            "-p",
            "requester=benjamin",
        ])
    })
    .await
    .expect("joins");
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("LookupEvents in eu-west-1, us-east-1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("server-side attribute Username = benjamin"),
        "{stdout}"
    );
    drop(router);
}

/// The rows each section query would return for `result`, as Athena sends them: a label row,
/// then every value as `VarCharValue`.
fn athena_rows(section: &Section, result: &RunbookResult, columns: &[String]) -> Value {
    let rows: Vec<Vec<String>> = match section {
        Section::Summary => vec![vec![
            result.coverage.events_scanned.to_string(),
            result.coverage.events_matched.to_string(),
            result.coverage.events_outside_window.to_string(),
        ]],
        Section::Rows => result.rows.as_ref().expect("rows").rows.clone(),
        Section::CountBy => {
            let counts = result.counts.as_ref().expect("counts");
            counts
                .groups
                .iter()
                .map(|group| {
                    let mut row = group.key.clone();
                    row.push(group.count.to_string());
                    if let Some(distinct) = group.distinct {
                        row.push(distinct.to_string());
                    }
                    row.push(counts.groups_total.to_string());
                    row
                })
                .collect()
        }
        Section::Top => result
            .top
            .as_ref()
            .expect("top")
            .values
            .iter()
            .map(|value| vec![value.value.clone(), value.count.to_string()])
            .collect(),
        Section::Distinct(field) => result
            .distinct
            .iter()
            .find(|distinct| &distinct.field == field)
            .expect("distinct")
            .values
            .iter()
            .map(|value| vec![value.value.clone(), value.count.to_string()])
            .collect(),
        Section::FirstLastSeen => result
            .first_last_seen
            .as_ref()
            .expect("first_last_seen")
            .entries
            .iter()
            .map(|entry| {
                let mut row = entry.key.clone();
                row.extend([
                    entry.first.clone(),
                    entry.last.clone(),
                    entry.count.to_string(),
                ]);
                row
            })
            .collect(),
    };
    let datum = |text: &String| json!({"VarCharValue": text});
    let mut all = vec![json!({"Data": columns.iter().map(datum).collect::<Vec<_>>()})];
    all.extend(
        rows.iter()
            .map(|row| json!({"Data": row.iter().map(datum).collect::<Vec<_>>()})),
    );
    json!({
        "rows": all,
        "column_info": columns.iter().map(|name| json!({
            "CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name, "Label": name,
            "Type": "varchar", "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": true,
        })).collect::<Vec<_>>(),
    })
}

/// The column names each section's query selects (see `sql::Section`).
fn columns(section: &Section, result: &RunbookResult) -> Vec<String> {
    let keys = |prefix: &str, count: usize| -> Vec<String> {
        (0..count)
            .map(|index| format!("{prefix}_{index}"))
            .collect()
    };
    match section {
        Section::Summary => vec![
            "events_scanned".into(),
            "events_matched".into(),
            "events_outside_window".into(),
        ],
        Section::Rows => keys("c", result.rows.as_ref().expect("rows").columns.len()),
        Section::CountBy => {
            let counts = result.counts.as_ref().expect("counts");
            let mut names = keys("key", counts.fields.len());
            names.push("event_count".into());
            if counts.distinct_field.is_some() {
                names.push("distinct_count".into());
            }
            names.push("groups_total".into());
            names
        }
        Section::Top | Section::Distinct(_) => vec!["value".into(), "event_count".into()],
        Section::FirstLastSeen => {
            let fields = result.first_last_seen.as_ref().expect("first_last_seen");
            let mut names = keys("key", fields.fields.len());
            names.extend([
                "first_seen".into(),
                "last_seen".into(),
                "event_count".into(),
            ]);
            names
        }
    }
}

/// reqwest is built without a crypto provider in this workspace; ring is the one it uses.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// One Athena JSON call to moto (moto does not check signatures).
async fn athena_call(http: &reqwest::Client, url: &str, action: &str, body: Value) -> Value {
    http.post(url)
        .header("x-amz-target", format!("AmazonAthena.{action}"))
        // moto picks the service from the credential scope.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/athena/aws4_request, SignedHeaders=host, Signature=0",
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_source_on_moto_runs_the_plan_and_assembles_the_result() {
    let Some(data) = cloudtrail_data() else {
        return;
    };
    let Some(moto) = moto() else { return };
    let logs = data.join("aws_dataset/CloudTrail");
    let library = Library::load_dir(repository().join("runbooks")).expect("library");
    let runbook = library.get("requester-activity").expect("runbook");
    let params = Params::new().set("requester", "benjamin").window(
        time::macros::datetime!(2023-07-10 11:00 UTC),
        time::macros::datetime!(2023-07-10 13:00 UTC),
    );
    let mut files = trailgate_runbooks::source::files::FileSource::new(&logs);
    let engine = trailgate_runbooks::run(runbook, &params, &mut files).expect("engine runs");
    assert!(engine.coverage.events_matched > 0);
    let compiled = runbook.compile(&params).expect("binds");
    let plan = compiled
        .to_sql(Dialect::Athena, "cloudtrail_logs")
        .expect("compiles");

    // Queue one configured result per statement, in the order jitctl starts them.
    let results: Vec<Value> = plan
        .queries
        .iter()
        .map(|query| athena_rows(&query.section, &engine, &columns(&query.section, &engine)))
        .collect();
    install_crypto();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let status = http
        .post(format!("{}/moto-api/static/athena/query-results", moto.url))
        .json(&json!({"region": "us-east-1", "results": results}))
        .send()
        .await
        .expect("moto answers")
        .status();
    assert_eq!(status.as_u16(), 201);

    let runbooks = repository().join("runbooks");
    let moto_url = moto.url.clone();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        jitctl(&[
            "runbook",
            "run",
            "requester-activity",
            "--dir",
            runbooks.to_str().expect("utf-8 path"),
            "--source",
            "athena",
            "--athena-database",
            "security",
            "--athena-table",
            "cloudtrail_logs",
            "--workgroup",
            "primary",
            "--output-location",
            "s3://athena-results/runbooks/",
            "--endpoint-url",
            moto_url.as_str(),
            "--region",
            "us-east-1",
            "-p",
            "requester=benjamin",
            "--from",
            WINDOW[0],
            "--to",
            WINDOW[1],
            "--format",
            "json",
        ])
    })
    .await
    .expect("joins");
    assert!(ok, "{stderr}");
    let from_athena: Value = serde_json::from_str(&stdout).expect("JSON");
    let mut expected = serde_json::to_value(&engine).expect("serializes");
    expected["coverage"]["files_read"] = json!(0);
    assert_eq!(findings(from_athena.clone()), findings(expected));
    let note = from_athena["coverage"]["notes"][0].as_str().expect("note");
    assert!(
        note.starts_with(&format!(
            "Athena security.cloudtrail_logs: {} queries",
            plan.queries.len()
        )),
        "{note}"
    );

    // Athena received exactly the plan's statements, in the database and workgroup given.
    let listed = athena_call(&http, &moto.url, "ListQueryExecutions", json!({})).await;
    let ids = listed["QueryExecutionIds"].as_array().expect("ids");
    assert_eq!(ids.len(), plan.queries.len());
    let mut received = Vec::new();
    for id in ids {
        let execution = athena_call(
            &http,
            &moto.url,
            "GetQueryExecution",
            json!({"QueryExecutionId": id}),
        )
        .await;
        let execution = &execution["QueryExecution"];
        assert_eq!(execution["QueryExecutionContext"]["Database"], "security");
        received.push(execution["Query"].as_str().expect("query").to_owned());
    }
    let mut sent: Vec<String> = plan.queries.iter().map(|query| query.sql.clone()).collect();
    received.sort();
    sent.sort();
    assert_eq!(received, sent);
    // The parameter reached the SQL only as a quoted literal.
    assert!(sent.iter().any(|sql| sql.contains("'benjamin'")));

    // explain with `--source athena` prints the Athena SQL for the table given.
    let runbooks = repository().join("runbooks");
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        jitctl(&[
            "runbook",
            "explain",
            "requester-activity",
            "--dir",
            runbooks.to_str().expect("utf-8 path"),
            "--source",
            "athena",
            "--athena-table",
            "trail_table",
            "--dialect",
            "duckdb",
            "-p",
            "requester=benjamin",
        ])
    })
    .await
    .expect("joins");
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("SQL (athena, table trail_table)"),
        "{stdout}"
    );
    assert!(stdout.contains("FROM \"trail_table\""), "{stdout}");
}

#[test]
fn html_format_is_a_page() {
    let Some(data) = cloudtrail_data() else {
        return;
    };
    let logs = data.join("aws_dataset/CloudTrail");
    let runbooks = repository().join("runbooks");
    let (ok, stdout, stderr) = jitctl(&[
        "runbook",
        "run",
        "requester-activity",
        "--dir",
        runbooks.to_str().expect("utf-8 path"),
        "--source",
        logs.to_str().expect("utf-8 path"),
        "-p",
        "requester=benjamin",
        "--from",
        WINDOW[0],
        "--to",
        WINDOW[1],
        "--format",
        "html",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("<!DOCTYPE html>"), "{stdout}");
    assert!(
        stdout.contains("<dt>events matched</dt><dd>105</dd>"),
        "{stdout}"
    );
    assert!(stdout.contains("<table>"));
}
