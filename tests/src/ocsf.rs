//! OCSF events checked against the pinned OCSF JSON schema, and trailgate's own published shapes
//! (`schemas/`) against theirs: `tests/ocsf/validate.py` in
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
    let script = root().join("tests").join("ocsf").join("validate.py");
    run_validator(&script, VERSION.as_ref(), path)
}

/// Validates the NDJSON file at `path` against the JSON Schema file `schema` of the repo
/// (`tests/schemas/validate.py`), as [`validate`] does against OCSF's.
pub fn validate_against(schema: &Path, path: &Path) -> Result<(Value, String)> {
    let script = root().join("tests").join("schemas").join("validate.py");
    run_validator(&script, schema.as_os_str(), path)
}

/// Runs a validator script of `.venv-ocsf` on `path`: its last line is the JSON summary.
fn run_validator(script: &Path, first: &std::ffi::OsStr, path: &Path) -> Result<(Value, String)> {
    let python = root().join(".venv-ocsf").join("bin").join("python");
    ensure!(
        python.is_file(),
        "{} is missing: run scripts/bootstrap.sh ocsf",
        python.display()
    );
    let output = std::process::Command::new(&python)
        .arg(script)
        .arg(first)
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

/// Validates `path` against OCSF's schema and requires every line to pass.
pub fn require_valid(path: &Path) -> Result<Value> {
    require(validate(path)?, path)
}

/// Validates `path` against `schema` and requires every line to pass.
pub fn require_valid_against(schema: &Path, path: &Path) -> Result<Value> {
    require(validate_against(schema, path)?, path)
}

fn require((summary, printed): (Value, String), path: &Path) -> Result<Value> {
    ensure!(
        summary["failures"] == 0 && summary["lines"].as_u64().unwrap_or(0) > 0,
        "validation of {}: {printed}",
        path.display()
    );
    Ok(summary)
}
