//! Translates the runbook-scan state machine's three steps into
//! `trailgate_runbooks::source::distributed`:
//! - `plan` (state `Plan`): binds the request, lists the window's objects of the trail bucket,
//!   writes the batches as the Map's item manifest `runs/<run>/batches.json` in the scan bucket;
//! - `scan` (each Map item, `Scan Batch`): scans one batch and writes its part's state to
//!   `runs/<run>/parts/<index>.json` (a retried batch overwrites its own part, so each counts
//!   once), returning only its index: states can be larger than a Map result may be;
//! - `merge` (`Merge`): reads every part, merges them with the engine's own merge, deletes the
//!   run's objects and returns the result, cut to fit Step Functions' output limit.
//!
//! The trail is the one the stack was deployed with (`TRAIL_BUCKET`, `TRAIL_PREFIX`): a request
//! chooses the runbook, its parameters, the window, accounts and Regions, never a bucket.

use serde::Deserialize;
use serde_json::{Value, json};
use trailgate_aws::LambdaError;
use trailgate_domain::error::Error;
use trailgate_runbooks::source::distributed::{
    self, Batch, BatchLimits, DistributedError, ScanRequest,
};
use trailgate_runbooks::source::files::Limits;
use trailgate_runbooks::source::s3::{
    ListRequest, ObjectStore, ObjectWriter, S3Location, S3Options, S3Source, StoreError,
};
use trailgate_runbooks::{Compiled, Library, ScanState};

/// What the handler needs, built once at cold start.
pub struct Deps<S> {
    /// S3: the trail bucket (read) and the scan bucket (read and write).
    pub store: S,
    pub library: Library,
    /// The trail the stack reads, or `None` when `TRAIL_BUCKET` is empty.
    pub trail: Option<S3Location>,
    /// The scan bucket (`ScanBucket`): manifests and parts of running scans.
    pub scan_bucket: String,
    pub limits: BatchLimits,
}

/// Objects fetched at once by one batch.
const PARALLELISM: usize = 8;

/// The most of the result the `Merge` step returns: Step Functions' limit is 256 KiB, and the
/// execution's output carries a few fields besides.
const MAX_RESULT_BYTES: usize = 200 * 1024;

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
enum Input {
    Plan {
        run: String,
        request: ScanRequest,
    },
    Scan {
        run: String,
        request: ScanRequest,
        batch: Batch,
    },
    Merge {
        run: String,
        request: ScanRequest,
        batches: usize,
        #[serde(default)]
        objects: usize,
        #[serde(default)]
        bytes: u64,
    },
}

pub async fn handle<S: ObjectStore + ObjectWriter + Sync>(
    payload: Value,
    deps: &Deps<S>,
) -> Result<Value, LambdaError> {
    let input: Input = serde_json::from_value(payload)
        .map_err(|err| Error::invalid("input", format!("not a runbook-scan step: {err}")))?;
    let trail = deps.trail.as_ref().ok_or_else(|| {
        Error::invalid(
            "trail",
            "no trail bucket is configured (template parameter TrailBucket)",
        )
    })?;
    match input {
        Input::Plan { run, request } => plan(deps, trail, &run, request).await,
        Input::Scan {
            run,
            request,
            batch,
        } => scan(deps, trail, &run, &request, &batch).await,
        Input::Merge {
            run,
            request,
            batches,
            objects,
            bytes,
        } => merge(deps, &run, &request, batches, objects, bytes).await,
    }
    .map_err(LambdaError::from)
}

/// The run's objects live under `runs/<run>/`: the execution's name, which Step Functions keeps
/// to letters, digits, `-` and `_`; anything else is refused before it reaches a key.
fn run_prefix(run: &str) -> Result<String, Error> {
    let safe = !run.is_empty()
        && run.len() <= 80
        && run
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !safe {
        return Err(Error::invalid(
            "run",
            format!("`{run}` is not an execution name (letters, digits, - and _; 80 at most)"),
        ));
    }
    Ok(format!("runs/{run}/"))
}

fn domain(error: DistributedError) -> Error {
    match error {
        DistributedError::Source(_) => Error::retryable(error.to_string()),
        DistributedError::Parts { .. } | DistributedError::Part { .. } => {
            Error::internal(error.to_string())
        }
        _ => Error::invalid("request", error.to_string()),
    }
}

fn stored(what: &str, error: StoreError) -> Error {
    Error::retryable(format!("{what}: {error}"))
}

