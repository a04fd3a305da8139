//! Athena for the runbook engine's SQL back-end: [`AthenaRunner`] runs a batch of SELECT
//! statements (`StartQueryExecution`, `GetQueryExecution` polled with backoff up to a timeout,
//! `GetQueryResults` paged) and returns every statement's rows as text.
//!
//! The SQL itself is compiled and escaped in trailgate-runbooks (`sql.rs`); this module only
//! moves statements and rows. Statements are started one after the other, in order, and then
//! polled together, so a batch costs about as long as its slowest statement. Athena's result
//! sets carry every value as text (`VarCharValue`, absent for NULL), and a SELECT's first page
//! starts with a row of column labels, which is dropped here.

use std::time::{Duration, Instant};

use aws_sdk_athena::Client;
use aws_sdk_athena::error::DisplayErrorContext;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};

use crate::SdkConfig;

/// Where and how the statements run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AthenaOptions {
    /// The database of the CloudTrail table (`QueryExecutionContext.Database`).
    pub database: String,
    /// The data catalog; `None` is Athena's default (`AwsDataCatalog`).
    pub catalog: Option<String>,
    /// The workgroup; `None` is the caller's default (`primary`).
    pub workgroup: Option<String>,
    /// `s3://...` for result files; `None` when the workgroup enforces one.
    pub output_location: Option<String>,
    /// How long the whole batch may take before it is abandoned.
    pub timeout: Duration,
    /// First pause between two `GetQueryExecution` polls; doubled up to [`AthenaOptions::max_poll`].
    pub first_poll: Duration,
    /// Longest pause between two polls.
    pub max_poll: Duration,
}

impl Default for AthenaOptions {
    fn default() -> Self {
        AthenaOptions {
            database: "default".to_owned(),
            catalog: None,
            workgroup: None,
            output_location: None,
            timeout: Duration::from_secs(300),
            first_poll: Duration::from_millis(200),
            max_poll: Duration::from_secs(5),
        }
    }
}

/// The outcome of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOutput {
    /// Athena's `QueryExecutionId`.
    pub execution_id: String,
    /// Column names from the result set metadata.
    pub columns: Vec<String>,
    /// Data rows (the label row removed); `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// Bytes scanned, as Athena bills them.
    pub bytes_scanned: Option<u64>,
}

/// Why a batch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AthenaError {
    /// `StartQueryExecution` was refused.
    #[error("Athena refused to start statement {index}: {message}")]
    Start {
        /// Position of the statement in the batch.
        index: usize,
        /// The SDK's error with its context.
        message: String,
    },
    /// A statement ended `FAILED` or `CANCELLED`.
    #[error("Athena query {execution_id} ended {state}: {reason}")]
    Failed {
        /// The execution.
        execution_id: String,
        /// `FAILED` or `CANCELLED`.
        state: String,
        /// Athena's `StateChangeReason`.
        reason: String,
    },
    /// The batch took longer than [`AthenaOptions::timeout`]; the statements still running were
    /// asked to stop.
    #[error("Athena query {execution_id} did not finish within {seconds} s")]
    Timeout {
        /// The first execution still running.
        execution_id: String,
        /// The timeout.
        seconds: u64,
    },
    /// `GetQueryExecution` or `GetQueryResults` failed.
    #[error("Athena call for query {execution_id} failed: {message}")]
    Call {
        /// The execution.
        execution_id: String,
        /// The SDK's error with its context.
        message: String,
    },
}

/// Runs statements in Athena through the AWS SDK.
#[derive(Debug, Clone)]
pub struct AthenaRunner {
    client: Client,
}

impl AthenaRunner {
    /// A runner from the shared SDK configuration ([`crate::sdk::load`]).
    pub fn new(config: &SdkConfig) -> AthenaRunner {
        AthenaRunner {
            client: Client::new(config),
        }
    }

    /// A runner over an already configured client.
    pub fn from_client(client: Client) -> AthenaRunner {
        AthenaRunner { client }
    }

