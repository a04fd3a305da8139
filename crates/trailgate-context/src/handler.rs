//! Translates the `Gather Context` step: records what reviewers will be shown.
//!
//! No CloudTrail source is wired in yet, and the summary says exactly that, so no reviewer
//! mistakes "nothing checked" for "nothing found".

use serde::Deserialize;
use serde_json::Value;
use trailgate_aws::LambdaError;
use trailgate_domain::error::Error;
use trailgate_domain::ports::Ledger;
use trailgate_domain::request::ContextSummary;
use trailgate_domain::service;

#[derive(Deserialize)]
struct Input {
    request_id: String,
}

/// What reviewers see until a CloudTrail source is configured.
pub fn unconfigured() -> ContextSummary {
    ContextSummary {
        available: false,
        summary:
            "No CloudTrail source is configured: the requester's recent activity was NOT checked."
                .into(),
        lines: Vec::new(),
    }
}

pub async fn handle<L: Ledger>(payload: Value, ledger: &L) -> Result<Value, LambdaError> {
    let input: Input = serde_json::from_value(payload)
        .map_err(|err| Error::internal(format!("bad Gather Context input: {err}")))?;
    let context = service::record_context(
        ledger,
        &input.request_id,
        unconfigured(),
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    serde_json::to_value(context).map_err(|err| LambdaError(Error::internal(err.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailgate_domain::testing::*;

    #[tokio::test]
    async fn the_context_is_recorded_and_honest() {
        let ledger = MemoryLedger::default();
        let id = seed(&ledger, pending_request()).id;
        let out = handle(serde_json::json!({"request_id": id}), &ledger)
            .await
            .unwrap();
        assert_eq!(out["available"], false);
        assert!(out["summary"].as_str().unwrap().contains("NOT checked"));
        assert_eq!(ledger.record(&id).unwrap().context, Some(unconfigured()));
    }
}
