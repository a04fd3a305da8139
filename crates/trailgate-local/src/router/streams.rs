//! The Lambda service's DynamoDB stream poller, played by the router: for each stream mapping
//! of the stack, it reads the stream from moto (`DescribeStream`, `GetShardIterator` from
//! `TRIM_HORIZON`, `GetRecords`) and invokes the function with each batch in Lambda's stream
//! event shape, as the service does on AWS.
//!
//! What it keeps of the service's contract: batches of at most the mapping's size, in stream
//! order, one at a time per shard; a batch is retried until the function succeeds, up to the
//! mapping's `MaximumRetryAttempts`; with `ReportBatchItemFailures` an answer naming a record
//! resumes the stream at that record. What it does not: the mapping's `FilterCriteria` (the
//! events function skips what the filter would drop), the batching window, bisecting, and the
//! on-failure destination (a batch given up is logged, not sent to the queue).

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use serde_json::{Value, json};

use super::Shared;
use crate::cloudformation::StreamMapping;

/// How often an idle stream is read again.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// How long a failed batch waits before it is retried.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// One call of moto's DynamoDB Streams API (JSON protocol).
async fn streams_call(shared: &Shared, operation: &str, body: Value) -> Result<Value, String> {
    let response = shared
        .forward
        .post(&shared.moto_url)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("DynamoDBStreams_20120810.{operation}"))
        // moto routes by the signing service; the credentials are moto's defaults.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .map_err(|err| format!("{operation}: {err}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|err| format!("{operation}: {err}"))?;
    if !status.is_success() {
        return Err(format!("{operation}: HTTP {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|err| format!("{operation}: {err}: {text}"))
}

/// An iterator of the stream's shard at `position` (`TRIM_HORIZON`, or at a sequence number).
async fn iterator(shared: &Shared, stream_arn: &str, at: Option<&str>) -> Result<String, String> {
    let described =
        streams_call(shared, "DescribeStream", json!({"StreamArn": stream_arn})).await?;
    let shard = described
        .pointer("/StreamDescription/Shards/0/ShardId")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("DescribeStream: no shard in {described}"))?
        .to_owned();
    let mut request = json!({"StreamArn": stream_arn, "ShardId": shard});
    match at {
        Some(sequence) => {
            request["ShardIteratorType"] = json!("AT_SEQUENCE_NUMBER");
            request["SequenceNumber"] = json!(sequence);
        }
        None => request["ShardIteratorType"] = json!("TRIM_HORIZON"),
    }
    let answer = streams_call(shared, "GetShardIterator", request).await?;
    answer
        .get("ShardIterator")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("GetShardIterator: {answer}"))
}

/// What the function made of a batch.
enum Outcome {
    Done,
    /// Resume at this record's sequence number.
    ResumeAt(String),
    Failed(String),
}

async fn deliver(shared: &Shared, mapping: &StreamMapping, records: &[Value]) -> Outcome {
    let records: Vec<Value> = records
        .iter()
        .map(|record| {
            let mut record = record.clone();
            record["eventSourceARN"] = json!(mapping.stream_arn);
            record
        })
        .collect();
    let payload = Bytes::from(json!({ "Records": records }).to_string());
    match shared.call_function(&mapping.binary, payload).await {
        Ok((status, body)) if (200..300).contains(&status) => {
            let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let first = answer
                .get("batchItemFailures")
                .and_then(Value::as_array)
                .and_then(|failures| failures.first())
                .and_then(|failure| failure.get("itemIdentifier"))
                .and_then(Value::as_str);
            match first {
                Some(sequence) if mapping.report_batch_item_failures => {
                    Outcome::ResumeAt(sequence.to_owned())
                }
                _ => Outcome::Done,
            }
        }
        Ok((status, body)) => {
            Outcome::Failed(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)))
        }
        Err(message) => Outcome::Failed(message),
    }
}

/// Polls one mapping's stream for as long as the router runs.
pub(super) async fn poll(shared: Arc<Shared>, mapping: StreamMapping) {
    let name = format!("stream {} -> {}", mapping.stream_arn, mapping.binary);
    let mut next: Option<String> = None;
    let mut failures: i64 = 0;
    loop {
        let shard_iterator = match next.take() {
            Some(it) => it,
            None => match iterator(&shared, &mapping.stream_arn, None).await {
                Ok(it) => it,
                Err(message) => {
                    shared.log.line(format!("{name}: {message}"));
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            },
        };
        let answer = match streams_call(
            &shared,
            "GetRecords",
            json!({"ShardIterator": shard_iterator, "Limit": mapping.batch_size}),
        )
        .await
        {
            Ok(answer) => answer,
            Err(message) => {
                shared.log.line(format!("{name}: {message}"));
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        let records = answer
            .get("Records")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let after = answer
            .get("NextShardIterator")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if records.is_empty() {
            next = after;
            tokio::time::sleep(POLL_EVERY).await;
            continue;
        }
        match deliver(&shared, &mapping, &records).await {
            Outcome::Done => {
                failures = 0;
                next = after;
            }
            Outcome::ResumeAt(sequence) => {
                shared.log.line(format!(
                    "{name}: the function asked to resume at {sequence}"
                ));
                failures += 1;
                next = iterator(&shared, &mapping.stream_arn, Some(&sequence))
                    .await
                    .ok();
                tokio::time::sleep(RETRY_AFTER).await;
            }
            Outcome::Failed(message) => {
                failures += 1;
                let gave_up = mapping.maximum_retry_attempts >= 0
                    && failures > mapping.maximum_retry_attempts;
                if gave_up {
                    // On AWS the batch's description would go to the on-failure destination.
                    shared.log.line(format!(
                        "{name}: gave up a batch of {} records after {failures} attempts: {message}",
                        records.len()
                    ));
                    failures = 0;
                    next = after;
                } else {
                    shared
                        .log
                        .line(format!("{name}: attempt {failures} failed: {message}"));
                    let first = records
                        .first()
                        .and_then(|record| record.pointer("/dynamodb/SequenceNumber"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    next = match first {
                        Some(sequence) => iterator(&shared, &mapping.stream_arn, Some(&sequence))
                            .await
                            .ok(),
                        None => None,
                    };
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }
}
