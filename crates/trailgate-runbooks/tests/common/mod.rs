//! Helpers shared by the integration tests: the library, the real data folder, and runners.

#![allow(dead_code)]

use std::path::PathBuf;

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
