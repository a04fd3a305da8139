//! `jitctl approve|deny ID`: decide on a request as yourself, for approvers who prefer the CLI.
//!
//! The call is SigV4-signed like every other API call; the server identifies the approver by
//! the caller's ARN and holds it to the same rules as an e-mail link (never your own request,
//! one decision each, nothing after the request is decided or its window closed).

use crate::api::{Client, segment};
use crate::endpoint::Target;
use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};
use std::process::ExitCode;

/// Arguments shared by `approve` and `deny`.
#[derive(Debug, Args)]
pub struct DecisionArgs {
    /// The request id, e.g. r-01j...
    pub id: String,
    /// A note for the ledger and the other approvers.
    #[arg(long)]
    pub comment: Option<String>,
    /// Print the request as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `jitctl approve` (`approve` true) or `jitctl deny`.
pub async fn run(target: &Target, args: DecisionArgs, approve: bool) -> Result<ExitCode> {
    let client = Client::connect(target).await?;
    let request = decide(&client, &args.id, approve, args.comment.as_deref()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&request)?);
    } else {
        println!("{}", summary(&request));
    }
    Ok(ExitCode::SUCCESS)
}

/// The body of `POST /requests/{id}/decision`.
pub fn body(approve: bool, comment: Option<&str>) -> Value {
    let mut body = json!({"decision": if approve { "approve" } else { "deny" }});
    if let Some(comment) = comment {
        body["comment"] = json!(comment);
    }
    body
}

/// Records the caller's decision and returns the request as it now stands.
pub async fn decide(
    client: &Client,
    id: &str,
    approve: bool,
    comment: Option<&str>,
) -> Result<Value> {
    client
        .post_json(
            &format!("/requests/{}/decision", segment(id)),
            &body(approve, comment),
        )
        .await
}

/// One line saying what the decision did, e.g. when more approvals are still needed.
pub fn summary(request: &Value) -> String {
    let id = request["id"].as_str().unwrap_or("?");
    match (request["status"].as_str(), request["outcome"].as_str()) {
        (Some("PENDING"), _) => {
            format!("{id}: your approval is recorded; more approvals are needed")
        }
        (Some(status), Some(outcome)) => format!("{id}: {status} ({outcome})"),
        (Some(status), None) => format!("{id}: {status}"),
        _ => format!("{id}: decision recorded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_decision_and_only_a_given_comment() {
        assert_eq!(body(true, None), json!({"decision": "approve"}));
        assert_eq!(
            body(false, Some("no")),
            json!({"decision": "deny", "comment": "no"})
        );
    }

    #[test]
    fn the_summary_says_when_more_approvals_are_needed() {
        assert!(summary(&json!({"id": "r-1", "status": "PENDING"})).contains("more approvals"));
        assert_eq!(
            summary(&json!({"id": "r-1", "status": "DENIED", "outcome": "denied by bob"})),
            "r-1: DENIED (denied by bob)"
        );
    }
}
