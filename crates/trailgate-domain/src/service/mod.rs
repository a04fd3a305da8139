//! The use cases, one file per step (mirroring the function crates), written against the ports.
//!
//! Handlers call exactly one of these; everything that decides lives here or below.
//! Each function that changes a request reads it, builds a `Change` and commits it; a
//! `Conflict` from the ledger means another writer got there first, so the use case reads
//! again and re-decides (`with_retry`).

mod accounts;
mod approval;
mod audit;
mod catalog;
mod context;
mod credentials;
mod decision;
mod export;
mod grant;
mod identity_center;
pub mod identity_center_budget;
mod lifecycle;
mod messages;
mod reconcile;
mod revoke;
mod submit;

pub use accounts::*;
pub use approval::*;
pub use audit::*;
pub use catalog::*;
pub use context::*;
pub use credentials::*;
pub use decision::*;
pub use export::*;
pub use grant::*;
pub use identity_center::*;
pub use lifecycle::*;
pub use messages::*;
pub use reconcile::*;
pub use revoke::*;
pub use submit::*;

use crate::catalog::{Approver, Catalog, Entry};
use crate::error::{Error, ErrorKind, Result};
use crate::identity::Principal;
use crate::ledger::Change;
use crate::ports::Ledger;
use crate::request::{AccessRequest, Caller, NewRequest};

/// How often a use case re-reads after losing a race before giving up.
const CONFLICT_RETRIES: usize = 4;

async fn load<L: Ledger>(ledger: &L, id: &str) -> Result<AccessRequest> {
    ledger
        .get(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no request `{id}`")))
}

/// Runs `attempt` again when it lost a race on the ledger.
async fn with_retry<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(err)
                if err.kind == ErrorKind::Conflict
                    && err.message == STALE
                    && tries < CONFLICT_RETRIES =>
            {
                tries += 1
            }
            Err(err) if err.message == STALE => {
                return Err(Error::retryable("the request kept changing; try again"));
            }
            other => return other,
        }
    }
}

/// The message the ledger adapter uses for a lost conditional write.
pub const STALE: &str = "the request changed while it was being updated";

/// Seals the change with the ledger's chain key and commits it: the one place events are keyed.
async fn commit<L: Ledger>(ledger: &L, mut change: Change) -> Result<AccessRequest> {
    change.seal(ledger.chain_key());
    ledger.commit(&change).await?;
    Ok(change.record)
}

pub(crate) fn find_entry<'a>(catalog: &'a Catalog, input: &NewRequest) -> Result<&'a Entry> {
    catalog.entry(&input.catalog_id).ok_or_else(|| {
        Error::invalid(
            "catalog_id",
            format!("there is no catalog entry `{}`", input.catalog_id),
        )
    })
}

pub(crate) fn entry_of<'c>(catalog: &'c Catalog, request: &AccessRequest) -> Result<&'c Entry> {
    catalog.entry(&request.catalog_id).ok_or_else(|| {
        Error::conflict(format!(
            "catalog entry `{}` no longer exists",
            request.catalog_id
        ))
    })
}

/// The approver of `entry` the caller is, compared as people: the caller's principal belongs
/// to that approver's person (any spelling of it; see [`Catalog::person_of`]).
fn approver_for<'e>(catalog: &Catalog, entry: &'e Entry, caller: &Caller) -> Option<&'e Approver> {
    let person = catalog.person_of(&caller.arn)?;
    entry
        .approvers
        .iter()
        .find(|approver| approver.id == person)
}

/// Whether the caller is the principal that made the request: the same principal (case and
/// IAM path aside) and, where both are known, the same principal id, so a user deleted and
/// created again under the same name is someone else.
fn is_requester_principal(request: &AccessRequest, caller: &Caller) -> bool {
    let same_principal = match (
        Principal::parse(&request.requester),
        Principal::parse(&caller.arn),
    ) {
        (Ok(requester), Ok(caller)) => requester.key() == caller.key(),
        _ => request.requester == caller.arn,
    };
    let same_id = match (&request.requester_principal_id, &caller.principal_id) {
        (Some(recorded), Some(calling)) => recorded == calling,
        _ => true,
    };
    same_principal && same_id
}

/// Whether the caller is the requester as a person: the same principal, or a principal of the
/// requester's person.
fn is_requester_person(catalog: &Catalog, request: &AccessRequest, caller: &Caller) -> bool {
    is_requester_principal(request, caller)
        || catalog
            .person_of(&caller.arn)
            .is_some_and(|person| catalog.is_requester(request, person))
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
#[path = "security_tests.rs"]
mod security_tests;
