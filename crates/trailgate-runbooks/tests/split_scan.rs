//! A scan split into parts (as the Distributed Map scanner splits a window's objects into
//! batches) and merged from their serialized states equals one scan over every file: every
//! runbook of the library, on the real logs and the fixtures. A state of another runbook, of
//! another binding, or with sections that are not the runbook's is refused and changes nothing.

mod common;

use std::path::PathBuf;

use common::{all_time, fixture, identity_center_params, library, real_data};
use time::macros::datetime;
use trailgate_runbooks::source::files::{FileSource, Limits, read_file};
use trailgate_runbooks::{Compiled, Params, ScanState, StateError};

/// Parameters for every runbook: its defaults, and values that find something for those with
/// required parameters.
fn params(id: &str) -> Params {
    match id {
        "requester-activity" => all_time().set("requester", "benjamin"),
        "access-key-activity" => all_time().set("access_key_id", "AKIATFQR7NSCUXC3DDDP"),
        "resource-history" => all_time().set("resource", "stratus-red-team-backdoor-r-role"),
        "jit-session-audit" => all_time()
            .set("requester", "alice")
            .set("request_id", "r-7f3a9c")
            .set("session_name", "tg-alice-r-7f3a9c"),
        "identity-center-session-audit" => identity_center_params(all_time()),
        _ => all_time(),
    }
}

fn files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(folder) = real_data() {
        files.extend(FileSource::new(folder).files().expect("real data lists"));
    }
    for name in [
        "benign.json",
        "attacks.ndjson",
        "breadth.ndjson",
        "benign-day.ndjson",
    ] {
        files.push(fixture(name));
    }
    files
}

/// One scan over `files`, each marked with its index (as the parallel reader does).
fn whole(compiled: &Compiled<'_>, files: &[PathBuf]) -> trailgate_runbooks::RunbookResult {
    let mut scan = compiled.scan();
    for (index, file) in files.iter().enumerate() {
        scan.begin_file(index);
        read_file(file, Limits::default(), &mut scan);
    }
    scan.finish()
}

/// The parts' states, each through JSON, as a Lambda would return them.
fn parts(compiled: &Compiled<'_>, files: &[PathBuf], count: usize) -> Vec<ScanState> {
    let size = files.len().div_ceil(count);
    files
        .chunks(size)
        .enumerate()
        .map(|(chunk, batch)| {
            let mut scan = compiled.scan();
            for (offset, file) in batch.iter().enumerate() {
                scan.begin_file(chunk * size + offset);
                read_file(file, Limits::default(), &mut scan);
            }
            let text = serde_json::to_string(&scan.into_state()).expect("state serializes");
            serde_json::from_str(&text).expect("state deserializes")
        })
        .collect()
}

#[test]
fn every_runbook_split_into_parts_and_merged_from_their_states_equals_one_scan() {
    let files = files();
    let library = library();
    let mut matched = 0;
    for runbook in library.iter() {
        let params = params(runbook.id());
        let compiled = runbook.compile(&params).expect("binds");
        let expected = whole(&compiled, &files);
        for count in [2, 5] {
            let mut merged = compiled.scan();
            // Parts arrive in any order.
            for state in parts(&compiled, &files, count).into_iter().rev() {
                merged
                    .absorb(state)
                    .expect("a part of the same scan merges");
            }
            assert_eq!(
                merged.finish(),
                expected,
                "{} in {count} parts",
                runbook.id()
            );
        }
        if expected.coverage.events_matched > 0 {
            matched += 1;
        }
    }
    // The comparison means something only if most runbooks find something.
    assert!(matched >= 20, "only {matched} runbooks matched anything");
}

#[test]
fn a_state_of_another_runbook_binding_or_shape_is_refused_and_changes_nothing() {
    let files = vec![fixture("breadth.ndjson")];
    let library = library();
    let tampering = library.get("logging-tampering").expect("runbook");
    let compiled = tampering.compile(&all_time()).expect("binds");
    let state = parts(&compiled, &files, 1).remove(0);

    let other = library.get("access-denied").expect("runbook");
    let other = other.compile(&all_time()).expect("binds");
    let mut scan = other.scan();
    assert_eq!(
        scan.absorb(state.clone()),
        Err(StateError::OtherRunbook("logging-tampering".to_owned()))
    );
    assert_eq!(scan.finish().coverage.events_scanned, 0);

    let narrower = tampering
        .compile(&Params::new().window(
            datetime!(2024-01-01 0:00 UTC),
            datetime!(2024-01-02 0:00 UTC),
        ))
        .expect("binds");
    let mut scan = narrower.scan();
    assert_eq!(scan.absorb(state.clone()), Err(StateError::OtherBinding));
    assert_eq!(scan.finish().coverage.events_scanned, 0);

    // A state whose rows exceed the runbook's limit did not come from this runbook's scan.
    let mut text: serde_json::Value = serde_json::to_value(&state).expect("serializes");
    let kept = text["aggregator"]["rows"]["kept"]
        .as_array_mut()
        .expect("kept rows");
    let row = kept.first().cloned().expect("a kept row");
    kept.extend(std::iter::repeat_n(row, 1000));
    let tampered: ScanState = serde_json::from_value(text).expect("still a state");
    let mut scan = compiled.scan();
    assert_eq!(scan.absorb(tampered), Err(StateError::Shape));
    assert_eq!(scan.finish().coverage.events_scanned, 0);
}