fn bind<'l>(library: &'l Library, request: &ScanRequest) -> Result<Compiled<'l>, Error> {
    let runbook = library
        .get(&request.runbook)
        .ok_or_else(|| domain(DistributedError::UnknownRunbook(request.runbook.clone())))?;
    let params = request.params().map_err(domain)?;
    runbook
        .compile(&params)
        .map_err(|error| domain(DistributedError::Params(error)))
}

async fn plan<S: ObjectStore + ObjectWriter + Sync>(
    deps: &Deps<S>,
    trail: &S3Location,
    run: &str,
    request: ScanRequest,
) -> Result<Value, Error> {
    let prefix = run_prefix(run)?;
    let compiled = bind(&deps.library, &request)?;
    let source = S3Source::new(&deps.store, trail.clone()).options(S3Options {
        accounts: request.accounts.clone(),
        regions: request.regions.clone(),
        ..S3Options::default()
    });
    let plan = distributed::plan(&source, &compiled, deps.limits)
        .await
        .map_err(domain)?;
    let manifest = format!("{prefix}batches.json");
    let body = serde_json::to_vec(&plan.batches)
        .map_err(|err| Error::internal(format!("the batches do not serialize: {err}")))?;
    deps.store
        .put_object(&deps.scan_bucket, &manifest, body)
        .await
        .map_err(|err| stored("writing the batch manifest", err))?;
    tracing::info!(run, runbook = %request.runbook, batches = plan.batches.len(), objects = plan.objects, bytes = plan.bytes, "scan planned");
    Ok(json!({
        "run": run,
        "request": request,
        "manifest": {"bucket": deps.scan_bucket, "key": manifest},
        "batches": plan.batches.len(),
        "objects": plan.objects,
        "bytes": plan.bytes,
    }))
}

async fn scan<S: ObjectStore + ObjectWriter + Sync>(
    deps: &Deps<S>,
    trail: &S3Location,
    run: &str,
    request: &ScanRequest,
    batch: &Batch,
) -> Result<Value, Error> {
    let prefix = run_prefix(run)?;
    let compiled = bind(&deps.library, request)?;
    let state = distributed::scan_batch(
        &compiled,
        &deps.store,
        &trail.bucket,
        &trail.prefix,
        batch,
        PARALLELISM,
        Limits::default(),
    )
    .await
    .map_err(domain)?;
    let body = serde_json::to_vec(&state)
        .map_err(|err| Error::internal(format!("the part does not serialize: {err}")))?;
    let key = format!("{prefix}parts/{:06}.json", batch.index);
    deps.store
        .put_object(&deps.scan_bucket, &key, body)
        .await
        .map_err(|err| stored("writing the part", err))?;
    Ok(json!({"index": batch.index, "objects": batch.keys.len()}))
}

