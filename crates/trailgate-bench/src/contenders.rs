//! The SQL contenders of the benchmark, each set up the fastest way its engine offers for
//! `{"Records": [...]}` files, and each checked against the engine's counts by the caller.
//!
//! - **DuckDB** (1.5 from `.venv-duckdb`, 2.0 from `.venv-bench`) runs the runbook's own summary
//!   query from `trailgate_runbooks::sql` over a view that reads each file with
//!   `read_json_objects` and types its records with `from_json` and a struct of just the fields
//!   the three benchmarked runbooks read. That was the fastest form measured on both versions
//!   (on 150 files: 0.79 s on 1.5.6 and 1.03 s on 2.0.1, against 1.25 s and 8.2 s for
//!   `read_json(columns = {'Records': ...})`, and more for the proof's `duckdb_view`, which
//!   extracts every Athena column from raw JSON).
//! - **ClickHouse** (chdb, in-process) runs a summary query written here per runbook, over
//!   `file(glob, 'JSONEachRow', <schema>)` with the same typed subset (`input_format_json_read_
//!   objects_as_strings` keeps `requestParameters` as text for `JSONExtract*`). The typed schema
//!   was 2.4x faster than `JSONAsString` with `JSONExtract*` on every field (1.58 s against
//!   3.75 s on the 0.2 GB corpus). The filters follow the runbook YAML, case-insensitive as the
//!   engine compares.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use trailgate_runbooks::sql::quote;

/// The fields the three benchmarked runbooks read, as a DuckDB `from_json` structure.
const DUCKDB_RECORD: &str = r#"{"eventTime":"VARCHAR","eventName":"VARCHAR","errorCode":"VARCHAR","userIdentity":{"userName":"VARCHAR","arn":"VARCHAR","sessionContext":{"sourceIdentity":"VARCHAR"},"onBehalfOf":{"userId":"VARCHAR"}},"requestParameters":"JSON"}"#;

/// The DuckDB view over `files` with the Athena columns the benchmarked runbooks read.
pub fn duckdb_view(view: &str, files: &[PathBuf]) -> Result<String> {
    let list = files
        .iter()
        .map(|file| quote(&file.to_string_lossy()))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    let shape = quote(&format!("{{\"Records\":[{DUCKDB_RECORD}]}}"))?;
    Ok(format!(
        "CREATE OR REPLACE VIEW {view} AS SELECT r.eventTime AS eventtime, \
         r.eventName AS eventname, r.errorCode AS errorcode, \
         struct_pack(username := r.userIdentity.userName, arn := r.userIdentity.arn, \
         sessioncontext := struct_pack(sourceidentity := r.userIdentity.sessionContext.sourceIdentity), \
         onbehalfof := struct_pack(userid := r.userIdentity.onBehalfOf.userId)) AS useridentity, \
         (CASE WHEN r.requestParameters IS NULL OR json_type(r.requestParameters) = 'NULL' THEN NULL \
         ELSE json_extract_string(r.requestParameters, '$') END) AS requestparameters \
         FROM (SELECT unnest(from_json(json, {shape}).Records) AS r FROM read_json_objects([{list}], \
         format = 'unstructured', maximum_object_size = 1073741824)) AS tg_raw WHERE r IS NOT NULL"
    ))
}

