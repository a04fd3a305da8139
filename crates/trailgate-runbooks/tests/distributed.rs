//! The runbook-scan state machine's steps over an in-memory trail bucket: the fixtures' records
//! re-timed into three days and delivered as gzipped objects under two accounts and two
//! Regions of an Organization trail. For every runbook, planning the window into small batches,
//! scanning each batch into a state sent through JSON, and merging the states (in reverse
//! order) equals one S3 scan of the window. Missing, repeated and foreign parts, hand-made
//! batches and bad requests are refused.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;

use common::{fixture, identity_center_params, library};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use trailgate_runbooks::source::distributed::{
    BatchLimits, DistributedError, ScanRequest, merge, plan, scan_batch,
};
use trailgate_runbooks::source::files::Limits;
use trailgate_runbooks::source::memory_bucket::MemoryBucket;
use trailgate_runbooks::source::s3::{S3Location, S3Source, run_s3};
use trailgate_runbooks::{Runbook, RunbookResult, ScanState};

const PREFIX: &str = "org/";
const START: OffsetDateTime = datetime!(2026-12-01 0:00 UTC);

fn records() -> Vec<Value> {
    let mut out = Vec::new();
    for name in ["breadth.ndjson", "attacks.ndjson", "benign-day.ndjson"] {
        let text = std::fs::read_to_string(fixture(name)).expect("fixture");
        out.extend(
            text.lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| serde_json::from_str::<Value>(line).expect("record")),
        );
    }
    out
}

/// The fixtures' records over three days from [`START`], three at each time (so equal times
/// fall in different objects), in objects of seven records delivered five minutes after their
/// last record, under each record's account (or a second one) and Region.
fn bucket() -> MemoryBucket {
    let mut objects: BTreeMap<(String, String), Vec<(OffsetDateTime, Value)>> = BTreeMap::new();
    for (i, mut record) in records().into_iter().enumerate() {
        let at = START + time::Duration::minutes(((i / 3) * 23) as i64);
        record["eventTime"] = json!(
            at.format(&time::format_description::well_known::Rfc3339)
                .expect("formats")
        );
        let account = record["recipientAccountId"]
            .as_str()
            .filter(|a| a.len() == 12)
            .unwrap_or(if i % 2 == 0 {
                "111122223333"
            } else {
                "444455556666"
            })
            .to_owned();
        let region = record["awsRegion"]
            .as_str()
            .unwrap_or("us-east-1")
            .to_owned();
        objects
            .entry((account, region))
            .or_default()
            .push((at, record));
    }
    let bucket = MemoryBucket::default();
    for ((account, region), records) in objects {
        for (n, chunk) in records.chunks(7).enumerate() {
            let delivered = chunk.iter().map(|(at, _)| *at).max().expect("records")
                + time::Duration::minutes(5);
            let (y, m, d) = (
                delivered.year(),
                u8::from(delivered.month()),
                delivered.day(),
            );
            let key = format!(
                "{PREFIX}AWSLogs/o-exampleorg1/{account}/CloudTrail/{region}/{y:04}/{m:02}/{d:02}/{account}_CloudTrail_{region}_{y:04}{m:02}{d:02}T{:02}{:02}Z_{n:04}.json.gz",
                delivered.hour(),
                delivered.minute()
            );
            let body: Vec<&Value> = chunk.iter().map(|(_, record)| record).collect();
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(json!({ "Records": body }).to_string().as_bytes())
                .expect("gzip");
            bucket.put(key, gz.finish().expect("gzip"));
        }
    }
    bucket
}

fn request(runbook: &str) -> ScanRequest {
    let mut params = BTreeMap::new();
    let mut set = |name: &str, value: &str| params.insert(name.to_owned(), value.to_owned());
    match runbook {
        "requester-activity" => drop(set("requester", "mallory")),
        "access-key-activity" => drop(set("access_key_id", "AKIAEXAMPLEMALLORY01")),
        "resource-history" => drop(set("resource", "orders")),
        "jit-session-audit" => {
            set("requester", "alice");
            set("request_id", "r-7f3a9c");
            set("session_name", "tg-alice-r-7f3a9c");
        }
        _ => {}
    }
    ScanRequest {
        runbook: runbook.to_owned(),
        params,
        start: "2026-12-01T00:00:00Z".into(),
        end: "2026-12-04T00:00:00Z".into(),
        accounts: Vec::new(),
        regions: Vec::new(),
    }
}

