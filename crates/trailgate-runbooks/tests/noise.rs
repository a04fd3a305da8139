//! The noise table of runbooks/README.md is what the library measures on the real logs: every
//! runbook's match and finding count on ../shared/data/cloudtrail, produced by
//! `jitctl runbook noise -s ../shared/data/cloudtrail` (the same `noise::measure`).

mod common;

use std::path::PathBuf;

use common::{library, real_data};
use trailgate_runbooks::noise;

const BEGIN: &str = "<!-- noise table: begin -->\n";
const END: &str = "<!-- noise table: end -->";

#[test]
fn the_readme_noise_table_matches_the_real_logs() {
    let Some(folder) = real_data() else {
        return;
    };
    let readme_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../runbooks/README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README reads");
    let start = readme
        .find(BEGIN)
        .expect("README has the noise table's begin marker")
        + BEGIN.len();
    let end = readme[start..]
        .find(END)
        .expect("README has the end marker")
        + start;
    let measured = noise::measure(&library(), &folder).expect("the real logs read");
    let expected = noise::table(&measured);
    assert_eq!(
        &readme[start..end],
        expected,
        "runbooks/README.md is stale: regenerate it with `jitctl runbook noise -s ../shared/data/cloudtrail`"
    );
    // Every runbook of the library has a row.
    assert_eq!(measured.len(), library().len());
}
