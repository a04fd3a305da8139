//! The runbook-scan state machine from outside (feature `s3`: only jitctl starts scans): start
//! an execution, read its status and output, and how many of its Distributed Map's batches are
//! done (`DescribeMapRun`, when Step Functions has one to describe).

use aws_sdk_sfn::Client;
use aws_sdk_sfn::error::DisplayErrorContext;
use aws_sdk_sfn::types::HistoryEventType;

use crate::SdkConfig;

/// One execution's state as `jitctl` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanStatus {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    /// The output of a succeeded execution (JSON text).
    pub output: Option<String>,
    /// The error name and cause of a failed one.
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// Step Functions through the SDK.
#[derive(Debug, Clone)]
pub struct RunbookScans {
    client: Client,
}

fn text<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    error: aws_sdk_sfn::error::SdkError<E, R>,
) -> String {
    format!("{what}: {}", DisplayErrorContext(&error))
}

impl RunbookScans {
    pub fn new(config: &SdkConfig) -> RunbookScans {
        RunbookScans {
            client: Client::new(config),
        }
    }

    /// Starts the scan `name` with `input` (a `ScanRequest` as JSON); its execution ARN.
    pub async fn start(
        &self,
        state_machine: &str,
        name: &str,
        input: &str,
    ) -> Result<String, String> {
        let started = self
            .client
            .start_execution()
            .state_machine_arn(state_machine)
            .name(name)
            .input(input)
            .send()
            .await
            .map_err(|error| text("StartExecution", error))?;
        Ok(started.execution_arn().to_owned())
    }

    /// The execution's status, with its output or error once it has ended.
    pub async fn status(&self, execution: &str) -> Result<ScanStatus, String> {
        let described = self
            .client
            .describe_execution()
            .execution_arn(execution)
            .send()
            .await
            .map_err(|error| text("DescribeExecution", error))?;
        Ok(ScanStatus {
            status: described.status().as_str().to_owned(),
            output: described.output().map(str::to_owned),
            error: described.error().map(str::to_owned),
            cause: described.cause().map(str::to_owned),
        })
    }

    /// `(done, total)` batches of the execution's Map run, when it has started one and Step
    /// Functions describes it; `None` otherwise (before the Map, or where map runs are not
    /// modelled, as in moto).
    pub async fn batches_done(&self, execution: &str) -> Option<(i64, i64)> {
        let history = self
            .client
            .get_execution_history()
            .execution_arn(execution)
            .reverse_order(true)
            .max_results(100)
            .send()
            .await
            .ok()?;
        let map_run = history.events().iter().find_map(|event| {
            (event.r#type() == &HistoryEventType::MapRunStarted)
                .then(|| event.map_run_started_event_details())
                .flatten()
                .and_then(|details| details.map_run_arn())
                .map(str::to_owned)
        })?;
        let run = self
            .client
            .describe_map_run()
            .map_run_arn(map_run)
            .send()
            .await
            .ok()?;
        let counts = run.item_counts()?;
        Some((counts.succeeded(), counts.total()))
    }
}
