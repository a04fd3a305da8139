//! OCSF events checked against the pinned OCSF JSON schema: `tests/ocsf/validate.py` in
//! `.venv-ocsf` (ocsf-json-schema and jsonschema, pinned in requirements/ocsf.txt, installed by
//! `scripts/bootstrap.sh ocsf`).

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The OCSF version trailgate's events follow (`trailgate_domain::ocsf::OCSF_VERSION`).
pub const VERSION: &str = "1.8.0";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Validates the NDJSON file at `path`: `Ok` with the validator's summary (`lines`,
/// `failures`, `classes`) and every failure it printed. Fails only when the validator could
/// not run.
pub fn validate(path: &Path) -> Result<(Value, String)> {
    let python = root().join(".venv-ocsf").join("bin").join("python");
    ensure!(
        python.is_file(),
        "{} is missing: run scripts/bootstrap.sh ocsf",
        python.display()
    );
    let output = std::process::Command::new(&python)
        .arg(root().join("tests").join("ocsf").join("validate.py"))
        .arg(VERSION)
        .arg(path)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    let stdout = String::from_utf8(output.stdout)?;
    let summary = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str::<Value>(line).ok())
        .with_context(|| {
            format!(
                "the validator printed no summary: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    Ok((summary, stdout))
}

/// Validates `path` and requires every line to pass.
pub fn require_valid(path: &Path) -> Result<Value> {
    let (summary, printed) = validate(path)?;
    ensure!(
        summary["failures"] == 0 && summary["lines"].as_u64().unwrap_or(0) > 0,
        "OCSF validation of {}: {printed}",
        path.display()
    );
    Ok(summary)
}
