//! Recording the reviewer context the context step gathered.

use super::{commit, load, with_retry};
use crate::error::Result;
use crate::ledger::change;
use crate::ports::Ledger;
use crate::request::ContextSummary;
use ::time::OffsetDateTime;

/// Records what reviewers will be shown. Until a CloudTrail source is configured this says so
/// plainly instead of pretending the requester's history is clean.
pub async fn record_context<L: Ledger>(
    ledger: &L,
    id: &str,
    context: ContextSummary,
    now: OffsetDateTime,
) -> Result<ContextSummary> {
    with_retry(|| {
        let context = context.clone();
        async move {
            let current = load(ledger, id).await?;
            let mut next = current.clone();
            next.context = Some(context.clone());
            commit(
                ledger,
                change(
                    Some(&current),
                    next,
                    "trailgate:context",
                    "ContextGathered",
                    Some(context.summary.clone()),
                    now,
                )?,
            )
            .await?;
            Ok(context)
        }
    })
    .await
}
