//! Bringing one local stack up for a test file, running its scenarios, and taking it down.

use crate::ctx::Ctx;
use anyhow::{Context, Result, anyhow};
use std::future::Future;
use std::path::PathBuf;
use trailgate_local::{LocalStack, UpOptions};

/// Starts a local stack with `parameters` (e.g. `Catalog`) on free ports, hands `body` a
/// connected [`Ctx`], then stops the stack.
///
/// The state directory is `target/system-tests/<name>-<pid>`, so concurrent test binaries
/// never share one. It is removed only when `body` passes: a failed run keeps its state and
/// logs for reading, and the error names the logs directory.
pub async fn run_on_stack<F, Fut>(name: &str, parameters: &[(&str, String)], body: F) -> Result<()>
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    run_on_stack_with(name, parameters, |_| {}, body).await
}

/// [`run_on_stack`], with `tune` adjusting the stack's options last (e.g. more Lambda
/// instances per function).
pub async fn run_on_stack_with<F, Fut>(
    name: &str,
    parameters: &[(&str, String)],
    tune: impl FnOnce(&mut UpOptions),
    body: F,
) -> Result<()>
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let repo_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = UpOptions::new(&repo_root);
    options.state_dir = repo_root
        .join("target")
        .join("system-tests")
        .join(format!("{name}-{}", std::process::id()));
    // Port 0: the test binaries may run side by side, each with its own stack.
    options.aws_port = 0;
    options.api_port = 0;
    // Scenarios that are not about the request policy run several requests for one role at
    // once; tests of the policy (tests/requests.rs) pass the production values explicitly.
    options
        .parameters
        .insert("OneOpenRequestPerRole".into(), "false".into());
    options
        .parameters
        .insert("RequestsPerMinute".into(), "1000".into());
    for (key, value) in parameters {
        options.parameters.insert((*key).into(), value.clone());
    }
    tune(&mut options);
    let stack = LocalStack::up(options)
        .await
        .context("bringing the local stack up")?;
    let state = stack.state().clone();
    let result = async { body(Ctx::connect(state.clone()).await?).await }.await;
    let logs = state.logs_dir.clone();
    stack.shutdown().await.context("stopping the local stack")?;
    if result.is_ok() {
        // Keep the state and logs of a failed run for reading; a passing run leaves nothing behind.
        let _ = std::fs::remove_dir_all(&state.state_dir);
    }
    result.with_context(|| format!("local stack logs: {}", logs.display()))
}

/// Prints `ok: <name>` for each passing scenario and fails with every failing one, so one
/// run reports all the scenarios that ran concurrently, not just the first to fail.
pub fn report<'a>(results: impl IntoIterator<Item = (&'a str, Result<()>)>) -> Result<()> {
    let mut failures = Vec::new();
    for (name, result) in results {
        match result {
            Ok(()) => println!("ok: {name}"),
            Err(err) => failures.push(format!("{name}: {err:#}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failures.join("\n")))
    }
}
