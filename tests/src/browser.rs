//! The headless-Chromium checks (`tests/browser/*.mjs`, playwright-core driving Debian's
//! chromium): run one, and require its screenshot in `tests/artifacts/`.

use anyhow::{Context, Result, ensure};
use std::ffi::OsStr;
use std::path::PathBuf;

/// `tests/artifacts/<name>`, the folder made if missing and any earlier file of that name
/// removed, so a screenshot found afterwards is this run's.
pub fn artifact(name: &str) -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    Ok(path)
}

/// Runs `tests/browser/<script>` with `args`; fails with what it printed unless it succeeds
/// and wrote `screenshot`.
pub async fn run(script: &str, args: &[&OsStr], screenshot: &std::path::Path) -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new("node")
        .arg(root.join("browser").join(script))
        .args(args)
        .current_dir(root.join(".."))
        .output()
        .await
        .context("running node (scripts/bootstrap.sh installs node_modules and chromium)")?;
    ensure!(
        output.status.success(),
        "the browser check {script} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    Ok(())
}