/// Every key under `prefix` in the scan bucket.
async fn keys_under<S: ObjectStore>(
    store: &S,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, Error> {
    let mut keys = Vec::new();
    let mut continuation = None;
    loop {
        let page = store
            .list(ListRequest {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
                delimiter: None,
                continuation,
            })
            .await
            .map_err(|err| stored("listing the parts", err))?;
        keys.extend(page.objects.into_iter().map(|(key, _)| key));
        match page.continuation {
            Some(token) => continuation = Some(token),
            None => return Ok(keys),
        }
    }
}

async fn merge<S: ObjectStore + ObjectWriter + Sync>(
    deps: &Deps<S>,
    run: &str,
    request: &ScanRequest,
    batches: usize,
    objects: usize,
    bytes: u64,
) -> Result<Value, Error> {
    let prefix = run_prefix(run)?;
    let compiled = bind(&deps.library, request)?;
    let parts_prefix = format!("{prefix}parts/");
    let mut parts = Vec::new();
    for key in keys_under(&deps.store, &deps.scan_bucket, &parts_prefix).await? {
        let index = key
            .strip_prefix(&parts_prefix)
            .and_then(|name| name.strip_suffix(".json"))
            .and_then(|number| number.parse::<usize>().ok())
            .ok_or_else(|| Error::internal(format!("`{key}` is not a part of this scan")))?;
        let body = deps
            .store
            .get(&deps.scan_bucket, &key)
            .await
            .map_err(|err| stored("reading a part", err))?;
        let state: ScanState = serde_json::from_slice(&body)
            .map_err(|err| Error::internal(format!("part {index} does not read: {err}")))?;
        parts.push((index, state));
    }
    let note = format!(
        "runbook-scan {run}: {objects} objects ({bytes} bytes) of the trail in {batches} batches"
    );
    let result = distributed::merge(&compiled, parts, batches, Some(note)).map_err(domain)?;
    let mut result = serde_json::to_value(&result)
        .map_err(|err| Error::internal(format!("the result does not serialize: {err}")))?;
    let cut = fit(&mut result, MAX_RESULT_BYTES);
    // The run's objects hold log records: nothing is kept once the result is out (the bucket's
    // lifecycle removes what a failed run leaves).
    for key in keys_under(&deps.store, &deps.scan_bucket, &prefix).await? {
        deps.store
            .delete_object(&deps.scan_bucket, &key)
            .await
            .map_err(|err| stored("deleting the run's objects", err))?;
    }
    tracing::info!(run, runbook = %request.runbook, batches, rows_cut = cut, "scan merged");
    Ok(
        json!({"run": run, "batches": batches, "objects": objects, "bytes": bytes, "result": result}),
    )
}

/// Drops rows from the end of the result's `rows` until it serializes within `limit` bytes,
/// saying so in the coverage; how many were dropped.
fn fit(result: &mut Value, limit: usize) -> usize {
    let size = |value: &Value| serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len());
    let mut cut = 0;
    while size(result) > limit {
        let Some(rows) = result
            .pointer_mut("/rows/rows")
            .and_then(Value::as_array_mut)
            .filter(|rows| !rows.is_empty())
        else {
            break;
        };
        // Halving keeps the loop short for a result far over the limit.
        let keep = rows.len() / 2;
        cut += rows.len() - keep;
        rows.truncate(keep);
    }
    if cut > 0 {
        result["coverage"]["truncated"] = json!(true);
        if let Some(notes) = result
            .pointer_mut("/coverage/notes")
            .and_then(Value::as_array_mut)
        {
            notes.push(json!(format!(
                "{cut} rows left out to fit Step Functions' 256 KiB output; run the runbook over the same window with jitctl for all of them"
            )));
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailgate_runbooks::Runbook;
    use trailgate_runbooks::source::memory_bucket::MemoryBucket;

    const TAMPERING: &str = include_str!("../../../runbooks/logging-tampering.yaml");

    fn deps(limits: BatchLimits) -> Deps<MemoryBucket> {
        let mut library = Library::default();
        library
            .insert(Runbook::parse(TAMPERING, "logging-tampering.yaml").expect("runbook"))
            .expect("inserts");
        Deps {
            store: MemoryBucket::default(),
            library,
            trail: S3Location::parse("s3://trail/org/"),
            scan_bucket: "scan".into(),
            limits,
        }
    }

    /// `count` objects of account 111122223333 in us-east-1 on 2026-12-01, each with one
    /// StopLogging and one ListBuckets (plain JSON: the source reads `.json` keys as they are).
    fn deliver(store: &MemoryBucket, count: usize) {
        for n in 0..count {
            let record = |name: &str| {
                json!({"eventTime": format!("2026-12-01T10:{n:02}:00Z"), "eventName": name,
                       "eventSource": "cloudtrail.amazonaws.com", "eventID": format!("{name}-{n}"),
                       "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/mallory"}})
            };
            let body = json!({"Records": [record("StopLogging"), record("ListBuckets")]});
            store.put(
                format!("org/AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01/111122223333_CloudTrail_us-east-1_20261201T10{n:02}Z_{n}.json"),
                body.to_string().into_bytes(),
            );
        }
    }

    fn request() -> Value {
        json!({"runbook": "logging-tampering", "start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"})
    }

    #[tokio::test]
    async fn plan_scan_and_merge_through_the_bucket_give_the_whole_windows_result() {
        let deps = deps(BatchLimits {
            max_bytes: u64::MAX,
            max_keys: 2,
        });
        deliver(&deps.store, 5);
        let plan = handle(
            json!({"action": "plan", "run": "r1", "request": request()}),
            &deps,
        )
        .await
        .unwrap_or_else(|e| panic!("{}", e.0.message));
        assert_eq!(
            (plan["batches"].clone(), plan["objects"].clone()),
            (json!(3), json!(5))
        );
        assert_eq!(
            plan["manifest"],
            json!({"bucket": "scan", "key": "runs/r1/batches.json"})
        );
        // The Map reads the manifest: one item per batch.
        let manifest = deps
            .store
            .get("scan", "runs/r1/batches.json")
            .await
            .unwrap();
        let batches: Vec<Value> = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(batches.len(), 3);
        // Items run in any order, and one is retried.
        for batch in batches.iter().rev().chain(batches.first()) {
            let done = handle(
                json!({"action": "scan", "run": "r1", "request": plan["request"], "batch": batch}),
                &deps,
            )
            .await
            .unwrap_or_else(|e| panic!("{}", e.0.message));
            assert_eq!(done["index"], batch["index"]);
        }
        let merged = handle(
            json!({"action": "merge", "run": "r1", "request": plan["request"], "batches": 3, "objects": 5, "bytes": plan["bytes"]}),
            &deps,
        )
        .await
        .unwrap_or_else(|e| panic!("{}", e.0.message));
        let coverage = &merged["result"]["coverage"];
        assert_eq!(coverage["events_scanned"], 10, "{merged}");
        assert_eq!(coverage["events_matched"], 5, "{merged}");
        assert_eq!(coverage["files_read"], 5, "{merged}");
        // Nothing of the run is left in the scan bucket.
        assert!(
            deps.store
                .keys()
                .iter()
                .all(|key| !key.starts_with("runs/")),
            "{:?}",
            deps.store.keys()
        );
    }

    #[tokio::test]
    async fn the_plan_fixture_plans_its_window_of_the_trail() {
        let deps = deps(BatchLimits::default());
        deliver(&deps.store, 4);
        let event: Value =
            serde_json::from_str(include_str!("../../../events/scan/plan.json")).expect("fixture");
        let plan = handle(event, &deps)
            .await
            .unwrap_or_else(|e| panic!("{}", e.0.message));
        assert_eq!(plan["objects"], 4, "{plan}");
        assert_eq!(plan["batches"], 1, "{plan}");
        assert_eq!(plan["request"]["accounts"], json!(["111122223333"]));
    }

    #[tokio::test]
    async fn a_missing_part_a_bad_request_or_run_name_and_no_trail_are_refused() {
        let deps = deps(BatchLimits {
            max_bytes: u64::MAX,
            max_keys: 2,
        });
        deliver(&deps.store, 3);
        let plan = handle(
            json!({"action": "plan", "run": "r2", "request": request()}),
            &deps,
        )
        .await
        .unwrap_or_else(|e| panic!("{}", e.0.message));
        let merged = handle(
            json!({"action": "merge", "run": "r2", "request": plan["request"], "batches": 2}),
            &deps,
        )
        .await
        .unwrap_err();
        assert_eq!(merged.0.kind.name(), "Internal");
        assert!(
            merged.0.message.contains("missing [0, 1]"),
            "{}",
            merged.0.message
        );

        for (input, field) in [
            (
                json!({"action": "plan", "run": "../x", "request": request()}),
                "`../x` is not an execution name",
            ),
            (
                json!({"action": "plan", "run": "r3", "request": {"runbook": "nope", "start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}}),
                "no runbook `nope`",
            ),
            (
                json!({"action": "plan", "run": "r3", "request": {"runbook": "logging-tampering", "start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "bucket": "elsewhere"}}),
                "unknown field `bucket`",
            ),
            (
                json!({"action": "wipe", "run": "r3"}),
                "not a runbook-scan step",
            ),
        ] {
            let error = handle(input.clone(), &deps).await.unwrap_err();
            assert_eq!(error.0.kind.name(), "InvalidRequest", "{input}");
            assert!(
                error.0.message.contains(field),
                "{input}: {}",
                error.0.message
            );
        }
        let mut untrailed = deps;
        untrailed.trail = None;
        let error = handle(
            json!({"action": "plan", "run": "r4", "request": request()}),
            &untrailed,
        )
        .await
        .unwrap_err();
        assert!(
            error.0.message.contains("no trail bucket"),
            "{}",
            error.0.message
        );
    }

    #[test]
    fn a_result_too_large_for_step_functions_loses_rows_and_says_so() {
        let rows: Vec<Value> = (0..5000)
            .map(|n| json!([format!("row {n:05} {}", "x".repeat(80))]))
            .collect();
        let mut result =
            json!({"rows": {"rows": rows}, "coverage": {"truncated": false, "notes": []}});
        let cut = fit(&mut result, 100 * 1024);
        assert!(cut > 0);
        assert!(serde_json::to_vec(&result).unwrap().len() <= 100 * 1024);
        assert_eq!(result["coverage"]["truncated"], true);
        assert!(
            result["coverage"]["notes"][0]
                .as_str()
                .unwrap()
                .contains("rows left out")
        );
        // The rows kept are the first ones.
        assert!(
            result["rows"]["rows"][0][0]
                .as_str()
                .unwrap()
                .starts_with("row 00000")
        );
        let mut small =
            json!({"rows": {"rows": [["a"]]}, "coverage": {"truncated": false, "notes": []}});
        assert_eq!(fit(&mut small, 100 * 1024), 0);
        assert_eq!(small["coverage"]["truncated"], false);
    }
}