/// The ClickHouse schema and filter of one benchmarked runbook (its default parameters, and
/// `requester=benjamin` for requester-activity, as `cases()` binds them).
fn clickhouse_case(id: &str) -> Result<(&'static str, String)> {
    let lowered = |names: &[&str]| {
        names
            .iter()
            .map(|name| quote(&name.to_ascii_lowercase()))
            .collect::<Result<Vec<_>, _>>()
            .map(|names| names.join(", "))
    };
    Ok(match id {
        "logging-tampering" => {
            let names = lowered(&[
                "StopLogging",
                "DeleteTrail",
                "UpdateTrail",
                "PutInsightSelectors",
                "DeleteEventDataStore",
                "StopEventDataStoreIngestion",
                "StopConfigurationRecorder",
                "DeleteDeliveryChannel",
                "DeleteConfigRule",
                "DeleteConfigurationRecorder",
                "DeleteDetector",
                "DisassociateFromMasterAccount",
                "DeleteMembers",
                "StopMonitoringMembers",
                "CreateIPSet",
                "DeleteFlowLogs",
                "DeleteResolverQueryLogConfig",
                "DeleteLogGroup",
                "DeleteLogStream",
                "DeleteAnalyzer",
                "DeleteInsight",
            ])?;
            // The selectors as CloudTrail records them: arrays of objects, lists of strings.
            let selectors = "JSONExtractArrayRaw(rec.requestParameters, 'eventSelectors')";
            let advanced = "JSONExtractArrayRaw(rec.requestParameters, 'advancedEventSelectors')";
            let fields = |test: &str| {
                format!(
                    "arrayExists(a -> arrayExists(f -> {test}, JSONExtractArrayRaw(a, 'fieldSelectors')), {advanced})"
                )
            };
            let listed = |key: &str| format!("length(JSONExtractArrayRaw(f, '{key}')) > 0");
            (
                "eventTime Nullable(String), eventName Nullable(String), requestParameters String",
                format!(
                    "lower(rec.eventName) IN ({names}) \
                     OR (lower(rec.eventName) = 'puteventselectors' AND ( \
                     arrayExists(s -> lower(JSONExtractRaw(s, 'includeManagementEvents')) = 'false', {selectors}) \
                     OR arrayExists(s -> lower(JSONExtractString(s, 'readWriteType')) IN ('readonly', 'writeonly'), {selectors}) \
                     OR arrayExists(s -> length(JSONExtractArrayRaw(s, 'excludeManagementEventSources')) > 0, {selectors}) \
                     OR {} OR {} OR {} \
                     OR (length({advanced}) > 0 AND NOT {}))) \
                     OR (lower(rec.eventName) = 'updatedetector' \
                     AND lower(JSONExtractRaw(rec.requestParameters, 'enable')) = 'false')",
                    fields(&listed("notEquals")),
                    fields(&listed("notStartsWith")),
                    fields(&listed("notEndsWith")),
                    fields(
                        "arrayExists(v -> lower(JSONExtractString(v)) = 'management', JSONExtractArrayRaw(f, 'equals'))"
                    ),
                ),
            )
        }
        "access-denied" => (
            "eventTime Nullable(String), errorCode Nullable(String)",
            format!(
                "lower(rec.errorCode) IN ({})",
                lowered(&[
                    "AccessDenied",
                    "AccessDeniedException",
                    "Client.UnauthorizedOperation",
                    "UnauthorizedOperation",
                    "UnauthorizedAccess",
                    "Client.UnauthorizedAccess",
                    "AuthorizationError",
                ])?
            ),
        ),
        "requester-activity" => (
            "eventTime Nullable(String), userIdentity Tuple(userName Nullable(String), \
             arn Nullable(String), sessionContext Tuple(sourceIdentity Nullable(String)), \
             onBehalfOf Tuple(userId Nullable(String)))",
            "lower(rec.userIdentity.userName) = 'benjamin' \
             OR endsWith(lower(rec.userIdentity.arn), '/benjamin') \
             OR lower(rec.userIdentity.sessionContext.sourceIdentity) = 'benjamin' \
             OR lower(rec.userIdentity.onBehalfOf.userId) = 'benjamin'"
                .to_owned(),
        ),
        other => bail!("no ClickHouse query for runbook `{other}`"),
    })
}

/// The ClickHouse summary query (scanned, matched, outside the window) of runbook `id` over
/// every log file of the corpus, whose `AWSLogs` folder is `root`, on `threads` threads.
pub fn clickhouse_summary(
    id: &str,
    root: &Path,
    window: (i64, i64),
    threads: usize,
) -> Result<String> {
    let (schema, filter) = clickhouse_case(id)?;
    // The corpus layout (`corpus.rs`): AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/.
    let glob = quote(&format!(
        "{}/*/CloudTrail/*/*/*/*/*.json.gz",
        root.display()
    ))?;
    let schema = quote(&format!("Records Array(Tuple({schema}))"))?;
    let (start, end) = window;
    let in_window = format!("tg_time >= {start} AND tg_time < {end}");
    Ok(format!(
        "SELECT count() AS scanned, countIf({in_window} AND ({filter})) AS matched, \
         countIf(NOT ({in_window})) AS outside FROM \
         (SELECT rec, toUnixTimestamp(parseDateTimeBestEffortOrNull(rec.eventTime, 'UTC')) AS tg_time \
         FROM (SELECT arrayJoin(Records) AS rec FROM file({glob}, 'JSONEachRow', {schema}))) \
         WHERE tg_time IS NOT NULL \
         SETTINGS max_threads = {threads}, input_format_skip_unknown_fields = 1, \
         input_format_json_read_objects_as_strings = 1"
    ))
}

/// Runs a Python runner with one JSON request on stdin and returns its JSON answer.
pub fn run_python(python: &Path, script: &Path, request: &Value, setup: &str) -> Result<Value> {
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} (run {setup})", python.display()))?;
    child
        .stdin
        .take()
        .context("runner stdin")?
        .write_all(&serde_json::to_vec(request)?)?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let answer: Value = serde_json::from_slice(&output.stdout)?;
    if let Some(errors) = answer["errors"].as_object()
        && !errors.is_empty()
    {
        bail!("{} rejected a query: {errors:?}", script.display());
    }
    Ok(answer)
}

/// The three counts of a summary row (numbers or, from ClickHouse's 64-bit output, strings).
pub fn counts(row: &Value) -> (u64, u64, u64) {
    let number = |index: usize| match &row[index] {
        Value::Number(number) => number.as_u64().unwrap_or(u64::MAX),
        Value::String(text) => text.parse().unwrap_or(u64::MAX),
        _ => u64::MAX,
    };
    (number(0), number(1), number(2))
}

/// `runs` copies of one query, ids `<id>/<run>`.
pub fn repeated(id: &str, sql: &str, runs: usize) -> Vec<Value> {
    (0..runs)
        .map(|run| json!({"id": format!("{id}/{run}"), "sql": sql}))
        .collect()
}
