//! Translates the `Audit Session` step: records the end-of-session report.
//!
//! Until a CloudTrail source is wired in, the report covers what the ledger knows (grant
//! window, credentials issued, the verified event chain) and says the API calls were not analysed.

use serde::Deserialize;
use serde_json::{Value, json};
use trailgate_aws::LambdaError;
use trailgate_domain::error::Error;
use trailgate_domain::ports::Ledger;
use trailgate_domain::service;

#[derive(Deserialize)]
struct Input {
    request_id: String,
}

pub async fn handle<L: Ledger>(payload: Value, ledger: &L) -> Result<Value, LambdaError> {
    let input: Input = serde_json::from_value(payload)
        .map_err(|err| Error::internal(format!("bad Audit Session input: {err}")))?;
    let cloudtrail = json!({
        "analysed": false,
        "reason": "no CloudTrail source is configured: the session's API calls were not analysed",
    });
    let report = service::audit(
        ledger,
        &input.request_id,
        cloudtrail,
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(
        json!({ "credentials_issued": report["credentials_issued"], "ledger_chain_verified": report["ledger_chain_verified"] }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailgate_domain::request::Status;
    use trailgate_domain::testing::*;

    #[tokio::test]
    async fn only_revoked_requests_are_audited() {
        let ledger = MemoryLedger::default();
        let id = seed(&ledger, pending_request()).id;
        let err = handle(json!({"request_id": id}), &ledger)
            .await
            .unwrap_err();
        assert_eq!(err.0.kind.name(), "Conflict");

        let ledger = MemoryLedger::default();
        let mut request = pending_request();
        request.status = Status::Revoked;
        let id = seed(&ledger, request).id;
        let out = handle(json!({"request_id": id}), &ledger).await.unwrap();
        assert_eq!(out["ledger_chain_verified"], true);
        assert_eq!(ledger.record(&id).unwrap().status, Status::Audited);
    }
}