fn without_notes(mut result: RunbookResult) -> RunbookResult {
    result.coverage.notes.clear();
    result
}

/// Plans, scans every batch (each state through JSON, as a Lambda returns it) and merges the
/// parts in reverse order.
async fn distributed(
    runbook: &Runbook,
    request: &ScanRequest,
    store: &MemoryBucket,
    limits: BatchLimits,
) -> (usize, RunbookResult) {
    let params = match runbook.id() {
        "identity-center-session-audit" => identity_center_params(request.params().expect("binds")),
        _ => request.params().expect("binds"),
    };
    let compiled = runbook.compile(&params).expect("compiles");
    let source = S3Source::new(
        store,
        S3Location::parse("s3://trail/org/").expect("location"),
    );
    let plan = plan(&source, &compiled, limits).await.expect("plans");
    let mut parts = Vec::new();
    for batch in &plan.batches {
        // The batch goes to its Lambda as JSON too.
        let batch =
            serde_json::from_value(serde_json::to_value(batch).expect("batch")).expect("batch");
        let state = scan_batch(
            &compiled,
            store,
            "trail",
            PREFIX,
            &batch,
            3,
            Limits::default(),
        )
        .await
        .expect("scans");
        let text = serde_json::to_string(&state).expect("state");
        parts.push((
            batch.index,
            serde_json::from_str::<ScanState>(&text).expect("state"),
        ));
    }
    parts.reverse();
    let count = plan.batches.len();
    (count, merge(&compiled, parts, count, None).expect("merges"))
}

#[tokio::test]
async fn every_runbook_planned_into_batches_scanned_and_merged_equals_one_s3_scan() {
    let store = bucket();
    let library = library();
    let limits = BatchLimits {
        max_bytes: 4096,
        max_keys: 3,
    };
    let mut matched = 0;
    for runbook in library.iter() {
        let request = request(runbook.id());
        let params = match runbook.id() {
            "identity-center-session-audit" => identity_center_params(request.params().unwrap()),
            _ => request.params().unwrap(),
        };
        let source = S3Source::new(&store, S3Location::parse("s3://trail/org/").unwrap());
        let expected = without_notes(run_s3(runbook, &params, &source).await.expect("s3 scan"));
        let (batches, result) = distributed(runbook, &request, &store, limits).await;
        assert!(batches >= 10, "{}: only {batches} batches", runbook.id());
        assert_eq!(without_notes(result), expected, "{}", runbook.id());
        if expected.coverage.events_matched > 0 {
            matched += 1;
        }
    }
    assert!(matched >= 20, "only {matched} runbooks matched anything");
}

#[tokio::test]
async fn the_plan_keeps_to_the_window_accounts_and_regions_and_cuts_by_bytes_and_count() {
    let store = bucket();
    let library = library();
    let runbook = library.get("logging-tampering").expect("runbook");
    let mut request = request("logging-tampering");
    request.accounts = vec!["111122223333".into()];
    request.regions = vec!["eu-west-1".into()];
    let compiled = runbook.compile(&request.params().unwrap()).unwrap();
    let options = trailgate_runbooks::source::s3::S3Options {
        accounts: request.accounts.clone(),
        regions: request.regions.clone(),
        ..Default::default()
    };
    let source =
        S3Source::new(&store, S3Location::parse("s3://trail/org/").unwrap()).options(options);
    let plan = plan(
        &source,
        &compiled,
        BatchLimits {
            max_bytes: u64::MAX,
            max_keys: 2,
        },
    )
    .await
    .unwrap();
    assert!(plan.objects >= 2, "{plan:?}");
    assert!(plan.batches.iter().all(|b| b.keys.len() <= 2));
    assert!(
        plan.batches
            .iter()
            .flat_map(|b| &b.keys)
            .all(|key| key.contains("/111122223333/CloudTrail/eu-west-1/"))
    );
    // Object numbers run on from batch to batch.
    let mut next = 0;
    for (i, batch) in plan.batches.iter().enumerate() {
        assert_eq!((batch.index, batch.first_file), (i, next));
        next += batch.keys.len();
    }
    assert_eq!(next, plan.objects);
    // One object bigger than the byte limit still gets a batch of its own.
    let tiny = plan_with(&source, &compiled, 1).await;
    assert_eq!(tiny, plan.objects);
}

