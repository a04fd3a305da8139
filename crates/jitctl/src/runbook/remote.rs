//! `jitctl runbook run ID --on aws`: the same runbook over the deployed stack's trail bucket,
//! on its runbook-scan state machine (a Distributed Map of the scan function over batches of
//! the window's objects, `statemachine/runbook-scan.asl.json`).
//!
//! The window is fixed here, from the bound runbook (`--since`, `--from`/`--to`, or its
//! lookback), so every batch binds exactly the same runbook; the request names no bucket (the
//! stack reads the trail it was deployed with). The result is the engine's, merged from the
//! batches, and is shown like a local run's.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_config::SdkConfig;
use trailgate_aws::scans::RunbookScans;
use trailgate_runbooks::source::distributed::ScanRequest;
use trailgate_runbooks::{Compiled, RunbookResult, timefmt};

/// Starts the scan of `request` on `state_machine` and follows it to its end, reporting on
/// stderr; the merged result and the execution's summary (`batches`, `objects`, `bytes`).
pub async fn scan_on_aws(
    config: &SdkConfig,
    state_machine: &str,
    request: &ScanRequest,
    name: &str,
) -> Result<(RunbookResult, serde_json::Value)> {
    let scans = RunbookScans::new(config);
    let input = serde_json::to_string(request)?;
    let execution = scans
        .start(state_machine, name, &input)
        .await
        .map_err(anyhow::Error::msg)
        .context("starting the runbook scan")?;
    eprintln!("runbook-scan: started {execution}");
    let began = Instant::now();
    let mut last_shown = String::new();
    loop {
        let status = scans.status(&execution).await.map_err(anyhow::Error::msg)?;
        match status.status.as_str() {
            "RUNNING" => {
                let line = match scans.batches_done(&execution).await {
                    Some((done, total)) => format!("{done} of {total} batches scanned"),
                    None => "running".to_owned(),
                };
                if line != last_shown {
                    eprintln!("runbook-scan: {line} ({:.0?})", began.elapsed());
                    last_shown = line;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            "SUCCEEDED" => {
                let output: serde_json::Value =
                    serde_json::from_str(status.output.as_deref().unwrap_or("null"))
                        .context("the scan's output is not JSON")?;
                let result: RunbookResult = serde_json::from_value(output["result"].clone())
                    .context("the scan's output has no runbook result")?;
                eprintln!(
                    "runbook-scan: {} objects ({} bytes) in {} batches, {:.1?}",
                    output["objects"],
                    output["bytes"],
                    output["batches"],
                    began.elapsed()
                );
                let mut summary = output;
                if let Some(object) = summary.as_object_mut() {
                    object.remove("result");
                }
                return Ok((result, summary));
            }
            other => bail!(
                "the runbook scan {execution} ended {other}: {}: {}",
                status.error.unwrap_or_default(),
                status.cause.unwrap_or_default()
            ),
        }
    }
}

/// The request for `compiled`: its parameters as given, its window as bound.
pub fn request(
    compiled: &Compiled<'_>,
    params: &[String],
    accounts: &[String],
    regions: &[String],
) -> Result<ScanRequest> {
    let mut values = std::collections::BTreeMap::new();
    for pair in params {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("`--param {pair}`: expected NAME=VALUE");
        };
        values.insert(name.trim().to_owned(), value.to_owned());
    }
    let window = compiled.window();
    Ok(ScanRequest {
        runbook: compiled.runbook().id().to_owned(),
        params: values,
        start: timefmt::format_unix(window.start),
        end: timefmt::format_unix(window.end),
        accounts: accounts.to_vec(),
        regions: regions.to_vec(),
    })
}

/// An execution name for a scan of `runbook`: Step Functions allows 80 letters, digits, `-`
/// and `_`, and a name is unique for 90 days.
pub fn execution_name(runbook: &str, now: time::OffsetDateTime) -> String {
    let clean: String = runbook
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(48)
        .collect();
    format!("jitctl-{clean}-{}", now.unix_timestamp_nanos() / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_has_the_bound_window_and_the_given_parameters() {
        let runbook = trailgate_runbooks::Runbook::parse(
            include_str!("../../../../runbooks/requester-activity.yaml"),
            "requester-activity.yaml",
        )
        .expect("runbook");
        let params = trailgate_runbooks::Params::new()
            .set("requester", "alice")
            .window(
                time::macros::datetime!(2026-12-01 0:00 UTC),
                time::macros::datetime!(2026-12-02 0:00 UTC),
            );
        let compiled = runbook.compile(&params).expect("binds");
        let scan = request(
            &compiled,
            &["requester=alice".into()],
            &["111122223333".into()],
            &[],
        )
        .expect("request");
        assert_eq!(scan.start, "2026-12-01T00:00:00Z");
        assert_eq!(scan.end, "2026-12-02T00:00:00Z");
        assert_eq!(scan.params["requester"], "alice");
        assert!(scan.params().is_ok());
        assert!(request(&compiled, &["requester".into()], &[], &[]).is_err());
        let name = execution_name(
            "requester-activity",
            time::macros::datetime!(2026-12-07 10:00 UTC),
        );
        assert!(
            name.len() <= 80 && name.starts_with("jitctl-requester-activity-"),
            "{name}"
        );
    }
}
