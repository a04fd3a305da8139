//! Embeds the runbook library (`runbooks/*.yaml` at the repository root) in the scan function,
//! so a Lambda deployment scans with exactly the runbooks of its commit.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let folder = manifest.join("../../runbooks");
    println!("cargo:rerun-if-changed={}", folder.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("the runbooks folder lists")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let mut out = String::from("/// The library's files: (file name, YAML).\n");
    out.push_str("pub const RUNBOOKS: &[(&str, &str)] = &[\n");
    for path in &files {
        let path = path.canonicalize().expect("a runbook file resolves");
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .expect("a UTF-8 file name");
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let target =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("runbooks.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