async fn plan_with(
    source: &S3Source<&MemoryBucket>,
    compiled: &trailgate_runbooks::Compiled<'_>,
    max_bytes: u64,
) -> usize {
    plan(
        source,
        compiled,
        BatchLimits {
            max_bytes,
            max_keys: 500,
        },
    )
    .await
    .unwrap()
    .batches
    .len()
}

#[tokio::test]
async fn missing_repeated_and_foreign_parts_and_hand_made_batches_are_refused() {
    let store = bucket();
    let library = library();
    let runbook = library.get("access-denied").expect("runbook");
    let request = request("access-denied");
    let compiled = runbook.compile(&request.params().unwrap()).unwrap();
    let source = S3Source::new(&store, S3Location::parse("s3://trail/org/").unwrap());
    let plan = plan(
        &source,
        &compiled,
        BatchLimits {
            max_bytes: u64::MAX,
            max_keys: 4,
        },
    )
    .await
    .unwrap();
    assert!(plan.batches.len() >= 3);
    let mut parts = Vec::new();
    for batch in &plan.batches {
        let state = scan_batch(
            &compiled,
            &store,
            "trail",
            PREFIX,
            batch,
            2,
            Limits::default(),
        )
        .await
        .unwrap();
        parts.push((batch.index, state));
    }
    let expected = plan.batches.len();
    let missing = merge(&compiled, parts[1..].to_vec(), expected, None).unwrap_err();
    assert!(
        matches!(&missing, DistributedError::Parts { missing, .. } if missing == &vec![0]),
        "{missing}"
    );
    let mut repeated = parts.clone();
    repeated[1].0 = 0;
    assert_eq!(
        merge(&compiled, repeated, expected, None)
            .unwrap_err()
            .error_type(),
        "PartsInvalid"
    );
    // A part of another runbook's scan.
    let other = library.get("logging-tampering").unwrap();
    let other = other.compile(&request.params().unwrap()).unwrap();
    let foreign = scan_batch(
        &other,
        &store,
        "trail",
        PREFIX,
        &plan.batches[0],
        2,
        Limits::default(),
    )
    .await
    .unwrap();
    let mut mixed = parts.clone();
    mixed[0].1 = foreign;
    let refused = merge(&compiled, mixed, expected, None).unwrap_err();
    assert!(
        matches!(refused, DistributedError::Part { index: 0, .. }),
        "{refused}"
    );
    assert!(merge(&compiled, parts, expected, None).is_ok());

    // A batch naming keys outside the trail's logs.
    for key in [
        "org/secrets/creds.json".to_owned(),
        "other/AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01/111122223333_CloudTrail_us-east-1_20261201T0000Z_x.json.gz".to_owned(),
        "org/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/12/01/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20261201T0000Z.json.gz".to_owned(),
    ] {
        let mut batch = plan.batches[0].clone();
        batch.keys.push(key.clone());
        let error = scan_batch(&compiled, &store, "trail", PREFIX, &batch, 2, Limits::default())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "InvalidScan", "{key}");
    }
}

#[test]
fn a_request_is_bound_only_with_an_explicit_window_and_clean_filters() {
    let good = request("access-denied");
    assert!(good.params().is_ok());
    for (edit, needle) in [
        (json!({"start": "yesterday"}), "not an RFC 3339 time"),
        (json!({"end": "2026-12-01T00:00:00Z"}), "is empty"),
        (json!({"accounts": ["1111"]}), "`1111` is not an account id"),
        (
            json!({"regions": ["us-east-1/../x"]}),
            "not an account id (12 digits) or a Region",
        ),
    ] {
        let mut value = serde_json::to_value(&good).unwrap();
        for (key, field) in edit.as_object().unwrap() {
            value[key] = field.clone();
        }
        let request: ScanRequest = serde_json::from_value(value).unwrap();
        let error = request.params().unwrap_err();
        assert_eq!(error.error_type(), "InvalidScan");
        assert!(error.to_string().contains(needle), "{error}");
    }
    let mut unknown = serde_json::to_value(&good).unwrap();
    unknown["bucket"] = json!("someone-elses-bucket");
    assert!(serde_json::from_value::<ScanRequest>(unknown).is_err());
}
