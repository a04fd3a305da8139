//! Helpers shared by the integration tests: the library, the real data folder, runners, and the
//! pinned DuckDB that proves the compiled SQL.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use time::macros::datetime;
use trailgate_runbooks::source::files::FileSource;
use trailgate_runbooks::{Library, Params, RunbookResult, run};

/// The repository's runbook library.
pub fn library() -> Library {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../runbooks");
    match Library::load_dir(&folder) {
        Ok(library) => library,
        Err(error) => panic!("runbook library does not load: {error}"),
    }
}

/// The real CloudTrail logs (../shared/data/cloudtrail from the repository root), if present.
pub fn real_data() -> Option<PathBuf> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cloudtrail");
    if folder.is_dir() {
        Some(folder)
    } else {
        println!(
            "note: {} is absent; real-data test skipped",
            folder.display()
        );
        None
    }
}

/// A fixture file of this crate.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A window covering every record in the test data (2015 to 2025).
pub fn all_time() -> Params {
    Params::new().window(
        datetime!(2000-01-01 0:00 UTC),
        datetime!(2030-01-01 0:00 UTC),
    )
}

/// Runs runbook `id` over a file or folder.
pub fn run_on(id: &str, params: Params, path: PathBuf) -> RunbookResult {
    let library = library();
    let Some(runbook) = library.get(id) else {
        panic!("no runbook `{id}` in the library");
    };
    let mut source = FileSource::new(path);
    match run(runbook, &params, &mut source) {
        Ok(result) => result,
        Err(error) => panic!("runbook `{id}` failed: {error}"),
    }
}

/// Values of a column of the rows section.
pub fn column(result: &RunbookResult, name: &str) -> Vec<String> {
    let rows = result.rows.as_ref().expect("runbook has a rows section");
    let index = rows
        .columns
        .iter()
        .position(|column| column == name)
        .expect("column exists");
    rows.rows.iter().map(|row| row[index].clone()).collect()
}

/// Count of the group with this key in the count_by section.
pub fn group(result: &RunbookResult, key: &[&str]) -> Option<u64> {
    let counts = result
        .counts
        .as_ref()
        .expect("runbook has a count_by section");
    counts
        .groups
        .iter()
        .find(|group| group.key.iter().map(String::as_str).eq(key.iter().copied()))
        .map(|group| group.count)
}

/// The distinct values of a field in the distinct section.
pub fn distinct(result: &RunbookResult, field: &str) -> Vec<String> {
    let section = result
        .distinct
        .iter()
        .find(|section| section.field == field)
        .expect("distinct field exists");
    section
        .values
        .iter()
        .map(|value| value.value.clone())
        .collect()
}

/// The pinned DuckDB's Python (scripts/bootstrap.sh duckdb); on CI its absence fails the test.
pub fn duckdb_python() -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-duckdb/bin/python");
    if python.is_file() {
        return Some(python);
    }
    let message = format!(
        "{} is missing: run scripts/bootstrap.sh duckdb",
        python.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    println!("note: {message}; SQL-on-DuckDB proof skipped");
    None
}

/// Runs one request through tests/support/duckdb_run.py and returns its JSON answer.
pub fn duckdb(python: &Path, request: &Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/duckdb_run.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let body = serde_json::to_vec(request).expect("request serializes");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&body)
        .expect("request is written");
    let output = child.wait_with_output().expect("python finishes");
    assert!(
        output.status.success(),
        "duckdb runner failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("runner answers JSON")
}

/// A result set as rows of text (numbers printed, NULL as `<null>`).
pub fn table(result: &Value) -> Vec<Vec<String>> {
    result["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|value| match value {
                    Value::Null => "<null>".to_owned(),
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// The identity-center-session-audit parameters of the fixtures' grant: alice's ProdAccess
/// permission set in account 111122223333.
pub fn identity_center_params(params: Params) -> Params {
    params
        .set("user_name", "alice@example.com")
        .set("user_id", "94482488-3041-7026-18f3-be45837cd0e4")
        .set("permission_set", "ProdAccess")
        .set("account", "111122223333")
}