    /// Runs every statement and returns their outputs in the same order.
    pub async fn run(
        &self,
        statements: &[String],
        options: &AthenaOptions,
    ) -> Result<Vec<QueryOutput>, AthenaError> {
        let started = Instant::now();
        let mut ids = Vec::with_capacity(statements.len());
        for (index, sql) in statements.iter().enumerate() {
            match self.start(sql, options).await {
                Ok(id) => ids.push(id),
                Err(message) => {
                    self.stop_all(&ids).await;
                    return Err(AthenaError::Start { index, message });
                }
            }
        }
        let mut bytes = vec![None; ids.len()];
        let mut pending: Vec<usize> = (0..ids.len()).collect();
        let mut pause = options.first_poll;
        while !pending.is_empty() {
            let mut still = Vec::new();
            for index in pending {
                let id = &ids[index];
                match self.state(id).await {
                    Ok(State::Done(scanned)) => bytes[index] = scanned,
                    Ok(State::Running) => still.push(index),
                    Err(error) => {
                        self.stop_all(&ids).await;
                        return Err(error);
                    }
                }
            }
            pending = still;
            let Some(&first) = pending.first() else {
                break;
            };
            if started.elapsed() + pause > options.timeout {
                self.stop_all(&ids).await;
                return Err(AthenaError::Timeout {
                    execution_id: ids[first].clone(),
                    seconds: options.timeout.as_secs(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(options.max_poll);
        }
        let mut outputs = Vec::with_capacity(ids.len());
        for (id, bytes_scanned) in ids.into_iter().zip(bytes) {
            let (columns, rows) = self.results(&id).await?;
            outputs.push(QueryOutput {
                execution_id: id,
                columns,
                rows,
                bytes_scanned,
            });
        }
        Ok(outputs)
    }

    async fn start(&self, sql: &str, options: &AthenaOptions) -> Result<String, String> {
        let context = QueryExecutionContext::builder()
            .database(&options.database)
            .set_catalog(options.catalog.clone())
            .build();
        let mut call = self
            .client
            .start_query_execution()
            .query_string(sql)
            .query_execution_context(context)
            .set_work_group(options.workgroup.clone());
        if let Some(location) = &options.output_location {
            call = call.result_configuration(
                ResultConfiguration::builder()
                    .output_location(location)
                    .build(),
            );
        }
        let output = call
            .send()
            .await
            .map_err(|error| DisplayErrorContext(&error).to_string())?;
        output
            .query_execution_id()
            .map(str::to_owned)
            .ok_or_else(|| "no QueryExecutionId in the answer".to_owned())
    }

    async fn state(&self, id: &str) -> Result<State, AthenaError> {
        let output = self
            .client
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .map_err(|error| AthenaError::Call {
                execution_id: id.to_owned(),
                message: DisplayErrorContext(&error).to_string(),
            })?;
        let execution = output.query_execution();
        let status = execution.and_then(|execution| execution.status());
        match status.and_then(|status| status.state()) {
            Some(QueryExecutionState::Succeeded) => Ok(State::Done(
                execution
                    .and_then(|execution| execution.statistics())
                    .and_then(|statistics| statistics.data_scanned_in_bytes())
                    .and_then(|bytes| u64::try_from(bytes).ok()),
            )),
            Some(state @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => {
                Err(AthenaError::Failed {
                    execution_id: id.to_owned(),
                    state: state.as_str().to_owned(),
                    reason: status
                        .and_then(|status| status.state_change_reason())
                        .unwrap_or("no reason given")
                        .to_owned(),
                })
            }
            // QUEUED, RUNNING, or a state this SDK does not know yet: keep polling.
            _ => Ok(State::Running),
        }
    }

    async fn results(
        &self,
        id: &str,
    ) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), AthenaError> {
        let mut columns = Vec::new();
        let mut rows = Vec::new();
        let mut next_token: Option<String> = None;
        let mut first_page = true;
        loop {
            let output = self
                .client
                .get_query_results()
                .query_execution_id(id)
                .max_results(1000)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|error| AthenaError::Call {
                    execution_id: id.to_owned(),
                    message: DisplayErrorContext(&error).to_string(),
                })?;
            let Some(set) = output.result_set() else {
                break;
            };
            if first_page {
                columns = set
                    .result_set_metadata()
                    .map(|metadata| {
                        metadata
                            .column_info()
                            .iter()
                            .map(|column| column.name().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
            }
            let mut page: Vec<Vec<Option<String>>> = set
                .rows()
                .iter()
                .map(|row| {
                    row.data()
                        .iter()
                        .map(|datum| datum.var_char_value().map(str::to_owned))
                        .collect()
                })
                .collect();
            if first_page {
                drop_label_row(&columns, &mut page);
                first_page = false;
            }
            rows.extend(page);
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => break,
            }
        }
        Ok((columns, rows))
    }

    /// Best effort: a batch that failed should not keep spending the caller's money.
    async fn stop_all(&self, ids: &[String]) {
        for id in ids {
            let _ = self
                .client
                .stop_query_execution()
                .query_execution_id(id)
                .send()
                .await;
        }
    }
}

enum State {
    Running,
    Done(Option<u64>),
}

/// Removes the first row when it is the column labels, as Athena sends on a SELECT's first page.
pub fn drop_label_row(columns: &[String], page: &mut Vec<Vec<Option<String>>>) {
    let is_labels = page.first().is_some_and(|first| {
        !columns.is_empty()
            && first.len() == columns.len()
            && first.iter().zip(columns).all(|(cell, column)| {
                cell.as_deref()
                    .is_some_and(|cell| cell.eq_ignore_ascii_case(column))
            })
    });
    if is_labels {
        page.remove(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(values: &[&str]) -> Vec<Option<String>> {
        values
            .iter()
            .map(|value| Some((*value).to_owned()))
            .collect()
    }

    #[test]
    fn the_label_row_is_dropped_and_data_kept() {
        let columns = vec!["value".to_owned(), "event_count".to_owned()];
        let mut page = vec![cells(&["value", "event_count"]), cells(&["alice", "3"])];
        drop_label_row(&columns, &mut page);
        assert_eq!(page, vec![cells(&["alice", "3"])]);
        // A page without labels (a later page, or moto configured without them) is untouched.
        let mut page = vec![cells(&["bob", "2"])];
        drop_label_row(&columns, &mut page);
        assert_eq!(page, vec![cells(&["bob", "2"])]);
        // NULL never equals a label.
        let mut page = vec![vec![None, Some("event_count".to_owned())]];
        drop_label_row(&columns, &mut page);
        assert_eq!(page.len(), 1);
    }
}
